"""Proximal gradient steps (FISTA) on the node masks for λ‖m‖₁ subject to m ≥ 0.

The masks are the generator's gate parameters. The smooth part of the loss (adversarial +
μ·data) gives the gradient; the non-smooth part λ‖m‖₁ + [m ≥ 0] has the closed-form proximal
map ``prox(v) = max(v − η·λ, 0)``, which sets masks exactly to zero. FISTA evaluates the
gradient at an extrapolated point y and keeps the proximal iterate x separately:

    x_k     = max(y_k − η·∇f(y_k) − η·λ, 0)
    t_{k+1} = (1 + sqrt(1 + 4·t_k²)) / 2
    y_{k+1} = max(x_k + (t_k − 1)/t_{k+1} · (x_k − x_{k−1}), 0)

The gates hold y (so the next forward pass sees it); :meth:`MaskFista.masks` gives x, the
sparse iterate that decides pruning. Momentum restarts (t = 1) every ``restart`` steps,
since with a stochastic gradient FISTA's momentum otherwise grows without bound. Everything
stays on the device: no host sync per step.
"""

from __future__ import annotations

import math

import torch


class MaskFista:
    def __init__(self, gates: list[torch.nn.Parameter], lr: float, restart: int = 100) -> None:
        self.gates = gates
        self.lr = lr
        self.restart = restart
        self.x = [g.detach().clone() for g in gates]  # proximal iterates x_k (sparse)
        self.k = 0  # steps since the last restart (host counter: no device sync)
        self.t = 1.0

    def zero_grad(self) -> None:
        for g in self.gates:
            g.grad = None

    @torch.no_grad()
    def step(self, lam: float) -> None:
        if self.k % self.restart == 0:
            self.t = 1.0
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t)) / 2.0
        beta = (self.t - 1.0) / t_next
        shrink = self.lr * lam
        for g, x in zip(self.gates, self.x):
            grad = g.grad if g.grad is not None else torch.zeros_like(g)
            x_new = (g - self.lr * grad - shrink).clamp_(min=0.0)  # prox of λ‖·‖₁ + [· ≥ 0]
            y = (x_new + beta * (x_new - x)).clamp_(min=0.0)
            x.copy_(x_new)
            g.copy_(y)
        self.t = t_next
        self.k += 1

    @torch.no_grad()
    def finish(self) -> None:
        """Put the proximal iterates x into the gates and restart the momentum (end of an epoch)."""
        for g, x in zip(self.gates, self.x):
            g.copy_(x)
        self.k = 0
        self.t = 1.0

    def masks(self) -> list[torch.Tensor]:
        return [x.detach().clone() for x in self.x]

    def state_dict(self) -> dict:
        return {"x": [x.detach().cpu().clone() for x in self.x], "k": self.k, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        for x, v in zip(self.x, state["x"]):
            x.copy_(v)
        self.k = int(state["k"])
        self.t = float(state["t"])
