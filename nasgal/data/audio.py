"""Reading audio files as 16 kHz mono, and resampling on torch.

Files are decoded by libsndfile through ``soundfile`` (WAV, FLAC, OGG and the other formats
libsndfile reads); nasgal parses no audio format itself. Every file is mixed down to mono (the
mean of its channels) and resampled to the target rate with :func:`resample`.

torchaudio is not a dependency (it pins torch to one release and pulls in more than this
needs), so resampling is a short windowed-sinc filter written on torch ops: one ``conv1d``
whose output channels are the phases of a rational rate change, the same method as
polyphase resamplers in audio libraries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

TARGET_RATE = 16_000  # Hz: VoxCeleb's own rate, and what speaker models are usually fed
AUDIO_EXTENSIONS = frozenset({".wav", ".flac"})

_LOBES = 16  # zero crossings of the sinc on each side of the centre: a sharp, short filter
_ROLLOFF = 0.95  # cutoff as a share of the lower Nyquist frequency, leaving room for the transition band
_BETA = 8.6  # Kaiser window shape: about 90 dB of stop-band rejection


def _soundfile():
    """The ``soundfile`` module, imported when first needed (it loads libsndfile)."""
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # the package, or its bundled libsndfile, is missing
        raise DataError(f"cannot read audio: the soundfile package is not usable ({exc})",
                        hint="pip install soundfile (it brings libsndfile with it)") from exc
    return soundfile


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says: frames, sample rate and channels."""

    frames: int
    rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate > 0 else 0.0


class AudioReadError(DataError):
    """One audio file could not be read (the preparation reports it by name and skips it)."""


def read_header(path: Path) -> AudioHeader:
    """Frames, rate and channels of ``path`` from its header; :class:`AudioReadError` when unreadable."""
    sf = _soundfile()
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError, EOFError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise AudioReadError(f"{path}: {_reason(exc, path)}") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioReadError(f"{path}: header gives {info.samplerate} Hz and {info.channels} channels")
    return AudioHeader(int(info.frames), int(info.samplerate), int(info.channels))


def read_audio(path: Path, rate: int = TARGET_RATE) -> torch.Tensor:
    """The file as mono float32 ``[T]`` at ``rate`` Hz; :class:`AudioReadError` when unreadable."""
    sf = _soundfile()
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # [T, channels]
    except (RuntimeError, OSError, ValueError, EOFError, MemoryError) as exc:
        raise AudioReadError(f"{path}: {_reason(exc, path)}") from exc
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: holds no samples")
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))  # [T]
    if not torch.isfinite(mono).all():
        raise AudioReadError(f"{path}: holds samples that are not finite numbers")
    return resample(mono, int(file_rate), rate)


def _reason(exc: BaseException, path: Path) -> str:
    """libsndfile's words, without the path it repeats (the message names the file already)."""
    text = (str(exc).strip() or type(exc).__name__).replace("\n", " ")
    return text.removeprefix(f"Error opening {str(path)!r}: ")


@lru_cache(maxsize=16)
def _kernel(up: int, down: int) -> tuple[torch.Tensor, int]:
    """The polyphase filter bank of a rate change by ``up/down`` (coprime): ``[up, 1, K]`` and its left reach."""
    cutoff = 0.5 * min(1.0, up / down) * _ROLLOFF  # cycles per input sample
    reach = math.ceil(_LOBES / (2 * cutoff))  # input samples on each side of an output instant
    taps = 2 * reach + down  # enough for every phase's window, whose centre moves by < down samples
    phase = torch.arange(up, dtype=torch.float64)[:, None] * down / up  # [up, 1]: where phase p falls
    offset = torch.arange(taps, dtype=torch.float64)[None, :] - reach  # [1, K]: input samples around it
    t = offset - phase  # [up, K]: distance from the output instant, in input samples
    window = torch.special.i0(_BETA * torch.sqrt((1 - (t / reach) ** 2).clamp(min=0))) / torch.special.i0(
        torch.tensor(_BETA, dtype=torch.float64))
    window = torch.where(t.abs() <= reach, window, torch.zeros_like(window))
    h = 2 * cutoff * torch.sinc(2 * cutoff * t) * window  # [up, K]
    return h.to(torch.float32)[:, None, :], reach


def resample(x: torch.Tensor, rate: int, new_rate: int) -> torch.Tensor:
    """``x`` (float ``[..., T]`` sampled at ``rate`` Hz) at ``new_rate`` Hz: ``[..., ceil(T·new/rate)]``.

    A windowed-sinc (Kaiser) low-pass at 95 % of the lower Nyquist frequency, evaluated only at
    the output instants: output sample ``n`` sits at input time ``n·rate/new_rate``, and the
    ``up`` distinct fractional offsets of a rational ratio ``up/down`` are the output channels of
    one strided ``conv1d``.
    """
    if rate <= 0 or new_rate <= 0:
        raise DataError(f"sample rates must be positive, got {rate} and {new_rate}")
    if rate == new_rate:
        return x
    g = math.gcd(rate, new_rate)
    up, down = new_rate // g, rate // g
    weight, reach = _kernel(up, down)  # [up, 1, K]
    lead = x.shape[:-1]
    length = x.shape[-1]
    out_len = -(-length * up // down)
    blocks = -(-out_len // up)  # conv outputs per phase
    flat = x.reshape(-1, 1, length).to(torch.float32)  # [B, 1, T]
    right = max(0, (blocks - 1) * down + weight.shape[-1] - reach - length)
    padded = F.pad(flat, (reach, right))  # zeros outside the signal
    y = F.conv1d(padded, weight, stride=down)  # [B, up, blocks]: y[b, p, k] is output sample k·up + p
    y = y.transpose(1, 2).reshape(flat.shape[0], -1)[:, :out_len]  # [B, out_len]
    return y.reshape(*lead, out_len)
