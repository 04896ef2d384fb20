"""Structural diff: hand-made pairs with known differences, exit codes 0/1/2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nasgal.diff import EdgeRef, OpChange, diff_specs
from nasgal.spec import Genotype, network_cost, save, stack

K2, K1 = "c_{k-2}", "c_{k-1}"

NORMAL = [(K2, 0, "sep_conv_3x3"), (K1, 0, "sep_conv_3x3"), (K2, 1, "sep_conv_3x3"), (K1, 1, "sep_conv_3x3"),
          (K1, 2, "sep_conv_3x3"), (K2, 2, "skip_connect"), (K2, 3, "skip_connect"), (0, 3, "dil_conv_3x3")]
REDUCE = [(K2, 0, "max_pool_3x3"), (K1, 0, "max_pool_3x3"), (0, 1, "skip_connect"), (K1, 1, "max_pool_3x3"),
          (K2, 2, "max_pool_3x3"), (0, 2, "skip_connect"), (0, 3, "skip_connect"), (K1, 3, "max_pool_3x3")]


def cell(edges, nodes=(0, 1, 2, 3), concat=(0, 1, 2, 3)):
    return {"nodes": list(nodes), "edges": [{"src": s, "dst": d, "op": o} for s, d, o in edges],
            "concat": list(concat)}


def genotype(normal=NORMAL, reduce=REDUCE, name="DARTS_V2", **kw) -> Genotype:
    return Genotype(name=name, cells={"normal": cell(normal, **kw), "reduction": cell(reduce)})


def net(g=None, **kw):
    return stack(g or genotype(), cells=5, channels=16, classes=10, in_channels=1, input_size=28, **kw)


# Library ------------------------------------------------------------------------------
def test_identical():
    r = diff_specs(genotype(), genotype())
    assert r.identical and not r.fields
    assert [c.status for c in r.cells] == ["same", "same"]
    assert all(c.same_graph for c in r.cells)
    r = diff_specs(net(), net())
    assert r.identical and r.pruning_rate == 0.0


def test_genotype_known_differences():
    edges = list(NORMAL)
    edges[7] = (0, 3, "sep_conv_5x5")  # op changed
    edges[6] = (1, 3, "skip_connect")  # source changed: removed + added
    b = genotype(normal=edges, concat=(0, 1, 3), name="EDITED")
    r = diff_specs(genotype(), b)
    assert not r.identical
    n = r.cells[0]
    assert n.key == "normal" and n.status == "changed"
    assert n.ops_changed == (OpChange(0, 3, "dil_conv_3x3", "sep_conv_5x5"),)
    assert n.edges_removed == (EdgeRef(K2, 3, "skip_connect"),)
    assert n.edges_added == (EdgeRef(1, 3, "skip_connect"),)
    assert n.concat_removed == (2,) and n.concat_added == ()
    assert n.nodes_removed == n.nodes_added == ()
    assert n.same_graph is False and n.renumbering is None
    assert r.cells[1].identical
    assert [(f.path, f.before, f.after) for f in r.fields] == [("name", "DARTS_V2", "EDITED")]


def test_renumbered_cell_is_same_graph():
    # swap the numbers of nodes 0 and 1 (node 1 = old 0 feeds node 3)
    swap = {0: 1, 1: 0, 2: 2, 3: 3}
    edges = [(swap.get(s, s) if isinstance(s, int) else s, swap[d], o) for s, d, o in NORMAL]
    b = genotype(normal=edges, nodes=(1, 0, 2, 3))
    r = diff_specs(genotype(), b)
    n = r.cells[0]
    assert n.same_graph is True and n.status == "renumbered"
    assert n.renumbering == {0: 1, 1: 0, 2: 2, 3: 3}
    assert not r.identical and r.same_architecture  # the files differ; the architecture is the same
    # different ids altogether
    ids = {0: 10, 1: 11, 2: 12, 3: 13}
    edges = [(ids.get(s, s) if isinstance(s, int) else s, ids[d], o) for s, d, o in NORMAL]
    r = diff_specs(genotype(), genotype(normal=edges, nodes=(10, 11, 12, 13), concat=(10, 11, 12, 13)))
    assert r.cells[0].renumbering == ids


def test_network_vs_pruned():
    a = net()
    b = a.with_kept_nodes([[1, 2], [0, 1], [3], [0, 1, 2], [1]])
    r = diff_specs(a, b)
    assert r.by_position and not r.identical
    assert [c.key for c in r.cells] == [f"pos{i}" for i in range(5)]
    p0 = r.cells[0]
    assert p0.nodes_removed == (0, 3) and p0.why_removed == {0: "pruned", 3: "pruned"}
    assert p0.concat_a == (0, 1, 2, 3) and p0.concat_b == (1, 2)
    assert set(p0.edges_removed) == {EdgeRef(K2, 0, "sep_conv_3x3"), EdgeRef(K1, 0, "sep_conv_3x3"),
                                     EdgeRef(K2, 3, "skip_connect"), EdgeRef(0, 3, "dil_conv_3x3")}
    assert p0.kept_changed and p0.same_graph is False
    # costs come from network_cost; check figures of docs/design.md ("What pruning a node means")
    assert [c.params_a for c in r.cells] == [6352, 3712, 21408, 16640, 77632]
    assert [c.params_b for c in r.cells] == [p.params for p in network_cost(b).cells]
    assert (r.params_a, r.params_b) == (128_842, 49_338)
    assert r.pruning_rate == pytest.approx(1 - 49_338 / 128_842)
    assert (r.live_nodes_a, r.live_nodes_b) == (20, 9) and r.node_rate == pytest.approx(0.55)
    assert r.macs_b < r.macs_a
    assert r.fields == []


def test_dead_cell():
    a = net()
    b = a.with_kept_nodes([[1, 2], [], [3], [0, 1, 2], [1]])
    r = diff_specs(a, b)
    died = r.cells[1]
    assert died.status == "died" and died.dead_b and not died.dead_a
    assert died.nodes_b == () and died.params_b == 0 and died.macs_b == 0
    # position 3 reads the dead position 1 as c_{k-2}: its edges from that input go
    p3 = r.cells[3]
    assert p3.dead_inputs_b == (K2,) and p3.dead_inputs_a == ()
    assert EdgeRef(K2, 0, "max_pool_3x3") in p3.edges_removed
    assert p3.why_removed == {3: "pruned"}


def test_dead_node_not_pruned():
    # position 1 dies, so position 3 (reduction) loses c_{k-2}; there node 2 reads only
    # c_{k-2} and node 0, and node 0 is pruned: node 2 is kept but dead
    a = net()
    b = a.with_kept_nodes([None, [], None, [1, 2, 3], None])
    p3 = diff_specs(a, b).cells[3]
    assert p3.why_removed == {0: "pruned", 2: "dead"}
    assert p3.nodes_b == (1, 3)


def test_mask_values_only():
    a = net()
    b = a.with_kept_nodes([None] * 5, mask=[{0: 1.0}, None, None, None, None])
    r = diff_specs(a, b)
    assert not r.identical and r.cells[0].mask_changed and not r.cells[0].structure_changed
    assert r.cells[0].status == "changed" and r.cells[0].same_graph


def test_different_lengths_and_kinds():
    r = diff_specs(net(), stack(genotype(), cells=6, channels=16, classes=10, in_channels=1, input_size=28))
    assert r.cells[-1].status == "added" and r.cells[-1].cell_a is None
    assert any(f.path == "name" for f in r.fields)
    r = diff_specs(genotype(), net())
    assert not r.by_position and [c.key for c in r.cells] == ["normal", "reduction"]
    assert all(c.same_graph for c in r.cells)
    assert r.fields[0].path == "kind"


def test_json_round_trip():
    a = net()
    r = diff_specs(a, a.with_kept_nodes([[1, 2], [], [3], [0, 1, 2], [1]]))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["identical"] is False and d["compared"] == "positions"
    assert d["cells"][1]["status"] == "died"
    assert d["cells"][0]["edges_removed"][0] == {"src": K2, "dst": 0, "op": "sep_conv_3x3"}
    assert d["a"]["params"] == 128_842


# Command ------------------------------------------------------------------------------
@pytest.fixture
def app():
    import typer

    from nasgal.cli import render_cmds

    a = typer.Typer()
    render_cmds.register(a)
    return a


@pytest.fixture
def files(tmp_path):
    a = net()
    save(genotype(), tmp_path / "g.json")
    save(genotype(), tmp_path / "g2.json")
    save(a, tmp_path / "net.json")
    save(a.with_kept_nodes([[1, 2], [0, 1], [3], [0, 1, 2], [1]]), tmp_path / "pruned.json")
    save(a.with_kept_nodes([[1, 2], [], [3], [0, 1, 2], [1]]), tmp_path / "dead.json")
    (tmp_path / "broken.json").write_text("{not json")
    return tmp_path


def run(app, *args):
    return CliRunner().invoke(app, ["diff", *map(str, args)])


def test_cli_identical_exit_0(app, files):
    res = run(app, files / "g.json", files / "g2.json")
    assert res.exit_code == 0, res.output
    assert "identical" in res.stdout


def test_cli_different_exit_1(app, files):
    res = run(app, files / "net.json", files / "pruned.json")
    assert res.exit_code == 1
    out = res.stdout
    assert "compared position by position" in out
    assert "- nodes 0 (pruned), 3 (pruned)" in out
    assert "params 128,842 → 49,338 (61.7% removed)" in out
    assert "different" in out and "Traceback" not in res.output


def test_cli_dead_cell(app, files):
    res = run(app, files / "net.json", files / "dead.json")
    assert res.exit_code == 1
    assert "died" in res.stdout and "cell died: no live node left" in res.stdout
    assert "input c_{k-2} is dead" in res.stdout


def test_cli_json(app, files):
    res = CliRunner().invoke(app, ["diff", str(files / "net.json"), str(files / "pruned.json"), "--json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["b"]["params"] == 49_338 and len(d["cells"]) == 5


@pytest.mark.parametrize("bad", ["missing.json", "broken.json"])
def test_cli_trouble_exit_2(app, files, bad):
    res = run(app, files / "net.json", files / bad)
    assert res.exit_code == 2
    assert "Error:" in res.stderr and "Traceback" not in res.output
    assert res.stdout == ""


def test_main_exit_codes(files, capsys):
    from nasgal.cli.main import main

    assert main(["diff", str(files / "g.json"), str(files / "g2.json")]) == 0
    assert main(["diff", str(files / "net.json"), str(files / "dead.json")]) == 1
    assert main(["diff", str(files / "net.json"), str(files / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert "malformed JSON" in err
