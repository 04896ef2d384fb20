"""Images/s of nasgal's training step, optionally beside a plain eager reference loop.

    python benchmarks/train_step.py --device cuda --capture compile+cuda-graph --precision bf16
    python benchmarks/train_step.py --device cpu --reference      # ratio from one run

The network defaults to the paper's FashionMNIST net: DARTS_V2, 5 cells, C=16, 28x28x1,
batch 128. Data is synthetic and already on the device: this times the step, not loading.
The reference loop is what the reference DARTS training script does per step: eager fp32,
NCHW, per-parameter SGD, gradient clipping, and a host sync for the loss every step.
Prints one JSON object per measurement.
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
from _args import add_device_args, add_network_args, add_timing_args, network  # noqa: E402

import nasgal  # noqa: E402
from nasgal.compiler import compile_network  # noqa: E402
from nasgal.engine.optim import sgd  # noqa: E402
from nasgal.train.step import TrainStep  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step_fn, batches, device, warmup: int, steps: int, repeats: int) -> list[float]:
    for i in range(warmup):
        step_fn(*batches[i % len(batches)])
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            step_fn(*batches[i % len(batches)])
        sync(device)
        times.append((time.perf_counter() - t0) / steps)
    return times


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(p)
    p.add_argument("--reductions", default="")
    p.add_argument("--batch", type=int, default=128)
    add_device_args(p)
    p.add_argument("--capture", default="none", choices=["none", "compile", "cuda-graph", "compile+cuda-graph"])
    p.add_argument("--grad-clip", type=float, default=5.0)
    add_timing_args(p, warmup=5, steps=20)
    p.add_argument("--reference", action="store_true", help="also time the plain eager reference loop")
    p.add_argument("--only-reference", action="store_true")
    p.add_argument("--count", action="store_true",
                   help="only count one step's kernels, bytes moved, FLOPs, host syncs and host tensors (no timing; any device)")
    args = p.parse_args()

    device = torch.device(args.device)
    net = network(args, [int(r) for r in args.reductions.split(",")] if args.reductions else None)
    torch.manual_seed(0)
    shape = (args.batch, args.in_channels, args.size, args.size)
    batches = [(torch.randn(shape, device=device), torch.randint(0, args.classes, (args.batch,), device=device))
               for _ in range(4)]
    base = {"network": net.name, "params": nasgal.count_params(net), "batch": args.batch, "device": str(device),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        base["gpu"] = torch.cuda.get_device_name(device)
    results = {}
    if args.reference or args.only_reference:
        model = compile_network(net).to(device).train()
        step = reference_step(model, device, args.grad_clip)
        if args.count:
            step(*batches[0])
            print(json.dumps({**base, "loop": "reference-eager-fp32", **count_step(lambda: step(*batches[1])).summary()}))
        else:
            ms = statistics.median(time_steps(step, batches, device, args.warmup, args.steps, args.repeats))
            results["reference"] = args.batch / ms
            print(json.dumps({**base, "loop": "reference-eager-fp32", "ms_per_step": ms * 1e3,
                              "images_per_s": args.batch / ms, "graph_captured": getattr(step, "captured", False)}), flush=True)
    if not args.only_reference:
        model = compile_network(net).to(device).train()
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
            batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
        opt = sgd(model, 0.025, 0.9, 3e-4, device)
        step = TrainStep(model, opt, grad_clip=args.grad_clip, precision=args.precision,
                         capture=args.capture, device=device)
        t_setup = time.perf_counter()
        step(*batches[0])
        sync(device)
        setup_s = time.perf_counter() - t_setup
        if args.count:
            print(json.dumps({**base, "loop": "nasgal", "precision": args.precision, "channels_last": args.channels_last,
                              **count_step(lambda: step(*batches[1])).summary()}))
            return
        times = time_steps(step, batches, device, args.warmup, args.steps, args.repeats)
        ms = statistics.median(times)
        row = {**base, "loop": "nasgal", "capture": args.capture, "precision": args.precision,
               "channels_last": args.channels_last, "first_step_s": setup_s, "ms_per_step": ms * 1e3,
               "images_per_s": args.batch / ms, "graph_captured": getattr(step, "captured", False)}
        if "reference" in results:
            row["speedup_vs_reference"] = row["images_per_s"] / results["reference"]
        if device.type == "cuda":
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
