"""A non-affine batch norm that keeps its output, not its input, for the backward pass.

Without scale and shift, a training-mode BN's output *is* the normalised input x̂, and its
input gradient needs only x̂ and 1/σ:

    dx = (dy − mean(dy) − x̂ · mean(dy · x̂)) / σ      (means over batch and pixels, per channel)

``torch``'s BN keeps its input instead. In the supernet every BN output is also kept by the
α-weighted sum that follows it (for α's gradient), so keeping x̂ costs nothing extra while the
input is freed: the α step saves about a third less. The running statistics are updated as
``nn.BatchNorm2d`` updates them (momentum, unbiased variance, ``num_batches_tracked``), and
the state-dict keys are the same. Statistics are computed in float32 (or float64) also for half-precision inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

_DIMS = (0, 2, 3)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when it is a half type (statistics need the range), else as it is."""
    return t.float() if t.element_size() < 4 else t


class _NormaliseKeepOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, running_mean, running_var, momentum: float, eps: float):
        xf = _wide(x)
        var, mean = torch.var_mean(xf, dim=_DIMS, correction=0, keepdim=True)
        invstd = torch.rsqrt(var + eps)
        y = ((xf - mean) * invstd).to(x.dtype)
        if running_mean is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                running_mean.lerp_(mean.flatten().to(running_mean.dtype), momentum)
                running_var.lerp_((var.flatten() * (n / max(n - 1, 1))).to(running_var.dtype), momentum)
        ctx.save_for_backward(y, invstd)
        return y

    @staticmethod
    @once_differentiable  # double backward raises; use keep_output=False (torch's BN) for it
    def backward(ctx, dy: torch.Tensor):
        y, invstd = ctx.saved_tensors
        yf, dyf = _wide(y), _wide(dy)
        mean_dy = dyf.mean(dim=_DIMS, keepdim=True)
        mean_dy_y = (dyf * yf).mean(dim=_DIMS, keepdim=True)
        dx = (dyf - mean_dy - yf * mean_dy_y) * invstd
        return dx.to(dy.dtype), None, None, None, None


class KeepOutputBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d(c, affine=False)`` whose training-mode backward keeps x̂ (see module doc).

    Its backward is differentiable once; ``keep_output = False`` switches to torch's BN, for
    exact higher-order gradients (tests use it as an oracle).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)
        self.keep_output = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.keep_output:
            return super().forward(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, None, None, False, 0.0, self.eps)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return _NormaliseKeepOutput.apply(x, self.running_mean, self.running_var, self.momentum, self.eps)
