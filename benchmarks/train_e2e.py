"""`nasgal train` end to end against its own training step, interleaved in one process.

    python benchmarks/train_e2e.py --data-dir /usr/share/datasets/fashion-mnist     # CPU, 3 rounds

Each round runs a real `train()` (FashionMNIST, a stratified 6,000-image subset, 1 epoch,
the paper recipe: what `nasgal train net.json -d fashion_mnist --subset 6000 --epochs 1`
does, in a fresh run directory) and then times the same training step alone on synthetic
batches already in memory (as benchmarks/train_step.py does), at the same batch size. The
ratio of the two images/s per round says what loading, augmentation and bookkeeping cost
the training epoch; the run's wall time (data loading, validation and the final test pass
included) says what a user waits for. Prints a line per round and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _args import add_network_args, network  # noqa: E402

from nasgal.compiler import compile_network  # noqa: E402
from _interleave import machine  # noqa: E402
from nasgal.engine.optim import sgd  # noqa: E402
from nasgal.progress import Reporter  # noqa: E402
from nasgal.train import resolve_config, train  # noqa: E402
from nasgal.train.step import TrainStep  # noqa: E402


def step_images_per_s(net, cfg, steps: int) -> float:
    """Images/s of the training step `train()` builds (same layout, optimizer, clipping,
    precision), on synthetic batches in memory, after two warm-up steps."""
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = compile_network(net).train()
    channels_last = cfg.channels_last if cfg.channels_last is not None else True
    mf = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=mf)
    step = TrainStep(model, sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay, device), grad_clip=cfg.grad_clip,
                     precision=cfg.precision, capture="none", device=device)
    shape = (cfg.batch_size, net.input.channels, *net.input.size)
    batches = [(torch.randn(shape).contiguous(memory_format=mf), torch.randint(0, net.classes, (cfg.batch_size,)))
               for _ in range(4)]
    for i in range(2):
        step(*batches[i])
    t0 = time.perf_counter()
    for i in range(steps):
        step(*batches[i % 4])
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(p)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--subset", type=int, default=6000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps of the step benchmark per round")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net = network(args)
    cfg = resolve_config("paper", epochs=1, subset=args.subset, batch_size=args.batch, device="cpu")
    print(f"{net.name}, batch {args.batch}, {args.subset} images, {machine('cpu')}", flush=True)
    rows = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train(net, dataset="fashion_mnist", config=cfg, out_dir=Path(tmp) / "run", data_dir=args.data_dir,
                        reporter=Reporter(), download=False)
            wall = time.perf_counter() - t0
        step = step_images_per_s(net, cfg, args.steps)
        row = {"train_images_per_s": res["images_per_s"], "step_images_per_s": step,
               "ratio": res["images_per_s"] / step, "wall_s": wall, "train_images": res["train_images"],
               "wall_images_per_s": res["train_images"] / wall}
        rows.append(row)
        print(f"round {r + 1}: nasgal train {row['train_images_per_s']:7.1f} img/s in its epoch, step alone "
              f"{step:7.1f} img/s: {row['ratio']:.2f}; whole run {wall:.1f} s ({row['wall_images_per_s']:.1f} img/s)",
              flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in ("train_images_per_s", "step_images_per_s", "ratio", "wall_s")}
    if args.json:
        print(json.dumps({"network": net.name, "batch": args.batch, "subset": args.subset, "rounds": rows, "median": med}))
    else:
        print(f"median: epoch {med['train_images_per_s']:.1f} img/s, step {med['step_images_per_s']:.1f} img/s, "
              f"ratio {med['ratio']:.2f}, whole run {med['wall_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
