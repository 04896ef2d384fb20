"""Pruning configuration: DARTS-GAL's settings, every value overridable and recorded.

The resolved config is saved with each pruning run (``config.json``) and its hyperparameters
go into the pruned spec's ``pruning.params``, so a pruned network says how it was found.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.config import StageSettings
from ..options import Precision


#: The paper's R(W_D) and noise z (DARTS-GAL §3.3-3.4, after GAL) name terms without a form or a
#: size. R(W_D) takes the form and size of R(W_G) (L2 weight decay, 3e-4): on, as in the paper.
#: z is dropout on the generator's input, off by default: measured, it changed no selected node
#: and lowered the generator's validation accuracy (docs/pruning.md, "R(W_D) and the noise z").
CRITIC_WEIGHT_DECAY = 3e-4
NOISE_DROPOUT = 0.0


class PruneConfig(StageSettings):
    """Everything that decides a GAL pruning run besides the network, its weights and the data."""

    SOURCE: ClassVar[str] = "pruning settings"

    method: Literal["gal", "random", "ablation", "magnitude"] = Field(
        "gal",
        description="How nodes are scored: gal (the paper), or a baseline at the same budget: random (seeded), "
        "ablation (validation-loss increase without the node), magnitude (incoming conv weights).",
    )
    # Schedule and data (the paper: batch 100, lr 0.01).
    epochs: int = Field(10, ge=1, description="Pruning epochs over the training split.")
    batch_size: int = Field(
        100, ge=1,
        description="Images per GAL iteration (the paper's 100); under torchrun the global batch, split among the processes.",
    )
    subset: int | None = Field(None, ge=1, description="Use this many training images (stratified), for quick runs.")
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="Part of the training set held out for validation (same split as `train`)."
    )
    # Generator weights: SGD with momentum; weight decay is the paper's R(W_G).
    lr: float = Field(0.01, gt=0, description="Learning rate of the generator's weights (SGD, constant).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of the generator's weights.")
    weight_decay: float = Field(3e-4, ge=0, description="L2 weight decay of the generator's weights, R(W_G).")
    bn: Literal["eval", "train"] = Field(
        "eval",
        description="Generator BatchNorm mode: 'eval' keeps the teacher's statistics (G equals T at the start "
        "and a mask scales a node's real contribution); 'train' normalises with batch statistics.",
    )
    # Objective.
    lam: float = Field(0.02, ge=0, description="Strength λ of the L1 penalty on the node masks.")
    mu: float = Field(1.0, ge=0, description="Weight μ of the data loss (1/2n)·Σ‖p_T − p_G‖² in the generator loss.")
    noise_dropout: float = Field(
        NOISE_DROPOUT, ge=0, lt=1,
        description="The paper's noise z as dropout on the generator's input images during GAL iterations: "
        "this rate of pixels zeroed, the rest scaled by 1/(1 − rate), a fresh draw per iteration; the teacher "
        "sees the clean images (0: off).",
    )
    # Masks: proximal gradient (FISTA) with their own step size and restarts.
    mask_lr: float = Field(0.01, gt=0, description="Step size of the proximal (FISTA) mask updates.")
    lam_warmup: int = Field(
        1, ge=0, description="Epochs over which λ ramps linearly from 0 to its value (0: full λ from the start)."
    )
    fista_restart: int = Field(
        100, ge=1, description="Restart FISTA's momentum every this many iterations (keeps steps bounded)."
    )
    threshold: float = Field(0.0, ge=0, description="A node is removed when its final mask is at or below this.")
    # Critic.
    critic_steps: int = Field(5, ge=1, description="Critic steps per generator step (WGAN's n_critic).")
    critic_weight_decay: float = Field(
        CRITIC_WEIGHT_DECAY, ge=0,
        description="L2 weight decay of the critic's weights, the paper's R(W_D) (0: off).",
    )
    critic_lr: float | None = Field(
        None, gt=0, description="Critic learning rate (None: 5e-5 RMSprop with clipping, 1e-4 Adam with GP)."
    )
    clip: float | None = Field(0.01, ge=0, description="Critic weight clipping bound (0 or None: no clipping).")
    gp: float = Field(0.0, ge=0, description="Gradient-penalty weight (WGAN-GP; 0: off). With GP, use clip=None.")
    # Budget: a target instead of (or on top of) λ's own sparsity.
    keep_params: float | None = Field(
        None, gt=0, le=1, description="Keep at most this fraction of the teacher's parameters (maximal node set under it)."
    )
    keep_nodes: float | None = Field(
        None, gt=0, le=1, description="Keep this fraction of the teacher's live nodes (rounded; met within one node)."
    )
    # Runtime.
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the critic's initialisation, data order and gradient penalty.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    precision: Precision = Field("fp32", description="bf16 autocast of teacher and generator, or fp32.")
    channels_last: bool = Field(True, description="NHWC memory layout for teacher and generator.")
    eval_batch_size: int = Field(512, ge=1, description="Batch size of validation passes.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: torch's default).")

    @field_validator("clip")
    @classmethod
    def _zero_clip_is_off(cls, v: float | None) -> float | None:
        return None if v == 0 else v

    @model_validator(mode="after")
    def _one_budget(self) -> "PruneConfig":
        if self.keep_params is not None and self.keep_nodes is not None:
            raise ValueError("give at most one of keep_params and keep_nodes, not both")
        if self.method != "gal" and self.budget is None:
            raise ValueError(f"method {self.method!r} scores nodes but has no threshold of its own: "
                             "give keep_nodes or keep_params")
        return self

    @property
    def critic_lr_value(self) -> float:
        if self.critic_lr is not None:
            return self.critic_lr
        return 1e-4 if self.gp > 0 else 5e-5

    @property
    def budget(self) -> dict[str, float] | None:
        if self.keep_params is not None:
            return {"keep_params": self.keep_params}
        if self.keep_nodes is not None:
            return {"keep_nodes": self.keep_nodes}
        return None

    def record(self) -> dict[str, Any]:
        """The hyperparameters that decide the pruned spec (for ``pruning.params``)."""
        skip = {"device", "threads", "eval_batch_size", "tensorboard", "sync_bn"}
        return {k: v for k, v in self.model_dump().items() if k not in skip}


def resolve_prune_config(**overrides: Any) -> PruneConfig:
    """The defaults with ``overrides`` (those not ``None``) applied on top."""
    return PruneConfig.resolve(**overrides)
