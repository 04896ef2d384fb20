"""Batched, device-side augmentation: random crop with zero padding, horizontal flip, cutout.

Every function works on a whole batch with tensor ops and draws its random numbers from a
``torch.Generator`` on the batch's device, so nothing loops over images in Python and
nothing waits for the host. Crop and flip happen on uint8 pixels before normalization
(padding is black, as in torchvision's ``RandomCrop``); cutout zeroes the *normalized*
tensor, i.e. it paints the mean colour, as in the DARTS reference code.

``part=(total, offset)``: ``x`` holds images ``offset .. offset + B - 1`` of a batch of
``total`` (a process's share of a data-parallel batch). The random numbers are drawn for the
whole batch and this part's are used, so every image is augmented as one process augments it
and every process's generator stays in step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

Part = tuple[int, int]  # (images in the whole batch, offset of this part)


def _mine(t: torch.Tensor, b: int, part: Part | None) -> torch.Tensor:
    """The rows of ``t`` (drawn for the whole batch) that belong to this part of ``b`` images."""
    return t if part is None else t[part[1] : part[1] + b]


class Augment(BaseModel):
    """Which augmentations a training loader applies. ``Augment()`` applies none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    random_crop_padding: int = Field(
        default=0, ge=0, description="Pad each side by this many black pixels, then crop back at a random offset (0: off)."
    )
    hflip: bool = Field(default=False, description="Mirror each image left-right with probability 1/2.")
    cutout: int = Field(
        default=0, ge=0, description="Side of a square zeroed at a random centre, clipped at the border (0: off; DARTS: 16)."
    )

    @property
    def enabled(self) -> bool:
        return self.random_crop_padding > 0 or self.hflip or self.cutout > 0


def crop_flip(x: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator,
              part: Part | None = None) -> torch.Tensor:
    """Random crop after zero padding and/or random horizontal flip, in one gather.

    x: ``[B, C, H, W]`` (any dtype). Returns a new tensor of the same shape.
    """
    b, c, h, w = x.shape
    n = b if part is None else part[0]  # random numbers drawn for n images
    dev = x.device
    if padding > 0:
        x = F.pad(x, (padding, padding, padding, padding))  # [B, C, H+2p, W+2p], zeros
        oy = _mine(torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator), b, part)  # [B]
        ox = _mine(torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator), b, part)  # [B]
    else:
        oy = ox = torch.zeros(b, dtype=torch.long, device=dev)
    row = torch.arange(h, device=dev)
    col = torch.arange(w, device=dev)
    rows = oy[:, None] + row  # [B, H]
    if hflip:
        flip = _mine(torch.rand(n, device=dev, generator=generator), b, part) < 0.5  # [B]
        cols = ox[:, None] + torch.where(flip[:, None], w - 1 - col, col)  # [B, W]
    else:
        cols = ox[:, None] + col  # [B, W]
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return x[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # [B, C, H, W]


def cutout(x: torch.Tensor, length: int, generator: torch.Generator, part: Part | None = None) -> torch.Tensor:
    """Zero a ``length``×``length`` square (clipped at the border) at a random centre per image.

    x: ``[B, C, H, W]`` float. Returns a new tensor.
    """
    b, _, h, w = x.shape
    n = b if part is None else part[0]
    dev = x.device
    cy = _mine(torch.randint(0, h, (n, 1), device=dev, generator=generator), b, part)  # [B, 1]
    cx = _mine(torch.randint(0, w, (n, 1), device=dev, generator=generator), b, part)  # [B, 1]
    half = length // 2
    row = torch.arange(h, device=dev)
    col = torch.arange(w, device=dev)
    in_rows = (row >= cy - half) & (row < cy + half)  # [B, H]
    in_cols = (col >= cx - half) & (col < cx + half)  # [B, W]
    box = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W]
    return x.masked_fill(box[:, None], 0.0)
