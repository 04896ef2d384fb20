"""Finding the speech files of a voice dataset, choosing speakers, and splitting their pieces.

Layouts (the folder given, or its ``wav/`` subfolder when that is all it holds):

* VoxCeleb1: ``<root>/idXXXXX/<video>/<utterance>.wav``;
* plain: ``<root>/<speaker>/<utterance>.wav`` (or ``.flac``).

A speaker is a subfolder of the root; its utterances are the ``.wav``/``.flac`` files below it.
Nothing here decodes audio: headers give durations (:func:`read_headers`), and from them the
speaker selection (:func:`select_speakers`) and the split (:func:`split_pieces`) are decided.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import AUDIO_EXTENSIONS, AudioReadError, read_header
from .errors import DataError

_VOXCELEB_ID = re.compile(r"id\d+")
_LAYOUT_HINT = ("put each speaker's files in its own folder: <root>/<speaker>/<utterance>.wav (or .flac), "
                "or give the VoxCeleb1 wav folder (<root>/idXXXXX/<video>/<utterance>.wav)")


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


@dataclass
class Utterance:
    """One audio file of one speaker, and what its header says."""

    path: Path  # absolute
    rel: str  # path below the root, with '/' separators
    speaker: str
    video: str  # the folder between speaker and file (VoxCeleb), else ''
    size: int  # bytes
    mtime_ns: int
    seconds: float = 0.0
    pieces: int = 0  # whole pieces in it, from the header

    def group(self, split_by: str) -> str:
        """What pieces of this utterance must share with each other on one side of the split."""
        return self.video if split_by == "video" else self.rel


@dataclass
class Source:
    """The speech files found under a root, by speaker."""

    root: Path
    layout: str  # 'voxceleb1', 'plain' or 'mixed'
    speakers: dict[str, list[Utterance]]  # speaker -> utterances, sorted by path
    ignored: list[str] = field(default_factory=list)  # audio files outside any speaker folder

    def listing(self) -> list[tuple[str, int, int]]:
        """(path, bytes, modification time) of every file: what the cache depends on."""
        return [(u.rel, u.size, u.mtime_ns) for utts in self.speakers.values() for u in utts]


def _root_of(src: Path) -> Path:
    if not src.exists():
        raise DataError(f"voice source {src} does not exist", hint=_LAYOUT_HINT)
    if not src.is_dir():
        raise DataError(f"voice source {src} is a file, not a folder", hint=_LAYOUT_HINT)
    entries = [p for p in src.iterdir() if _visible(p)]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name == "wav":  # VoxCeleb's archives unpack to wav/
        return entries[0]
    return src


def scan_source(src: str | os.PathLike[str]) -> Source:
    """The speakers and audio files under ``src`` (no file is opened)."""
    root = _root_of(Path(src).expanduser().resolve())
    speakers: dict[str, list[Utterance]] = {}
    ignored: list[str] = []
    depths: set[int] = set()
    for entry in sorted(root.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_file():
            if entry.suffix.lower() in AUDIO_EXTENSIONS:
                ignored.append(entry.name)
            continue
        utts = []
        for path in sorted(entry.rglob("*")):
            rel_parts = path.relative_to(root).parts
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not all(not part.startswith(".") for part in rel_parts):
                continue
            if not path.is_file():
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
            depths.add(len(rel_parts))
            video = "/".join(rel_parts[1:-1])
            utts.append(Utterance(path, "/".join(rel_parts), entry.name, video, stat.st_size, stat.st_mtime_ns))
        if utts:
            speakers[entry.name] = utts
    if not speakers:
        raise DataError(f"voice source {root} has no speaker folders with .wav or .flac files", hint=_LAYOUT_HINT)
    if depths == {3} and all(_VOXCELEB_ID.fullmatch(s) for s in speakers):
        layout = "voxceleb1"
    elif depths == {2}:
        layout = "plain"
    else:
        layout = "mixed"
    return Source(root, layout, speakers, ignored)


@dataclass
class Skipped:
    """A file left out, and why (shown by name to the user)."""

    path: str
    speaker: str
    reason: str


def read_headers(source: Source, segment_seconds: float, sample_rate: int, segment_samples: int) -> list[Skipped]:
    """Fill in each utterance's duration and whole pieces from its header; drop unreadable and
    too-short files from ``source`` and return them."""
    utts = [u for us in source.speakers.values() for u in us]

    def one(u: Utterance) -> str | None:
        try:
            h = read_header(u.path)
        except AudioReadError as exc:
            return f"unreadable: {exc.message.removeprefix(str(u.path) + ': ')}"
        u.seconds = h.seconds
        samples = -(-h.frames * sample_rate // h.rate)  # after resampling (see audio.resample)
        u.pieces = samples // segment_samples
        if u.pieces == 0:
            return f"too short: {h.seconds:.2f} s, a piece is {segment_seconds:g} s"
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(one, utts))
    skipped = [Skipped(u.rel, u.speaker, r) for u, r in zip(utts, reasons) if r is not None]
    bad = {s.path for s in skipped}
    for name in list(source.speakers):
        kept = [u for u in source.speakers[name] if u.rel not in bad]
        if kept:
            source.speakers[name] = kept
        else:
            del source.speakers[name]
    return skipped


def _rng(seed: int, speaker: str) -> np.random.Generator:
    """A speaker's own random stream: its split does not change when other speakers come or go."""
    return np.random.default_rng([seed, zlib.crc32(speaker.encode("utf-8"))])


def split_pieces(groups: Sequence[tuple[str, int]], test_pieces: int, seed: int, speaker: str) -> tuple[list[int], list[int]] | None:
    """Split one speaker's pieces into (test, train) piece numbers, or None when impossible.

    ``groups`` lists the speaker's pieces in order as (group, count) runs; pieces of one group
    never land on both sides. Groups are visited in a seeded random order and go to the test
    side until it has ``test_pieces``; the last test group gives only the pieces still needed
    (its other pieces are used nowhere); the remaining groups train. None when the test side
    cannot be filled or no training piece is left.
    """
    starts = np.cumsum([0] + [n for _, n in groups])
    rng = _rng(seed, speaker)
    test: list[int] = []
    order = rng.permutation(len(groups))
    used = 0
    for k, g in enumerate(order):
        pieces = list(range(starts[g], starts[g + 1]))
        need = test_pieces - len(test)
        if len(pieces) > need:
            pieces = sorted(rng.permutation(pieces)[:need].tolist())
        test += pieces
        used = k + 1
        if len(test) == test_pieces:
            break
    if len(test) < test_pieces:
        return None
    train = [p for g in order[used:] for p in range(starts[g], starts[g + 1])]
    if not train:
        return None
    return sorted(test), sorted(train)


def piece_groups(utts: Sequence[Utterance], counts: Sequence[int], split_by: str) -> list[tuple[str, int]]:
    """The (group, count) runs of a speaker's pieces: one run per utterance, one per piece for ``piece``."""
    if split_by == "piece":
        return [(f"{u.rel}#{i}", 1) for u, n in zip(utts, counts) for i in range(n)]
    runs: dict[str, int] = {}
    for u, n in zip(utts, counts):
        runs[u.group(split_by)] = runs.get(u.group(split_by), 0) + n
    # pieces of one group must be contiguous: the utterances of a video are listed together (sorted paths)
    return list(runs.items())


def select_speakers(totals: dict[str, float], n: int | None) -> list[str]:
    """The ``n`` speakers whose total speech time differs least (sorted names; all when ``n`` is None).

    Sorted by total seconds, the ``n`` speakers with the smallest spread (longest minus shortest
    total) are always ``n`` neighbours; the window of neighbours with the smallest spread wins,
    ties going to the window with more speech in all, then to the one with shorter totals.
    """
    names = sorted(totals, key=lambda s: (totals[s], s))
    if n is None:
        return sorted(names)
    if n > len(names):
        raise DataError(f"--speakers {n}: only {len(names)} speakers have enough usable speech")
    best: tuple[float, float] | None = None
    pick = 0
    for i in range(len(names) - n + 1):
        window = names[i : i + n]
        key = (totals[window[-1]] - totals[window[0]], -sum(totals[s] for s in window))
        if best is None or key < best:
            best, pick = key, i
    return sorted(names[pick : pick + n])
