"""Speaker identification from speech: audio files → 3 s pieces → spectrogram images, cached once.

:func:`prepare_voice` (``nasgal datasets prepare voice SRC --out DIR``) reads the speech files
of :mod:`nasgal.data.voice_scan`'s layouts, keeps the speakers asked for, cuts every file into
pieces of ``segment_seconds``, turns each into a log-magnitude spectrogram image
(:mod:`nasgal.data.spectrogram`), splits the pieces into train and test, and writes it all into
a cache folder. :func:`load_voice` (``load_dataset("voice", data_dir=DIR)``) reads it back as a
:class:`~nasgal.data.Dataset`, so training, search and pruning use it like any image dataset.

Cache layout::

    DIR/voice.json                  which cache is current (the latest prepared)
    DIR/<key>/manifest.json         settings, source, speakers, per-speaker summary, skipped files
    DIR/<key>/pieces.npy            uint8 [N, 1, size, size]: every piece's spectrogram
    DIR/<key>/index.npz             per piece: label, split (0 train, 1 test, -1 unused), utterance, offset

``<key>`` is a digest of the settings and of every source file's path, size and modification
time: preparing again with the same settings on the same files finds the cache and does
nothing; other settings (or changed files) build another folder beside it. A cache folder is
built under a temporary name and renamed when complete, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..progress import Reporter
from ..spec.io import atomic_write_bytes, atomic_write_text
from .audio import AudioReadError, read_audio
from .errors import DataError
from .image_cache import format_bytes, resolve_budget
from .info import DatasetInfo
from .spectrogram import log_spectrogram
from .voice_config import VoiceSettings
from .voice_scan import Skipped, Source, Utterance, piece_groups, read_headers, scan_source, select_speakers, split_pieces

log = logging.getLogger(__name__)

VOICE_FORMAT = 1  # part of every cache key: bump it when the pieces or images change
INDEX = "voice.json"
MANIFEST = "manifest.json"
PIECES = "pieces.npy"
PIECE_INDEX = "index.npz"
HEADER_BYTES = 128  # .npy header reserved before the pixels, written last (the count is known then)
BATCH = 64  # pieces turned into spectrograms at once
SPLIT_CODES = {"train": 0, "test": 1}
_PREPARE_HINT = "prepare one: nasgal datasets prepare voice SRC --out DIR, then pass --data-dir DIR"


@dataclass
class SpeakerSummary:
    """What one speaker gave: files used and skipped, seconds, pieces and where they went."""

    speaker: str
    label: int | None  # None: left out
    files: int
    skipped: int
    seconds: float
    pieces: int
    train: int = 0
    test: int = 0
    unused: int = 0  # pieces of test groups beyond the test count (kept apart from training)
    note: str = ""


@dataclass
class PreparedVoice:
    """The result of :func:`prepare_voice`."""

    folder: Path
    manifest: dict[str, Any]
    reused: bool
    seconds: float = 0.0  # wall time of the pieces' spectrograms (0 when reused)
    pieces: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Pieces per second while preparing."""
        return self.pieces / self.seconds if self.seconds > 0 else 0.0


def cache_key(source: Source, settings: VoiceSettings) -> str:
    """Digest of everything the cached pieces depend on."""
    digest = hashlib.sha256(f"nasgal voice {VOICE_FORMAT}\0{source.root}\0".encode())
    digest.update(json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode())
    for rel, size, mtime in source.listing():
        digest.update(f"\n{rel}\0{size}\0{mtime}".encode())
    return digest.hexdigest()[:20]


def _valid_cache(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete cache folder, or None (missing, damaged, incomplete)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        shape = tuple(manifest["shape"])
        size = (folder / PIECES).stat().st_size
        if manifest.get("format") != VOICE_FORMAT or size != HEADER_BYTES + int(np.prod(shape)):
            return None
        if not (folder / PIECE_INDEX).is_file():
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy (format 1.0) header of exactly :data:`HEADER_BYTES` for uint8 ``shape``."""
    body = "{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{n}, " for n in shape).rstrip(" ")
    pad = HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:
        raise DataError(f"shape {shape} does not fit the cache header")
    text = (body + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def _decode(utt: Utterance, settings: VoiceSettings) -> torch.Tensor | str:
    """An utterance's whole pieces ``[n, samples]``, or why it could not be read."""
    try:
        audio = read_audio(utt.path, settings.sample_rate)  # [T]
    except AudioReadError as exc:
        return f"unreadable: {exc.message.removeprefix(str(utt.path) + ': ')}"
    seg = settings.segment_samples
    n = audio.shape[0] // seg
    if n == 0:
        return f"too short: {audio.shape[0] / settings.sample_rate:.2f} s of audio decoded"
    return audio[: n * seg].reshape(n, seg)


def _decoded(utts: list[Utterance], settings: VoiceSettings) -> Iterator[tuple[int, torch.Tensor | str]]:
    """Each utterance's pieces, in order, decoded a few files ahead in threads (libsndfile and
    the resampling convolution release the GIL)."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead = 4 * workers
        futures = [pool.submit(_decode, u, settings) for u in utts[:ahead]]
        for i in range(len(utts)):
            result = futures[i].result()
            futures[i] = None  # type: ignore[call-overload]  # free the audio once used
            if i + ahead < len(utts):
                futures.append(pool.submit(_decode, utts[i + ahead], settings))
            yield i, result


def prepare_voice(
    src: str | os.PathLike[str], out: str | os.PathLike[str], settings: VoiceSettings | None = None,
    reporter: Reporter | None = None,
) -> PreparedVoice:
    """Cut, transform, split and cache the speech under ``src`` into ``out`` (see the module doc)."""
    settings = settings or VoiceSettings()
    reporter = reporter or Reporter()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    source = scan_source(src)
    if settings.split_by == "video" and source.layout == "plain":
        raise DataError(f"split_by 'video' needs videos: {source.root} has the plain layout "
                        "(<speaker>/<file>), with no video folders", hint="use split_by 'utterance' or 'piece'")
    key = cache_key(source, settings)
    folder = out / key
    manifest = _valid_cache(folder)
    if manifest is not None:
        _write_index(out, key, manifest)
        log.info("voice cache %s already holds these settings and files: nothing to do", folder)
        return PreparedVoice(folder, manifest, reused=True,
                             skipped=[Skipped(**s) for s in manifest.get("skipped", [])])

    files = sum(len(u) for u in source.speakers.values())
    reporter.message(f"voice: {files:,} audio files of {len(source.speakers):,} speakers under {source.root} "
                     f"({source.layout} layout); reading their headers")
    skipped = read_headers(source, settings.segment_seconds, settings.sample_rate, settings.segment_samples)
    for s in skipped:  # also in the result and the manifest; the command line prints them
        log.info("skipped %s: %s", s.path, s.reason)
    summaries: dict[str, SpeakerSummary] = {}
    eligible: dict[str, float] = {}
    for name, utts in source.speakers.items():
        summaries[name] = SpeakerSummary(name, None, len(utts), sum(s.speaker == name for s in skipped),
                                         sum(u.seconds for u in utts), sum(u.pieces for u in utts))
        groups = piece_groups(utts, [u.pieces for u in utts], settings.split_by)
        if split_pieces(groups, settings.test_pieces, settings.seed, name) is None:
            summaries[name].note = (f"too little speech: {summaries[name].pieces} pieces in {len(groups)} "
                                    f"{settings.split_by}s cannot give {settings.test_pieces} test pieces and training pieces")
        else:
            eligible[name] = summaries[name].seconds
    for name in sorted(set(source.speakers) - set(eligible)):
        log.info("speaker %s left out: %s", name, summaries[name].note)
    for name in {s.speaker for s in skipped} - set(summaries):
        summaries[name] = SpeakerSummary(name, None, 0, sum(s.speaker == name for s in skipped), 0.0, 0,
                                         note="no usable file")
    if not eligible:
        raise DataError(f"no speaker under {source.root} has enough speech for {settings.test_pieces} test pieces "
                        f"of {settings.segment_seconds:g} s plus training pieces",
                        hint="lower --test-pieces or --segment-seconds, or add files")
    chosen = select_speakers(eligible, settings.speakers)
    for name in set(eligible) - set(chosen):
        summaries[name].note = f"not among the {settings.speakers} speakers chosen"
    utts = [u for name in chosen for u in source.speakers[name]]
    planned = sum(u.pieces for u in utts)
    reporter.message(f"voice: {len(chosen):,} speakers chosen, {len(utts):,} files, {planned:,} pieces of "
                     f"{settings.segment_seconds:g} s to turn into {settings.size}×{settings.size} spectrograms")
    need = HEADER_BYTES + planned * settings.size * settings.size
    try:
        out.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(out).free
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{key}.", suffix=".tmp"))
    except OSError as exc:
        raise DataError(f"cannot write the voice cache in {out}: {exc.strerror or exc}") from exc
    try:
        if need > free:
            raise DataError(f"the voice cache needs {format_bytes(need)} in {out}, but only {format_bytes(free)} is free",
                            hint="choose --out on a disk with room, or a smaller --size")
        t0 = time.perf_counter()
        rows, late = _write_pieces(tmp / PIECES, utts, settings, planned, reporter)
        seconds = time.perf_counter() - t0
        for s in late:
            log.info("skipped %s: %s", s.path, s.reason)
        manifest = _finish(tmp, key, source, settings, chosen, summaries, skipped + late, rows, seconds)
        if folder.exists():  # an incomplete or damaged cache of the same key
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_index(out, key, manifest)
    return PreparedVoice(folder, manifest, reused=False, seconds=seconds, pieces=len(rows["utterance"]),
                         skipped=skipped + late)


def _write_pieces(path: Path, utts: list[Utterance], settings: VoiceSettings, planned: int,
                  reporter: Reporter) -> tuple[dict[str, np.ndarray], list[Skipped]]:
    """Every piece's spectrogram into ``path`` (.npy, header written last); per piece: utterance,
    offset, pixel mean and mean square."""
    size = settings.size
    utterance: list[int] = []
    offset: list[int] = []
    moments: list[torch.Tensor] = []
    late: list[Skipped] = []
    pending: list[torch.Tensor] = []

    def flush(f: Any) -> None:
        batch = torch.cat(pending)  # [B, samples]
        pending.clear()
        for lo in range(0, batch.shape[0], BATCH):
            images = log_spectrogram(batch[lo : lo + BATCH], settings.n_fft, settings.hop, size, settings.db_range)
            f.write(images.numpy().tobytes())
            x = images.flatten(1).to(torch.float64) / 255.0  # [B, S·S]
            moments.append(torch.stack([x.mean(1), x.square().mean(1)], 1))  # [B, 2]
            reporter.advance(images.shape[0])

    reporter.start("spectrograms", 0, 1, planned)
    with open(path, "wb") as f:
        f.write(b"\0" * HEADER_BYTES)
        queued = 0
        for i, result in _decoded(utts, settings):
            if isinstance(result, str):
                late.append(Skipped(utts[i].rel, utts[i].speaker, result))
                continue
            pending.append(result)
            utterance += [i] * result.shape[0]
            offset += range(result.shape[0])
            queued += result.shape[0]
            if queued >= 4 * BATCH:
                flush(f)
                queued = 0
        if pending:
            flush(f)
        count = len(utterance)
        f.seek(0)
        f.write(_npy_header((count, 1, size, size)))
        f.flush()
        os.fsync(f.fileno())
    reporter.end({"pieces": len(utterance)})
    stats = torch.cat(moments).numpy() if moments else np.zeros((0, 2))
    return {"utterance": np.asarray(utterance, dtype=np.int32), "offset": np.asarray(offset, dtype=np.int32),
            "moments": stats}, late


def _finish(tmp: Path, key: str, source: Source, settings: VoiceSettings, chosen: list[str],
            summaries: dict[str, SpeakerSummary], skipped: list[Skipped], rows: dict[str, np.ndarray],
            seconds: float) -> dict[str, Any]:
    """Split the written pieces, write index.npz and manifest.json; returns the manifest."""
    utts = [u for name in chosen for u in source.speakers[name]]
    utterance = rows["utterance"]
    count = utterance.shape[0]
    label = np.full(count, -1, dtype=np.int64)
    split = np.full(count, -1, dtype=np.int8)
    late = {s.path for s in skipped}
    speakers: list[str] = []
    by_utt = np.bincount(utterance, minlength=len(utts)) if count else np.zeros(len(utts), dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(by_utt)])  # first row of each utterance
    u0 = 0
    for name in chosen:
        mine = source.speakers[name]
        idx = range(u0, u0 + len(mine))
        u0 += len(mine)
        counts = [int(by_utt[i]) for i in idx]
        summary = summaries[name]
        lost = [u for u in mine if u.rel in late]
        summary.files -= len(lost)
        summary.skipped += len(lost)
        summary.pieces = sum(counts)
        summary.seconds = sum(u.seconds for u in mine if u.rel not in late)
        groups = piece_groups(mine, counts, settings.split_by)
        parts = split_pieces(groups, settings.test_pieces, settings.seed, name)
        if parts is None:
            summary.note = "too little speech left after unreadable files"
            log.warning("speaker %s left out: %s", name, summary.note)
            continue
        test, train = parts
        base = int(first[idx.start])  # rows of this speaker are contiguous, in utterance order
        summary.label = len(speakers)
        speakers.append(name)
        label[base : base + summary.pieces] = summary.label
        split[[base + p for p in test]] = SPLIT_CODES["test"]
        split[[base + p for p in train]] = SPLIT_CODES["train"]
        summary.train, summary.test = len(train), len(test)
        summary.unused = summary.pieces - len(train) - len(test)
    if len(speakers) < 2:
        raise DataError(f"only {len(speakers)} speaker(s) left with enough readable speech; "
                        "speaker identification needs at least 2", hint="see the skipped files above")
    train_rows = split == SPLIT_CODES["train"]
    mean, square = rows["moments"][train_rows].mean(0) if train_rows.any() else (0.5, 0.3)
    std = float(np.sqrt(max(square - mean * mean, 1e-6)))
    index = io.BytesIO()
    np.savez(index, label=label, split=split, utterance=utterance, offset=rows["offset"])
    atomic_write_bytes(tmp / PIECE_INDEX, index.getvalue())
    manifest = {
        "format": VOICE_FORMAT,
        "key": key,
        "source": str(source.root),
        "layout": source.layout,
        "settings": settings.model_dump(mode="json"),
        "shape": [count, 1, settings.size, settings.size],
        "speakers": speakers,
        "mean": float(mean),
        "std": std,
        "pieces": {"train": int(train_rows.sum()), "test": int((split == SPLIT_CODES["test"]).sum()),
                   "unused": int((split < 0).sum())},
        "seconds_to_prepare": round(seconds, 3),
        "utterances": [u.rel for u in utts],
        "summary": [vars(s) for s in sorted(summaries.values(), key=lambda s: s.speaker)],
        "skipped": [vars(s) for s in skipped],
        "ignored": source.ignored,
    }
    atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _write_index(out: Path, key: str, manifest: dict[str, Any]) -> None:
    atomic_write_text(out / INDEX, json.dumps({"format": VOICE_FORMAT, "current": key,
                                               "settings": manifest["settings"]}, indent=1) + "\n")


# --------------------------------------------------------------------------- loading


def voice_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """The cache folder a ``--data-dir`` names: a prepared ``DIR`` (its current cache) or a cache folder itself."""
    if data_dir is None:
        raise DataError("the voice dataset needs the folder it was prepared into: pass data_dir / --data-dir "
                        "(or use 'voice:<folder>')", hint=_PREPARE_HINT)
    given = Path(data_dir).expanduser()
    if not given.is_dir():
        what = "is a file, not a folder" if given.exists() else "does not exist"
        raise DataError(f"voice data directory {given} {what}", hint=_PREPARE_HINT)
    if (given / MANIFEST).is_file():
        return given
    index = given / INDEX
    if not index.is_file():
        raise DataError(f"{given} holds no prepared voice dataset (no {INDEX} or {MANIFEST})", hint=_PREPARE_HINT)
    try:
        key = json.loads(index.read_text(encoding="utf-8"))["current"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{index} is damaged ({exc})", hint="prepare the dataset again into the same folder") from None
    if not isinstance(key, str) or "/" in key or key.startswith("."):
        raise DataError(f"{index} names {key!r}, which is not a cache folder", hint="prepare the dataset again")
    return given / key


def load_voice(data_dir: str | os.PathLike[str] | None, split: str, image_size: tuple[int, int] | None = None,
               memory_budget: int | str | None = None):
    """One split of a prepared voice dataset as a :class:`~nasgal.data.Dataset` (in memory when it
    fits the memory budget, else mapped from ``pieces.npy`` and streamed by the loader)."""
    from .dataset import Dataset

    folder = voice_folder(data_dir)
    manifest = _valid_cache(folder)
    if manifest is None:
        raise DataError(f"voice cache {folder} is incomplete or damaged", hint="prepare the dataset again into its folder")
    _, channels, h, w = manifest["shape"]
    if image_size is not None and tuple(image_size) != (h, w):
        raise DataError(f"voice cache {folder} holds {h}×{w} spectrograms, not {image_size[0]}×{image_size[1]}",
                        hint=f"prepare it again with --size {image_size[0]} (a new cache beside this one), "
                             f"or set image_size {h}")
    try:
        with np.load(folder / PIECE_INDEX, allow_pickle=False) as index:
            labels, splits = index["label"], index["split"]
        pixels = np.load(folder / PIECES, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"cannot read voice cache {folder}: {exc}", hint="prepare the dataset again") from None
    if tuple(pixels.shape) != tuple(manifest["shape"]) or labels.shape[0] != pixels.shape[0]:
        raise DataError(f"voice cache {folder} does not match its manifest", hint="prepare the dataset again")
    rows = np.flatnonzero(splits == SPLIT_CODES[split])
    speakers = tuple(manifest["speakers"])
    info = DatasetInfo(name="voice", channels=channels, size=(h, w), classes=len(speakers), class_names=speakers,
                       mean=(manifest["mean"],), std=(manifest["std"],))
    labels_t = torch.from_numpy(labels[rows].astype(np.int64))
    need = len(rows) * channels * h * w
    limit, origin = resolve_budget(memory_budget)
    if limit is None or need <= limit:
        log.info("voice %s: %d pieces (%s) from %s into memory", split, len(rows), format_bytes(need), folder)
        return Dataset(torch.from_numpy(np.ascontiguousarray(pixels[rows])), labels_t, info, split)
    log.warning("voice %s: %d pieces (%s) exceed the memory budget %s (%s); streaming them from %s",
                split, len(rows), format_bytes(need), format_bytes(limit), origin, folder / PIECES)
    return Dataset(torch.from_numpy(pixels), labels_t, info, split, cache_path=folder / PIECES,
                   rows=torch.from_numpy(rows.astype(np.int64)))
