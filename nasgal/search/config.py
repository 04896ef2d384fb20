"""Search settings: DARTS's hyperparameters, every value overridable and recorded (no torch)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.config import StageSettings
from ..engine.schedule import cosine_lr
from ..options import Capture, Precision


class SearchConfig(StageSettings):
    """Hyperparameters of a search; the defaults are DARTS's (Liu et al. 2019)."""

    SOURCE: ClassVar[str] = "search settings"
    RUNTIME: ClassVar[frozenset[str]] = frozenset(
        {"device", "threads", "capture", "recompute", "extra", "tensorboard", "sync_bn"}
    )

    epochs: int = Field(50, ge=1, le=100_000, description="Search epochs.")
    order: Literal["first", "second"] = Field("first", description="First- or second-order α gradient.")
    partial_channels: int = Field(1, ge=1, le=1024, description="PC-DARTS K (1: off).")
    batch_size: int = Field(
        64, ge=1, le=1_000_000,
        description="Batch size of the weight and the α steps; under torchrun the global batch, split among the processes.",
    )
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of weights, α, data halves and order.")
    lr: float = Field(0.025, gt=0, description="Weights: SGD, cosine from lr to lr_min over the epochs.")
    lr_min: float = Field(0.001, ge=0, description="Final learning rate of the weights.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of the weights.")
    weight_decay: float = Field(3e-4, ge=0, description="Weight decay of the weights.")
    grad_clip: float = Field(5.0, gt=0, description="Gradient-norm clip of the weights.")
    arch_lr: float = Field(3e-4, ge=0, description="α: Adam learning rate.")
    arch_betas: tuple[float, float] = Field((0.5, 0.999), description="α: Adam betas.")
    arch_weight_decay: float = Field(1e-3, ge=0, description="α: weight decay.")
    precision: Precision = Field("fp32", description="bf16 autocast of the supernet, or fp32.")
    channels_last: bool = Field(False, description="channels_last memory format.")
    capture: Capture = Field("none", description="Graph capture of the search step.")
    recompute: bool = Field(False, description="Recompute depthwise outputs in backward: less memory, same results.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: torch's default).")
    dataset: str = Field("unknown", description="Dataset name, recorded in the provenance.")
    subset: int | None = Field(None, ge=1, description="Training images used, recorded in the provenance.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form facts for the provenance.")

    @field_validator("arch_betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"Adam betas must lie in [0, 1), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _lr_min_below_lr(self) -> "SearchConfig":
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in ``epoch`` (0-indexed): cosine from ``lr`` to ``lr_min``."""
        return cosine_lr(self.lr, self.lr_min, epoch, self.epochs)


def search_config(**values: Any) -> SearchConfig:
    """A :class:`SearchConfig` from ``values`` (those not ``None``); bad values are a
    :class:`~nasgal.errors.ConfigError` listing each problem."""
    return SearchConfig.resolve(**values)
