"""DARTS ``Genotype(...)`` text in and out, parsed safely with :mod:`ast` (never ``eval``).

The DARTS encoding (quark0/darts ``genotypes.py`` and every paper that copied it)::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=range(2, 6),
             reduce=[...], reduce_concat=range(2, 6))

Pairs ``2i`` and ``2i+1`` of a list feed intermediate node ``i``; a pair's input ``0`` is
``c_{k-2}``, ``1`` is ``c_{k-1}`` and ``2+j`` is intermediate node ``j``; a concat lists
*states*, so ``2+j`` is node ``j``. ``normal`` becomes the cell ``"normal"``, ``reduce``
the cell ``"reduction"``; nodes are numbered ``0..N-1`` with ``N = len(pairs) // 2`` (4 for
DARTS, 5 for NASNet-A and AmoebaNet-A).

Import accepts keyword or positional arguments, lists or tuples, ``range(a, b)``,
``list(range(a, b))``, and a whole Python file (or pasted log line) in which
``NAME = Genotype(...)`` assignments are found by name; ``ALIAS = NAME`` assignments
(``DARTS = DARTS_V2``) are followed.

Export writes the text the reference code accepts. It refuses cells the encoding cannot
express (a node without exactly two input edges, a genotype without exactly the cells
``normal`` and ``reduction``). Cells whose nodes are not numbered ``0..N-1`` in evaluation
order, or whose edges are not grouped by node, are *renumbered* in topological order
(ties broken by the ``nodes`` list, edges of a node kept in spec order): the text then
describes the same graph (:func:`~nasgal.spec.graph.same_graph`) with DARTS numbering.
:func:`darts_form` gives that renumbered cell, and :func:`is_darts_form` says whether a
cell already is in it (then ``json -> text -> json`` is exactly lossless).
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .cell import Cell, Edge, ref_of_state, state_of_ref
from .genotype import Genotype, Provenance
from .graph import topological_order
from .io import validate_spec
from .limits import MAX_DARTS_NAMES, MAX_DARTS_TEXT

#: The DARTS namedtuple's fields, in positional order.
FIELDS: tuple[str, ...] = ("normal", "normal_concat", "reduce", "reduce_concat")
#: DARTS field prefix -> nasgal cell name.
CELL_NAMES: dict[str, str] = {"normal": "normal", "reduce": "reduction"}

DEFAULT_NAME = "imported"


# --------------------------------------------------------------------------------------
# Parsing: text -> plain Python values, with line/column on every error
# --------------------------------------------------------------------------------------


def _where(node: ast.AST) -> str:
    """``line L column C`` of a node (1-based columns, as editors count)."""
    return f"line {getattr(node, 'lineno', 0)} column {getattr(node, 'col_offset', 0) + 1}"


def _fail(node: ast.AST | None, message: str, source: str | None) -> SpecError:
    return SpecError([(_where(node) if node is not None else "", message)], source=source)


def _is_genotype_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "Genotype") or (
        isinstance(f, ast.Attribute) and f.attr == "Genotype"
    )


def _int(node: ast.AST, what: str, source: str | None) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    raise _fail(node, f"{what}: expected an integer, got {ast.unparse(node)!r}", source)


def _range(node: ast.Call, what: str, source: str | None) -> list[int]:
    if node.keywords or not 1 <= len(node.args) <= 2:
        raise _fail(node, f"{what}: expected range(a, b) or range(b), got {ast.unparse(node)!r}", source)
    bounds = [_int(a, what, source) for a in node.args]
    lo, hi = (0, bounds[0]) if len(bounds) == 1 else bounds
    return list(range(lo, hi))


def _concat(node: ast.AST, what: str, source: str | None) -> list[int]:
    """``range(a, b)``, ``list(range(a, b))``, ``[2, 3, 4, 5]`` or ``(2, 3, 4, 5)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "range":
            return _range(node, what, source)
        if node.func.id in ("list", "tuple") and len(node.args) == 1 and not node.keywords:
            return _concat(node.args[0], what, source)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_int(e, f"{what}[{i}]", source) for i, e in enumerate(node.elts)]
    raise _fail(
        node, f"{what}: expected range(a, b) or a list of state indices, got {ast.unparse(node)!r}", source
    )


def _pairs(node: ast.AST, what: str, source: str | None) -> list[tuple[str, int, ast.AST]]:
    """A list of ``(op, input)`` pairs; each with its AST node for error locations."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise _fail(node, f"{what}: expected a list of (op, input) pairs, got {ast.unparse(node)!r}", source)
    out: list[tuple[str, int, ast.AST]] = []
    for i, elt in enumerate(node.elts):
        if not (isinstance(elt, (ast.Tuple, ast.List)) and len(elt.elts) == 2):
            raise _fail(elt, f"{what}[{i}]: expected an (op, input) pair, got {ast.unparse(elt)!r}", source)
        op, idx = elt.elts
        if not (isinstance(op, ast.Constant) and isinstance(op.value, str)):
            raise _fail(op, f"{what}[{i}]: the op must be a string like 'sep_conv_3x3', got {ast.unparse(op)!r}", source)
        out.append((op.value, _int(idx, f"{what}[{i}]", source), elt))
    return out


@dataclass(frozen=True)
class _Call:
    """The arguments of one ``Genotype(...)`` call, still as AST nodes."""

    node: ast.Call
    args: dict[str, ast.AST]


def _call_args(call: ast.Call, source: str | None) -> _Call:
    args: dict[str, ast.AST] = {}
    if len(call.args) > len(FIELDS):
        raise _fail(call, f"Genotype() takes {len(FIELDS)} arguments ({', '.join(FIELDS)}), got {len(call.args)}", source)
    for name, value in zip(FIELDS, call.args):
        if isinstance(value, ast.Starred):
            raise _fail(value, "Genotype(*args) cannot be read without running code", source)
        args[name] = value
    for kw in call.keywords:
        if kw.arg is None:
            raise _fail(kw.value, "Genotype(**kwargs) cannot be read without running code", source)
        if kw.arg not in FIELDS:
            raise _fail(
                kw.value,
                f"Genotype() got an unexpected argument {kw.arg!r}; the DARTS CNN genotype has {', '.join(FIELDS)}",
                source,
            )
        if kw.arg in args:
            raise _fail(kw.value, f"Genotype() got argument {kw.arg!r} twice", source)
        args[kw.arg] = kw.value
    missing = [f for f in FIELDS if f not in args]
    if missing:
        raise _fail(call, f"Genotype() is missing {', '.join(missing)}", source)
    return _Call(call, args)


def _parse_module(text: str, source: str | None) -> ast.Module:
    if len(text) > MAX_DARTS_TEXT:
        raise SpecError([("", f"{len(text):,} characters; DARTS text is read up to {MAX_DARTS_TEXT:,}")], source=source)
    calls = text.count("Genotype(")
    if calls > MAX_DARTS_NAMES:
        raise SpecError([("", f"{calls:,} Genotype(...) calls; at most {MAX_DARTS_NAMES:,} are read")], source=source)
    try:
        return ast.parse(text, filename=source or "<text>")
    except (RecursionError, MemoryError):
        raise SpecError([("", "nested too deeply to read as Python")], source=source) from None
    except ValueError as e:  # e.g. a NUL character
        raise SpecError([("", f"not valid Python: {e}")], source=source) from None
    except SyntaxError as e:
        # A pasted log line ("... genotype = Genotype(...)") is not a Python file: read the call.
        start = text.find("Genotype(")
        if start >= 0:
            snippet = _balanced(text, start + len("Genotype"))
            if snippet is not None:
                try:
                    return ast.parse(text[start : start + len("Genotype") + len(snippet)])
                except (SyntaxError, RecursionError, MemoryError, ValueError):
                    pass
        loc = f"line {e.lineno} column {e.offset}" if e.lineno else ""
        raise SpecError([(loc, f"not valid Python: {e.msg}")], source=source) from None


def _balanced(text: str, open_at: int) -> str | None:
    """The parenthesised text starting at ``text[open_at] == '('``, or None if unbalanced."""
    depth = 0
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return text[open_at : i + 1]
    return None


def _find_calls(module: ast.Module, source: str | None = None) -> tuple[dict[str, ast.Call], list[ast.Call]]:
    """Named ``NAME = Genotype(...)`` calls (aliases followed) and anonymous ones; at most
    :data:`~nasgal.spec.limits.MAX_DARTS_NAMES` of them, aliases included."""
    named: dict[str, ast.Call] = {}
    aliases: dict[str, str] = {}
    anonymous: list[ast.Call] = []
    for stmt in module.body:
        if len(named) + len(aliases) + len(anonymous) > MAX_DARTS_NAMES:
            raise SpecError(
                [(_where(stmt), f"more than {MAX_DARTS_NAMES:,} Genotype(...) calls and aliases; no more are read")],
                source=source,
            )
        targets: list[ast.expr] = []
        value: ast.AST | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.Expr):
            if _is_genotype_call(stmt.value):
                anonymous.append(stmt.value)  # type: ignore[arg-type]
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if _is_genotype_call(value):  # type: ignore[arg-type]
            for n in names:
                named[n] = value  # type: ignore[assignment]
        elif isinstance(value, ast.Name):
            for n in names:
                aliases[n] = value.id
    for alias, target in aliases.items():
        seen = {alias}
        while target in aliases and target not in seen:
            seen.add(target)
            target = aliases[target]
        if target in named and alias not in named:
            named[alias] = named[target]
    return named, anonymous


def genotype_names(text: str, source: str | None = None) -> list[str]:
    """Names of the ``NAME = Genotype(...)`` assignments (and aliases) in Python text."""
    named, _ = _find_calls(_parse_module(text, source), source)
    return list(named)


def _select(text: str, name: str | None, source: str | None, strict: bool = True) -> tuple[ast.Call, str | None]:
    """The call to read and its name. ``strict``: a given name must be assigned in the text;
    otherwise (pasted text) a name not found names the text's only genotype."""
    module = _parse_module(text, source)
    named, anonymous = _find_calls(module, source)
    if name is not None and named:
        if name in named:
            return named[name], name
        lower = {n.lower(): n for n in named}
        if name.lower() in lower:
            real = lower[name.lower()]
            return named[real], real
        distinct_calls = {id(c): c for c in [*named.values(), *anonymous]}
        if not strict and len(distinct_calls) == 1:
            return next(iter(distinct_calls.values())), name
        raise SpecError(
            [("", f"no genotype named {name!r}; found {', '.join(named)}")],
            source=source,
            hint="pick one of the names with --name",
        )
    if named and not anonymous:
        if len(named) == 1:
            ((n, call),) = named.items()
            return call, n
        distinct = {id(c) for c in named.values()}
        if len(distinct) == 1:  # one genotype and its aliases
            n = next(iter(named))
            return named[n], n
        raise SpecError(
            [("", f"{len(named)} genotypes found: {', '.join(named)}")],
            source=source,
            hint="pick one with --name",
        )
    calls = anonymous or list(named.values())
    if not calls:
        raise SpecError(
            [("", "no Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...) found")],
            source=source,
        )
    if len(calls) > 1:
        where = ", ".join(_where(c) for c in calls)
        raise SpecError([("", f"{len(calls)} Genotype(...) expressions found ({where}); give one")], source=source)
    return calls[0], name


# --------------------------------------------------------------------------------------
# DARTS lists <-> cells
# --------------------------------------------------------------------------------------


class DartsEncodingError(ValueError):
    """A DARTS list that does not describe a cell; ``field`` and ``index`` say where."""

    def __init__(self, message: str, field: str, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


def cell_from_darts(pairs: list[tuple[str, int]], concat: list[int], what: str = "cell") -> dict[str, Any]:
    """The cell (as plain data) of one DARTS pair list and concat.

    ``what`` names the field in messages (``normal``, ``reduce``); raises
    :class:`DartsEncodingError` (a ``ValueError``).
    """
    if len(pairs) % 2:
        raise DartsEncodingError(
            f"{what}: {len(pairs)} (op, input) pairs; the DARTS encoding needs two per node (an even number)",
            what,
        )
    steps = len(pairs) // 2
    if steps == 0:
        raise DartsEncodingError(f"{what}: no (op, input) pairs", what)
    edges = []
    for k, (op, index) in enumerate(pairs):
        node = k // 2
        if not 0 <= index < node + 2:
            allowed = "0 (c_{k-2}), 1 (c_{k-1})" + (f" or 2..{node + 1} (nodes 0..{node - 1})" if node else "")
            why = "negative" if index < 0 else "not computed yet"
            raise DartsEncodingError(
                f"{what}[{k}] ({op!r}, {index}): pair {k} feeds node {node}, which can read states {allowed}; "
                f"state {index} is {why}",
                what,
                k,
            )
        edges.append({"src": ref_of_state(index), "dst": node, "op": op})
    out_concat = []
    for i, state in enumerate(concat):
        if state in (0, 1):
            raise DartsEncodingError(
                f"{what}_concat[{i}]: state {state} is the cell input {ref_of_state(state)}; "
                "nasgal concatenates intermediate nodes only (states 2 and up)",
                what + "_concat",
                i,
            )
        if not 2 <= state < steps + 2:
            raise DartsEncodingError(
                f"{what}_concat[{i}]: state {state} does not exist; the cell has states 2..{steps + 1} "
                f"(nodes 0..{steps - 1})",
                what + "_concat",
                i,
            )
        out_concat.append(state - 2)
    return {"nodes": list(range(steps)), "edges": edges, "concat": out_concat}


def genotype_from_darts(
    normal: list[tuple[str, int]],
    normal_concat: list[int],
    reduce: list[tuple[str, int]],
    reduce_concat: list[int],
    *,
    name: str = DEFAULT_NAME,
    provenance: Provenance | dict | None = None,
    source: str | None = None,
) -> Genotype:
    """A :class:`Genotype` from the four fields of a DARTS genotype, as Python values."""
    fields = {"normal": (normal, normal_concat), "reduce": (reduce, reduce_concat)}
    cells: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for field, (pairs, concat) in fields.items():
        try:
            cells[CELL_NAMES[field]] = cell_from_darts([(str(o), int(i)) for o, i in pairs], list(concat), field)
        except DartsEncodingError as e:
            problems.append(("", str(e)))
    if problems:
        raise SpecError(problems, source=source)
    prov = provenance.model_dump() if isinstance(provenance, Provenance) else (provenance or {})
    return validate_spec(Genotype, {"name": name, "cells": cells, "provenance": prov}, source=source)


def _from_call(call: ast.Call, name: str, provenance: dict, source: str | None) -> Genotype:
    c = _call_args(call, source)
    values: dict[str, Any] = {}
    nodes: dict[str, Any] = {}
    for field in FIELDS:
        if field.endswith("_concat"):
            values[field] = _concat(c.args[field], field, source)
        else:
            triples = _pairs(c.args[field], field, source)
            values[field] = [(op, idx) for op, idx, _ in triples]
            nodes[field] = [n for _, _, n in triples]
    problems: list[tuple[str, str]] = []
    cells: dict[str, Any] = {}
    for field in ("normal", "reduce"):
        try:
            cells[CELL_NAMES[field]] = cell_from_darts(values[field], values[field + "_concat"], field)
        except DartsEncodingError as e:
            at: ast.AST = c.args[e.field]
            if e.index is not None:
                if e.field.endswith("_concat"):
                    if isinstance(at, (ast.List, ast.Tuple)):
                        at = at.elts[e.index]
                else:
                    at = nodes[field][e.index]
            problems.append((_where(at), str(e)))
    if problems:
        raise SpecError(problems, source=source)
    # Cell problems (unknown ops, ...) located at the pair that causes them.
    for field in ("normal", "reduce"):
        data = cells[CELL_NAMES[field]]
        cell = Cell.model_construct(
            nodes=data["nodes"],
            edges=[Edge.model_construct(**e) for e in data["edges"]],
            concat=data["concat"],
        )
        for loc, msg in cell.problems():
            m = re.fullmatch(r"edges\[(\d+)\]", loc)
            if m:
                k = int(m.group(1))
                op, idx, at = values[field][k] + (nodes[field][k],)
                msg = msg.removeprefix(cell.edges[k].describe() + ": ")
                problems.append((_where(at), f"{field}[{k}] ({op!r}, {idx}): {msg}"))
            elif loc.startswith("concat"):
                at = c.args[field + "_concat"]
                problems.append((_where(at), f"{field}_{loc}: {msg} (node j is state 2+j)"))
            else:  # the DARTS text has no node list: say which cell
                problems.append((_where(c.args[field]), f"{field}: {msg}"))
    if problems:
        raise SpecError(problems, source=source)
    return validate_spec(Genotype, {"name": name, "cells": cells, "provenance": provenance}, source=source)


def parse_darts(
    text: str,
    name: str | None = None,
    *,
    source: str | None = None,
    provenance: Provenance | dict | None = None,
) -> Genotype:
    """Read DARTS ``Genotype(...)`` text (one call, or a Python file of assignments).

    ``name`` picks a ``NAME = Genotype(...)`` assignment (case-insensitively; the names
    found are listed when it is missing and the text holds several genotypes). With text
    holding a single genotype, it names the genotype. Nothing is executed: the text is
    read with :mod:`ast`.
    """
    call, found = _select(text, name, source, strict=False)
    prov = provenance.model_dump(exclude_none=True) if isinstance(provenance, Provenance) else dict(provenance or {})
    return _from_call(call, found or name or DEFAULT_NAME, prov, source)


def read_darts_file(path: str | os.PathLike, name: str | None = None) -> Genotype:
    """Read a genotype from a Python file such as DARTS's ``genotypes.py``."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > 4 * MAX_DARTS_TEXT:  # 4 bytes per character at most
            raise SpecError([("", f"larger than {MAX_DARTS_TEXT:,} characters, the limit for DARTS text")], source=str(p))
        text = p.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise SpecError([("", "no such file")], source=str(p)) from None
    except UnicodeDecodeError as e:
        raise SpecError([("", f"not UTF-8 text ({e.reason} at byte {e.start})")], source=str(p)) from None
    except OSError as e:
        raise SpecError([("", f"cannot be read ({e.strerror or e})")], source=str(p)) from None
    call, found = _select(text, name, str(p))
    label = found or name
    prov = {"source": f"{p.name}: {label}" if label else p.name}
    return _from_call(call, label or p.stem, prov, str(p))


# --------------------------------------------------------------------------------------
# Export: genotype -> text
# --------------------------------------------------------------------------------------


def _expressible(cell: Cell, what: str) -> list[str]:
    out = []
    for n in cell.nodes:
        k = len(cell.in_edges(n))
        if k != 2:
            out.append(
                f"{what}: node {n} has {k} input edge{'s' if k != 1 else ''}; "
                "the DARTS encoding gives every node exactly two"
            )
    return out


def darts_form(cell: Cell) -> Cell:
    """The cell renumbered as DARTS numbers it: nodes ``0..N-1`` in evaluation order,
    edges grouped by node (each node's edges in spec order), concat order kept."""
    order = topological_order(cell)
    new = {old: i for i, old in enumerate(order)}

    def ref(src: int | str) -> int | str:
        return src if isinstance(src, str) else new[src]

    edges = [
        {"src": ref(e.src), "dst": new[e.dst], "op": e.op} for old in order for _, e in cell.in_edges(old)
    ]
    return Cell.model_validate(
        {"nodes": list(range(len(order))), "edges": edges, "concat": [new[n] for n in cell.concat]}
    )


def is_darts_form(cell: Cell) -> bool:
    """True iff :func:`darts_form` leaves the cell unchanged."""
    return darts_form(cell) == cell


def cell_to_darts(cell: Cell, what: str = "cell") -> tuple[list[tuple[str, int]], list[int]]:
    """``(pairs, concat)`` of a cell in the DARTS encoding; raises ``ValueError`` if it has none."""
    problems = _expressible(cell, what)
    if problems:
        raise ValueError("; ".join(problems))
    c = darts_form(cell)
    pairs = [(e.op, state_of_ref(e.src)) for e in c.edges]
    return pairs, [n + 2 for n in c.concat]


def _fmt_concat(concat: list[int], steps: int) -> str:
    if concat == list(range(2, steps + 2)):
        return f"range(2, {steps + 2})"
    return "[" + ", ".join(str(s) for s in concat) + "]"


def to_darts(genotype: Genotype, *, assign: bool = False) -> str:
    """The genotype as DARTS ``Genotype(...)`` text (one line, no trailing newline).

    With ``assign``, the line reads ``NAME = Genotype(...)`` (for a ``genotypes.py``).
    Raises :class:`SpecError` for genotypes the encoding cannot express.
    """
    names = set(genotype.cells)
    problems: list[tuple[str, str]] = []
    if names != {"normal", "reduction"}:
        problems.append(
            ("cells", f"a DARTS genotype has exactly the cells 'normal' and 'reduction'; "
             f"'{genotype.name}' has {', '.join(sorted(names))}")
        )
        raise SpecError(problems, source=genotype.name)
    parts = []
    for field in ("normal", "reduce"):
        cell = genotype.cells[CELL_NAMES[field]]
        try:
            pairs, concat = cell_to_darts(cell, f"cells.{CELL_NAMES[field]}")
        except ValueError as e:
            problems.append(("", str(e)))
            continue
        text = "[" + ", ".join(f"({op!r}, {i})" for op, i in pairs) + "]"
        parts.append(f"{field}={text}, {field}_concat={_fmt_concat(concat, cell.num_nodes)}")
    if problems:
        raise SpecError(problems, source=genotype.name, hint="only cells with two inputs per node export to DARTS text")
    body = f"Genotype({', '.join(parts)})"
    if assign:
        if not genotype.name.isidentifier():
            raise SpecError([("name", f"{genotype.name!r} is not a Python identifier; export without assign")],
                            source=genotype.name)
        return f"{genotype.name} = {body}"
    return body


__all__ = [
    "FIELDS",
    "DartsEncodingError",
    "cell_from_darts",
    "cell_to_darts",
    "darts_form",
    "genotype_from_darts",
    "genotype_names",
    "is_darts_form",
    "parse_darts",
    "read_darts_file",
    "to_darts",
]
