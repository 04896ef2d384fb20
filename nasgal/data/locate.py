"""Finding a dataset's files on disk, and fetching them when they are missing.

Search order (first folder holding every file of the requested split wins):

1. ``data_dir`` (the CLI's ``--data-dir``): the folder itself, then ``<data_dir>/<name>``;
2. ``$NASGAL_DATA_DIR``: the same two layouts;
3. the system location ``/usr/share/datasets/<name>`` (Debian's ``dataset-*`` packages);
4. the user cache ``$XDG_CACHE_HOME/nasgal/datasets/<name>`` (default ``~/.cache/...``).

``<name>`` is each of the dataset's folder names (``fashion-mnist``, ``FashionMNIST``, ...),
and inside each candidate the archive's own subfolder is tried too (``cifar-10-batches-py``,
``raw``). When nothing is found and downloading is allowed (``download=True`` and
``NASGAL_NO_DOWNLOAD`` unset), the official files are fetched into the user cache with a short
network probe first and MD5 checks after; otherwise a :class:`DataError` lists where it looked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import DataError
from .sources import DatasetSource, Download

log = logging.getLogger(__name__)

ENV_DATA_DIR = "NASGAL_DATA_DIR"
ENV_NO_DOWNLOAD = "NASGAL_NO_DOWNLOAD"
SYSTEM_ROOT = Path("/usr/share/datasets")
PROBE_TIMEOUT_S = 3.0  # a dead network must fail fast
READ_TIMEOUT_S = 30.0  # per socket read while downloading


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/nasgal``, default ``~/.cache/nasgal``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "nasgal"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/nasgal/datasets``, default ``~/.cache/nasgal/datasets``."""
    return user_cache() / "datasets"


@dataclass(frozen=True)
class SearchRoot:
    path: Path
    origin: str  # how the user chose it, for messages
    bare: bool  # whether the root itself may hold the files (not only <root>/<name>)


def search_roots(data_dir: str | os.PathLike[str] | None) -> list[SearchRoot]:
    """The roots searched, in order."""
    roots = []
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        if not given.is_dir():
            what = "is a file, not a folder" if given.exists() else "does not exist"
            raise DataError(
                f"data directory {given} {what}",
                hint="pass the folder that holds the dataset files (or omit --data-dir to use the default locations)",
            )
        roots.append(SearchRoot(Path(data_dir).expanduser(), "data_dir / --data-dir", True))
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        roots.append(SearchRoot(Path(env).expanduser(), f"${ENV_DATA_DIR}", True))
    roots.append(SearchRoot(SYSTEM_ROOT, "system location", False))
    roots.append(SearchRoot(cache_root(), "user cache", False))
    return roots


def _dir_names(source: DatasetSource) -> tuple[str, ...]:
    return tuple(dict.fromkeys((source.name, *source.dir_names)))


def candidate_dirs(source: DatasetSource, root: SearchRoot) -> list[Path]:
    """Folders under one root that may hold the files, in order."""
    bases = ([root.path] if root.bare else []) + [root.path / n for n in _dir_names(source)]
    return [base / sub if sub else base for base in bases for sub in source.subdirs]


def _find_in(source: DatasetSource, folder: Path, split: str) -> tuple[dict[str, Path], list[str]]:
    """Files of ``split`` present in ``folder`` and the names of those missing."""
    found, missing = {}, []
    for name in source.files[split]:
        hit = next((folder / c for c in source.file_candidates(name) if (folder / c).is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing


def _search(source: DatasetSource, split: str, data_dir) -> tuple[dict[str, Path] | None, list[str]]:
    partial = []
    for root in search_roots(data_dir):
        for folder in candidate_dirs(source, root):
            if not folder.is_dir():
                continue
            found, missing = _find_in(source, folder, split)
            if not missing:
                log.debug("%s %s files found in %s", source.name, split, folder)
                return found, partial
            if found:
                partial.append(f"{folder} has {', '.join(p.name for p in found.values())} but lacks {', '.join(missing)}")
    return None, partial


def downloads_disabled() -> bool:
    return os.environ.get(ENV_NO_DOWNLOAD, "").strip().lower() not in ("", "0", "false", "no")


def locate(source: DatasetSource, split: str, data_dir=None, download: bool = True) -> dict[str, Path]:
    """Paths of the files ``split`` needs, keyed by file name; fetches them when allowed and missing."""
    found, partial = _search(source, split, data_dir)
    if found is not None:
        return found
    if not download:
        why = "download=False"
    elif downloads_disabled():
        why = f"${ENV_NO_DOWNLOAD} is set"
    elif not source.downloads:
        why = "no official download address is known"
    else:
        why = fetch(source)
        if why is None:
            found, partial = _search(source, split, data_dir)
            if found is not None:
                return found
            why = "the download finished but the expected files were not in it"
    raise missing_files_error(source, split, data_dir, partial, f"not downloaded: {why}")


def missing_files_error(source: DatasetSource, split: str, data_dir, partial: list[str], download_note: str) -> DataError:
    wanted = ", ".join(source.file_candidates(n)[0] for n in source.files[split])
    lines = [f"could not find the {source.name} {split} files ({wanted}). Looked in, in order:"]
    if data_dir is None:
        lines.append("  data_dir / --data-dir: not given")
    if not os.environ.get(ENV_DATA_DIR):
        lines.append(f"  ${ENV_DATA_DIR}: not set")
    for root in search_roots(data_dir):
        names = "{" + ",".join(_dir_names(source)) + "}"
        where = f"{root.path} and {root.path}/{names}" if root.bare else f"{root.path}/{names}"
        subs = [s for s in source.subdirs if s]
        if subs:
            where += f" (and their {', '.join(s + '/' for s in subs)} subfolder)"
        lines.append(f"  {root.origin}: {where}")
    lines += [f"  note: {p}" for p in partial]
    lines.append(f"  {download_note}")
    target = cache_root() / source.name
    hint = f"put {wanted} into {target} (or a folder you pass as --data-dir or ${ENV_DATA_DIR})"
    if source.downloads:
        archive = [d for d in source.downloads if d.extract]
        if archive:
            hint += f"; unpack {archive[0].url} there"
        else:
            hint += f"; the official files are at {source.downloads[0].url.rsplit('/', 1)[0]}/"
    if source.debian_package:
        hint += f"; on Debian/Ubuntu: apt install {source.debian_package}"
    return DataError("\n".join(lines), hint=hint)


# --------------------------------------------------------------------------- downloading


def network_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_one(item: Download, folder: Path) -> None:
    target = folder / item.filename
    if target.is_file() and md5_of(target) == item.md5:
        log.info("using cached %s", target)
    else:
        part = target.with_name(target.name + ".part")
        log.info("downloading %s", item.url)
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(item.url, timeout=READ_TIMEOUT_S) as response, open(part, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != item.md5:
            part.unlink(missing_ok=True)
            raise DataError(f"{item.url} has MD5 {digest.hexdigest()}, expected {item.md5}")
        part.replace(target)
    if item.extract:
        log.info("unpacking %s", target)
        with tarfile.open(target, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise DataError(f"{target} has an unsafe path {member.name!r}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
                tar.extractall(folder, filter="data")
            else:
                tar.extractall(folder)  # paths were checked above


def fetch(source: DatasetSource) -> str | None:
    """Download the official files into the user cache. Returns None on success, else why not."""
    if not network_reachable(source.downloads[0].url):
        return f"{urlsplit(source.downloads[0].url).hostname} is not reachable (no network?)"
    folder = cache_root() / source.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for item in source.downloads:
            _fetch_one(item, folder)
    except DataError as exc:
        return exc.message
    except (OSError, urllib.error.URLError, tarfile.TarError) as exc:
        return f"download failed: {exc}"
    return None
