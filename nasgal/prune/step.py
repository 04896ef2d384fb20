"""One GAL iteration: ``critic_steps`` critic steps and one generator step on a batch.

The teacher is frozen, so the real samples of a batch are one forward pass. The generator
does not change during the critic steps either, so its fake samples are one forward pass
too: the critic steps reuse them (detached) and the generator step backpropagates through
the same graph. This is exactly the algorithm with the critic steps on the iteration's
batch, at the cost of one teacher forward, one generator forward and backward, and
``critic_steps + 1`` passes of a tiny MLP.

Metrics accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import distributed
from ..engine.precision import autocast
from ..engine.step import split_output
from .critic import clip_weights_, gradient_penalty
from .fista import MaskFista

#: Order of the device-side accumulators in :attr:`GALStep.stats`.
STATS = ("critic_loss", "wasserstein", "adv_loss", "data_loss", "teacher_agree", "count")


class GALStep:
    """``step(x, lam)``: one GAL iteration on the batch ``x``.

    ``average`` (data-parallel runs) replaces gradients, in place, by their mean over the
    processes: the critic's at each critic step, the generator's weights' and masks' at the
    generator step, so the critic, the generator and the masks stay the same on every process.
    """

    def __init__(
        self,
        teacher: nn.Module,
        generator: nn.Module,
        critic: nn.Module,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        masks: MaskFista,
        *,
        mu: float,
        critic_steps: int = 5,
        clip: float | None = 0.01,
        gp: float = 0.0,
        noise: float = 0.0,
        precision: str = "fp32",
        device: torch.device = torch.device("cpu"),
        average: Callable[[Sequence[torch.Tensor | None]], None] | None = None,
    ) -> None:
        self.teacher, self.generator, self.critic = teacher, generator, critic
        self.opt_g, self.opt_d, self.masks = opt_g, opt_d, masks
        self.mu, self.critic_steps, self.clip, self.gp, self.noise = mu, critic_steps, clip, gp, noise
        self.device = device
        self.precision = precision
        self.critic_params = list(critic.parameters())
        self.generator_params = [p for g in opt_g.param_groups for p in g["params"]] + list(masks.gates)
        self.average = average
        self.stats = torch.zeros(len(STATS), device=device)
        self.train_generator = True  # False: critic steps only (for tests and diagnostics)

    def _autocast(self):
        return autocast(self.device, self.precision)

    def real(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher softmax ``[B, K]`` (fp32), no graph."""
        with torch.no_grad(), self._autocast():
            logits, _ = split_output(self.teacher(x))
        return F.softmax(logits.float(), dim=1)

    def __call__(self, x: torch.Tensor, lam: float) -> None:
        real = self.real(x)  # [B, K], shared by every critic step and the generator step
        # The noise z: dropout on the generator's input (a fresh draw per iteration); the teacher
        # sees the clean batch.
        x_g = F.dropout(x, self.noise, training=True) if self.noise > 0 and self.train_generator else x
        with self._autocast():
            logits, _ = split_output(self.generator(x_g))
        fake = F.softmax(logits.float(), dim=1)  # [B, K]
        fake_d = fake.detach()

        # Critic: maximise D(real) − D(fake) (minimise its negative), with clipping or GP.
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            w_est = self.critic(real).mean() - self.critic(fake_d).mean()
            loss_d = -w_est
            if self.gp > 0:
                loss_d = loss_d + self.gp * gradient_penalty(self.critic, real, fake_d)
            loss_d.backward()
            if self.average is not None:
                self.average([p.grad for p in self.critic_params])
            self.opt_d.step()
            if self.clip is not None:
                clip_weights_(self.critic, self.clip)

        # Generator: −D(fake) + μ·(1/2n)·Σ‖p_T − p_G‖²; weight decay lives in opt_g.
        data = 0.5 * ((real - fake) ** 2).sum(dim=1).mean()
        if self.train_generator:
            for p in self.critic_params:
                p.requires_grad_(False)
            adv = -self.critic(fake).mean()
            loss_g = adv + self.mu * data
            self.opt_g.zero_grad(set_to_none=True)
            self.masks.zero_grad()
            loss_g.backward()
            if self.average is not None:
                self.average([p.grad for p in self.generator_params])
            self.opt_g.step()
            self.masks.step(lam)
            for p in self.critic_params:
                p.requires_grad_(True)
        else:
            with torch.no_grad():
                adv = -self.critic(fake_d).mean()

        with torch.no_grad():
            n = x.shape[0]
            agree = (logits.detach().argmax(1) == real.argmax(1)).sum()
            row = torch.stack([loss_d.detach().float(), w_est.detach().float(), adv.detach().float(),
                               data.detach().float()]) * n
            self.stats[:4].add_(row)
            self.stats[4].add_(agree)
            self.stats[5].add_(n)

    def read_stats(self) -> dict[str, float]:
        """Per-sample means since the last read, over every process (one host sync)."""
        vals = distributed.sum_(self.stats).tolist()
        self.stats.zero_()
        n = max(vals[-1], 1.0)
        out = {k: v / n for k, v in zip(STATS[:-1], vals[:-1])}
        out["images"] = int(vals[-1])
        return out
