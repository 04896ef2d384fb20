"""The stems: how images become the two inputs of the first cell, as a list of layers.

The one definition of every stem kind. The plan (channels and sizes), the cost model, the
compiler and the search supernet all read :func:`stem_layers`, so they cannot disagree.
Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

StemKind = Literal["cifar", "stride2", "imagenet"]
#: Every stem kind a network may use.
STEM_KINDS: tuple[str, ...] = get_args(StemKind)
SearchStemKind = Literal["cifar", "stride2"]
#: The stem kinds a search supernet may use (one input state, so not ``imagenet``).
SEARCH_STEM_KINDS: tuple[str, ...] = get_args(SearchStemKind)


@dataclass(frozen=True)
class StemConv:
    """A bias-free 3x3 conv (padding 1) and an affine BN, with a ReLU first when ``relu``."""

    c_in: int
    c_out: int
    stride: int
    relu: bool = False


@dataclass(frozen=True)
class StemLayers:
    """``first`` turns the image into the first cell's input k-2; ``second`` (empty: none)
    turns that into input k-1. Without ``second`` both inputs are the output of ``first``."""

    first: tuple[StemConv, ...]
    second: tuple[StemConv, ...] = ()

    @property
    def out_channels(self) -> tuple[int, int]:
        c0 = self.first[-1].c_out
        return c0, (self.second[-1].c_out if self.second else c0)

    @property
    def strides(self) -> tuple[int, int]:
        """The total downsampling of each output (4 means a quarter of the input side)."""
        s0 = 1
        for conv in self.first:
            s0 *= conv.stride
        s1 = s0
        for conv in self.second:
            s1 *= conv.stride
        return s0, s1


def stem_layers(kind: str, in_channels: int, channels: int, multiplier: int = 3) -> StemLayers:
    """The layers of stem ``kind`` for images of ``in_channels`` and initial cell channels C.

    - ``cifar`` (DARTS's CIFAR stem): conv to multiplier*C at full resolution.
    - ``stride2`` (the DARTS-GAL paper's stem for large images): a stride-2 conv to
      multiplier*C, then the CIFAR stem's conv on the halved image.
    - ``imagenet`` (DARTS's ImageNet stem): two stride-2 convs (to C/2, then C) give input k-2;
      one more stride-2 conv gives input k-1, so the first cell sees a resolution step as if a
      reduction came before it. ``multiplier`` is not used.
    """
    if kind == "cifar":
        return StemLayers((StemConv(in_channels, multiplier * channels, 1),))
    if kind == "stride2":
        m = multiplier * channels
        return StemLayers((StemConv(in_channels, m, 2), StemConv(m, m, 1, relu=True)))
    if kind == "imagenet":
        c = channels
        return StemLayers(
            (StemConv(in_channels, c // 2, 2), StemConv(c // 2, c, 2, relu=True)),
            (StemConv(c, c, 2, relu=True),),
        )
    raise ValueError(f"unknown stem kind {kind!r}; stem kinds: {', '.join(STEM_KINDS)}")


__all__ = ["SEARCH_STEM_KINDS", "STEM_KINDS", "SearchStemKind", "StemConv", "StemKind", "StemLayers", "stem_layers"]
