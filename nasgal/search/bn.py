"""A non-affine batch norm that keeps its output, not its input, for the backward pass.

Without scale and shift, a training-mode BN's output *is* the normalised input x̂, and its
input gradient needs only x̂ and 1/σ:

    dx = (dy − mean(dy) − x̂ · mean(dy · x̂)) / σ      (means over batch and pixels, per channel)

``torch``'s BN keeps its input instead. In the supernet every BN output is also kept by the
α-weighted sum that follows it (for α's gradient), so keeping x̂ costs nothing extra while the
input is freed: the α step saves about a third less. The running statistics are updated as
``nn.BatchNorm2d`` updates them (momentum, unbiased variance, ``num_batches_tracked``), and
the state-dict keys are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..compiler.cpu_paths import memory_format_of


class _NormaliseKeepOutput(torch.autograd.Function):
    """Both passes are torch's fused BN kernels: the forward as it is; the backward is the
    affine BN backward evaluated at "input" x̂ with mean 0, 1/σ = 1 and weight 1/σ, which is
    the formula above in one kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, running_mean, running_var, momentum: float, eps: float, zeros, ones):
        y, _, invstd = torch.ops.aten.native_batch_norm(x, None, None, running_mean, running_var, True, momentum, eps)
        ctx.eps = eps
        ctx.save_for_backward(y, invstd, zeros.to(invstd.dtype), ones.to(invstd.dtype))
        return y

    @staticmethod
    @once_differentiable  # double backward raises; use keep_output=False (torch's BN) for it
    def backward(ctx, dy: torch.Tensor):
        y, invstd, zeros, ones = ctx.saved_tensors
        dx, _, _ = torch.ops.aten.native_batch_norm_backward(
            dy.contiguous(memory_format=memory_format_of(y)), y, invstd, None, None, zeros, ones, True, ctx.eps, [True, False, False],
        )
        return dx, None, None, None, None, None, None


class KeepOutputBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d(c, affine=False)`` whose training-mode backward keeps x̂ (see module doc).

    Its backward is differentiable once; ``keep_output = False`` switches to torch's BN, for
    exact higher-order gradients (tests use it as an oracle).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)
        self.keep_output = True
        # Set by an owner that advances its BNs' num_batches_tracked in one kernel per forward
        # (Supernet does), for the BNs whose counted_by_owner is true.
        self.counted_outside = False
        # The constant mean 0 and 1/σ 1 of the backward, made once instead of two kernels per step.
        self.register_buffer("_zeros", torch.zeros(num_features), persistent=False)
        self.register_buffer("_ones", torch.ones(num_features), persistent=False)

    @property
    def counted_by_owner(self) -> bool:
        """Whether a forward's num_batches_tracked step is left to the owner: only in training,
        on the output-keeping path, and with a fixed momentum (which never reads the counter)."""
        return (
            self.counted_outside and self.training and self.keep_output and self.track_running_stats
            and self.momentum is not None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.keep_output:
            return super().forward(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, None, None, False, 0.0, self.eps)
        momentum = self.momentum
        if self.track_running_stats and not self.counted_by_owner:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # a cumulative average, as nn.BatchNorm2d keeps it
                momentum = 1.0 / float(self.num_batches_tracked)
        return _NormaliseKeepOutput.apply(
            x, self.running_mean, self.running_var, momentum or 0.0, self.eps, self._zeros, self._ones
        )
