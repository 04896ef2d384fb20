"""Property-based tests of the spec layer, the compiler and the spec commands (hypothesis).

Strategies build valid cells (random DAGs over the op set with random node numbering),
genotypes and stacked networks (stems, sizes, reductions, kept-node masks), and mutations of
them. The example budget comes from the hypothesis profile set in tests/conftest.py ("ci" by
default; ``NASGAL_HYPOTHESIS_PROFILE=long`` for a long run). Networks stay tiny (C <= 6,
images <= 12 px) so compiling them is cheap.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from nasgal.cli.main import main
from nasgal.compiler import compile_network
from nasgal.diff import diff_specs
from nasgal.errors import SpecError
from nasgal.spec import (
    INPUTS,
    KNOWN_OPS,
    Cell,
    Genotype,
    Network,
    canonical_hash,
    count_params,
    dumps,
    load,
    parse_darts,
    parse_spec,
    same_graph,
    stack,
    to_darts,
)

OPS = [op for op in KNOWN_OPS if op != "none"]


# Strategies ----------------------------------------------------------------------------
@st.composite
def cells(draw, max_nodes: int = 4, inputs_per_node: tuple[int, int] = (1, 3)) -> Cell:
    """A valid cell: nodes with random distinct ids, each reading earlier nodes or the inputs."""
    n = draw(st.integers(1, max_nodes))
    ids = draw(st.lists(st.integers(0, 60), min_size=n, max_size=n, unique=True))
    edges = []
    for j, node in enumerate(ids):
        sources = [*INPUTS, *ids[:j]]
        k = draw(st.integers(*inputs_per_node))
        for _ in range(k):
            edges.append({"src": draw(st.sampled_from(sources)), "dst": node, "op": draw(st.sampled_from(OPS))})
    edges = draw(st.permutations(edges))  # edge order is free
    concat = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n, unique=True))
    return Cell.model_validate({"nodes": ids, "edges": edges, "concat": concat})


@st.composite
def genotypes(draw, darts: bool = False) -> Genotype:
    cell = cells(inputs_per_node=(2, 2)) if darts else cells()
    return Genotype.model_validate({"name": "g", "cells": {"normal": draw(cell), "reduction": draw(cell)}})


@st.composite
def networks(draw) -> Network:
    """A valid stacked network, sometimes with kept-node masks (pruned)."""
    g = draw(genotypes())
    stem = draw(st.sampled_from(["cifar", "stride2", "imagenet"]))
    n = draw(st.integers(1, 4))
    channels = draw(st.sampled_from([2, 4, 6] if stem == "imagenet" else [1, 2, 3, 4, 6]))
    reductions = draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True))
    aux = draw(st.one_of(st.just(False), st.integers(0, n - 1)))
    net = stack(g, cells=n, channels=channels, classes=draw(st.integers(1, 5)), in_channels=draw(st.integers(1, 3)),
                input_size=(draw(st.integers(1, 12)), draw(st.integers(1, 12))), reductions=reductions, stem=stem,
                auxiliary=aux)
    if draw(st.booleans()):
        kept = [draw(st.lists(st.sampled_from(net.cell_at(p).nodes), unique=True)) for p in range(n)]
        try:
            net = net.with_kept_nodes(kept)
        except SpecError:
            assume(False)  # a mask that disconnects the network is refused, tested elsewhere
    return net


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["c_{k-2}", "c_{k-1}", "normal", "reduction", "skip_connect", "imagenet"]),
)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw, spec) -> Any:
    """The JSON data of ``spec`` with one to three places deleted, replaced or duplicated."""
    data = json.loads(dumps(spec))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "duplicate", "small_int"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(path[-1], parent[path[-1]])
        elif action == "small_int":
            parent[path[-1]] = draw(st.integers(-3, 70))
        else:
            parent[path[-1]] = draw(json_values)
    return data


# Properties ----------------------------------------------------------------------------
def _module_params(module: torch.nn.Module) -> int:
    """Parameters outside the auxiliary head (which the cost model leaves out, as DARTS does)."""
    return sum(p.numel() for name, p in module.named_parameters() if not name.startswith("aux_head."))


@given(networks())
def test_a_valid_network_compiles_runs_and_matches_the_cost_model(net):
    module = compile_network(net).eval()
    assert _module_params(module) == count_params(net)
    with torch.no_grad():
        logits = module(torch.zeros(1, net.input.channels, *net.input.size))
    assert logits.shape == (1, net.classes)


@given(st.one_of(genotypes(), networks()))
def test_json_round_trip_is_identity(spec):
    again = parse_spec(json.loads(dumps(spec)))
    assert again == spec
    assert dumps(again) == dumps(spec)


@given(genotypes(darts=True))
def test_darts_text_export_then_import_is_the_same_graph(g):
    back = parse_darts(to_darts(g))
    for name in ("normal", "reduction"):
        assert same_graph(g.cells[name], back.cells[name])


@st.composite
def renumbered(draw, g: Genotype) -> Genotype:
    """``g`` with the intermediate nodes of every cell given new ids (a random bijection)."""
    out = {}
    for name, cell in g.cells.items():
        new_ids = draw(st.lists(st.integers(0, 500), min_size=cell.num_nodes, max_size=cell.num_nodes, unique=True))
        m = dict(zip(cell.nodes, new_ids))

        def ref(x):
            return x if isinstance(x, str) else m[x]

        out[name] = Cell.model_validate({
            "nodes": [m[n] for n in cell.nodes],
            "edges": [{"src": ref(e.src), "dst": m[e.dst], "op": e.op} for e in cell.edges],
            "concat": [m[n] for n in cell.concat],
        })
    return g.model_copy(update={"cells": out})


@given(st.data())
def test_renumbering_nodes_keeps_the_hash_class_and_diff_says_identical(data):
    g = data.draw(genotypes())
    h = data.draw(renumbered(g))
    for name in g.cells:
        assert canonical_hash(g.cells[name]) == canonical_hash(h.cells[name])
        assert same_graph(g.cells[name], h.cells[name])
    result = diff_specs(g, h)
    assert not result.fields
    for c in result.cells:  # the only difference diff reports is the numbering
        assert c.status in ("same", "renumbered")
        assert (c.status == "same") == (g.cells[c.key] == h.cells[c.key])
    # diff compares architectures: the same graph under another numbering exits 0
    assert result.same_architecture
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.json", Path(tmp) / "b.json"
        a.write_text(dumps(g))
        b.write_text(dumps(h))
        assert main(["diff", str(a), str(b)]) == 0
        assert main(["diff", str(a), str(a)]) == 0


#: Pieces of DARTS text an edit may insert: its punctuation, names, numbers and odd characters.
_DARTS_TOKENS = ["(", ")", "[", "]", ",", "'", '"', "=", "range(", "Genotype(", "normal=", "reduce_concat=",
                 "sep_conv_3x3", "skip_connect", "none", "0", "1", "7", "-1", "10**9", "1e309", "\\", "\n",
                 "#", ":", "lambda", "*", "**", "\ud800", "\u00e9", " "]


@st.composite
def edited_darts_text(draw) -> str:
    """DARTS text of a genotype after a few random edits: slices deleted or repeated, tokens inserted."""
    text = to_darts(draw(genotypes(darts=True)))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 30)))
        kind = draw(st.sampled_from(["delete", "repeat", "insert"]))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "repeat":
            text = text[:j] + text[i:j] * draw(st.integers(1, 3)) + text[j:]
        else:
            text = text[:i] + draw(st.sampled_from(_DARTS_TOKENS)) + text[i:]
    return text


@given(edited_darts_text())
def test_edited_darts_text_imports_or_is_a_clean_error(text):
    """`nasgal import` of any edit of valid DARTS text gives a valid genotype (which stacks and
    compiles) or exit 1 with an `Error:` line; never an unexpected error (exit 2)."""
    import contextlib
    import io

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "g.py", Path(tmp) / "g.json"
        src.write_text(text, encoding="utf-8", errors="surrogatepass")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["import", str(src), "-o", str(out)])
        assert rc in (0, 1), err.getvalue()
        if rc == 1:
            assert "Error:" in err.getvalue() and "please report" not in err.getvalue() and not out.exists()
            return
        g = parse_spec(json.loads(out.read_text()))
        assert isinstance(g, Genotype)


def _check_problems(err: SpecError) -> None:
    assert err.problems
    for loc, msg in err.problems:
        assert isinstance(loc, str) and isinstance(msg, str) and msg


@given(st.data())
def test_a_mutated_spec_validates_and_compiles_or_names_its_problems(data):
    spec = data.draw(st.one_of(genotypes(), networks()))
    bad = data.draw(mutated(spec))
    try:
        got = parse_spec(bad)
    except SpecError as err:
        _check_problems(err)
        return
    if isinstance(got, Genotype):  # a mutated genotype may lack a cell to stack; that is a SpecError
        names = set(got.cells) & {"normal", "reduction"}
        assume(names)
        try:
            got = stack(got, cells=2, channels=4, classes=3, in_channels=1, input_size=8,
                        reductions=[] if "reduction" not in names else [1] if "normal" in names else [0, 1])
        except SpecError as err:
            _check_problems(err)
            return
    assert isinstance(got, Network)
    module = compile_network(got)
    assert _module_params(module) == count_params(got)
    diff_specs(got, got)


def test_the_mutation_test_reaches_valid_and_invalid_specs():
    """The strategies above do produce both outcomes (else the property would test nothing)."""
    seen = {"valid": 0, "invalid": 0}

    @given(st.data())
    def probe(data):
        spec = data.draw(networks())
        try:
            parse_spec(data.draw(mutated(spec)))
            seen["valid"] += 1
        except SpecError:
            seen["invalid"] += 1

    probe()
    assert seen["valid"] and seen["invalid"]


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_an_imagenet_stem_with_odd_channels_is_a_spec_problem(channels):
    g = load(Path(__file__).resolve().parents[1] / "genotypes" / "darts_v2.json", Genotype)
    with pytest.raises(SpecError) as info:
        stack(g, cells=3, channels=channels, classes=2, in_channels=1, input_size=16, stem="imagenet")
    assert any(loc == "positions[0]" and "odd" in msg for loc, msg in info.value.problems)
