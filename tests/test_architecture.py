"""The layering of docs/architecture.md, enforced: each package of nasgal imports only the layers
below it (imports inside functions included), and no module-level import cycle exists."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nasgal"

#: Layers from the bottom; a unit may import units of lower layers only (docs/architecture.md).
LAYERS: list[set[str]] = [
    {"errors", "options", "progress", "runfiles", "lazy"},
    {"spec"},
    {"compiler", "data", "diff", "render", "plot"},
    {"engine"},
    {"train", "prune", "search"},
    {"deploy"},
    {"experiment"},
    {"cli"},
    {"__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> tuple[str, str]:
    """(module, package it resolves relative imports against)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _imports(path: Path, top_level_only: bool = False, source: str | None = None) -> list[str]:
    """The nasgal modules (or names within them) that ``path`` imports (``source``: its text,
    when it is not on disk)."""
    module, package = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[str] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "nasgal" or target.startswith("nasgal."):
                found += [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("nasgal")]
    return found


def _unit(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)[0]) for p in _files()} - {None}
    # the root package's own modules (nasgal/__init__.py) and the version string are shared by all
    assert units - set(LAYER) == set(), "add the new package to LAYERS and docs/architecture.md"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_only_go_down(path, source: str | None = None):
    mine = _unit(_module_name(path)[0])
    if mine is None:
        return  # nasgal/__init__.py: the public facade, above everything it re-exports
    wrong = []
    for target in _imports(path, source=source):
        theirs = _unit(target)
        if theirs is None or theirs == "__version__" or theirs == mine:
            continue  # the version string is everyone's
        # A name of the root facade (nasgal.load, nasgal.compile_network) stands for the spec and
        # compiler layers it re-exports.
        layer = LAYER.get(theirs, LAYER["compiler"] if not (PACKAGE / theirs).exists() else None)
        if layer is None or layer >= LAYER[mine]:
            wrong.append(f"{mine} (layer {LAYER[mine]}) imports {target} (layer {layer})")
    assert not wrong, "\n".join(wrong)


def test_no_module_level_import_cycle():
    graph = nx.DiGraph()
    modules = {_module_name(p)[0]: p for p in _files()}
    for module, path in modules.items():
        graph.add_node(module)
        for target in _imports(path, top_level_only=True):
            # "from nasgal.spec import stack" names a module or a name in one: take the longest module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph.add_edge(module, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_the_layering_test_sees_a_violation():
    """The check itself works: an upward import is found (in a module that exists only as text)."""
    with pytest.raises(AssertionError, match="spec .layer 1. imports nasgal.train.train"):
        test_imports_only_go_down(PACKAGE / "spec" / "_probe_layering.py", source="from ..train import train\n")
