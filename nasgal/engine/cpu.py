"""How a CPU run uses the C library's memory allocator.

A training step on the CPU allocates and frees the same large activation buffers every step.
glibc's malloc hands blocks above its mmap threshold straight back to the kernel when they
are freed and trims the top of its heap whenever more than its trim threshold lies free, so
every step maps fresh pages again and the kernel zeroes each one on first touch: measured on
the FashionMNIST network (DARTS_V2, 5 cells, C=16, batch 128) about 67,000 page faults and a
tenth of the step's CPU time in the kernel. Raising both thresholds keeps freed memory in the
process for the next step (about 200 faults per step). The cost: the process holds on to its
peak memory until it exits, which is what a training process wants.

There is no library for this: glibc exposes it only through ``mallopt`` (or its
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables, read once when a
process starts), so it is called here through ``ctypes``. Elsewhere (macOS, musl, Windows)
this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, and this much free heap is kept.
KEEP_BYTES = 1 << 30

#: ``NASGAL_KEEP_MEMORY=0`` (or ``nasgal --release-memory``) leaves glibc's defaults alone.
ENV_SWITCH = "NASGAL_KEEP_MEMORY"
_state = {"applied": False, "disabled": False, "busy_checked": False}


def release_memory() -> None:
    """Leave the allocator at its defaults in this process (call before any run starts)."""
    _state["disabled"] = True


def keep_freed_memory() -> bool:
    """Keep freed memory in this process for reuse (once per process); True if it is now so.

    Does nothing when switched off (``NASGAL_KEEP_MEMORY=0``, :func:`release_memory`), when
    the user set glibc's own ``MALLOC_*_THRESHOLD_`` variables (theirs win), or when the C
    library is not glibc.
    """
    if _state["applied"]:
        return True
    if _state["disabled"] or os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "no", "false", "off"}:
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) == 1 and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.debug("mallopt refused; the allocator keeps its defaults")
        return False
    _state["applied"] = True
    return True


def _others_running(samples: int = 5, interval_s: float = 0.02) -> float | None:
    """How many threads of other processes are runnable right now (median of a few looks at
    the kernel's ``procs_running``, less this process's one running thread); None where the
    kernel does not say. Unlike the load average, this does not count what this process
    itself ran a minute ago (the previous stage of an experiment, say)."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/stat") as f:
                line = next((ln for ln in f if ln.startswith("procs_running")), None)
        except OSError:
            return None
        if line is None:
            return None
        counts.append(int(line.split()[1]) - 1)
        if i + 1 < samples:
            time.sleep(interval_s)
    return statistics.median(counts)


def busy_machine_warning(threads: int) -> str | None:
    """A warning when torch's ``threads`` would share the CPU cores with other busy processes.

    torch's CPU threads wait for each other at the end of every operation; when other
    processes hold the cores, each wait lasts a time slice, and two threads on a busy 2-core
    machine measured slower than one. None when the cores are free, when one thread runs, or
    where the kernel does not say.
    """
    if threads <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = _others_running()
    if others is None or others < min(threads, cores):
        return None
    return (f"the machine is busy ({others:g} other threads running on {cores} cores): {threads} torch threads "
            "wait for each other behind them; --threads 1 may be faster")


def warn_once_if_busy(threads: int) -> str | None:
    """:func:`busy_machine_warning`, looked at once per process: the look takes a tenth of a
    second, and the stages of one experiment would only repeat it."""
    if _state["busy_checked"]:
        return None
    _state["busy_checked"] = True
    return busy_machine_warning(threads)
