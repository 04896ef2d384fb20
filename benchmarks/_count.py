"""Count what one step asks of a device: kernels, bytes moved, FLOPs, host syncs and host tensors.

The search supernet and the training network are many small kernels, so a step's time on a
GPU follows how many kernels it launches and how many bytes they move more than its FLOPs.
Those counts are the same on every device: a dispatch mode sees each ATen op the step runs
(after autograd, before the backend), so a CPU run counts what a GPU would launch, without
timing noise. Host syncs (a value read back) and host tensors (made from Python data inside
the step, copied to the device) are what stop a CUDA graph from capturing the step; the
counter reports both. One ATen op stands for one kernel (a few launch two); views, allocations and
detaches launch none and are not counted. Bytes are each op's tensor inputs plus outputs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

_aten = torch.ops.aten
# Ops that launch no kernel: allocation, aliasing, metadata.
_FREE = {
    _aten.empty.memory_format, _aten.empty_strided.default, _aten.empty_like.default, _aten.new_empty.default,
    _aten.new_empty_strided.default, _aten.detach.default, _aten.alias.default, _aten.lift_fresh.default,
    _aten._unsafe_view.default, _aten.set_.source_Storage_storage_offset,
}
# A tensor made from Python data inside the step (``torch.tensor(...)``, indexing with a list):
# on a GPU a copy from pageable host memory, which a CUDA graph cannot capture.
_LITERAL = {_aten.lift_fresh.default}
# Ops that read a device value on the host: a sync that a CUDA graph cannot hold.
_SYNC = {_aten._local_scalar_dense.default, _aten.is_nonzero.default, _aten.item.default, _aten.nonzero.default}


def _conv_macs(inp: torch.Tensor, out: torch.Tensor, weight: torch.Tensor, transposed: bool) -> int:
    """Multiply-adds of a convolution: each output element sums ``weight[0].numel()``
    products (transposed: each input element spreads that many)."""
    return (inp if transposed else out).numel() * weight[0].numel()


def _flops(func, args, kwargs, out) -> int:
    # torch's registry mis-counts the backward of grouped convs, so convs are counted here:
    # the input gradient and the weight gradient each cost what the forward costs.
    if func is _aten.convolution.default:
        return 2 * _conv_macs(args[0], out, args[1], args[6])
    if func is _aten.convolution_backward.default:
        grad_out, inp, weight, transposed, mask = args[0], args[1], args[2], args[7], args[10]
        return 2 * _conv_macs(inp, grad_out, weight, transposed) * (int(mask[0]) + int(mask[1]))
    flop = flop_registry.get(func.overloadpacket)
    return 0 if flop is None else flop(*args, **kwargs, out_val=out)


def _nbytes(t: torch.Tensor) -> int:
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


@dataclass
class StepCount:
    kernels: int = 0
    bytes: int = 0
    flops: int = 0
    syncs: int = 0
    host_tensors: int = 0
    by_op: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        return {
            "kernels": self.kernels,
            "gib_moved": round(self.bytes / 2**30, 2),
            "gflop": round(self.flops / 1e9, 1),
            "host_syncs": self.syncs,
            "host_tensors": self.host_tensors,
        }


class _Counter(TorchDispatchMode):
    def __init__(self, count: StepCount):
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        c = self.count
        if func in _SYNC:
            c.syncs += 1
            c.by_op[str(func.overloadpacket)] += 1
            return out
        if func in _LITERAL:
            c.host_tensors += 1
            c.by_op[str(func.overloadpacket)] += 1
            return out
        if func in _FREE or func.is_view:
            return out
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        c.kernels += 1
        c.bytes += sum(_nbytes(t) for t in ins) + sum(_nbytes(t) for t in outs)
        c.flops += _flops(func, args, kwargs, out)
        c.by_op[str(func.overloadpacket)] += 1
        return out


def count_step(step) -> StepCount:
    """Run ``step()`` once under the counter."""
    count = StepCount()
    with _Counter(count):
        step()
    return count
