"""Settings of a prepared voice dataset (``nasgal datasets prepare voice``): no torch here.

Every field decides the cached spectrograms, so every field is part of the cache's hash: the
same settings on the same files reuse the cache, any other value builds a new one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..spec.io import problems_of


class VoiceSettings(BaseModel):
    """How speech files become a speaker-identification dataset of spectrogram images."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    speakers: int | None = Field(
        None, ge=2,
        description="Speakers kept: the N whose total speech time differs least (none: every usable speaker).",
    )
    segment_seconds: float = Field(3.0, gt=0, le=60, description="Length of one piece of speech, in seconds.")
    size: int = Field(360, ge=8, le=2048, description="Spectrogram images are resized to size×size pixels.")
    test_pieces: int = Field(20, ge=1, description="Test pieces per speaker; the rest train.")
    split_by: Literal["utterance", "video", "piece"] = Field(
        "utterance",
        description="What test and training pieces never share: an utterance (file), a video (VoxCeleb folder) "
                    "or nothing (piece: pieces of one utterance may land on both sides).",
    )
    seed: int = Field(0, ge=0, description="Seed of the train/test split.")
    sample_rate: int = Field(16_000, ge=1000, le=192_000, description="Every file is resampled to this rate (Hz), mono.")
    n_fft: int = Field(512, ge=16, description="STFT window and FFT length in samples (512 at 16 kHz: 32 ms).")
    hop: int = Field(160, ge=1, description="STFT hop in samples (160 at 16 kHz: 10 ms).")
    db_range: float = Field(80.0, gt=0, description="Decibels below each piece's peak mapped to black; quieter is clipped.")

    @model_validator(mode="after")
    def _segment_holds_frames(self) -> VoiceSettings:
        samples = self.segment_samples
        if samples < self.n_fft:
            raise ValueError(f"a {self.segment_seconds} s piece has {samples} samples, fewer than n_fft {self.n_fft}")
        return self

    @property
    def segment_samples(self) -> int:
        """Samples in one piece at the target rate."""
        return int(round(self.segment_seconds * self.sample_rate))

    @classmethod
    def resolve(cls, **values: Any) -> VoiceSettings:
        """Settings from ``values`` (those not ``None``; the rest take their defaults)."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as err:
            raise ConfigError(problems_of(err), source="voice dataset settings") from None
