"""Write speech-like audio files for tests: harmonic stacks with a speaker's own pitch and formants.

No speech synthesiser is needed: each "speaker" is a fundamental frequency and a few formant
peaks; each "utterance" varies the pitch a little and switches its loudness on and off like
syllables. Files are written with soundfile in the real formats (WAV, FLAC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

#: (fundamental Hz, formant peaks Hz) per speaker: far apart, so that a tiny network tells them apart.
VOICES = [
    (110.0, (500.0, 1500.0, 2500.0)),
    (220.0, (800.0, 1200.0, 2800.0)),
    (150.0, (300.0, 2300.0, 3000.0)),
    (300.0, (700.0, 1100.0, 3300.0)),
    (180.0, (400.0, 1900.0, 2600.0)),
    (260.0, (600.0, 1700.0, 3500.0)),
]


def speech(voice: int, seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """float32 ``[T]`` in -1..1: glottal pulses at the voice's pitch, shaped by its formants
    (in the frequency domain), syllable-modulated."""
    f0, formants = VOICES[voice % len(VOICES)]
    rng = np.random.default_rng([voice, seed])
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.03 * rng.standard_normal()) * (1 + 0.02 * np.sin(2 * np.pi * 0.7 * t))  # intonation
    cycles = np.cumsum(pitch) / rate
    pulses = np.diff(np.floor(cycles), prepend=0.0) + 0.05 * rng.standard_normal(n)  # one pulse per period, breath
    freqs = np.fft.rfftfreq(n, 1 / rate)
    envelope = sum(np.exp(-0.5 * ((freqs - f) / 120.0) ** 2) for f in formants) + 0.02
    x = np.fft.irfft(np.fft.rfft(pulses) * envelope, n)
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * (3.5 + rng.random()) * t + rng.random() * 6)
    x = x * syllables
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def write_speech(path: Path, voice: int, seconds: float, rate: int = 16_000, seed: int = 0,
                 channels: int = 1) -> Path:
    """One file (format from the suffix: .wav or .flac) of :func:`speech`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = speech(voice, seconds, rate, seed)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x, rate)
    return path


def write_plain(root: Path, speakers: int = 3, utterances: int = 6, seconds: float = 2.0, rate: int = 16_000,
                suffix: str = ".wav") -> Path:
    """``root/<speaker>/<n>.wav``: the plain layout."""
    for s in range(speakers):
        for u in range(utterances):
            write_speech(root / f"spk{s}" / f"utt{u:02d}{suffix}", s, seconds, rate, seed=u)
    return root


def write_voxceleb(root: Path, speakers: int = 3, videos: int = 3, per_video: int = 2, seconds: float = 2.0,
                   rate: int = 16_000) -> Path:
    """``root/idXXXXX/<video>/<n>.wav``: VoxCeleb1's layout."""
    for s in range(speakers):
        for v in range(videos):
            for u in range(per_video):
                write_speech(root / f"id{10001 + s}" / f"vid{v}abcDEF" / f"{u + 1:05d}.wav", s, seconds, rate,
                             seed=10 * v + u)
    return root
