"""Command-line arguments shared by train_step.py and prune_step.py, and the network they describe.

Each script adds its own arguments (batch size, capture, critic steps, ...) around these.
"""

from __future__ import annotations

import argparse

import torch

import nasgal
from nasgal.spec.library import resolve_spec_path


def add_network_args(p: argparse.ArgumentParser) -> None:
    """The network to time; the defaults are the paper's FashionMNIST net (DARTS_V2, 5 cells, C=16, 28x28x1)."""
    p.add_argument("--genotype", default="darts_v2")
    p.add_argument("--cells", type=int, default=5)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--size", type=int, default=28)


def add_device_args(p: argparse.ArgumentParser) -> None:
    """Where and in what number format the steps run."""
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)


def add_timing_args(p: argparse.ArgumentParser, *, warmup: int, steps: int) -> None:
    """Untimed warm-up steps, then ``--repeats`` timings of ``--steps`` steps each."""
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--repeats", type=int, default=3)


def network(args: argparse.Namespace, reductions: list[int] | None = None) -> nasgal.Network:
    """The network of :func:`add_network_args`' arguments (reductions at the default positions unless given)."""
    geno = nasgal.load(resolve_spec_path(args.genotype))
    return nasgal.stack(geno, cells=args.cells, channels=args.channels, classes=args.classes,
                        in_channels=args.in_channels, input_size=args.size, reductions=reductions)
