"""Log-magnitude spectrograms of speech pieces as uint8 images, batched on torch.

``torch.stft`` (Hann window) → magnitude in decibels → everything more than ``db_range`` below
the piece's own peak clipped → 0..1 → flipped so that low frequencies are the bottom rows, as
spectrograms are drawn → resized (bilinear; antialiased when shrinking) to ``size``×``size`` → uint8.

Each piece is scaled by its own peak, so loudness (microphone gain, distance) does not tell
speakers apart; the shape of the spectrum does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_FLOOR = 1e-10  # added to magnitudes before the logarithm: silence becomes -200 dB, not -inf


def log_spectrogram(pieces: torch.Tensor, n_fft: int, hop: int, size: int, db_range: float) -> torch.Tensor:
    """pieces float ``[B, T]`` → uint8 ``[B, 1, size, size]``."""
    window = torch.hann_window(n_fft, device=pieces.device)
    spec = torch.stft(pieces, n_fft, hop_length=hop, window=window, center=True, return_complex=True)  # [B, F, frames]
    power = spec.real.square() + spec.imag.square()  # [B, F, frames]; cheaper than abs(), no square root
    db = 10.0 * torch.log10(power.add_(_FLOOR * _FLOOR))  # [B, F, frames]: 20·log10 of the magnitude
    top = db.amax(dim=(1, 2), keepdim=True)  # [B, 1, 1]: each piece's peak
    x = ((db - top) / db_range + 1.0).clamp_(min=0.0)  # [B, F, frames] in 0..1
    x = x.flip(1)[:, None]  # [B, 1, F, frames], low frequencies last (bottom)
    shrinks = size < x.shape[2] or size < x.shape[3]  # antialiasing matters (and costs) only when shrinking
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=shrinks, align_corners=False)
    return x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)  # [B, 1, size, size]
