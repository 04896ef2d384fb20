"""The supernet's 3x3 pools, forward and backward, on NCHW input as they are against the same
pool run on a channels_last copy (copied back after), interleaved, on the CPU.

    python benchmarks/pool.py

Prints, per shape and pool, the median per-round ratio (NCHW time / channels_last time) after
checking that both give the same output and gradient.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _interleave

from _interleave import interleave, machine  # noqa: E402

from nasgal.engine.cpu import keep_freed_memory  # noqa: E402

POOLS = {
    "max": lambda x, s: F.max_pool2d(x, 3, s, 1),
    "avg": lambda x, s: F.avg_pool2d(x, 3, s, 1, count_include_pad=False),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    keep_freed_memory()
    print(f"3x3 pools forward+backward, batch {args.batch}; {machine('cpu')}", flush=True)
    torch.manual_seed(0)
    for c, size, stride in ((32, 32, 1), (16, 32, 1), (64, 16, 1), (32, 32, 2)):  # the supernet's sources, C=16
        for name, pool in POOLS.items():
            x = torch.randn(args.batch, c, size, size, requires_grad=True)
            g = torch.randn_like(pool(x, stride))

            def nchw():
                return torch.autograd.grad(pool(x, stride), x, g)

            def copied():
                return torch.autograd.grad(pool(x.contiguous(memory_format=torch.channels_last), stride).contiguous(), x, g)

            torch.testing.assert_close(copied(), nchw())
            res = interleave({"nchw": nchw, "copied": copied}, rounds=args.rounds, steps_per_round=args.steps, warmup=1)
            print(f"{name} pool, {c} channels {size}x{size} stride {stride}: NCHW {res.median_seconds('nchw') * 1e3:6.2f} ms"
                  f"  channels_last copy {res.median_seconds('copied') * 1e3:6.2f} ms"
                  f"  {res.median_speedup('copied', 'nchw'):.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
