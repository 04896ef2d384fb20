"""Seeded, stratified selection of indices: the basis of subsets and validation splits."""

from __future__ import annotations

import torch

from .errors import DataError


def class_quotas(counts: torch.Tensor, n: int) -> torch.Tensor:
    """How many of each class to take so that ``n`` items keep the class proportions.

    Largest-remainder rounding in exact integer arithmetic; ties go to the lower class index.
    """
    total = int(counts.sum())
    share = counts * n  # exact numerators over `total`
    quota = share // total
    short = n - int(quota.sum())
    if short:
        remainder = share % total
        order = torch.argsort(-remainder, stable=True)
        quota[order[:short]] += 1
    return quota


def stratified_indices(labels: torch.Tensor, n: int, classes: int, seed: int) -> torch.Tensor:
    """``n`` indices into ``labels`` (sorted, int64, CPU) with class proportions kept; seeded."""
    labels = labels.detach().to("cpu", torch.int64)
    total = labels.numel()
    if not 0 <= n <= total:
        raise DataError(f"cannot take {n} items from a dataset of {total}")
    counts = torch.bincount(labels, minlength=classes)
    quota = class_quotas(counts, n)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(total, generator=gen)  # random order, then grouped by class (stable)
    order = perm[torch.argsort(labels[perm], stable=True)]
    start = torch.cumsum(counts, 0) - counts  # first position of each class in `order`
    grouped = labels[order]
    rank = torch.arange(total) - start[grouped]  # position within its class
    return order[rank < quota[grouped]].sort().values
