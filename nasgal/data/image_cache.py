"""Image folders larger than the memory budget: decoded once into a uint8 cache file on disk.

A split whose decoded pixels (``N·C·S·S`` bytes) exceed the memory budget is decoded with
Pillow, chunk by chunk, into a ``.npy`` file in the cache folder; the dataset then maps that file
(``numpy.memmap``, copy-on-write) and the operating system reads its pages as batches need them.

Budget, first that is set: the ``memory_budget`` argument of ``load_dataset``, the environment
variable ``NASGAL_DATA_MEMORY``, else half of the memory free when the split is loaded
(``os.sysconf``). A budget is a byte count with an optional binary unit (``512M``, ``4G``,
``1.5GiB``) or a share of the free memory (``25%``); ``0`` always takes the disk path.

Cache folder, first that is set: the ``cache_dir`` argument, ``NASGAL_DATA_CACHE``, else
``$XDG_CACHE_HOME/nasgal/image-cache`` (default ``~/.cache/nasgal/image-cache``). A file's name
holds a digest of what the pixels depend on: the folder, the split, every image's path, byte
size and modification time, its label, the crop size, the channels and the decoding version.
A changed folder therefore gets a new file; a file that is truncated or otherwise does not
match its header is decoded again. Files are written under a temporary name and renamed when
complete, so a reader never sees a half-written cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .image_folder import decode_chunks
from .locate import user_cache

log = logging.getLogger(__name__)

ENV_DATA_MEMORY = "NASGAL_DATA_MEMORY"
ENV_DATA_CACHE = "NASGAL_DATA_CACHE"
DEFAULT_MEMORY_SHARE = 0.5  # of the memory free at load time: room for the network, the other split, the OS
CACHE_FORMAT = 1  # part of every cache key: bump it when decoding changes (resize rule, layout)
CHUNK_BYTES = 64 << 20  # decoded pixels held in memory at once while writing a cache file

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?")
_SHARE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*%")
_BUDGET_HINT = "write a byte count with an optional unit (500M, 4G, 1.5GiB) or a share of the free memory (25%)"


def format_bytes(n: float) -> str:
    """``3.8 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def available_memory() -> int | None:
    """Bytes of physical memory free now, or None where the system does not say (``os.sysconf``)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def parse_budget(text: str, where: str) -> int | None:
    """Bytes of a budget written as ``4G``, ``512MiB``, ``1000000`` or ``25%`` (None: free memory unknown)."""
    value = text.strip().lower()
    share = _SHARE.fullmatch(value)
    if share:
        free = available_memory()
        return None if free is None else int(free * float(share.group(1)) / 100)
    size = _SIZE.fullmatch(value)
    if size is None:
        raise DataError(f"{where} is {text!r}, which is not a memory budget", hint=_BUDGET_HINT)
    return int(float(size.group(1)) * _UNITS[size.group(2)])


def resolve_budget(budget: int | str | None = None) -> tuple[int | None, str]:
    """The budget in bytes (None: no limit known) and where it came from, for the log line."""
    if isinstance(budget, bool) or not isinstance(budget, (int, str, type(None))):
        raise DataError(f"memory_budget must be a byte count or a string such as '4G' or '25%', got {budget!r}")
    if isinstance(budget, int):
        if budget < 0:
            raise DataError(f"memory_budget must not be negative, got {budget}")
        return budget, "memory_budget"
    if isinstance(budget, str):
        return parse_budget(budget, "memory_budget"), "memory_budget"
    env = os.environ.get(ENV_DATA_MEMORY, "").strip()
    if env:
        return parse_budget(env, f"${ENV_DATA_MEMORY}"), f"${ENV_DATA_MEMORY}"
    free = available_memory()
    return (None if free is None else int(free * DEFAULT_MEMORY_SHARE)), "half the free memory"


def cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where cache files go: ``cache_dir``, ``$NASGAL_DATA_CACHE`` or ``$XDG_CACHE_HOME/nasgal/image-cache``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_DATA_CACHE, "").strip()
    return Path(env).expanduser() if env else user_cache() / "image-cache"


def cache_path(
    folder: Path, root: Path, split: str, paths: list[Path], labels: list[int], size: int, channels: int
) -> Path:
    """The cache file of these decoded images: its name holds a digest of everything the pixels depend on."""
    digest = hashlib.sha256(f"nasgal image cache {CACHE_FORMAT}\0{root}\0{split}\0{size}\0{channels}\n".encode())
    for path, label in zip(paths, labels):
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name) or "images"
    return folder / f"{stem}-{split}-{channels}x{size}x{size}-{digest.hexdigest()[:20]}.npy"


def open_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cache file mapped copy-on-write, or None when it is missing or does not match ``shape``."""
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:
        log.warning("image cache %s is damaged (%s); decoding the images again", path, exc)
        return None
    if not isinstance(array, np.memmap) or array.dtype != np.uint8 or array.shape != shape:
        log.warning("image cache %s holds %s %s, not uint8 %s; decoding the images again",
                    path, getattr(array, "dtype", "?"), list(getattr(array, "shape", ())), list(shape))
        return None
    size = path.stat().st_size
    if array.offset + array.nbytes != size:
        log.warning("image cache %s has %d bytes, expected %d; decoding the images again",
                    path, size, array.offset + array.nbytes)
        return None
    return array


def write_cache(path: Path, paths: list[Path], mode: str, size: int, shape: tuple[int, int, int, int]) -> None:
    """Decode ``paths`` into the ``.npy`` file ``path``: a temporary file in the same folder, renamed when complete."""
    folder = path.parent
    need = int(np.prod(shape))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if need > free:
            raise DataError(
                f"the image cache needs {format_bytes(need)} in {folder}, but only {format_bytes(free)} is free",
                hint=f"set ${ENV_DATA_CACHE} (or pass cache_dir) to a folder on a disk with room, "
                     f"or raise ${ENV_DATA_MEMORY} to keep the images in memory",
            )
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError as exc:
        raise DataError(f"cannot use the image cache folder {folder}: {exc}",
                        hint=f"set ${ENV_DATA_CACHE} (or pass cache_dir) to a writable folder") from exc
    tmp = Path(tmp_name)
    chunk = max(1, CHUNK_BYTES // int(np.prod(shape[1:])))
    try:
        with os.fdopen(fd, "wb") as f:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(f, header)
            for part in decode_chunks(paths, mode, size, chunk):
                f.write(part.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write the image cache {path}: {exc}",
                        hint=f"set ${ENV_DATA_CACHE} (or pass cache_dir) to a writable folder with room") from exc
    finally:
        tmp.unlink(missing_ok=True)


def cached_images(
    root: Path, split: str, paths: list[Path], labels: list[int], mode: str, size: int,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, Path]:
    """The decoded images ``uint8 [N, C, size, size]`` mapped from their cache file (decoded first if needed)."""
    channels = 1 if mode == "L" else 3
    shape = (len(paths), channels, size, size)
    path = cache_path(cache_folder(cache_dir), root, split, paths, labels, size, channels)
    array = open_cache(path, shape)
    if array is not None:
        log.info("image cache %s: reusing %s of decoded %s images", path, format_bytes(array.nbytes), split)
        _mark_used(path)
        return array, path
    log.info("decoding %d %s images from %s into the image cache %s (%s)",
             len(paths), split, root, path, format_bytes(np.prod(shape)))
    write_cache(path, paths, mode, size, shape)
    array = open_cache(path, shape)
    if array is None:
        raise DataError(f"the image cache {path} was written but cannot be read back",
                        hint=f"delete it and try again, or set ${ENV_DATA_CACHE} to another folder")
    return array, path


# Keeping the folder tidy -----------------------------------------------------------------
#: Files this module writes: complete caches and the temporary files of interrupted writes.
#: Only these are listed or removed, so a cache folder shared with other files is safe.
_CACHE_NAME = re.compile(r"[A-Za-z0-9._-]+-[A-Za-z0-9._-]+-\d+x\d+x\d+-[0-9a-f]{20}\.npy")
_TEMP_NAME = re.compile(r"\.[A-Za-z0-9._-]+-\d+x\d+x\d+-[0-9a-f]{20}\..+\.tmp")


def _mark_used(path: Path) -> None:
    """Set the file's modification time to now: its "last used" for :func:`cache_files`."""
    try:
        os.utime(path)
    except OSError as exc:  # a read-only cache still works
        log.debug("cannot mark %s as used: %s", path, exc)


@dataclass(frozen=True)
class CacheFile:
    path: Path
    bytes: int
    last_used: float  # seconds since the epoch: written, or last reused by a load
    partial: bool  # the temporary file of a write that did not finish


def cache_files(folder: Path) -> list[CacheFile]:
    """The image-cache files in ``folder``, least recently used first (none if it does not exist)."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DataError(f"cannot list the image cache folder {folder}: {exc}") from exc
    for entry in entries:
        partial = bool(_TEMP_NAME.fullmatch(entry.name))
        if not (partial or _CACHE_NAME.fullmatch(entry.name)) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile
            continue
        out.append(CacheFile(Path(entry.path), st.st_size, st.st_mtime, partial))
    return sorted(out, key=lambda f: (f.last_used, f.path.name))


def remove_cache_files(files: list[CacheFile]) -> tuple[int, int]:
    """Delete ``files``; (files removed, bytes freed). A file already gone is skipped."""
    n = freed = 0
    for f in files:
        try:
            f.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DataError(f"cannot remove {f.path}: {exc}") from exc
        n += 1
        freed += f.bytes
    return n, freed
