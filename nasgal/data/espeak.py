"""A small real-speech set synthesised with espeak-ng: voices as speakers, sentences as utterances.

No speech corpus can be downloaded on the build machines, but Debian's ``espeak-ng`` speaks.
Each speaker is one espeak-ng voice with a variant (``en+m3``: English, male variant 3), which
sets its pitch, formants and timbre; each utterance is one sentence drawn from a fixed word
list with a seeded generator, spoken at a slightly varied rate and pitch. Every speaker reads
the same sentences, so the words never tell speakers apart. Files are written in the plain
layout (``OUT/<speaker>/<NNN>.wav``, 22,050 Hz mono, as espeak-ng writes them) that
``nasgal datasets prepare voice`` reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import DataError

#: Voice+variant pairs, spread over pitch and timbre; a speaker's folder is named after its pair.
VOICES = (
    "en+m1", "en+f2", "en-us+m3", "en+f4", "en+m7", "en-us+f1", "en+croak", "en+klatt2", "en-gb-x-rp+m5",
    "en+f5", "en-us+m2", "en+whisper", "en+m6", "en+f3", "en-us+klatt4", "en+m4", "en+grandma", "en+m8",
)

_WORDS = """time people year way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind head house
service friend father power hour game line end member law car city community name president team minute idea kid
body information back parent face others level office door health person art war history party result change
morning reason research girl guy moment air teacher force education river garden window letter music morning
quietly slowly often always never carefully finally suddenly together again already almost early later
bright green heavy quiet simple strong small large warm cold happy careful gentle little yellow ancient""".split()

ESPEAK = "espeak-ng"
_HINT = "install it: apt-get install espeak-ng (the Makefile's system-deps target does this)"


def sentences(count: int, seed: int = 0, words: tuple[int, int] = (16, 24)) -> list[str]:
    """``count`` sentences of ``words`` (low, high) random words each, the same for the same seed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(words[0], words[1] + 1))
        picked = rng.choice(len(_WORDS), size=n)
        text = " ".join(_WORDS[i] for i in picked)
        out.append(text[0].upper() + text[1:] + ".")
    return out


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def _speak(voice: str, text: str, speed: int, pitch: int, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        done = subprocess.run([ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", tmp, text],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise DataError(f"{ESPEAK} -v {voice} failed for {path}: {done.stderr.strip() or done.returncode}",
                            hint=f"list the voices with `{ESPEAK} --voices` and `{ESPEAK} --voices=variant`")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def synthesise_speech(out: str | os.PathLike[str], speakers: int = 10, utterances: int = 40, seed: int = 0) -> dict[str, int]:
    """Write ``utterances`` sentences for each of ``speakers`` voices into ``out``; returns files per speaker.

    Files already there are kept (running again completes an interrupted set).
    """
    if not espeak_available():
        raise DataError(f"{ESPEAK} is not installed", hint=_HINT)
    if not 2 <= speakers <= len(VOICES):
        raise DataError(f"speakers must be between 2 and {len(VOICES)} (the voices listed in nasgal.data.espeak), got {speakers}")
    if utterances < 1:
        raise DataError(f"utterances must be at least 1, got {utterances}")
    root = Path(out).expanduser()
    texts = sentences(utterances, seed)
    rng = np.random.default_rng(seed + 1)
    jobs = []
    for voice in VOICES[:speakers]:
        folder = root / voice.replace("+", "_")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        for i, text in enumerate(texts):
            speed, pitch = int(rng.integers(150, 186)), int(rng.integers(40, 61))  # drawn for every file: stable
            path = folder / f"{i:03d}.wav"
            if not path.exists():
                jobs.append((voice, text, speed, pitch, path))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: _speak(*job), jobs))
    return {voice.replace("+", "_"): utterances for voice in VOICES[:speakers]}
