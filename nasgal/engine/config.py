"""The base of every stage's settings (training, pruning, search): strict, frozen, finite,
built from keyword values with every bad value reported as one :class:`~nasgal.errors.ConfigError`."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..spec.io import problems_of

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """Settings of one stage. Subclasses declare fields with a default and a description: the
    command line builds its options from them (:mod:`nasgal.cli.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Words for error messages ("invalid training settings: ...").
    SOURCE: ClassVar[str] = "settings"
    #: Fields that do not decide a run's results: a resumed run may change them.
    RUNTIME: ClassVar[frozenset[str]] = frozenset({"device", "threads"})

    @classmethod
    def resolve(cls: type[S], **values: Any) -> S:
        """Settings from ``values`` (those not ``None``; the rest take their defaults)."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as err:
            raise ConfigError(problems_of(err), source=cls.SOURCE) from None

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint (as JSON data)."""
        return self.model_dump(mode="json", exclude=set(self.RUNTIME))


class StageSettings(Settings):
    """Settings of a stage that runs on the engine (training, pruning, search): what every run
    directory may have besides its records."""

    RUNTIME: ClassVar[frozenset[str]] = frozenset({"device", "threads", "tensorboard", "sync_bn"})

    tensorboard: bool = Field(False, description="Write TensorBoard event files into RUN_DIR/tensorboard.")
    sync_bn: bool = Field(
        True,
        description="Under torchrun: batch norm over the global batch (all processes), so N processes train as "
        "one; off: over each process's part (less communication). No effect on one process.",
    )
