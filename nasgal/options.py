"""Choices shared by the training, pruning, search and experiment configurations (no torch)."""

from __future__ import annotations

from typing import Literal

#: How a step may be captured: torch.compile, a CUDA graph of the whole step, or both.
Capture = Literal["none", "compile", "cuda-graph", "compile+cuda-graph"]
#: Arithmetic of forward and backward: plain float32, or bf16 autocast.
Precision = Literal["fp32", "bf16"]
