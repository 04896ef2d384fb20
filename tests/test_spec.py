"""The spec layer: shipped genotypes, JSON round trips, graph identity, immutability,
strictness, the genotype library and the committed JSON Schemas.

Golden files (``genotypes/*.json`` from the published cells, ``schemas/*.json``) are
regenerated with ``NASGAL_ACCEPT=1 pytest tests/test_spec.py`` (schemas also with
``nasgal schema``).
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from nasgal.errors import NasgalError, SpecError
from nasgal.spec import (
    Cell,
    Genotype,
    Network,
    canonical_hash,
    dumps,
    load,
    same_graph,
    save,
    spec_hash,
    stack,
    to_networkx,
    validate_spec,
)
from nasgal.spec.darts_text import genotype_from_darts
from nasgal.spec.library import PACKAGE_DIR, library, library_path, resolve_spec_path
from nasgal.spec.schemas import generate_schemas, json_schema, registered_kinds, stale_schemas, write_schemas

REPO = Path(__file__).resolve().parent.parent
GENOTYPES = REPO / "genotypes"
SHIPPED = sorted(GENOTYPES.glob("*.json"))
ACCEPT = os.environ.get("NASGAL_ACCEPT") == "1"

#: The published cells in the DARTS encoding, as their authors' code lists them (committed test data).
REFERENCE = Path(__file__).resolve().parent / "data" / "published_genotypes.json"
#: reference key -> (genotype name, file stem)
LIBRARY = {
    "DARTS_V1": ("DARTS_V1", "darts_v1"),
    "DARTS_V2": ("DARTS_V2", "darts_v2"),
    "PDARTS": ("PDARTS", "pdarts"),
    "PC_DARTS_cifar": ("PC_DARTS_cifar", "pc_darts_cifar"),
    "PC_DARTS_image": ("PC_DARTS_imagenet", "pc_darts_imagenet"),
    "NASNet": ("NASNet_A", "nasnet_a"),
    "AmoebaNet": ("AmoebaNet_A", "amoebanet_a"),
}


# -- the shipped library ---------------------------------------------------------------------


def test_library_is_complete():
    assert sorted(p.stem for p in SHIPPED) == sorted(stem for _, stem in LIBRARY.values())
    for name, stem in LIBRARY.values():
        g = load(GENOTYPES / f"{stem}.json")
        assert isinstance(g, Genotype) and g.name == name
        assert set(g.cells) == {"normal", "reduction"}
        assert g.provenance.source and g.provenance.paper


def test_library_matches_published_cells():
    """The files are exactly the published cells, converted (NASGAL_ACCEPT=1 rewrites them)."""
    ref = json.loads(REFERENCE.read_text())["genotypes"]
    for key, (name, stem) in LIBRARY.items():
        r = ref[key]
        g = genotype_from_darts(
            r["normal"], r["normal_concat"], r["reduce"], r["reduce_concat"], name=name,
            provenance={"source": r["source"], "paper": r["paper"]},
        )
        if ACCEPT:
            save(g, GENOTYPES / f"{stem}.json")
            save(g, PACKAGE_DIR / f"{stem}.json")
        assert (GENOTYPES / f"{stem}.json").read_text() == dumps(g), f"{stem}.json is stale"


def test_package_copies_are_identical():
    packaged = sorted(p.name for p in PACKAGE_DIR.glob("*.json"))
    assert packaged == [p.name for p in SHIPPED]
    for p in SHIPPED:
        assert filecmp.cmp(p, PACKAGE_DIR / p.name, shallow=False), (
            f"nasgal/genotypes/{p.name} differs from genotypes/{p.name}; copy it over"
        )


def test_package_data_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert '"genotypes/*.json"' in text


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_json_round_trip(path, tmp_path):
    g = load(path)
    assert path.read_text() == dumps(g)  # canonical formatting on disk
    out = save(g, tmp_path / path.name)
    again = load(out)
    assert again == g and spec_hash(again) == spec_hash(g)
    assert Genotype.model_validate_json(g.model_dump_json(by_alias=True)) == g
    assert (path.parent / g.schema_).resolve() == (REPO / "schemas" / "genotype.schema.json")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_stacked_network_round_trip(path, tmp_path):
    net = stack(load(path), cells=5, channels=8, classes=10, in_channels=1, input_size=28,
                auxiliary=True, drop_path=0.2)
    net = net.with_kept_nodes([None, [0, 1], None, [1, 2], None])
    back = load(save(net, tmp_path / "net.json"))
    assert back == net and isinstance(back, Network)


# -- resolving library names -----------------------------------------------------------------


@pytest.mark.parametrize("arg", ["darts_v2", "DARTS_V2", "darts-v2", "darts_v2.json", "Darts_V2"])
def test_resolve_library_names(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_spec_path(arg).name == "darts_v2.json"


def test_resolve_by_genotype_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_spec_path("nasnet_a").name == "nasnet_a.json"
    assert resolve_spec_path("PC_DARTS_imagenet").name == "pc_darts_imagenet.json"
    assert library_path("amoebanet_a").name == "amoebanet_a.json"
    assert [e.key for e in library()] == sorted(p.stem for p in SHIPPED)


def test_existing_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = load(GENOTYPES / "darts_v1.json").model_copy(update={"name": "mine"})
    save(mine, tmp_path / "darts_v2")  # a file literally named like a library genotype
    assert resolve_spec_path("darts_v2") == Path("darts_v2")


def test_resolve_unknown_lists_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NasgalError) as exc:
        resolve_spec_path("darts_v9")
    assert "darts_v9: no such file, and no genotype of that name in the library" in str(exc.value)
    assert "darts_v2" in exc.value.hint and "nasnet_a" in exc.value.hint
    with pytest.raises(NasgalError, match="no such file"):
        resolve_spec_path("some/dir/darts_v2.json")


# -- graph identity --------------------------------------------------------------------------


def _renumber(cell: Cell, mapping: dict[int, int], reverse_edges: bool = False) -> Cell:
    def m(x):
        return mapping[x] if isinstance(x, int) else x

    edges = [{"src": m(e.src), "dst": m(e.dst), "op": e.op} for e in cell.edges]
    if reverse_edges:
        edges = edges[::-1]
    return Cell.model_validate(
        {"nodes": [mapping[n] for n in cell.nodes], "edges": edges, "concat": [mapping[n] for n in cell.concat]}
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_canonical_hash_ignores_numbering(path):
    for cell in load(path).cells.values():
        n = cell.num_nodes
        mapping = {i: 100 + 7 * (n - i) for i in cell.nodes}  # non-contiguous, reversed
        other = _renumber(cell, mapping, reverse_edges=True)
        assert other != cell
        assert canonical_hash(other) == canonical_hash(cell)
        assert same_graph(other, cell)


def test_canonical_hash_separates_different_cells():
    hashes = {}
    for path in SHIPPED:
        g = load(path)
        for name, cell in g.cells.items():
            hashes[f"{g.name}.{name}"] = canonical_hash(cell)
    assert len(set(hashes.values())) == len(hashes), hashes
    v2 = load(GENOTYPES / "darts_v2.json").cells["normal"]
    # one op changed, one input swapped: different graphs
    op_changed = v2.model_copy(update={"edges": [v2.edges[0].model_copy(update={"op": "sep_conv_5x5"})] + v2.edges[1:]})
    src_changed = v2.model_copy(update={"edges": [v2.edges[0].model_copy(update={"src": "c_{k-1}"})] + v2.edges[1:]})
    for other in (op_changed, src_changed):
        assert canonical_hash(other) != canonical_hash(v2)
        assert not same_graph(other, v2)


def test_same_graph_keeps_inputs_apart():
    v2 = load(GENOTYPES / "darts_v2.json").cells["normal"]
    flip = {"c_{k-2}": "c_{k-1}", "c_{k-1}": "c_{k-2}"}
    swapped = v2.model_copy(
        update={"edges": [e.model_copy(update={"src": flip.get(e.src, e.src)}) for e in v2.edges]}
    )
    assert not same_graph(swapped, v2)
    assert canonical_hash(swapped) != canonical_hash(v2)


def test_to_networkx():
    cell = load(GENOTYPES / "darts_v2.json").cells["normal"]
    g = to_networkx(cell)
    assert g.number_of_edges() == len(cell.edges) + len(cell.concat)
    assert g.nodes["c_{k-2}"]["role"] == "input" and g.nodes[0]["role"] == "node"
    assert {d["op"] for _, _, d in g.in_edges(3, data=True)} == {"skip_connect", "dil_conv_3x3"}


# -- immutability and strictness -------------------------------------------------------------


def test_models_are_frozen():
    g = load(GENOTYPES / "darts_v2.json")
    with pytest.raises(ValidationError):
        g.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        g.cells["normal"].edges[0].op = "skip_connect"  # type: ignore[misc]
    net = stack(g, cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    with pytest.raises(ValidationError):
        net.positions[0].kept = [0]  # type: ignore[misc]
    pruned = net.with_kept_nodes([[1, 2], [0, 1], [3], [0, 1, 2], [1]])
    assert net.positions[0].kept is None and pruned.positions[0].kept == [1, 2]  # edits return copies


@pytest.mark.parametrize(
    "where,loc",
    [
        (lambda d: d.update(nmae="typo"), "nmae"),
        (lambda d: d["cells"]["normal"].update(nodez=[]), "cells.normal.nodez"),
        (lambda d: d["cells"]["normal"]["edges"][0].update(stride=2), "cells.normal.edges[0].stride"),
        (lambda d: d["provenance"].update(author="me"), "provenance.author"),
    ],
)
def test_extra_fields_rejected(where, loc):
    data = json.loads((GENOTYPES / "darts_v2.json").read_text())
    where(data)
    with pytest.raises(SpecError) as exc:
        validate_spec(Genotype, data)
    assert (loc, "unknown field (not part of the spec; check the spelling)") in exc.value.problems


def test_network_extra_field_rejected():
    net = stack(load(GENOTYPES / "darts_v2.json"), cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    data = net.model_dump(mode="json", by_alias=True)
    data["positions"][2]["keep"] = [0]
    with pytest.raises(SpecError) as exc:
        validate_spec(Network, data)
    assert ("positions[2].keep", "unknown field (not part of the spec; check the spelling)") in exc.value.problems



def _three_problem_genotype() -> dict:
    """darts_v2 with three distinct problems in its normal cell."""
    data = json.loads((GENOTYPES / "darts_v2.json").read_text())
    normal = data["cells"]["normal"]
    normal["edges"][7]["op"] = "conv_9x9"  # unknown op
    normal["edges"][0]["dst"] = 6  # target not a node (and leaves no node unfed: node 0 has edges[1])
    normal["concat"] = [0, 1, 2, 5]  # concat names a missing node
    return data


THREE_PROBLEMS = [
    ("cells.normal.edges[0]", "c_{k-2} -> 6 (sep_conv_3x3): target 6 is not a node of this cell; nodes are 0, 1, 2, 3"),
    ("cells.normal.edges[7]", "0 -> 3 (conv_9x9): unknown op 'conv_9x9'; known ops: "),
    ("cells.normal.concat[3]", "5 is not a node of this cell; nodes are 0, 1, 2, 3"),
]


def test_three_cell_problems_are_three_entries():
    with pytest.raises(SpecError) as exc:
        validate_spec(Genotype, _three_problem_genotype())
    problems = exc.value.problems
    assert len(problems) == 3, problems
    for (loc, msg), (want_loc, want_msg) in zip(problems, THREE_PROBLEMS):
        assert loc == want_loc and msg.startswith(want_msg), (loc, msg)
    assert [p.location for p in problems] == [loc for loc, _ in THREE_PROBLEMS]
    # the cell's own list, located inside the cell
    with pytest.raises(SpecError) as exc:
        validate_spec(Cell, _three_problem_genotype()["cells"]["normal"])
    assert [p.location for p in exc.value.problems] == ["edges[0]", "edges[7]", "concat[3]"]


# -- JSON Schemas ----------------------------------------------------------------------------


def test_committed_schemas_are_fresh():
    if ACCEPT:
        write_schemas(REPO / "schemas")
    stale = stale_schemas(REPO / "schemas")
    assert not stale, f"stale schemas {stale}: run `nasgal schema` (or `make schemas`) and commit schemas/"


def test_schema_generation_is_stable(tmp_path):
    assert generate_schemas() == generate_schemas()
    write_schemas(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(generate_schemas()) and {"genotype.schema.json", "network.schema.json"} <= set(names)
    assert write_schemas(tmp_path) == []  # nothing changes the second time
    assert stale_schemas(tmp_path) == []
    (tmp_path / "network.schema.json").write_text("{}\n")
    (tmp_path / "old.schema.json").write_text("{}\n")
    assert stale_schemas(tmp_path) == ["network.schema.json", "old.schema.json"]


def _properties(schema: dict):
    yield "(root)", schema.get("properties", {})
    for name, d in schema.get("$defs", {}).items():
        yield name, d.get("properties", {})


@pytest.mark.parametrize("kind", sorted(registered_kinds()))
def test_schema_documents_every_field(kind):
    schema = json_schema(kind)
    assert schema["$id"] == f"urn:nasgal:schema:{kind}:1"
    assert schema["title"] == f"nasgal {kind} (format 1)"
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    assert "$schema" in schema["properties"]  # the alias, not schema_
    undocumented = [f"{owner}.{name}" for owner, props in _properties(schema) for name, p in props.items()
                    if not p.get("description")]
    assert not undocumented


def test_schema_validates_shipped_files_if_jsonschema_is_installed():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema("genotype")
    for p in SHIPPED:
        jsonschema.validate(json.loads(p.read_text()), schema)


def test_spec_imports_no_torch():
    code = (
        "import sys, nasgal.spec, nasgal.spec.darts_text, nasgal.spec.library, nasgal.spec.schemas;"
        "nasgal.spec.schemas.generate_schemas();"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_spec_imports_nothing_above_it():
    """The spec layer is data: importing it (and using every file kind) loads no other nasgal package."""
    code = (
        "import sys, json, nasgal.spec, nasgal.spec.darts_text, nasgal.spec.library, nasgal.spec.schemas;"
        "nasgal.spec.schemas.generate_schemas();"
        "nasgal.spec.parse_spec({'kind': 'search_space', 'name': 'x', 'ops': ['none', 'skip_connect']});"
        "bad = sorted(m for m in sys.modules if m.startswith('nasgal.') and m.split('.')[1] not in ('spec', 'errors'));"
        "print(json.dumps(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_spec_file_kinds_are_one_union():
    from nasgal.spec import KINDS, SearchSpace, parse_spec
    from nasgal.spec.schemas import registered_kinds

    assert dict(KINDS) == {"genotype": Genotype, "network": Network, "search_space": SearchSpace}
    assert list(registered_kinds()) == sorted(KINDS)
    with pytest.raises(SpecError) as e:
        parse_spec({"kind": ["x"]})  # not a tag at all
    assert e.value.problems[0][0] == "kind" and "expected one of genotype, network, search_space" in e.value.problems[0][1]
