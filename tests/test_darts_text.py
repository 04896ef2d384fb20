"""DARTS Genotype(...) text: import, export, round trips and errors with line/column."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasgal.errors import SpecError
from nasgal.spec import Cell, Genotype, load, same_graph
from nasgal.spec.darts_text import (
    darts_form,
    genotype_from_darts,
    genotype_names,
    is_darts_form,
    parse_darts,
    read_darts_file,
    to_darts,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "genotypes").glob("*.json"))

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)

# A genotypes.py as the reference code bases write it (multi-line, aliases, other statements).
GENOTYPES_PY = '''\
from collections import namedtuple

Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')

PRIMITIVES = [
    'none',
    'max_pool_3x3',
]

DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(
  normal=[
    ('sep_conv_3x3', 0),
    ('sep_conv_3x3', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_3x3', 1),
    ('sep_conv_3x3', 1),
    ('skip_connect', 0),
    ('skip_connect', 0),
    ('dil_conv_3x3', 2),
  ],
  normal_concat=range(2, 6),
  reduce=[
    ('max_pool_3x3', 0), ('max_pool_3x3', 1),
    ('skip_connect', 2), ('max_pool_3x3', 1),
    ('max_pool_3x3', 0), ('skip_connect', 2),
    ('skip_connect', 2), ('max_pool_3x3', 1),
  ],
  reduce_concat=range(2, 6),
)

DARTS = DARTS_V2
'''


def problems(exc: pytest.ExceptionInfo) -> list[tuple[str, str]]:
    assert isinstance(exc.value, SpecError)
    return exc.value.problems


# -- import ---------------------------------------------------------------------------------


def test_parse_matches_shipped_darts_v2():
    g = parse_darts(DARTS_V2, name="DARTS_V2")
    shipped = load(REPO / "genotypes" / "darts_v2.json")
    assert g.name == "DARTS_V2"
    assert g.cells == shipped.cells
    normal = g.cells["normal"]
    assert normal.nodes == [0, 1, 2, 3]
    assert normal.concat == [0, 1, 2, 3]
    # pairs 2i, 2i+1 feed node i; input 0 = c_{k-2}, 1 = c_{k-1}, 2+j = node j
    assert [(e.src, e.dst, e.op) for e in normal.edges[-2:]] == [("c_{k-2}", 3, "skip_connect"), (0, 3, "dil_conv_3x3")]


@pytest.mark.parametrize(
    "variant",
    [
        DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)"),
        DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=list(range(2, 6))"),
        DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=(2, 3, 4, 5)"),
        DARTS_V2.replace("('sep_conv_3x3', 0)", "['sep_conv_3x3', 0]"),  # JSON-style pairs
        DARTS_V2.replace("normal=[", "normal=(").replace("], normal_concat", "), normal_concat"),
        "genotypes.Genotype" + DARTS_V2[len("Genotype"):],
        "2019-03-01 10:02:11 genotype = " + DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)"),
    ],
)
def test_parse_accepts_variants(variant):
    assert parse_darts(variant).cells == parse_darts(DARTS_V2).cells


def test_parse_positional_and_reordered_keywords():
    positional = (
        "Genotype([('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], [2, 3, 4, 5], "
        "[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
    )
    assert parse_darts(positional).cells == parse_darts(DARTS_V2).cells
    text = to_darts(parse_darts(DARTS_V2))
    body = text[len("Genotype(") : -1]
    normal, rest = body.split(", normal_concat=")
    ncat, rest = rest.split(", reduce=")
    reduce_, rcat = rest.split(", reduce_concat=")
    shuffled = f"Genotype(reduce_concat={rcat}, {normal}, reduce={reduce_}, normal_concat={ncat})"
    assert parse_darts(shuffled).cells == parse_darts(DARTS_V2).cells


def test_python_file_by_name_and_alias(tmp_path):
    path = tmp_path / "genotypes.py"
    path.write_text(GENOTYPES_PY)
    assert genotype_names(GENOTYPES_PY) == ["DARTS_V1", "DARTS_V2", "DARTS"]
    g = read_darts_file(path, "DARTS_V2")
    assert g.name == "DARTS_V2"
    assert g.cells == load(REPO / "genotypes" / "darts_v2.json").cells
    assert g.provenance.source == "genotypes.py: DARTS_V2"
    assert read_darts_file(path, "DARTS").cells == g.cells  # DARTS = DARTS_V2
    assert read_darts_file(path, "darts_v1").name == "DARTS_V1"  # case-insensitive


def test_python_file_missing_name_lists_names(tmp_path):
    path = tmp_path / "genotypes.py"
    path.write_text(GENOTYPES_PY)
    with pytest.raises(SpecError) as exc:
        read_darts_file(path, "PDARTS")
    assert "no genotype named 'PDARTS'; found DARTS_V1, DARTS_V2, DARTS" in str(exc.value)
    with pytest.raises(SpecError) as exc:
        read_darts_file(path)
    assert "DARTS_V1, DARTS_V2, DARTS" in str(exc.value)
    assert "--name" in exc.value.hint


def test_file_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.py"
    path.write_text(f"open({str(marker)!r}, 'w').write('x')\nG = {DARTS_V2}\n")
    read_darts_file(path, "G")
    assert not marker.exists()
    # names as arguments are not evaluated either
    with pytest.raises(SpecError) as exc:
        parse_darts(DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=CONCAT"))
    assert "normal_concat: expected range(a, b) or a list of state indices, got 'CONCAT'" in str(exc.value)


def test_five_node_cells_nasnet():
    g = load(REPO / "genotypes" / "nasnet_a.json")
    assert g.cells["normal"].nodes == [0, 1, 2, 3, 4]
    assert g.cells["reduction"].concat == [2, 3, 4]  # reduce_concat [4, 5, 6]
    text = to_darts(g)
    assert "normal_concat=range(2, 7)" in text and "reduce_concat=[4, 5, 6]" in text


# -- errors, with line and column ------------------------------------------------------------


def test_syntax_error_has_line_and_column():
    with pytest.raises(SpecError) as exc:
        parse_darts("G = Genotype(normal=[('sep_conv_3x3', 0)\n", source="<t>")
    (loc, msg), = problems(exc)
    assert loc == "line 1 column 21"
    assert msg.startswith("not valid Python:")


@pytest.mark.parametrize(
    "old,new,loc,message",
    [
        ("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)", "line 1 column 165",
         "normal[7] ('dil_conv_3x3', 7): pair 7 feeds node 3, which can read states 0 (c_{k-2}), 1 (c_{k-1}) "
         "or 2..4 (nodes 0..2); state 7 is not computed yet"),
        ("('dil_conv_3x3', 2)", "('dil_conv_9x9', 2)", "line 1 column 165",
         "normal[7] ('dil_conv_9x9', 2): unknown op 'dil_conv_9x9'; known ops: none, max_pool_3x3"),
        ("('dil_conv_3x3', 2)", "('dil_conv_3x3', 'x')", "line 1 column 182", "normal[7]: expected an integer, got \"'x'\""),
        ("('dil_conv_3x3', 2)", "('dil_conv_3x3',)", "line 1 column 165", "normal[7]: expected an (op, input) pair"),
        ("('dil_conv_3x3', 2)]", "]", "line 1 column 17", "normal: 7 (op, input) pairs; the DARTS encoding needs two per node"),
        ("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[1, 3]", "line 1 column 407",
         "reduce_concat[0]: state 1 is the cell input c_{k-1}; nasgal concatenates intermediate nodes only"),
        ("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 9]", "line 1 column 410",
         "reduce_concat[1]: state 9 does not exist; the cell has states 2..5 (nodes 0..3)"),
        ("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(2, 6, 1)", "line 1 column 406",
         "reduce_concat: expected range(a, b) or range(b)"),
        (", reduce_concat=[2, 3, 4, 5]", "", "line 1 column 1", "Genotype() is missing reduce_concat"),
        ("reduce_concat=", "reduced_concat=", "line 1 column 407", "unexpected argument 'reduced_concat'"),
    ],
)
def test_bad_text_is_located(old, new, loc, message):
    assert old in DARTS_V2
    with pytest.raises(SpecError) as exc:
        parse_darts(DARTS_V2.replace(old, new, 1), source="<t>")
    found = problems(exc)
    assert any(where == loc and message in m for where, m in found), found


def test_no_genotype_in_text():
    with pytest.raises(SpecError, match="no Genotype"):
        parse_darts("x = 1\n")


# -- export ----------------------------------------------------------------------------------


def test_export_is_what_the_reference_code_prints():
    text = to_darts(load(REPO / "genotypes" / "darts_v2.json"))
    assert text == DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert to_darts(load(REPO / "genotypes" / "darts_v2.json"), assign=True).startswith("DARTS_V2 = Genotype(normal=[")


def _cell(edges, concat=None, nodes=None):
    nodes = nodes if nodes is not None else sorted({d for _, d, _ in edges})
    return Cell.model_validate(
        {"nodes": nodes, "edges": [{"src": s, "dst": d, "op": o} for s, d, o in edges], "concat": concat or nodes}
    )


def test_export_refuses_nodes_without_two_inputs():
    cell = _cell([("c_{k-2}", 0, "sep_conv_3x3"), ("c_{k-1}", 1, "skip_connect"), (0, 1, "sep_conv_3x3"),
                  ("c_{k-1}", 1, "max_pool_3x3")])
    g = Genotype(name="odd", cells={"normal": cell, "reduction": cell})
    with pytest.raises(SpecError) as exc:
        to_darts(g)
    text = str(exc.value)
    assert "cells.normal: node 0 has 1 input edge; the DARTS encoding gives every node exactly two" in text
    assert "node 1 has 3 input edges" in text


def test_export_refuses_other_cell_names():
    cell = load(REPO / "genotypes" / "darts_v2.json").cells["normal"]
    with pytest.raises(SpecError, match="exactly the cells 'normal' and 'reduction'; 'x' has normal"):
        to_darts(Genotype(name="x", cells={"normal": cell}))


def test_export_renumbers_in_topological_order():
    # nodes 10 and 7, with 10 computed first and read by 7; edges interleaved
    cell = _cell(
        [("c_{k-1}", 7, "sep_conv_3x3"), ("c_{k-2}", 10, "skip_connect"), (10, 7, "dil_conv_3x3"),
         ("c_{k-1}", 10, "max_pool_3x3")],
        concat=[7, 10],
        nodes=[10, 7],
    )
    assert not is_darts_form(cell)
    d = darts_form(cell)
    assert d.nodes == [0, 1] and d.concat == [1, 0]
    assert is_darts_form(d) and same_graph(cell, d)
    g = Genotype(name="r", cells={"normal": cell, "reduction": cell})
    text = to_darts(g)
    assert text.startswith(
        "Genotype(normal=[('skip_connect', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_3x3', 2)], "
        "normal_concat=[3, 2]"
    )
    back = parse_darts(text).cells["normal"]
    assert back == d and same_graph(back, cell)


# -- lossless round trips, every shipped genotype --------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_json_text_json(path):
    g = load(path)
    assert all(is_darts_form(c) for c in g.cells.values())
    back = parse_darts(to_darts(g, assign=True), provenance=g.provenance)
    assert back == g  # name (via the assignment), cells and provenance: exactly equal


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_text_json_text(path):
    text = to_darts(load(path))
    g = parse_darts(text)
    assert to_darts(g) == text
    g2 = parse_darts(text.replace("range(2, 6)", "[2, 3, 4, 5]").replace("range(2, 7)", "[2, 3, 4, 5, 6]"))
    assert g2 == g


def test_genotype_from_darts_values():
    g = genotype_from_darts(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [2], [("max_pool_3x3", 0), ("skip_connect", 1)], [2], name="tiny"
    )
    assert g.cells["normal"].nodes == [0] and g.cells["reduction"].concat == [0]
    with pytest.raises(SpecError, match="normal: 1 \\(op, input\\) pairs"):
        genotype_from_darts([("sep_conv_3x3", 0)], [2], [("max_pool_3x3", 0), ("skip_connect", 1)], [2])


def test_pasted_assignment_takes_the_given_name():
    text = "genotype = " + to_darts(parse_darts(DARTS_V2))  # what DARTS's search log prints
    assert parse_darts(text, name="searched").name == "searched"
    assert parse_darts(text).name == "genotype"
    # in a file, a name must exist
    two = text + "\nother = " + DARTS_V2
    with pytest.raises(SpecError, match="no genotype named 'searched'; found genotype, other"):
        parse_darts(two, name="searched")
