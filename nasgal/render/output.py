"""Turning figures into files: DOT text always, SVG/PNG/PDF through the ``dot`` program."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import graphviz

from ..errors import NasgalError
from ..spec.io import atomic_write_bytes

FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot")
#: Resolution of PNG output (dots per inch); SVG and PDF are vector.
PNG_DPI = 144

INSTALL_HINT = (
    "install Graphviz: 'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS), "
    "'conda install graphviz'; or ask for --format dot, which needs no program"
)


def dot_available() -> bool:
    """Whether the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def _missing_dot(fmt: str) -> NasgalError:
    return NasgalError(f"rendering {fmt} needs the Graphviz 'dot' program, which is not on PATH", hint=INSTALL_HINT)


def graph_bytes(graph: graphviz.Digraph, fmt: str) -> bytes:
    """The figure in ``fmt``: DOT source as is, other formats laid out by ``dot``."""
    if fmt not in FORMATS:
        raise NasgalError(f"unknown format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    if fmt == "dot":
        return graph.source.encode("utf-8")
    if not dot_available():
        raise _missing_dot(fmt)
    g = graph.copy()
    if fmt == "png":
        g.attr(dpi=str(PNG_DPI))
    try:
        return g.pipe(format=fmt, engine="dot", quiet=True)
    except graphviz.ExecutableNotFound:
        raise _missing_dot(fmt) from None
    except graphviz.CalledProcessError as e:  # pragma: no cover - dot rejected our own output
        err = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise NasgalError(f"graphviz failed to render {fmt}: {err}") from None


def write_graph(graph: graphviz.Digraph, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write one figure to ``path`` (format from ``fmt`` or the file suffix), atomically."""
    p = Path(path)
    fmt = fmt or format_of(p) or "svg"
    return atomic_write_bytes(p, graph_bytes(graph, fmt))


def format_of(path: str | os.PathLike) -> str | None:
    """The format a file name asks for (``.gv`` counts as dot), or None."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "gv":
        return "dot"
    return suffix if suffix in FORMATS else None


def figure_paths(keys: list[str], out: str | os.PathLike | None, fmt: str, stem: str) -> list[Path]:
    """Where each figure goes.

    - ``out`` a directory (existing, or written with a trailing slash), or no ``out``
      (the current directory): ``DIR/<stem>.<key>.<fmt>`` for every figure;
    - ``out`` a file and one figure: exactly ``out``;
    - ``out`` a file and several figures: ``<out minus suffix>.<key>.<fmt>``
      (``-o pruned.svg`` gives ``pruned.network.svg``, ``pruned.pos0.svg``, ...).
    """
    if out is None or str(out).endswith(("/", os.sep)) or Path(out).is_dir():
        base = Path(out) if out is not None else Path(".")
        return [base / f"{stem}.{k}.{fmt}" for k in keys]
    p = Path(out)
    if len(keys) == 1:
        return [p]
    base = p.with_suffix("") if format_of(p) else p
    return [base.parent / f"{base.name}.{k}.{fmt}" for k in keys]
