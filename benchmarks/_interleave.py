"""Interleaved timing of several implementations in one process: the only ratios we report.

A machine's speed drifts from minute to minute (other processes, clocks, caches), by ±20% on
a shared CPU box and more under load, so a ratio of two figures measured at different times
measures the drift as much as the code. Here every round times a block of steps of each
implementation, one after the other, in an order that rotates from round to round; a round's
ratio compares blocks measured seconds apart under the same conditions, and the median over
the rounds is the figure to report. Every round's ratios are printed too, so their spread
shows how much to trust the median.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


def machine(device: torch.device | str = "cpu", threads: int | None = None) -> str:
    """The machine, and the load average when the run starts (it decides how far a CPU figure
    can be trusted), for the first line of a benchmark's output."""
    from nasgal.deploy.latency import machine_label

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machine_label(device, threads)}, load {load:.1f}"


@dataclass
class Interleaved:
    """Seconds per step of each implementation, one entry per round."""

    names: list[str]
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def speedups(self, name: str, baseline: str) -> list[float]:
        """Per round: the baseline's time per step over ``name``'s (above 1: ``name`` is faster)."""
        return [b / t for b, t in zip(self.seconds[baseline], self.seconds[name])]

    def median_speedup(self, name: str, baseline: str) -> float:
        return statistics.median(self.speedups(name, baseline))

    def median_seconds(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def time_block(step: Callable[[], object], n: int, sync: Callable[[], None]) -> float:
    """Seconds per call of ``n`` calls of ``step``, the device waited for on both sides."""
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return (time.perf_counter() - t0) / n


def _rounds(names: list[str], block: Callable[[str], float], rounds: int,
            on_round: Callable[[int, dict[str, float]], None] | None) -> Interleaved:
    """``rounds`` rounds of ``block(name)`` (seconds per step) for every name, in an order
    that rotates by one each round."""
    result = Interleaved(names, {n: [] for n in names})
    for r in range(rounds):
        shift = r % len(names)
        this_round = {name: block(name) for name in names[shift:] + names[:shift]}
        for name in names:
            result.seconds[name].append(this_round[name])
        if on_round is not None:
            on_round(r, this_round)
    return result


def _check(rounds: int, steps_per_round: int) -> None:
    if rounds < 1 or steps_per_round < 1:
        raise ValueError("rounds and steps per round must be at least 1")


def interleave(
    steps: dict[str, Callable[[], object]],
    *,
    rounds: int,
    steps_per_round: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    on_round: Callable[[int, dict[str, float]], None] | None = None,
) -> Interleaved:
    """Time ``steps_per_round`` calls of each step function per round, for ``rounds`` rounds.

    The order of the implementations rotates every round. ``warmup`` untimed calls of each
    come first; ``sync`` waits for the device (a CUDA synchronize) before a clock is read.
    ``on_round(i, {name: seconds per step})`` sees each round as it ends (for progress).
    """
    _check(rounds, steps_per_round)
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    return _rounds(list(steps), lambda name: time_block(steps[name], steps_per_round, sync), rounds, on_round)


def _worker(build: Callable[[], tuple[Callable[[], object], Callable[[], None], Callable[[], dict]]], conn,
            warmup: int) -> None:
    """One implementation's process: build, warm up, then time blocks of steps on request."""
    try:
        conn.recv()  # the parent's turn signal: build and warm up now, while the others wait
        step, sync, finish = build()
        for _ in range(warmup):
            step()
        sync()
        conn.send(("ready", None))
        while True:
            n = conn.recv()
            if n is None:
                conn.send(("done", finish()))
                return
            conn.send(("time", time_block(step, n, sync)))
    except BaseException as e:  # the parent reports it; a worker must not hang its parent
        conn.send(("error", f"{type(e).__name__}: {e}"))


def interleave_processes(
    builders: dict[str, Callable[[], tuple[Callable[[], object], Callable[[], None], Callable[[], dict]]]],
    *,
    rounds: int,
    steps_per_round: int,
    warmup: int = 1,
    on_round: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[Interleaved, dict[str, dict[str, Any]]]:
    """:func:`interleave` with each implementation in a process of its own.

    What a process holds for all its life (the C allocator's settings, torch's thread pool,
    caches) then belongs to one implementation alone, as it would in a real run. Each builder
    runs in its forked process and returns ``(step, sync, finish)``: the step to time, a
    device wait, and a function whose dict (e.g. peak memory) comes back at the end. Only one
    process works at a time; the others wait for their turn. Fork before the parent computes
    anything with torch (its thread pool does not survive a fork).
    """
    _check(rounds, steps_per_round)
    ctx = multiprocessing.get_context("fork")
    names = list(builders)
    conns, procs = {}, []
    try:
        for name in names:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(builders[name], child, warmup), daemon=True)
            proc.start()
            conns[name] = parent
            procs.append(proc)

        def answer(name: str, expect: str):
            kind, value = conns[name].recv()
            if kind == "error":
                raise RuntimeError(f"{name}: {value}")
            assert kind == expect, (kind, expect)
            return value

        for name in names:  # build and warm up one at a time, as the rounds run
            conns[name].send("start")
            answer(name, "ready")

        def block(name: str) -> float:
            conns[name].send(steps_per_round)
            return answer(name, "time")

        result = _rounds(names, block, rounds, on_round)
        extras = {}
        for name in names:
            conns[name].send(None)
            extras[name] = answer(name, "done")
        return result, extras
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def summary(result: Interleaved, baseline: str | None, batch: int | None = None) -> dict[str, object]:
    """JSON-ready figures: per implementation the median ms per step (and images/s with
    ``batch``); against ``baseline``, every round's speed-up and their median, min and max."""
    out: dict[str, object] = {"rounds": len(next(iter(result.seconds.values())))}
    for name in result.names:
        row: dict[str, object] = {"ms_per_step": result.median_seconds(name) * 1e3}
        if batch:
            row["images_per_s"] = batch / result.median_seconds(name)
        if baseline is not None and name != baseline:
            ups = result.speedups(name, baseline)
            row[f"speedup_vs_{baseline}"] = {"median": statistics.median(ups), "min": min(ups), "max": max(ups),
                                             "per_round": [round(u, 3) for u in ups]}
        out[name] = row
    return out


def round_printer(names: list[str], baseline: str | None, batch: int | None = None) -> Callable[[int, dict[str, float]], None]:
    """An ``on_round`` that prints one line per round: each implementation's ms per step and,
    against ``baseline``, its speed-up in that round."""

    def show(r: int, secs: dict[str, float]) -> None:
        parts = []
        for name in names:
            part = f"{name} {secs[name] * 1e3:8.1f} ms"
            if batch:
                part += f" ({batch / secs[name]:7.1f} img/s)"
            if baseline is not None and name != baseline:
                part += f" {secs[baseline] / secs[name]:5.2f}x"
            parts.append(part)
        print(f"round {r + 1:2d}: " + " | ".join(parts), flush=True)

    return show
