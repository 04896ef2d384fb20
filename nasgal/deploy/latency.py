"""Inference latency of trained networks, side by side, measured in one interleaved run.

Every (runtime, network, batch size) gets its warm-up and a calibrated number of calls per
timed block; then ``rounds`` rounds each time one block of every combination, alternating
the order of the networks, so drifts in machine load hit all of them alike. Latencies are
medians over rounds; a ratio is the median of the per-round ratios (paired measurements).

Runtimes: ``eager`` (the compiled spec module, ``torch.inference_mode``), ``compiled``
(``torch.compile`` of it, one specialised graph per batch size) and ``onnxruntime`` (the
exported ONNX file, CPU execution provider, graph optimisations on, idle threads not
spinning, since they would steal the cores the interleaved torch runs are timed on). A runtime that cannot
run here (no C++ compiler for ``torch.compile``, no deploy extra, no CUDA provider) is
reported as unavailable with the reason, and the others are still measured.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import NasgalError
from ..progress import Reporter
from ..spec import Network, network_cost, spec_hash

RUNTIMES = ("eager", "compiled", "onnxruntime")

Runner = Callable[[], Any]


@dataclass(frozen=True)
class Candidate:
    """One network to time: a display name, its spec and its trained weights."""

    name: str
    network: Network
    state: dict[str, torch.Tensor] | None = None  # None: freshly initialised weights (same cost)


@dataclass
class LatencyResult:
    machine: str
    device: str
    threads: int
    rounds: int
    networks: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # runtime, batch, network, latency_ms (median), min_ms, max_ms, images_per_s, calls
    ratios: list[dict[str, Any]]  # runtime, batch, network, of, ratio (median per-round latency ratio)
    unavailable: dict[str, str] = field(default_factory=dict)
    load_avg: list[float] | None = None

    def latency(self, runtime: str, batch: int, network: str) -> float | None:
        for r in self.rows:
            if (r["runtime"], r["batch"], r["network"]) == (runtime, batch, network):
                return r["latency_ms"]
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "device": self.device, "threads": self.threads, "rounds": self.rounds,
                "load_avg": self.load_avg, "networks": self.networks, "rows": self.rows, "ratios": self.ratios,
                "unavailable": self.unavailable}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_label(device: torch.device | str, threads: int | None = None) -> str:
    """The machine a measurement ran on, for labels: CPU model, cores and threads, or the GPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    threads = threads or torch.get_num_threads()
    return f"{_cpu_name()}, {os.cpu_count()} cores, {threads} torch threads"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _torch_runner(model: torch.nn.Module, x: torch.Tensor) -> Runner:
    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def _onnx_session(cand: Candidate, model: torch.nn.Module, dev: torch.device, threads: int) -> Any:
    """An onnxruntime session of ``cand`` (exported in memory, parity-checked like export-onnx)."""
    from .extra import require
    from .onnx_export import _to_onnx, check_parity

    ort = require("onnxruntime", "the onnxruntime latency")
    data = _to_onnx(model, cand.network, None).SerializeToString()
    check_parity(data, model, (cand.network.input.channels, *cand.network.input.size))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # onnxruntime's idle threads spin by default, stealing the cores torch is timed on next.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise NasgalError("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(data, opts, providers=providers)


def _block(run: Runner, calls: int, dev: torch.device) -> float:
    """Seconds per call over ``calls`` back-to-back calls."""
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(calls):
        run()
    _sync(dev)
    return (time.perf_counter() - t0) / calls


def measure_latency(
    candidates: list[Candidate],
    *,
    device: str | torch.device = "cpu",
    batches: tuple[int, ...] = (1, 64),
    runtimes: tuple[str, ...] = RUNTIMES,
    rounds: int = 5,
    block_s: float = 0.2,
    threads: int | None = None,
    seed: int = 0,
    reporter: Reporter | None = None,
) -> LatencyResult:
    """Time every candidate under every runtime at every batch size, interleaved (see the module doc).

    Ratios compare each candidate with the first one (``ratio`` = its latency / the first's).
    """
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise NasgalError(f"unknown runtime(s) {', '.join(unknown)}; known: {', '.join(RUNTIMES)}")
    if not candidates:
        raise NasgalError("nothing to time: give at least one network")
    if rounds < 1 or block_s <= 0 or any(b < 1 for b in batches):
        raise NasgalError("rounds, block time and batch sizes must be positive")
    from ..engine.rundir import resolve_device

    dev = resolve_device(str(device))
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(candidates, dev, batches, runtimes, rounds, block_s, torch.get_num_threads(), seed,
                        reporter or Reporter())
    finally:
        torch.set_num_threads(threads_before)


def _measure(candidates: list[Candidate], dev: torch.device, batches: tuple[int, ...], runtimes: tuple[str, ...],
             rounds: int, block_s: float, threads: int, seed: int, reporter: Reporter) -> LatencyResult:
    from .trained import trained_model

    load_avg = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    gen = torch.Generator().manual_seed(seed)
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise NasgalError(f"two networks share a name ({', '.join(names)}); names label the results")

    # Prepare: one runner per (runtime, candidate, batch); warm it up and calibrate its block.
    runners: dict[tuple[str, str, int], tuple[Runner, int]] = {}
    unavailable: dict[str, str] = {}
    nets: list[dict[str, Any]] = []
    for cand in candidates:
        if cand.state is not None:
            model = trained_model(cand.network, cand.state)
        else:
            from ..compiler import compile_network

            model = compile_network(cand.network).eval()
        cost = network_cost(cand.network)
        nets.append({"name": cand.name, "network": cand.network.name, "spec_hash": spec_hash(cand.network),
                     "params": cost.params, "macs": cost.macs})
        shape = (cand.network.input.channels, *cand.network.input.size)
        for rt in runtimes:
            if rt in unavailable:
                continue
            try:
                if rt == "onnxruntime":
                    sess = _onnx_session(cand, copy.deepcopy(model).cpu(), dev, threads)  # the torch runners keep theirs
                else:
                    dev_model = model.to(dev)
                    fn = torch.compile(dev_model, dynamic=False) if rt == "compiled" else dev_model
                for b in batches:
                    x = torch.randn(b, *shape, generator=gen)
                    if rt == "onnxruntime":
                        feed = {sess.get_inputs()[0].name: x.numpy()}

                        def run(sess=sess, feed=feed) -> Any:
                            return sess.run(None, feed)
                    else:
                        run = _torch_runner(fn, x.to(dev))
                    reporter.message(f"latency: warming up {rt} {cand.name} batch {b}")
                    run()  # the first call compiles / allocates
                    calls, spent = 0, 0.0
                    while spent < block_s / 2 or calls < 2:  # calibrate: calls per block of ~block_s
                        spent += _block(run, 1, dev)
                        calls += 1
                    runners[(rt, cand.name, b)] = (run, max(1, round(block_s / (spent / calls))))
            except NasgalError as e:
                unavailable[rt] = str(e)
            except Exception as e:  # no C++ compiler for inductor, an exporter gap, ...
                unavailable[rt] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if rt in unavailable:
                reporter.message(f"latency: {rt} unavailable: {unavailable[rt]}")
                for key in [k for k in runners if k[0] == rt]:
                    del runners[key]

    # Measure: rounds x batches x runtimes x candidates, the candidates' order alternating.
    times: dict[tuple[str, str, int], list[float]] = {k: [] for k in runners}
    for r in range(rounds):
        reporter.message(f"latency: round {r + 1}/{rounds}")
        order = names if r % 2 == 0 else names[::-1]
        for b in batches:
            for rt in runtimes:
                for name in order:
                    key = (rt, name, b)
                    if key in runners:
                        run, calls = runners[key]
                        times[key].append(_block(run, calls, dev))

    rows = []
    for (rt, name, b), ts in times.items():
        med = statistics.median(ts)
        rows.append({"runtime": rt, "batch": b, "network": name, "latency_ms": 1e3 * med, "min_ms": 1e3 * min(ts),
                     "max_ms": 1e3 * max(ts), "images_per_s": b / med, "calls": runners[(rt, name, b)][1]})
    rows.sort(key=lambda row: (runtimes.index(row["runtime"]), row["batch"], names.index(row["network"])))
    ratios = []
    for rt in runtimes:
        for b in batches:
            base = times.get((rt, names[0], b))
            for name in names[1:]:
                other = times.get((rt, name, b))
                if base and other:
                    ratios.append({"runtime": rt, "batch": b, "network": name, "of": names[0],
                                   "ratio": statistics.median(o / a for o, a in zip(other, base))})
    return LatencyResult(machine_label(dev, threads), str(dev), threads, rounds, nets, rows, ratios, unavailable, load_avg)
