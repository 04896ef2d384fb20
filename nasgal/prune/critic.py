"""The GAL critic: a 5-layer perceptron on class-probability vectors, trained as a WGAN critic."""

from __future__ import annotations

import torch
from torch import nn


class Critic(nn.Module):
    """MLP with widths ``[K, 128, 256, 128, 1]`` and LeakyReLU(0.2) between layers.

    Input: softmax outputs ``[B, K]``; output: one score per sample ``[B]``. A WGAN critic:
    higher for "real" (teacher) samples; no sigmoid.
    """

    def __init__(self, classes: int, widths: tuple[int, ...] = (128, 256, 128)):
        super().__init__()
        dims = [classes, *widths, 1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(p).squeeze(1)  # [B]


def clip_weights_(critic: nn.Module, bound: float) -> None:
    """WGAN weight clipping, in place, without a host sync."""
    params = [p.data for p in critic.parameters()]
    torch._foreach_clamp_min_(params, -bound)
    torch._foreach_clamp_max_(params, bound)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean of (‖∇D(x̂)‖ − 1)² on random interpolates x̂ of real and fake samples."""
    eps = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)  # [B, 1]
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)  # [B, K]
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()
