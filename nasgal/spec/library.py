"""The shipped genotype library: published cells as JSON files, found by short name.

The files live in the repository's ``genotypes/`` folder and, identical, inside the package
(``nasgal/genotypes/``) so that an installed nasgal finds them too. Commands that take a
spec accept either a path or a library name: ``darts_v2``, ``DARTS_V2`` and ``darts-v2``
all name ``genotypes/darts_v2.json`` (file stems and genotype names both match,
case-insensitively).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import NasgalError

#: The genotypes inside the installed package.
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "genotypes"
#: The repository's copy (present in a source checkout or an editable install).
REPO_DIR = Path(__file__).resolve().parent.parent.parent / "genotypes"


@dataclass(frozen=True)
class LibraryEntry:
    key: str  # file stem, e.g. "darts_v2"
    name: str  # genotype name, e.g. "DARTS_V2"
    path: Path
    paper: str | None


def library_dirs() -> list[Path]:
    """Folders searched for library names: the repository's ``genotypes/``, then the package's."""
    return [d for d in (REPO_DIR, PACKAGE_DIR) if d.is_dir()]


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def library() -> list[LibraryEntry]:
    """Every shipped genotype, sorted by key (first folder of :func:`library_dirs` wins)."""
    found: dict[str, LibraryEntry] = {}
    for d in library_dirs():
        for path in sorted(d.glob("*.json")):
            if path.stem in found:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            name = data.get("name", path.stem) if isinstance(data, dict) else path.stem
            prov = data.get("provenance") or {} if isinstance(data, dict) else {}
            found[path.stem] = LibraryEntry(path.stem, str(name), path, prov.get("paper"))
    return [found[k] for k in sorted(found)]


def library_path(name: str) -> Path | None:
    """The file of a library genotype by key or genotype name, or None."""
    want = _norm(name.removesuffix(".json"))
    entries = library()
    for e in entries:
        if _norm(e.key) == want:
            return e.path
    for e in entries:
        if _norm(e.name) == want:
            return e.path
    return None


def resolve_spec_path(arg: str | os.PathLike) -> Path:
    """A spec argument as a file: an existing path wins, else a library genotype name.

    Raises :class:`NasgalError` listing the library names when neither exists.
    """
    p = Path(arg)
    if p.exists():
        return p
    text = str(arg)
    if os.sep not in text and "/" not in text:
        hit = library_path(text)
        if hit is not None:
            return hit
        names = ", ".join(e.key for e in library()) or "(none installed)"
        raise NasgalError(
            f"{text}: no such file, and no genotype of that name in the library",
            hint=f"library genotypes: {names}",
        )
    raise NasgalError(f"{text}: no such file")


__all__ = ["LibraryEntry", "library", "library_dirs", "library_path", "resolve_spec_path"]
