"""Training configuration: the paper's and DARTS's recipes, every value overridable.

The resolved config is saved with each run (``config.json``), so a run directory says
exactly what was done.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..engine.config import StageSettings
from ..errors import NasgalError
from ..options import Capture, Precision


class TrainConfig(StageSettings):
    """Everything that decides a training run besides the network and the data files."""

    SOURCE: ClassVar[str] = "training settings"

    recipe: str = Field("paper", description="Recipe these values started from.")
    epochs: int = Field(50, ge=1, description="Training epochs.")
    batch_size: int = Field(
        128, ge=1, description="Images per step; under torchrun the global batch, split among the processes."
    )
    lr: float = Field(0.01, gt=0, description="Initial learning rate (SGD, momentum).")
    lr_min: float = Field(0.0, ge=0, description="Final learning rate of the cosine schedule.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate schedule over epochs.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(3e-4, ge=0, description="L2 weight decay.")
    grad_clip: float | None = Field(None, gt=0, description="Max global gradient norm (None: no clipping).")
    cutout: int = Field(0, ge=0, description="Cutout square side in pixels (0: off).")
    crop_padding: int | None = Field(
        None, ge=0, description="Random-crop padding (None: the dataset's default, 4 for CIFAR, 0 for MNIST-like)."
    )
    hflip: bool | None = Field(None, description="Random horizontal flips (None: the dataset's default).")
    drop_path: float | None = Field(
        None, ge=0, lt=1, description="Max drop-path rate, ramped linearly over epochs (None: the network spec's)."
    )
    aux_weight: float = Field(0.0, ge=0, description="Auxiliary-head loss weight (used if the network has one).")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Part of the training set held out for validation.")
    subset: int | None = Field(None, ge=1, description="Train on this many training images (stratified), for quick runs.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of weights, data order and augmentation.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    precision: Precision = Field("fp32", description="bf16 autocast or plain fp32.")
    channels_last: bool | None = Field(
        None, description="NHWC memory layout (None: on for CPU and CUDA, where it is faster for this model)."
    )
    capture: Capture = Field(
        "none",
        description="Graph capture of the training step: torch.compile, a CUDA graph of the whole step, or both.",
    )
    eval_batch_size: int = Field(
        512, ge=1, description="Batch size for validation and test passes (under torchrun: global, split among the processes)."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: torch's default).")

    @model_validator(mode="after")
    def _lr_min_below_lr(self) -> "TrainConfig":
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self


#: Recipe values; anything not listed takes the field default.
RECIPES: dict[str, dict[str, Any]] = {
    # DARTS-GAL paper (Tables 2 and 4): batch 128, lr 0.01, 50 epochs, SGD momentum 0.9.
    # The paper gives no schedule or weight decay: cosine annealing and DARTS's 3e-4.
    "paper": {"epochs": 50, "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 3e-4},
    # DARTS evaluation recipe (Liu et al. 2019).
    "darts": {
        "epochs": 600,
        "batch_size": 96,
        "lr": 0.025,
        "momentum": 0.9,
        "weight_decay": 3e-4,
        "grad_clip": 5.0,
        "cutout": 16,
        "drop_path": 0.2,
        "aux_weight": 0.4,
    },
}


def resolve_config(recipe: str = "paper", **overrides: Any) -> TrainConfig:
    """The recipe's values with ``overrides`` (those not ``None``) applied on top."""
    if recipe not in RECIPES:
        raise NasgalError(f"unknown recipe {recipe!r}; recipes: {', '.join(RECIPES)}")
    values = {"recipe": recipe, **RECIPES[recipe]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.resolve(**values)
