"""Weight inheritance: the teacher's surviving weights, shaped for a pruned network.

Module names are stable between a network and its pruned version, so most tensors copy
as they are. Where a previous position lost concat nodes, the layers reading it (the next
cells' ``pre0``/``pre1`` 1x1 convs or FactorizedReduce convs, the classifier, the auxiliary
head's first conv) have fewer input channels: their input-channel dimension is sliced to
the channel blocks (``C_cell`` each, in the teacher's concat order) of the surviving nodes.
Everything else (edge ops, BN affine parameters and running statistics) copies unchanged.

In eval mode the inherited model computes exactly what the teacher computes with the
removed nodes' gates at zero, wherever a removed signal would have contributed zero
(always for the concat; for edges out of a removed node up to their final BN's shift).
"""

from __future__ import annotations

import torch

from ..errors import NasgalError
from ..spec.network import Network
from ..spec.plan import NetworkPlan, plan_network


def _input_channels(teacher: NetworkPlan, pruned: NetworkPlan, state: int) -> list[int] | None:
    """Teacher channel indices of state ``state`` (0, 1: stem; 2+q: cell q) that survive."""
    q = state - 2
    if q < 0:
        return None  # the stem never shrinks
    t, p = teacher.cells[q], pruned.cells[q]
    idx: list[int] = []
    for slot, node in enumerate(t.concat):
        if node in p.concat:
            idx.extend(range(slot * t.c, (slot + 1) * t.c))
    return idx


def _reader_state(key: str, network: Network) -> int | None:
    """Which state feeds the layer of parameter ``key`` along its input channels."""
    parts = key.split(".")
    if parts[0] == "cells" and len(parts) > 2 and parts[2] in ("pre0", "pre1"):
        p = int(parts[1])
        return p + (0 if parts[2] == "pre0" else 1)  # states: 0, 1 stem; 2+q cell q
    if parts[0] == "classifier":
        return len(network.positions) + 1
    if parts[0] == "aux_head" and network.auxiliary is not None:
        return network.auxiliary.position + 2
    return None


def inherit_weights(
    pruned_net: Network, teacher_state: dict[str, torch.Tensor], teacher: Network | None = None
) -> dict[str, torch.Tensor]:
    """A state dict for ``compile_network(pruned_net)`` taken from the teacher's weights.

    ``teacher``: the network the weights belong to; by default ``pruned_net`` with every node
    kept (the usual case: the teacher was the unpruned network). Gate parameters in
    ``teacher_state`` (from a generator) are ignored.
    """
    from ..compiler import compile_network

    teacher = teacher or pruned_net.with_kept_nodes([None] * len(pruned_net.positions))
    t_plan, p_plan = plan_network(teacher), plan_network(pruned_net)
    target = compile_network(pruned_net).state_dict()
    expected = compile_network(teacher).state_dict()
    mismatched = [k for k, v in expected.items() if k in teacher_state and teacher_state[k].shape != v.shape]
    missing = [k for k in target if k not in teacher_state]
    if missing or mismatched:
        first = (missing or mismatched)[0]
        detail = (f"{first} is missing" if missing else
                  f"{first} has shape {list(teacher_state[first].shape)}, expected {list(expected[first].shape)}")
        raise NasgalError(
            f"the weights do not belong to {teacher.name} ({len(missing)} tensors missing, {len(mismatched)} of "
            f"another shape; {detail})",
            hint="pass the weights of the network that was pruned (its training run or checkpoint)",
        )
    out: dict[str, torch.Tensor] = {}
    for key, ref in target.items():
        src = teacher_state[key].detach()
        if src.shape != ref.shape:
            state = _reader_state(key, pruned_net)
            idx = _input_channels(t_plan, p_plan, state) if state is not None else None
            if idx is None or src.dim() < 2 or len(idx) != ref.shape[1]:
                raise NasgalError(f"cannot inherit {key}: teacher shape {list(src.shape)}, pruned {list(ref.shape)}")
            src = src.index_select(1, torch.tensor(idx, dtype=torch.long, device=src.device))
        out[key] = src.clone().to(ref.dtype)
    return out
