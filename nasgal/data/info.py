"""What a dataset gives a network: channels, image size, classes and pixel statistics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DatasetInfo(BaseModel):
    """Shape and statistics of a loaded dataset, independent of its split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Canonical dataset name, e.g. 'fashion_mnist' or 'image_folder:/data/pets'.")
    channels: int = Field(ge=1, description="Image channels (1 for grey, 3 for RGB).")
    size: tuple[int, int] = Field(description="Image height and width in pixels.")
    classes: int = Field(ge=1, description="Number of classes; labels run from 0 to classes-1.")
    class_names: tuple[str, ...] = Field(description="Name of each class, indexed by label.")
    mean: tuple[float, ...] = Field(description="Per-channel pixel mean on the 0..1 scale, used to normalize.")
    std: tuple[float, ...] = Field(description="Per-channel pixel standard deviation on the 0..1 scale.")

    @model_validator(mode="after")
    def _names_and_stats_match_counts(self) -> DatasetInfo:
        if len(self.class_names) != self.classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.classes} classes")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean has {len(self.mean)} and std {len(self.std)} values for {self.channels} channels"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape ``(C, H, W)``."""
        return (self.channels, *self.size)

    def describe(self) -> str:
        """``'fashion_mnist gives 1×28×28 images in 10 classes'``-style summary."""
        c, h, w = self.shape
        return f"dataset {self.name} gives {c}×{h}×{w} images in {self.classes} classes"
