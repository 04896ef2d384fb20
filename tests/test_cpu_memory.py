"""CPU runs keep freed memory in the process (glibc's mallopt): counted in page faults, not timed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the allocator setting exists on glibc only")

# One process (the setting is process-wide and cannot be undone): faults per 48 MB block by
# default, with the switch off, with the user's own glibc setting, then with the setting on.
PROBE = textwrap.dedent("""
    import ctypes, json, os, resource
    from nasgal.engine.cpu import keep_freed_memory

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 48 * 2**20

    def block():
        # 48 MB: above glibc's largest automatic mmap threshold (32 MB), so by default every
        # block is mapped afresh and its pages faulted in on first touch
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)

    def faults(n=4):
        for _ in range(4):  # kept, the heap settles after a few blocks
            block()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            block()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

    out = {"default": faults()}
    os.environ["NASGAL_KEEP_MEMORY"] = "0"
    out["switched_off"] = [keep_freed_memory(), faults()]
    del os.environ["NASGAL_KEEP_MEMORY"]
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "131072"
    out["user_setting"] = [keep_freed_memory(), faults()]
    del os.environ["MALLOC_TRIM_THRESHOLD_"]
    out["kept"] = [keep_freed_memory(), faults()]
    print(json.dumps(out))
""")


def test_kept_memory_is_not_faulted_in_again_unless_switched_off():
    env = {k: v for k, v in os.environ.items()
           if k not in ("NASGAL_KEEP_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    pages = 48 * 2**20 // 4096  # 12,288 pages of 4 KiB per block
    assert out["default"] > 0.9 * pages, out
    for left_alone in ("switched_off", "user_setting"):
        applied, faults = out[left_alone]
        assert applied is False and faults > 0.9 * pages, (left_alone, out)
    applied, faults = out["kept"]
    assert applied is True and faults < 0.05 * pages, out


def test_release_memory_switch():
    from nasgal.engine import cpu

    saved = dict(cpu._state)
    try:
        cpu._state.update(applied=False, disabled=False)
        cpu.release_memory()
        assert cpu.keep_freed_memory() is False
    finally:
        cpu._state.update(saved)


def test_a_busy_machine_is_named_when_threads_would_wait(monkeypatch):
    from nasgal.engine import cpu

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cpu, "_others_running", lambda: float(cores))
    msg = cpu.busy_machine_warning(2)
    assert msg and f"({cores:g} other threads running on {cores} cores)" in msg and "--threads 1" in msg
    assert cpu.busy_machine_warning(1) is None
    monkeypatch.setattr(cpu, "_others_running", lambda: 0.0)
    assert cpu.busy_machine_warning(2) is None
    monkeypatch.setattr(cpu, "_others_running", lambda: None)
    assert cpu.busy_machine_warning(2) is None


def test_other_running_threads_are_counted_without_this_one():
    from nasgal.engine import cpu

    others = cpu._others_running(samples=3, interval_s=0.001)
    assert others is None or others >= 0


def test_the_busy_look_is_taken_once_per_process(monkeypatch):
    from nasgal.engine import cpu

    looks = []
    monkeypatch.setattr(cpu, "busy_machine_warning", lambda threads: looks.append(threads) or "busy")
    monkeypatch.setitem(cpu._state, "busy_checked", False)
    assert cpu.warn_once_if_busy(2) == "busy"
    assert cpu.warn_once_if_busy(2) is None and looks == [2]
