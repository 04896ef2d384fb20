"""Images/s of nasgal's training step, optionally beside a plain eager reference loop.

    python benchmarks/train_step.py --device cuda --capture compile+cuda-graph --precision bf16
    python benchmarks/train_step.py --device cpu --reference      # ratio from one run
    python benchmarks/train_step.py --device cpu --reference --variant nasgal --variant nasgal-nchw

The network defaults to the paper's FashionMNIST net: DARTS_V2, 5 cells, C=16, 28x28x1,
batch 128. Data is synthetic and already on the device: this times the step, not loading.
The reference loop is what the reference DARTS training script does per step, on a network
built as that code builds it (benchmarks/_reference_net.py): eager fp32, NCHW, torch.optim.SGD
(per parameter), gradient clipping, and a host sync for the loss every step.
Every implementation runs in a process of its own (what a process holds, such as the C
allocator's settings, then belongs to one loop, as in a real run), and they are timed in
interleaved rounds (benchmarks/_interleave.py): a line per round with its ratios, then the
medians; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _count import count_step  # noqa: E402
from _args import add_device_args, add_network_args, network  # noqa: E402
from _reference_net import ReferenceNetwork  # noqa: E402
from _interleave import interleave_processes, machine, round_printer, summary  # noqa: E402

import nasgal  # noqa: E402
from nasgal.compiler import compile_network  # noqa: E402
from nasgal.compiler.cpu_paths import use_cpu_paths  # noqa: E402
from nasgal.engine.cpu import keep_freed_memory  # noqa: E402
from nasgal.engine.optim import sgd  # noqa: E402
from nasgal.train.step import TrainStep  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_step(model, device, grad_clip: float = 5.0):
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4, foreach=False)

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=False)
        opt.step()
        loss.item()  # the reference logs the loss every step: one host sync
        (logits.argmax(1) == y).float().mean().item()

    return step


#: nasgal training steps that ``--variant`` can time: what each changes from ``nasgal``, the
#: step ``nasgal train`` runs by default on the CPU (eager fp32, channels-last, torch's fused
#: SGD, freed memory kept in the process).
VARIANTS = {
    "nasgal": {},
    "nasgal-release-memory": {"keep_memory": False},
    "nasgal-1-thread": {"threads": 1},
    "nasgal-no-mkldnn": {"mkldnn": False},
    "nasgal-nchw": {"channels_last": False},
    "nasgal-torch-kernels": {"cpu_paths": False},  # nasgal --torch-kernels: no CPU-only paths
    "nasgal-bf16": {"precision": "bf16"},
    "nasgal-compile": {"capture": "compile"},
    "nasgal-compile+cuda-graph": {"capture": "compile+cuda-graph"},
    "nasgal-cuda-graph": {"capture": "cuda-graph"},
}


def nasgal_step(net, batches, device, args, channels_last: bool, precision: str, capture: str):
    """A step function of nasgal's TrainStep on a fresh copy of the network (seed 0), and the
    batches in the layout it uses."""
    torch.manual_seed(0)
    model = compile_network(net).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    opt = sgd(model, 0.025, 0.9, 3e-4, device)
    step = TrainStep(model, opt, grad_clip=args.grad_clip, precision=precision, capture=capture, device=device)
    return step, batches


def cycling(step, batches):
    """A no-argument function that runs ``step`` on the next batch each call."""
    state = {"i": 0}

    def run():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        step(x, y)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(p)
    p.add_argument("--reductions", default="")
    p.add_argument("--batch", type=int, default=128)
    add_device_args(p)
    p.add_argument("--capture", default="none", choices=["none", "compile", "cuda-graph", "compile+cuda-graph"])
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each implementation first")
    p.add_argument("--steps", type=int, default=3, help="timed steps of each implementation per round")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds; the figures are their medians")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--reference", action="store_true", help="also time the plain eager reference loop, interleaved")
    p.add_argument("--only-reference", action="store_true")
    p.add_argument("--variant", action="append", choices=list(VARIANTS), default=None,
                   help="time these nasgal steps (repeatable; default: the one --capture, --precision and "
                        "--channels-last describe), interleaved with each other and the reference")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of a summary table")
    p.add_argument("--count", action="store_true",
                   help="only count one step's kernels, bytes moved, FLOPs, host syncs and host tensors (no timing; any device)")
    args = p.parse_args()
    device = torch.device(args.device)
    net = network(args, [int(r) for r in args.reductions.split(",")] if args.reductions else None)
    impls: dict[str, dict] = {}  # name -> nasgal options (None: the reference loop)
    if args.reference or args.only_reference:
        impls["reference"] = {}
    if not args.only_reference:
        for name in args.variant or ["custom"]:
            if name == "custom":
                impls["nasgal"] = {"channels_last": args.channels_last, "precision": args.precision,
                                   "capture": args.capture, "keep_memory": True}
            else:
                impls[name] = {"channels_last": True, "precision": "fp32", "capture": "none", "keep_memory": True,
                               **VARIANTS[name]}

    def build(name: str):
        """Runs in the implementation's own process: its batches, model and step."""
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        shape = (args.batch, args.in_channels, args.size, args.size)
        batches = [(torch.randn(shape, device=device), torch.randint(0, args.classes, (args.batch,), device=device))
                   for _ in range(4)]
        opts = dict(impls[name])
        if name == "reference":
            model = ReferenceNetwork(net).to(device).train()
            step, own = reference_step(model, device, args.grad_clip), batches
            info: dict = {}
        else:
            if opts.pop("threads", None):
                torch.set_num_threads(1)
            if not opts.pop("mkldnn", True):
                torch.backends.mkldnn.enabled = False  # torch's own CPU convolution kernels
            use_cpu_paths(opts.pop("cpu_paths", True))  # False: as `nasgal --torch-kernels`
            if opts.pop("keep_memory") and device.type == "cpu":
                keep_freed_memory()  # as `nasgal train` does on the CPU
            step, own = nasgal_step(net, batches, device, args, **opts)
            t0 = time.perf_counter()
            step(*own[0])  # the first step compiles or captures, if asked
            sync(device)
            info = {**impls[name], "first_step_s": round(time.perf_counter() - t0, 3),
                    "graph_captured": getattr(step, "captured", False)}
        if args.count:
            step(*own[0])
            info.update(count_step(lambda: step(*own[1])).summary())

        def finish() -> dict:
            if device.type == "cuda":
                info["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            return info

        return cycling(step, own), lambda: sync(device), finish

    threads = args.threads or torch.get_num_threads()
    base = {"network": net.name, "params": nasgal.count_params(net), "batch": args.batch, "device": str(device),
            "torch": torch.__version__, "threads": threads, "machine": machine(device, threads)}
    if args.count:  # counting needs no timing: one round of one step, each in its process
        _, extras = interleave_processes({n: (lambda n=n: build(n)) for n in impls}, rounds=1, steps_per_round=1,
                                         warmup=0)
        for name, info in extras.items():
            print(json.dumps({**base, "loop": name, **info}))
        return
    baseline = "reference" if "reference" in impls else None
    names = list(impls)
    if not args.json:
        print(f"{base['network']}, batch {args.batch}, {device} ({base['machine']}), "
              f"torch {torch.__version__}; {args.rounds} rounds of {args.steps} steps each, one process per loop",
              flush=True)
    res, extras = interleave_processes({n: (lambda n=n: build(n)) for n in names}, rounds=args.rounds,
                                       steps_per_round=args.steps, warmup=args.warmup,
                                       on_round=None if args.json else round_printer(names, baseline, args.batch))
    figures = summary(res, baseline, args.batch)
    for name, info in extras.items():
        figures[name].update(info)  # type: ignore[union-attr]
    if args.json:
        print(json.dumps({**base, **figures}))
        return
    for name in names:
        row = figures[name]
        line = f"{name:28s} median {row['ms_per_step']:8.1f} ms/step {row['images_per_s']:8.1f} img/s"
        key = f"speedup_vs_{baseline}"
        if baseline and key in row:
            up = row[key]
            line += f"   {up['median']:.2f}x the reference (rounds: {up['min']:.2f}-{up['max']:.2f})"
        print(line, flush=True)
    if "nasgal" in names:  # what each setting is worth: the default against each variant, per round
        for name in names:
            if name not in ("nasgal", "reference"):
                ups = res.speedups("nasgal", name)
                print(f"nasgal against {name}: {statistics.median(ups):.2f}x (median of {len(ups)} rounds; "
                      f"rounds {min(ups):.2f}-{max(ups):.2f})", flush=True)


if __name__ == "__main__":
    main()
