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
    import json, os, resource
    import torch
    from nasgal.engine.cpu import keep_freed_memory

    def faults(n=4):
        # 48 MB: above glibc's largest automatic mmap threshold (32 MB), so by default every
        # block is mapped afresh and its pages faulted in on first touch; kept, the heap
        # settles after a few blocks (small objects land between them at first)
        for _ in range(4):
            torch.empty(12 * 2**20).fill_(1.0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            torch.empty(12 * 2**20).fill_(1.0)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

    torch.set_num_threads(1)
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
    from nasgal.engine.cpu import busy_machine_warning

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 2.0, 0.0, 0.0))
    msg = busy_machine_warning(2)
    assert msg and f"load {cores + 2.0:.1f} on {cores} cores" in msg and "--threads 1" in msg
    assert busy_machine_warning(1) is None
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert busy_machine_warning(2) is None
