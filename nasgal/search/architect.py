"""Gradients of the validation loss with respect to α (DARTS first and second order).

``first_order``: ∂L_val(w, α)/∂α at the current weights.
``second_order``: the DARTS unrolled gradient. With the virtual step
``w' = w − η(∇_w L_train(w, α) + momentum·buf + wd·w)``,

    dα = ∂L_val(w', α)/∂α − η · (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / (2ε),
    w± = w ± ε·∇_w' L_val(w', α),   ε = 0.01 / ‖∇_w' L_val(w', α)‖,

the central finite difference standing for the Hessian-vector product ∇²_{α,w} L_train · ∇_w' L_val.
The virtual and perturbed weights go through :func:`torch.func.functional_call`, so the
module's own parameters are never modified. Nothing here reads a value back to the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..engine.precision import autocast
from .supernet import Architecture


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is in a narrower type (bf16 autocast), else unchanged: a float64
    search stays float64 throughout."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _loss(model: nn.Module, params: Mapping[str, torch.Tensor] | None, x, y, arch, precision: str) -> torch.Tensor:
    with autocast(x.device, precision):
        logits = model(x, arch) if params is None else functional_call(model, dict(params), (x, arch))
    return F.cross_entropy(at_least_fp32(logits), y)


def _grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``loss``; zeros for inputs it does not use (e.g. α_reduce when a
    space has no reduction position)."""
    gs = torch.autograd.grad(loss, list(inputs), allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, gs)]


@contextmanager
def constant_weights(model: nn.Module):
    """The module's weights as constants while inside: autograd then keeps only what α's
    gradient needs (a conv's input is not saved when its weight needs no gradient), which
    cuts the α step's memory by a third, and it runs no weight-gradient kernels."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def first_order(model: nn.Module, arch: Architecture, x_val, y_val, precision: str = "fp32") -> list[torch.Tensor]:
    """∂L_val/∂α at the current weights (weight gradients are neither computed nor prepared for)."""
    with constant_weights(model):
        loss = _loss(model, None, x_val, y_val, arch.as_dict(), precision)
        return _grads(loss, list(arch.parameters()))


def virtual_weights(
    model: nn.Module,
    grads: Sequence[torch.Tensor],
    lr: float | torch.Tensor,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    momentum_buffers: Sequence[torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    """``w − lr·(g + momentum·buf + wd·w)`` for every weight, as new tensors."""
    out = {}
    bufs = momentum_buffers or [None] * len(grads)
    for (name, p), g, buf in zip(model.named_parameters(), grads, bufs):
        step = g + weight_decay * p.detach()
        if buf is not None and momentum:
            step = step + momentum * buf
        out[name] = p.detach() - lr * step
    return out


def momentum_buffers(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor | None]:
    if optimizer is None:
        return [None for _ in model.parameters()]
    return [optimizer.state.get(p, {}).get("momentum_buffer") for p in model.parameters()]


def second_order(
    model: nn.Module,
    arch: Architecture,
    x_train,
    y_train,
    x_val,
    y_val,
    lr: float | torch.Tensor,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    buffers: Sequence[torch.Tensor | None] | None = None,
    precision: str = "fp32",
    r: float = 0.01,
    average: Callable[[Sequence[torch.Tensor]], None] | None = None,
) -> list[torch.Tensor]:
    """The DARTS second-order α gradient (see the module docstring). ``average`` (data-parallel
    runs) replaces each gradient computed here by its mean over the processes, in place, so
    that every quantity (the virtual step, ε, the finite difference) is that of the global batch."""
    mean = average or (lambda ts: None)
    alphas = list(arch.parameters())
    a_det = arch.as_dict(detach=True)
    weights = list(model.parameters())
    loss = _loss(model, None, x_train, y_train, a_det, precision)
    g = list(torch.autograd.grad(loss, weights))
    mean(g)
    w_virtual = virtual_weights(model, g, lr, momentum, weight_decay, buffers)
    for t in w_virtual.values():
        t.requires_grad_(True)
    loss_val = _loss(model, w_virtual, x_val, y_val, arch.as_dict(), precision)
    grads = _grads(loss_val, alphas + list(w_virtual.values()))
    mean(grads)
    d_alpha, d_w = grads[: len(alphas)], grads[len(alphas) :]
    eps = r / torch.sqrt(sum((at_least_fp32(d) ** 2).sum() for d in d_w))  # a device scalar: no host sync

    def alpha_grad_at(sign: float) -> tuple[torch.Tensor, ...]:
        shifted = {name: p.detach() + sign * eps * d for (name, p), d in zip(model.named_parameters(), d_w)}
        gs = _grads(_loss(model, shifted, x_train, y_train, arch.as_dict(), precision), alphas)
        mean(gs)
        return tuple(gs)

    g_plus = alpha_grad_at(1.0)
    g_minus = alpha_grad_at(-1.0)
    return [da - lr * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, g_plus, g_minus)]
