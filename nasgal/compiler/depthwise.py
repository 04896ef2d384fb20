"""Depthwise convolutions with a faster backward on the CPU.

On the CPU, torch's depthwise convolution (oneDNN) runs its forward fast but its backward
slowly, and very slowly with dilation or a 5x5 kernel: measured on 2 cores (16 images of
32x32, 128 channels) a dilated 5x5 conv takes 1.3 ms forward but 46 ms for the input's
gradient and 31 ms for the weight's. Both gradients are themselves convolutions that run
on oneDNN's fast forward path:

* the input's gradient of a stride-1 conv is the same depthwise conv of the output's
  gradient with the kernel flipped (a "full" correlation), summed over the channel
  multiplier when one input channel feeds several outputs: 1.7 ms instead of 46 (a strided
  conv's: the same, on the gradient spread out over the input's grid with zeros between);
* the weight's gradient ``dW[o, i, j] = sum_b sum_hw xpad[b, o/m, i*d + h*s, j*d + w*s] *
  dY[b, o, h, w]`` is a conv of the input (its images side by side as channels) with the
  output's gradient as the kernel: the conv's stride is the kernel's dilation and its
  dilation the conv's stride, and the images are summed afterwards: 4 ms instead of 31.

Where torch's own backward is as fast (a plain 3x3 kernel without dilation, strided convs
without dilation) it is kept; the choice is :func:`_weight_grad_by_conv` and :func:`_input_grad_by_conv`,
from measurements on this kind of machine (``benchmarks/depthwise.py``). Off the CPU
(cuDNN's depthwise backward is fast), without gradients, and under ``torch.compile``,
``torch.export`` (ONNX) or tracing, this is plain ``F.conv2d``; ``nasgal --torch-kernels``
(or ``NASGAL_CPU_PATHS=0``) makes it so on the CPU too.

No library provides this: it is written here. Both gradients are made of differentiable
ops, so double backward works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cpu_paths import backward_paths, memory_format_of

_Pair = tuple[int, int]


def _plain(kernel: _Pair, dilation: _Pair, multiplier: int) -> bool:
    """A 3x3 (or smaller) kernel without dilation, one output per input channel: torch's own
    backward is as fast as the convs here (measured), so it is kept."""
    return max(kernel) <= 3 and dilation == (1, 1) and multiplier == 1


def _input_grad_by_conv(stride: _Pair, padding: _Pair, dilation: _Pair, kernel: _Pair, multiplier: int) -> bool:
    """The flipped-kernel conv gives the input's gradient when the padding is no wider than the
    kernel's reach. A strided conv's gradient is first spread out on the input's grid, zeros
    between: measured, that pays only with dilation (2-12x) and one output per input channel;
    a strided 5x5 or a channel multiplier runs 0.7-0.9x torch's speed that way."""
    fits = all(p <= d * (k - 1) for p, d, k in zip(padding, dilation, kernel))
    if stride != (1, 1):
        return fits and dilation != (1, 1) and multiplier == 1
    return fits and not _plain(kernel, dilation, multiplier)


def _weight_grad_by_conv(stride: _Pair, dilation: _Pair, kernel: _Pair, multiplier: int, nchw: bool) -> bool:
    """Measured (2 cores, oneDNN): at stride 1 torch's weight gradient is as fast only for a plain
    3x3 kernel without dilation and one output per input channel, elsewhere the conv below is
    1.3-8x faster; strided, it pays only with dilation, or with a 5x5 kernel on NCHW input
    (channels_last input needs a copy first), and not with a channel multiplier."""
    if stride == (1, 1):
        return not _plain(kernel, dilation, multiplier)
    return multiplier == 1 and (dilation != (1, 1) or (max(kernel) > 3 and nchw))


class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        return (*depthwise_grads(grad, x, weight, stride, padding, dilation, ctx.needs_input_grad[:2]), None, None, None)


def depthwise_grads(grad, x, weight, stride, padding, dilation, needs=(True, True)):
    """The input's and the weight's gradients of ``F.conv2d(x, weight, groups=channels of x)``
    (None where not needed)."""
    c_in, c_out = x.shape[1], weight.shape[0]
    m = c_out // c_in
    kernel = tuple(weight.shape[-2:])
    native = [
        needs[0] and not _input_grad_by_conv(stride, padding, dilation, kernel, m),
        needs[1] and not _weight_grad_by_conv(stride, dilation, kernel, m, x.is_contiguous()),
    ]
    gx = gw = None
    if any(native):
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, stride, padding, dilation, False, [0, 0], c_in, [native[0], native[1], False]
        )
    if needs[0] and not native[0]:
        pad = [d * (k - 1) - p for p, d, k in zip(padding, dilation, kernel)]
        g = grad
        if stride != (1, 1):  # the gradient spread out on the input's grid, zeros between
            size = [n - 2 * q + d * (k - 1) for n, q, d, k in zip(x.shape[-2:], pad, dilation, kernel)]
            g = torch.empty((*grad.shape[:2], *size), dtype=grad.dtype, memory_format=memory_format_of(grad)).zero_()
            g[:, :, :: stride[0], :: stride[1]][:, :, : grad.shape[-2], : grad.shape[-1]] = grad
        full = F.conv2d(g, weight.flip(-2, -1), None, 1, pad, dilation, c_out)  # [B, c_out, H, W]
        gx = full if m == 1 else full.unflatten(1, (c_in, m)).sum(2)
        gx = gx.contiguous(memory_format=memory_format_of(x))
    if needs[1] and not native[1]:
        gw = _weight_grad(grad, x, kernel, stride, padding, dilation)
    return gx, gw


def _weight_grad(grad, x, kernel, stride, padding, dilation):
    """``dW`` as one grouped conv: the B*c_in image channels convolved with the B*c_out gradient
    maps as kernels (stride = the kernel's dilation, dilation = the conv's stride)."""
    B, c_in, H, W = x.shape
    c_out, Ho, Wo = grad.shape[1:]
    xs = x.contiguous().view(1, B * c_in, H, W)
    gs = grad.contiguous().view(B * c_out, 1, Ho, Wo)
    dw = F.conv2d(xs, gs, None, dilation, padding, stride, B * c_in)  # [1, B*c_out, >=kh, >=kw]
    return dw.view(B, c_out, *dw.shape[-2:])[:, :, : kernel[0], : kernel[1]].sum(0).unsqueeze(1)


def _any_grad_by_conv(x: torch.Tensor, weight: torch.Tensor, stride: _Pair, padding: _Pair, dilation: _Pair) -> bool:
    kernel: _Pair = (weight.shape[-2], weight.shape[-1])
    m = weight.shape[0] // x.shape[1]
    return (_input_grad_by_conv(stride, padding, dilation, kernel, m)
            or _weight_grad_by_conv(stride, dilation, kernel, m, x.is_contiguous()))


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: _Pair = (1, 1), padding: _Pair = (0, 0),
                     dilation: _Pair = (1, 1)) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=..., padding=..., dilation=..., groups=x.shape[1])`` (no bias,
    numeric padding); on the CPU with the faster backward."""
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)  # type: ignore[assignment]
    # torch's conv where no gradient would be computed here (its backward throughout)
    if not (backward_paths(x, weight) and _any_grad_by_conv(x, weight, stride, padding, dilation)):
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])
    if torch.is_autocast_enabled("cpu"):  # what autocast does to a conv's inputs, done before the Function
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = x.to(dtype), weight.to(dtype)
    return _DepthwiseConv2d.apply(x, weight, stride, padding, dilation)


class DepthwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` with ``groups == in_channels`` (same parameters, same state dict) whose
    backward on the CPU is :func:`depthwise_conv2d`'s."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        assert bias is None and self.padding_mode == "zeros"
        return depthwise_conv2d(input, weight, self.stride, self.padding, self.dilation)  # type: ignore[arg-type]
