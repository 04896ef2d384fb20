"""Seeing architectures: ``render``, ``diff``, ``plot`` and ``gallery``.

Thin commands: parse, call :mod:`nasgal.render`, :mod:`nasgal.diff` or :mod:`nasgal.plot`,
format. Imports no torch. Written files are reported on stderr; data (DOT text, diff
tables, ``--json``) goes to stdout.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import NasgalError

_err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(str, Enum):
    svg = "svg"
    png = "png"
    pdf = "pdf"
    dot = "dot"


def _load(arg: str) -> Any:
    from ..spec.io import load
    from ..spec.library import resolve_spec_path

    return load(resolve_spec_path(arg))


def _wrote(path: Path) -> None:
    _err.print(f"wrote {path}", markup=False)


# render ------------------------------------------------------------------------------
def render(
    spec: Annotated[str, typer.Argument(help="Genotype or network spec file, or a library genotype name.", show_default=False)],
    output: Annotated[
        # a str, not a Path: Path("figures/") would drop the slash that says "a directory"
        Optional[str],
        typer.Option("--output", "-o", help="Output file, or a directory (trailing '/'); several figures "
                     "from one file name become NAME.<key>.<fmt>. Default: DOT on stdout for --format dot, "
                     "else <spec>.<key>.<fmt> in the current directory.", show_default=False),
    ] = None,
    cell: Annotated[
        Optional[list[str]],
        typer.Option("--cell", "-c", help="Cell to draw: a cell name (normal, reduction) or, for a network, a "
                     "position number under its kept-node mask. Repeatable.", show_default=False),
    ] = None,
    network: Annotated[bool, typer.Option("--network", "-n", help="Draw the stacking of a network (stem, positions, head).")] = False,
    fmt: Annotated[
        Optional[Format],
        typer.Option("--format", "-f", help="svg, png, pdf (need Graphviz 'dot') or dot. Default: from -o, else svg.", show_default=False),
    ] = None,
    hide_pruned: Annotated[bool, typer.Option("--hide-pruned", help="Leave pruned and dead nodes and edges out instead of fading them.")] = False,
) -> None:
    """Draw cells and networks like the DARTS and DARTS-GAL papers' figures.

    A genotype gives one figure per cell; a network its stacking and one figure per position.
    """
    from ..render import figures, format_of, graph_bytes
    from ..render.output import figure_paths
    from ..spec.io import atomic_write_bytes

    model = _load(spec)
    figs = figures(model, cells=cell or None, network=network, hide_pruned=hide_pruned)
    suffix_fmt = format_of(output) if output is not None else None
    if fmt is not None and suffix_fmt is not None and suffix_fmt != fmt.value:
        raise NasgalError(
            f"{output} asks for {suffix_fmt} by its suffix, but --format says {fmt.value}",
            hint="drop --format, or give the file the matching suffix",
        )
    f = fmt.value if fmt is not None else suffix_fmt or "svg"
    if output is None and f == "dot":
        for fig in figs:
            sys.stdout.write(fig.graph.source)
        return
    stem = Path(spec).stem if Path(spec).suffix else Path(spec).name
    paths = figure_paths([fig.key for fig in figs], output, f, stem)
    data = [graph_bytes(fig.graph, f) for fig in figs]  # every figure first: no partial sets on error
    for path, blob in zip(paths, data):
        _wrote(atomic_write_bytes(path, blob))


# diff --------------------------------------------------------------------------------
def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _short(v: int | None) -> str:
    if v is None:
        return "-"
    if v < 10_000:
        return f"{v:,}"
    if v < 1_000_000:
        return f"{v / 1000:.1f}k"
    return f"{v / 1_000_000:.2f}M"


def _arrow(a: Any, b: Any) -> str:
    return str(a) if a == b else f"{a} → {b}"


def _ids(ns) -> str:
    return "[" + ", ".join(str(n) for n in ns) + "]"


def _rate(r: float | None) -> str:
    return "" if r is None else f" ({r:.1%} {'removed' if r >= 0 else 'added'})"


def _status_style(status: str) -> str:
    return {"same": "green", "died": "bold red", "removed": "red", "added": "cyan", "revived": "cyan",
            "renumbered": "yellow"}.get(status, "yellow")


def print_diff(result: Any, console: Console) -> None:
    """The people's view of a :class:`~nasgal.diff.DiffResult`: a table, details, totals."""
    by_pos = result.by_position
    console.print(
        f"[bold]{escape(result.kind_a)} {escape(result.name_a)}[/] → [bold]{escape(result.kind_b)} "
        f"{escape(result.name_b)}[/] (compared {'position by position' if by_pos else 'cell by cell'})"
    )
    t = Table(show_edge=False, pad_edge=False, header_style="bold", box=None)
    t.add_column("pos" if by_pos else "cell")
    if by_pos:
        t.add_column("cell")
    t.add_column("status")
    t.add_column("nodes", justify="right")
    t.add_column("edges", justify="right")
    if by_pos:
        t.add_column("params", justify="right")
        t.add_column("MACs", justify="right")
    for c in result.cells:
        row = [str(c.position) if by_pos else escape(c.key)]
        if by_pos:
            row.append(escape(_arrow(c.cell_a or "-", c.cell_b or "-")))
        st = c.status
        row.append(f"[{_status_style(st)}]{st}[/]")
        row.append(_arrow(len(c.nodes_a), len(c.nodes_b)))
        row.append(_arrow(c.edges_a, c.edges_b))
        if by_pos:
            row.append(_arrow(_short(c.params_a), _short(c.params_b)))
            row.append(_arrow(_short(c.macs_a), _short(c.macs_b)))
        t.add_row(*row)
    console.print(t)

    for c in result.cells:
        if c.identical:
            continue
        lines: list[str] = []
        if c.cell_a is None or c.cell_b is None:
            lines.append("only in " + ("B" if c.cell_a is None else "A"))
        elif c.renumbering is not None:
            m = ", ".join(f"{a}→{b}" for a, b in c.renumbering.items() if a != b)
            lines.append(f"same graph up to node numbering ({m})")
        else:
            if c.dead_b and not c.dead_a:
                lines.append("cell died: no live node left")
            if c.nodes_removed:
                lines.append("- nodes " + ", ".join(f"{n} ({c.why_removed.get(n, '')})" for n in c.nodes_removed))
            if c.nodes_added:
                lines.append("+ nodes " + ", ".join(map(str, c.nodes_added)))
            gone = set(c.nodes_removed) | set(c.nodes_added)
            implied = [e for e in c.edges_removed if e.dst in gone or e.src in gone]
            other = [e for e in c.edges_removed if e not in implied]
            if implied:
                lines.append(f"- {len(implied)} edge(s) with those nodes")
            for name in c.dead_inputs_b:
                if name not in c.dead_inputs_a:
                    lines.append(f"input {name} is dead (it reads a dead position)")
            lines += [f"- edge {e}" + (" (input dead)" if e.src in c.dead_inputs_b else "") for e in other]
            implied_add = [e for e in c.edges_added if e.dst in gone or e.src in gone]
            if implied_add:
                lines.append(f"+ {len(implied_add)} edge(s) with those nodes")
            lines += [f"+ edge {e}" for e in c.edges_added if e not in implied_add]
            lines += [f"~ op {o}" for o in c.ops_changed]
            if c.concat_a != c.concat_b:
                lines.append(f"concat {_ids(c.concat_a)} → {_ids(c.concat_b)}")
            if c.cell_a != c.cell_b:
                lines.append(f"cell {c.cell_a} → {c.cell_b}")
            if c.reduction_a != c.reduction_b:
                lines.append(f"reduction {c.reduction_a} → {c.reduction_b}")
            if c.same_graph and not c.structure_changed and (c.kept_changed or c.mask_changed):
                lines.append("same built graph")
        if c.kept_changed and "pruned" not in c.why_removed.values():
            lines.append("kept nodes changed")
        if c.mask_changed:
            lines.append("mask values changed")
        head = f"pos{c.position} ({c.cell_b or c.cell_a})" if by_pos else c.key
        console.print(f"[bold]{escape(head)}[/]")
        for line in lines:
            console.print("  " + line, markup=False)

    for f in result.fields:
        if f.path.startswith("cells."):
            console.print(f"field {f.path}: definition differs", markup=False)
        else:
            console.print(f"field {f.path}: {json.dumps(f.before)} → {json.dumps(f.after)}", markup=False)
    if result.params_a is not None:
        console.print(
            f"params {_n(result.params_a)} → {_n(result.params_b)}{_rate(result.pruning_rate)} · "
            f"MACs {_n(result.macs_a)} → {_n(result.macs_b)}{_rate(result.macs_rate)}",
            markup=False,
        )
    console.print(
        f"live nodes {result.live_nodes_a} → {result.live_nodes_b}{_rate(result.node_rate)}", markup=False
    )
    if result.identical:
        console.print("[green]identical[/]")
    elif result.same_architecture:
        console.print("[green]the same architecture[/] (nodes numbered differently)")
    else:
        console.print("[yellow]different[/]")


def diff(
    a: Annotated[str, typer.Argument(help="First spec (genotype or network file, or library name).", show_default=False)],
    b: Annotated[str, typer.Argument(help="Second spec.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """What changed from A to B, cell by cell or position by position.

    Exits like diff(1), on architectures: 0 when they are the same (identical, or cells that
    differ only in node numbering), 1 when different, 2 on trouble.
    """
    from ..diff import diff_specs

    try:
        result = diff_specs(_load(a), _load(b))
    except NasgalError as exc:
        from .main import report_error

        report_error(exc)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        print_diff(result, Console(highlight=False, soft_wrap=True))
    raise typer.Exit(0 if result.same_architecture else 1)


# plot --------------------------------------------------------------------------------
def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (each with metrics.jsonl).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .svg or .pdf.")] = Path("curves.png"),
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="Metric to draw (repeatable), e.g. val_acc. Default: every accuracy and loss.", show_default=False),
    ] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title (default: the run names).", show_default=False)] = None,
) -> None:
    """Accuracy and loss per epoch for one or several training runs, in one figure."""
    from ..plot import load_runs, plot_runs

    _wrote(plot_runs(load_runs(runs), output, metrics=metric or None, title=title))


# gallery -----------------------------------------------------------------------------
def build_gallery(out: Path, sources: list[Path] | None = None, formats: tuple[str, ...] = ("svg", "png")) -> list[Path]:
    """Render every genotype's cells into ``out`` and write ``out/README.md``; return the files."""
    from ..render import figures, graph_bytes
    from ..spec.io import atomic_write_bytes
    from ..spec.genotype import Genotype
    from ..spec.io import atomic_write_text, load

    if sources is None:
        from ..spec.library import library

        sources = [e.path for e in library()]
    if not sources:
        raise NasgalError("no genotypes to draw", hint="pass genotype files with --genotype")
    written: list[Path] = []
    rows: list[str] = []
    for src in sources:
        g = load(src, Genotype)
        key = src.stem
        figs = figures(g)
        blobs = {(fig.key, f): graph_bytes(fig.graph, f) for fig in figs for f in formats}
        for (k, f), blob in blobs.items():
            written.append(atomic_write_bytes(out / f"{key}.{k}.{f}", blob))
        prov = g.provenance
        rows.append(f"## {g.name}\n")
        if prov.paper:
            rows.append(f"{prov.paper}" + (f" — source: `{prov.source}`" if prov.source else "") + "\n")
        img = formats[0]
        for fig in figs:
            cell = g.cells[fig.key]
            rows.append(
                f"**{fig.key}** ({len(cell.nodes)} nodes, {len(cell.edges)} edges, concat {_ids(cell.concat)})\n\n"
                f"![{g.name} {fig.key} cell]({key}.{fig.key}.{img})\n"
            )
    index = (
        "# Genotype gallery\n\n"
        "The shipped genotypes (`genotypes/`), drawn by `nasgal gallery`: inputs c<sub>k-2</sub>, "
        "c<sub>k-1</sub> (green), intermediate nodes (blue), output c<sub>k</sub> (yellow); edge colours "
        "by op family: separable convs blue, dilated convs purple, pools orange, skip connections black, "
        "other convs green. Regenerate with `nasgal gallery --out docs/gallery`; see "
        "[rendering](../rendering.md).\n\n" + "\n".join(rows)
    )
    readme = out / "README.md"
    atomic_write_text(readme, index)
    written.append(readme)
    return written


def gallery(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the figures and README.md.")] = Path("docs/gallery"),
    genotype: Annotated[
        Optional[list[Path]],
        typer.Option("--genotype", "-g", help="Genotype file to include (repeatable). Default: the shipped library.", show_default=False),
    ] = None,
) -> None:
    """Render every shipped genotype's cells (SVG and PNG) and a markdown index."""
    files = build_gallery(out, genotype or None)
    _err.print(f"wrote {len(files)} files to {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("render")(render)
    app.command("diff")(diff)
    app.command("plot")(plot)
    app.command("gallery")(gallery)
