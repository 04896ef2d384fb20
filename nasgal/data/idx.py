"""Reader for the IDX files of MNIST and FashionMNIST, plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in row-major order.
MNIST uses type 0x08 (unsigned byte): images are ``[N, 28, 28]``, labels ``[N]``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}


def read_bytes(path: Path) -> bytes:
    """All bytes of ``path``, decompressed when it is gzipped (detected by content, not name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is a damaged gzip file ({exc})",
            hint="the file is probably truncated; fetch it again",
        ) from exc


def parse_idx(data: bytes, source: Path | str) -> np.ndarray:
    """Parse an unsigned-byte IDX blob into an array of its declared shape."""
    if len(data) < 4:
        raise DataError(f"{source} is not an IDX file: it has only {len(data)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(
            f"{source} is not an IDX file: magic number is 0x{data[:4].hex()}, "
            "expected 0x0000 followed by a type code and a dimension count"
        )
    if dtype_code != UBYTE:
        kind = _TYPE_NAMES.get(dtype_code, f"unknown type 0x{dtype_code:02x}")
        raise DataError(f"{source} holds {kind} values; only unsigned-byte IDX files (type 0x08) are supported")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{source} is truncated: header declares {ndim} dimensions but the file has {len(data)} bytes")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have < expected:
        raise DataError(
            f"{source} is truncated: header declares shape {list(dims)} ({expected} bytes of data) "
            f"but only {have} bytes follow",
            hint="fetch the file again",
        )
    if have > expected:
        raise DataError(f"{source} has {have - expected} bytes after the {list(dims)} values its header declares")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions (3 for images, 1 for labels)."""
    path = Path(path)
    array = parse_idx(read_bytes(path), path)
    if array.ndim != ndim:
        want = "images [N, H, W]" if ndim == 3 else "labels [N]"
        raise DataError(f"{path} has {array.ndim} dimensions {list(array.shape)}, expected {want}")
    return array


def read_idx_pair(images_path: Path, labels_path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 1, H, W]`` and labels ``int64 [N]`` from an IDX image/label file pair."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= classes:
        raise DataError(f"{labels_path} has label {int(labels.max())}, but the dataset has {classes} classes")
    return images[:, None, :, :], labels.astype(np.int64)
