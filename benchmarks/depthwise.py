"""Forward and backward of one depthwise conv: torch's own against nasgal's
(``nasgal.compiler.depthwise``), interleaved, per conv shape the supernet and the networks use.

    python benchmarks/depthwise.py                        # the search supernet's shapes (batch 16, 32x32)
    python benchmarks/depthwise.py --batch 128 --size 28 --channels-last --multiplier 1   # training's

Prints, per shape, the median per-round ratio (torch's time / nasgal's) and checks that both
give the same gradients first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _interleave

from _interleave import interleave, machine  # noqa: E402

from nasgal.compiler.depthwise import depthwise_conv2d  # noqa: E402
from nasgal.engine.cpu import keep_freed_memory  # noqa: E402

GEOMETRIES = [(3, 1), (5, 1), (3, 2), (5, 2)]  # (kernel, dilation): sep 3/5, dil 3/5


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=32)
    p.add_argument("--multiplier", type=int, nargs="+", default=[4, 1], help="outputs per input channel")
    p.add_argument("--stride", type=int, nargs="+", default=[1, 2])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"depthwise conv forward+backward, batch {args.batch}, {args.size}x{args.size}, "
          f"{'channels_last' if args.channels_last else 'NCHW'}; {machine('cpu')}", flush=True)
    torch.manual_seed(0)
    for s in args.stride:
        for m in args.multiplier:
            for k, d in GEOMETRIES:
                c = args.in_channels
                x = torch.randn(args.batch, c, args.size, args.size)
                if args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_()
                w = torch.randn(c * m, 1, k, k, requires_grad=True)
                pad = d * (k - 1) // 2
                y = F.conv2d(x, w, None, s, pad, d, c)
                g = torch.randn_like(y)

                def torch_step():
                    return torch.autograd.grad(F.conv2d(x, w, None, s, pad, d, c), (x, w), g)

                def nasgal_step():
                    return torch.autograd.grad(depthwise_conv2d(x, w, (s, s), (pad, pad), (d, d)), (x, w), g)

                for a, b in zip(torch_step(), nasgal_step()):
                    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))  # sums of ~10^5 products
                res = interleave({"torch": torch_step, "nasgal": nasgal_step}, rounds=args.rounds,
                                 steps_per_round=args.steps, warmup=1)
                up = res.median_speedup("nasgal", "torch")
                print(f"stride {s} multiplier {m} k{k} d{d} ({c}->{c * m} ch): torch {res.median_seconds('torch') * 1e3:6.2f} ms"
                      f"  nasgal {res.median_seconds('nasgal') * 1e3:6.2f} ms  {up:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
