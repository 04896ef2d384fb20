"""Images/s of nasgal's data-parallel training step on 1, 2, ... processes, and the scaling efficiency.

    python benchmarks/ddp_scaling.py                          # CPU, gloo: 1 and 2 processes, 1 thread each
    python benchmarks/ddp_scaling.py --device cuda            # one process per GPU (nccl): 1, 2, 4, ... GPUs
    python benchmarks/ddp_scaling.py --device cuda --processes 1 --ddp-overhead   # DDP on against off, one GPU

Every measurement starts its processes afresh (spawned, with the environment torchrun gives
them: WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free port) and runs the step
``nasgal train`` runs under torchrun: the network in DistributedDataParallel, batch norm over
the global batch (``--sync-bn``, on by default as in nasgal), fused SGD, gradient clipping.
``--batch`` is the global batch, split among the processes, so every configuration does the
same work per step. Data is synthetic and already on the device: this times the step and its
communication, not loading. Images/s is global batch × steps / wall time of the slowest
process; the efficiency of N processes is images/s(N) / (N × images/s(1)).

On CPU every process gets ``--threads`` torch threads (1 by default), so N processes use N
cores: put no more processes than free cores. With ``--ddp-overhead`` one process also runs
the step inside DDP (a process group of one), which times the wrapper's own cost.
Prints one JSON object per measurement, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _args import add_network_args, network  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, force_ddp: bool, queue) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    import torch.distributed as dist

    from nasgal.compiler import compile_network
    from nasgal.engine import distributed
    from nasgal.engine.optim import sgd
    from nasgal.train.step import TrainStep

    group = force_ddp or world > 1
    if group:  # a group of one too, for --ddp-overhead (nasgal itself starts none for one process)
        backend = "nccl" if args.device == "cuda" else "gloo"
        if args.device == "cuda":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}" if args.device == "cuda" else "cpu")
    torch.manual_seed(0)
    model = compile_network(network(args)).to(device)
    if args.sync_bn:
        distributed.sync_batchnorm(model, device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = sgd(model, 0.025, 0.9, 3e-4, device)
    forward = model
    if group:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
    step = TrainStep(model, opt, grad_clip=5.0, precision=args.precision, device=device, forward=forward)
    local = args.batch // world
    g = torch.Generator(device="cpu").manual_seed(rank)
    x = torch.randn(local, args.in_channels, args.size, args.size, generator=g).to(device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (local,), generator=g).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if group:
            dist.barrier()

    for _ in range(args.warmup):
        step(x, y)
    sync()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(x, y)
        sync()
        times.append(time.perf_counter() - t0)
    step.read_stats()  # the metric sums go through the all-reduce, as in a run
    if rank == 0:
        queue.put(times)
    if group:
        dist.destroy_process_group()


def measure(world: int, args: argparse.Namespace, force_ddp: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(world, _free_port(), args, force_ddp, queue), nprocs=world,
                       start_method="spawn", join=True)
    times = queue.get()
    best = statistics.median(times)
    return {"processes": world, "ddp": force_ddp or world > 1, "sync_bn": args.sync_bn and world > 1,
            "device": args.device, "batch_global": args.batch, "batch_per_process": args.batch // world,
            "threads_per_process": args.threads if args.device == "cpu" else None,
            "images_per_s": args.batch * args.steps / best,
            "step_ms": 1000 * best / args.steps, "repeats_s": [round(t, 3) for t in times]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_network_args(p)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--processes", default=None,
                   help="comma-separated process counts (default: 1,2 on CPU; 1,2,4,... up to the GPUs on CUDA)")
    p.add_argument("--batch", type=int, default=128, help="global batch, split among the processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--ddp-overhead", action="store_true", help="also time one process inside DDP")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but torch sees no CUDA device")
    if args.processes:
        counts = [int(c) for c in args.processes.split(",")]
    elif args.device == "cuda":
        n = torch.cuda.device_count()
        counts = [c for c in (1, 2, 4, 8, 16) if c <= n]
    else:
        counts = [1, 2]
    for c in counts:
        if args.batch % c:
            p.error(f"--batch {args.batch} does not divide among {c} processes")
        if args.device == "cuda" and c > torch.cuda.device_count():
            p.error(f"{c} processes but {torch.cuda.device_count()} GPUs")
    rows = []
    for c in counts:
        row = measure(c, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.ddp_overhead:
        row = measure(1, args, force_ddp=True)
        print(json.dumps(row), flush=True)
        plain = next((r for r in rows if r["processes"] == 1), None)
        if plain:
            print(json.dumps({"ddp_overhead_one_process": round(plain["images_per_s"] / row["images_per_s"] - 1, 4)}))
    base = next((r["images_per_s"] for r in rows if r["processes"] == 1), None)
    if base:
        eff = {str(r["processes"]): round(r["images_per_s"] / (r["processes"] * base), 3) for r in rows}
        print(json.dumps({"scaling_efficiency": eff, "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
