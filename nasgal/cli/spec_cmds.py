"""Spec commands: validate, import, export, genotypes, stack, compile, schema.

Thin commands: parse the arguments, call the library, format. Data goes to stdout,
chatter to stderr; errors are raised as :class:`~nasgal.errors.NasgalError` and printed by
the CLI's error boundary (``nasgal.cli.main``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import NasgalError, SpecError
from ..spec import Genotype, Network, load, stack
from ..spec.costs import cost_report, network_cost
from ..spec.darts_text import parse_darts, read_darts_file, to_darts
from ..spec.io import dumps
from ..spec.library import library, resolve_spec_path
from ..spec.stem import STEM_KINDS, StemKind

#: The DARTS CIFAR-10 evaluation network: what a bare genotype compiles to.
DARTS_EVAL = {"cells": 20, "channels": 36, "classes": 10, "in_channels": 3, "input_size": "32"}


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    """Chatter for a person, on stderr."""
    _err().print(message, markup=False)


def _out() -> Console:
    con = Console(highlight=False)
    if not con.is_terminal:  # a pipe or a file: wide enough for the tables, no colours
        con = Console(highlight=False, width=max(con.width, 132), no_color=True)
    return con


# --------------------------------------------------------------------------------------
# Argument parsing helpers (errors name the option and the bad value)
# --------------------------------------------------------------------------------------


def parse_positions(text: str, option: str = "--reductions") -> list[int]:
    """``"1,3"`` -> ``[1, 3]``; ``""`` or ``"none"`` -> ``[]``."""
    t = text.strip()
    if t.lower() in ("", "none", "[]"):
        return []
    out = []
    for part in t.strip("[]()").split(","):
        p = part.strip()
        try:
            out.append(int(p))
        except ValueError:
            raise NasgalError(
                f"{option}: {p!r} is not a position (in {text!r})",
                hint=f"give 0-indexed cell positions separated by commas, e.g. {option} 1,3",
            ) from None
    return out


def parse_size(text: str, option: str = "--input-size") -> int | tuple[int, int]:
    """``"28"`` -> 28; ``"224x160"`` -> (224, 160)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2) or any(n < 1 for n in nums):
        raise NasgalError(f"{option}: {text!r} is not an image size", hint=f"e.g. {option} 32 or {option} 224x160")
    return nums[0] if len(nums) == 1 else (nums[0], nums[1])


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def load_spec_arg(arg: str) -> Any:
    """A spec argument (path or library name) loaded as its model (any file kind)."""
    return load(resolve_spec_path(arg))


def _summary(spec: Any) -> str:
    if isinstance(spec, Network):
        return (
            f"network '{spec.name}', {spec.num_positions} positions, "
            f"{_fmt_int(network_cost(spec).params)} params"
        )
    if isinstance(spec, Genotype):
        cells = ", ".join(f"{k} {c.num_nodes} nodes" for k, c in spec.cells.items())
        return f"genotype '{spec.name}', {cells}"
    kind = getattr(spec, "kind", type(spec).__name__.lower())
    name = getattr(spec, "name", None)
    return f"{kind} '{name}'" if name else str(kind)


def _emit(text: str, out: Optional[Path], what: str) -> None:
    """Write ``text`` to ``out`` atomically, or to stdout."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from ..spec.io import atomic_write_text

        atomic_write_text(out, text)
        _say(f"wrote {out} ({what})")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------

FilesArg = Annotated[
    list[str], typer.Argument(help="Spec files (genotype, network, ...) or library genotype names.", show_default=False)
]


def validate(files: FilesArg) -> int:
    """Check spec files; print 'ok' per valid file, 'location: message' lines otherwise."""
    from .main import report_error

    bad = 0
    for arg in files:
        try:
            spec = load_spec_arg(arg)
        except NasgalError as exc:
            report_error(exc)
            bad += 1
            continue
        typer.echo(f"ok  {arg}  ({_summary(spec)})")
    if bad and len(files) > 1:
        _say(f"{bad} of {len(files)} files invalid")
    return 1 if bad else 0


def import_(
    source: Annotated[str, typer.Argument(help="DARTS 'Genotype(...)' text, a Python file (e.g. genotypes.py), or - for stdin.", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Which NAME = Genotype(...) of a file to import; names pasted text.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the genotype JSON here (default: stdout).")] = None,
) -> int:
    """Turn DARTS Genotype(...) text into a genotype JSON (read with ast, never executed)."""
    if source == "-":
        genotype = parse_darts(sys.stdin.read(), name, source="<stdin>")
    elif "Genotype(" not in source and (Path(source).exists() or source.endswith(".py")):
        genotype = read_darts_file(source, name)
    else:
        genotype = parse_darts(source, name, source="<text>")
    _emit(dumps(genotype), out, _summary(genotype))
    return 0


def export(
    genotype: Annotated[str, typer.Argument(help="Genotype file or library name.", show_default=False)],
    assign: Annotated[bool, typer.Option("--assign", "-a", help="Print 'NAME = Genotype(...)' for a genotypes.py.")] = False,
) -> int:
    """Print a genotype as DARTS Genotype(...) text, as the reference code accepts it."""
    spec = load(resolve_spec_path(genotype), Genotype)
    typer.echo(to_darts(spec, assign=assign))
    return 0


def genotypes() -> int:
    """List the shipped genotype library (names usable wherever a genotype file is)."""
    table = Table(box=None, pad_edge=False)
    for col in ("name", "genotype", "nodes", "paper"):
        table.add_column(col)
    for e in library():
        g = load(e.path, Genotype)
        nodes = "/".join(str(c.num_nodes) for c in g.cells.values())
        table.add_row(e.key, e.name, nodes, e.paper or "")
    _out().print(table)
    return 0


# Stacking options shared by `stack` and `compile` -------------------------------------

CellsOpt = Annotated[Optional[int], typer.Option("--cells", "-L", help="Number of cell positions L.", show_default=False)]
ChannelsOpt = Annotated[Optional[int], typer.Option("--channels", "-C", help="Initial channels C.", show_default=False)]
ClassesOpt = Annotated[Optional[int], typer.Option("--classes", "-K", help="Number of classes.", show_default=False)]
InChOpt = Annotated[Optional[int], typer.Option("--in-channels", help="Image channels (1 MNIST, 3 CIFAR).", show_default=False)]
SizeOpt = Annotated[Optional[str], typer.Option("--input-size", help="Image size: 32, or HxW like 224x160.", show_default=False)]
RedOpt = Annotated[
    Optional[str],
    typer.Option("--reductions", help="0-indexed reduction positions, e.g. 1,3 (default: L//3 and 2L//3; 'none' for none).", show_default=False),
]
StemOpt = Annotated[Optional[str], typer.Option("--stem", help="cifar | stride2 (large images) | imagenet.", show_default=False)]
AuxOpt = Annotated[Optional[bool], typer.Option("--auxiliary/--no-auxiliary", help="Auxiliary head after the second reduction.", show_default=False)]
DropOpt = Annotated[Optional[float], typer.Option("--drop-path", help="Maximum drop-path probability.", show_default=False)]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="Network name (default GENOTYPE-Lc-CC).", show_default=False)]

#: The stacking options by parameter name, in the order ``--help`` lists them.
STACK_OPTIONS: dict[str, Any] = {
    "cells": CellsOpt,
    "channels": ChannelsOpt,
    "classes": ClassesOpt,
    "in_channels": InChOpt,
    "input_size": SizeOpt,
    "reductions": RedOpt,
    "stem": StemOpt,
    "auxiliary": AuxOpt,
    "drop_path": DropOpt,
    "name": NameOpt,
}
#: The stacking options that size a network; stacking needs them all.
SIZE_OPTIONS = ("cells", "channels", "classes", "in_channels", "input_size")


def _stack_opts(values: dict[str, Any]) -> dict[str, Any]:
    """The stacking options among a command's arguments (``locals()``), by name."""
    return {name: values[name] for name in STACK_OPTIONS}


STEMS = STEM_KINDS


def _stack_from_options(genotype: Genotype, opts: dict[str, Any], defaults: dict[str, Any]) -> Network:
    vals = {k: (v if v is not None else defaults.get(k)) for k, v in opts.items()}
    missing = [f"--{k.replace('_', '-')}" for k in SIZE_OPTIONS if vals[k] is None]
    if missing:
        raise NasgalError(f"missing {', '.join(missing)}", hint="stacking a genotype needs its sizes; see nasgal stack --help")
    stem = vals.get("stem") or "cifar"
    if stem not in STEMS:
        raise NasgalError(f"--stem: {stem!r} is not a stem kind; choose from {', '.join(STEMS)}")
    stem_kind: StemKind = stem  # type: ignore[assignment]
    try:
        return _stack(genotype, vals, stem_kind)
    except SpecError as exc:
        lines = "\n".join(f"  {loc}: {msg}" if loc else f"  {msg}" for loc, msg in exc.problems)
        raise NasgalError(f"cannot stack '{genotype.name}':\n{lines}", hint=exc.hint) from None


def _stack(genotype: Genotype, vals: dict[str, Any], stem_kind: StemKind) -> Network:
    return stack(
        genotype,
        cells=vals["cells"],
        channels=vals["channels"],
        classes=vals["classes"],
        in_channels=vals["in_channels"],
        input_size=parse_size(str(vals["input_size"])),
        reductions=None if vals.get("reductions") is None else parse_positions(vals["reductions"]),
        stem=stem_kind,
        auxiliary=bool(vals.get("auxiliary")),
        drop_path=vals.get("drop_path") or 0.0,
        name=vals.get("name"),
    )


def stack_cmd(
    genotype: Annotated[str, typer.Argument(help="Genotype file or library name (e.g. darts_v2).", show_default=False)],
    cells: CellsOpt = None, channels: ChannelsOpt = None, classes: ClassesOpt = None, in_channels: InChOpt = None,
    input_size: SizeOpt = None, reductions: RedOpt = None, stem: StemOpt = None, auxiliary: AuxOpt = None,
    drop_path: DropOpt = None, name: NameOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the network JSON here (default: stdout).")] = None,
) -> int:
    """Stack a genotype's cells into a network spec."""
    opts = _stack_opts(locals())
    g = load(resolve_spec_path(genotype), Genotype)
    net = _stack_from_options(g, opts, {})
    _emit(dumps(net), out, _summary(net))
    return 0


def _size(s: list[int]) -> str:
    return f"{s[0]}×{s[1]}"


def _print_table(rep: dict[str, Any], net: Network) -> None:
    table = Table(title=f"{rep['name']}  ({net.input.channels}×{_size(list(net.input.size))} in, {net.classes} classes)")
    for col, just in (("#", "right"), ("type", "left"), ("cell", "left"), ("live nodes", "left"),
                      ("out ch", "right"), ("size", "right"), ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    st = rep["stem"]
    table.add_row("", "stem", st["kind"], "", str(st["out_channels"]), _size(st["size"]),
                  _fmt_int(st["params"]), _fmt_int(st["macs"]))
    for c in rep["cells"]:
        cell_nodes = net.cells[c["cell"]].num_nodes
        live = "dead" if c["dead"] else (",".join(map(str, c["live_nodes"])) + f"  ({len(c['live_nodes'])}/{cell_nodes})")
        table.add_row(str(c["position"]), c["type"], c["cell"], live, str(c["out_channels"]), _size(c["size"]),
                      _fmt_int(c["params"]), _fmt_int(c["macs"]))
    hd = rep["head"]
    table.add_row("", "head", "pool+linear", "", str(hd["classes"]), "", _fmt_int(hd["params"]), _fmt_int(hd["macs"]))
    table.add_section()
    table.add_row("", "total", "", "", "", "", _fmt_int(rep["params"]), _fmt_int(rep["macs"]), style="bold")
    con = _out()
    con.print(table)
    if rep["aux_params"]:
        con.print(f"auxiliary head at position {net.auxiliary.position}: {_fmt_int(rep['aux_params'])} params "
                  "(training only, not in the total)")


def compile_cmd(
    spec: Annotated[str, typer.Argument(help="Network file, or a genotype file or library name to stack.", show_default=False)],
    cells: CellsOpt = None, channels: ChannelsOpt = None, classes: ClassesOpt = None, in_channels: InChOpt = None,
    input_size: SizeOpt = None, reductions: RedOpt = None, stem: StemOpt = None, auxiliary: AuxOpt = None,
    drop_path: DropOpt = None, name: NameOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the table.")] = False,
) -> int:
    """Build the torch module of a spec and summarise it per cell position.

    A bare genotype is stacked as the DARTS CIFAR-10 evaluation network (20 cells, C=36, 10 classes, 32x32x3); stacking options override those sizes.
    """
    opts = _stack_opts(locals())
    loaded = load_spec_arg(spec)
    given = {k: v for k, v in opts.items() if v is not None}
    if isinstance(loaded, Network):
        if given:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            raise NasgalError(
                f"{spec} is a network; stacking options ({flags}) apply to genotypes only",
                hint="edit the network file, or stack its genotype again with nasgal stack",
            )
        net = loaded
    elif isinstance(loaded, Genotype):
        net = _stack_from_options(loaded, opts, DARTS_EVAL)
        defaulted = [k for k in SIZE_OPTIONS if k not in given]
        if len(defaulted) == len(SIZE_OPTIONS):
            _say(
                f"{spec} is a genotype: stacking it as the DARTS CIFAR-10 evaluation network "
                "(20 cells, C=36, 10 classes, 32×32×3 input); give --cells/--channels/... to change that"
            )
        else:
            h, w = net.input.size
            _say(
                f"{spec} is a genotype: stacking it as {net.num_positions} cells, C={net.channels}, "
                f"{net.classes} classes, {h}×{w}×{net.input.channels} input, reductions at "
                f"{','.join(map(str, net.reductions)) or 'none'}"
                + (f" (DARTS CIFAR-10 evaluation defaults for {', '.join('--' + k.replace('_', '-') for k in defaulted)})" if defaulted else "")
            )
    else:
        raise NasgalError(f"{spec} is a {getattr(loaded, 'kind', '?')} file; compile takes a network or a genotype")

    from .. import compile_network

    module = compile_network(net)
    module_params = sum(p.numel() for p in module.parameters())
    rep = cost_report(net)
    expected = rep["params"] + rep["aux_params"]
    if module_params != expected:
        raise NasgalError(
            f"internal error: the compiled module has {_fmt_int(module_params)} parameters but the spec's cost "
            f"model says {_fmt_int(expected)} (including {_fmt_int(rep['aux_params'])} in the auxiliary head)",
            hint="this is a bug in nasgal; please report it with the spec file",
        )
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
    else:
        _print_table(rep, net)
    return 0


def schema(
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Folder of the schema files (default: the repository's schemas/).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check that the files are up to date; exit 1 if stale.")] = False,
) -> int:
    """Regenerate the JSON Schemas of the spec files (schemas/<kind>.schema.json)."""
    from ..spec.schemas import REPO_SCHEMAS, generate_schemas, stale_schemas, write_schemas

    d = out_dir or (REPO_SCHEMAS if REPO_SCHEMAS.parent.joinpath("pyproject.toml").is_file() else Path("schemas"))
    if check:
        stale = stale_schemas(d)
        if stale:
            raise NasgalError(f"stale schema files in {d}: {', '.join(stale)}", hint="run `nasgal schema` to regenerate them")
        _say(f"schemas in {d} are up to date ({', '.join(generate_schemas())})")
        return 0
    changed = write_schemas(d)
    for p in changed:
        _say(f"wrote {p}")
    if not changed:
        _say(f"schemas in {d} are up to date")
    return 0


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("import")(import_)
    app.command("export")(export)
    app.command("genotypes")(genotypes)
    app.command("stack")(stack_cmd)
    app.command("compile")(compile_cmd)
    app.command("schema")(schema)
