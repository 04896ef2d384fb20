"""Pruning methods besides GAL, as baselines at the same budget: each scores every teacher-live
node, and the same selection (:func:`nasgal.prune.budget.select_nodes`: budget, connectivity
guard) turns the scores into kept nodes.

- ``random``: a seeded uniform score per node — what a method must beat to mean anything.
- ``magnitude``: the root-mean-square of the conv weights of the node's incoming edges, summed
  over those edges (parameter-free ops, pooling and skips, add nothing).
- ``ablation``: the validation loss of the trained network with the node's gate at zero, minus
  the loss with every node: a one-shot sensitivity score (the larger, the more the node matters).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from ..spec import Network
from .budget import candidates

#: Every pruning method, GAL first (the default).
METHODS: tuple[str, ...] = ("gal", "random", "ablation", "magnitude")


def random_scores(network: Network, seed: int) -> list[dict[int, float]]:
    """A uniform score in [0, 1) per teacher-live node, from ``seed`` alone."""
    rng = random.Random(seed)
    return [{n: rng.random() for n in nodes} for nodes in candidates(network)]


def magnitude_scores(network: Network, state: dict[str, torch.Tensor]) -> list[dict[int, float]]:
    """Per node: the sum over its incoming edges of their conv weights' root-mean-square."""
    from ..spec.plan import plan_network

    plan = plan_network(network)
    scores: list[dict[int, float]] = []
    for cp, nodes in zip(plan.cells, candidates(network)):
        per_node = {n: 0.0 for n in nodes}
        for e in cp.edges:
            if e.dst not in per_node:
                continue
            prefix = f"cells.{cp.position}.edges.{e.index}."
            for key, w in state.items():
                if key.startswith(prefix) and w.dim() == 4:  # conv weights, not BatchNorm
                    per_node[e.dst] += float(w.detach().float().pow(2).mean().sqrt())
        scores.append(per_node)
    return scores


@torch.no_grad()
def ablation_scores(network: Network, state: dict[str, torch.Tensor], loader: Any, precision: str,
                    device: torch.device) -> list[dict[int, float]]:
    """Per node: the increase of the validation loss when that node alone is removed (its gate at 0)."""
    from ..engine.step import evaluate
    from ..engine.weights import fitted_model

    model = fitted_model(network, state, gates=True).to(device).eval()
    gates = model.gates()
    base = evaluate(model, loader, precision, device)[0]
    scores: list[dict[int, float]] = []
    for p, nodes in enumerate(candidates(network)):
        ids = list(network.cell_at(p).nodes)
        per_node = {}
        for n in nodes:
            gate = gates[p]
            gate[ids.index(n)] = 0.0
            per_node[n] = evaluate(model, loader, precision, device)[0] - base
            gate[ids.index(n)] = 1.0
        scores.append(per_node)
    return scores
