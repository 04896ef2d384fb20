"""Renders: golden DOT files, SVG contents, file naming, the missing-`dot` error, no torch.

Rewrite the golden files with ``NASGAL_ACCEPT=1 pytest tests/test_render.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nasgal.errors import NasgalError
from nasgal.render import (
    figure_paths,
    figures,
    format_of,
    graph_bytes,
    node_states,
    op_family,
    render_cell,
    render_network,
    render_position,
    write_graph,
)
from nasgal.spec import Genotype, save, stack

GOLDEN = Path(__file__).parent / "golden" / "render"
ACCEPT = os.environ.get("NASGAL_ACCEPT") == "1"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
K2, K1 = "c_{k-2}", "c_{k-1}"


def darts_v2() -> Genotype:
    """DARTS_V2 (Liu et al. 2019), written out edge by edge."""
    normal = [(K2, 0, "sep_conv_3x3"), (K1, 0, "sep_conv_3x3"), (K2, 1, "sep_conv_3x3"), (K1, 1, "sep_conv_3x3"),
              (K1, 2, "sep_conv_3x3"), (K2, 2, "skip_connect"), (K2, 3, "skip_connect"), (0, 3, "dil_conv_3x3")]
    reduce = [(K2, 0, "max_pool_3x3"), (K1, 0, "max_pool_3x3"), (0, 1, "skip_connect"), (K1, 1, "max_pool_3x3"),
              (K2, 2, "max_pool_3x3"), (0, 2, "skip_connect"), (0, 3, "skip_connect"), (K1, 3, "max_pool_3x3")]

    def cell(edges):
        return {"nodes": [0, 1, 2, 3], "edges": [{"src": s, "dst": d, "op": o} for s, d, o in edges],
                "concat": [0, 1, 2, 3]}

    return Genotype(name="DARTS_V2", cells={"normal": cell(normal), "reduction": cell(reduce)})


def paper_net():
    """The DARTS-GAL paper's 5-cell FashionMNIST network."""
    return stack(darts_v2(), cells=5, channels=16, classes=10, in_channels=1, input_size=28)


def pruned_net():
    """Table 1's kept nodes, with mask values at position 0."""
    return paper_net().with_kept_nodes(
        [[1, 2], [0, 1], [3], [0, 1, 2], [1]],
        mask=[{0: 0.0, 1: 0.7125, 2: 0.4189, 3: 0.0}, None, None, None, None],
    )


def dead_net():
    """Position 1 pruned to nothing: it is dead, and position 3 loses its input c_{k-2}."""
    return paper_net().with_kept_nodes([[1, 2], [], [3], [0, 1, 2], [1]])


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if ACCEPT or not path.exists():
        if not ACCEPT:
            pytest.fail(f"golden file {path} is missing; create it with NASGAL_ACCEPT=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file (NASGAL_ACCEPT=1 rewrites it)"


# Golden DOT ------------------------------------------------------------------------------
def test_golden_darts_v2_normal():
    g = darts_v2()
    check_golden("darts_v2_normal.dot", figures(g, cells=["normal"])[0].graph.source)


def test_golden_darts_v2_reduction():
    g = darts_v2()
    check_golden("darts_v2_reduction.dot", figures(g, cells=["reduction"])[0].graph.source)


def test_golden_pruned_cell():
    check_golden("pruned_pos0.dot", render_position(pruned_net(), 0).source)


def test_golden_pruned_cell_hidden():
    check_golden("pruned_pos0_hidden.dot", render_position(pruned_net(), 0, hide_pruned=True).source)


def test_golden_dead_network():
    check_golden("dead_network.dot", render_network(dead_net()).source)


def test_dot_is_deterministic():
    a = render_position(pruned_net(), 0).source
    b = render_position(pruned_net(), 0).source
    assert a == b


# What the figures say ----------------------------------------------------------------
def test_cell_has_inputs_nodes_output_and_op_labels():
    src = render_cell(darts_v2().cells["normal"]).source
    assert "rankdir=LR" in src
    for label in ("c<sub>k-2</sub>", "c<sub>k-1</sub>", "c<sub>k</sub>", "label=sep_conv_3x3", "label=dil_conv_3x3",
                  "label=skip_connect"):
        assert label in src
    assert src.count("->") == 8 + 4 + 1  # 8 edges, 4 concat edges, 1 invisible ordering edge
    assert "dashed" not in src


def test_op_families_have_distinct_colours():
    src = render_cell(darts_v2().cells["normal"]).source
    assert op_family("sep_conv_5x5") == "sep_conv" and op_family("avg_pool_3x3") == "pool"
    sep = [line for line in src.splitlines() if "label=sep_conv_3x3" in line]
    dil = [line for line in src.splitlines() if "label=dil_conv_3x3" in line]
    assert all('"#0072B2"' in line for line in sep) and '"#CC79A7"' in dil[0]


def test_pruned_nodes_are_faded_and_show_masks():
    src = render_position(pruned_net(), 0).source
    lines = {ln.strip().split(" ", 1)[0]: ln for ln in src.splitlines() if "[label=" in ln and "->" not in ln}
    assert "dashed" in lines["0"] and "pruned" in lines["0"] and "m=0," in lines["0"]
    assert "dashed" in lines["3"]
    assert "m=0.713" in lines["1"] and "dashed" not in lines["1"]
    assert "m=0.419" in lines["2"]
    assert "position 0: normal cell" in src and "2/4 nodes live (2 kept)" in src


def test_hide_pruned_leaves_them_out():
    src = render_position(pruned_net(), 0, hide_pruned=True).source
    assert "pruned" not in src and "dashed" not in src
    assert "\t0 [" not in src and "\t3 [" not in src
    assert "\t1 [" in src and "\t2 [" in src


def test_dead_input_and_dead_cell():
    net = dead_net()
    assert node_states(net.cell_at(1), kept=[]) == {0: "pruned", 1: "pruned", 2: "pruned", 3: "pruned"}
    dead = render_position(net, 1).source
    assert "dead: no live node" in dead and "c<sub>k</sub> (dead)" in dead
    after = render_position(net, 3).source  # reads position 1 as its c_{k-2}
    assert "c<sub>k-2</sub> (dead)" in after
    # kept but without a live input: dead, not pruned
    cell = net.cell_at(0)
    assert node_states(cell, kept=[1, 3], live_inputs=(False, True)) == {0: "pruned", 1: "live", 2: "pruned", 3: "dead"}


def test_network_figure_shows_stacking():
    src = render_network(dead_net()).source
    assert "stem</b> (cifar)" in src and "48 ch · 28×28" in src
    for p, kind in enumerate(["normal", "reduction", "normal", "reduction", "normal"]):
        assert f"<b>{p}: {kind}</b>" in src
    assert "C=32 · 14×14<br/>dead" in src
    assert "64 → 10" in src  # classifier: position 4 keeps one node of C=64
    # every position reads two inputs: 2 edges per cell, plus input->stem and last->head
    assert src.count("->") == 5 * 2 + 2


def test_figure_selection():
    g = darts_v2()
    assert [f.key for f in figures(g)] == ["normal", "reduction"]
    net = pruned_net()
    assert [f.key for f in figures(net)] == ["network", "pos0", "pos1", "pos2", "pos3", "pos4"]
    assert [f.key for f in figures(net, cells=["3", "normal"])] == ["pos3", "normal"]
    assert [f.key for f in figures(net, network=True)] == ["network"]
    with pytest.raises(NasgalError, match="no cell 'zz'"):
        figures(g, cells=["zz"])
    with pytest.raises(NasgalError, match="has no stacking"):
        figures(g, network=True)
    with pytest.raises(NasgalError, match="out of range"):
        figures(net, cells=["7"])


def test_figure_paths(tmp_path):
    assert figure_paths(["normal"], tmp_path / "x.svg", "svg", "g") == [tmp_path / "x.svg"]
    assert figure_paths(["a", "b"], tmp_path / "x.svg", "svg", "g") == [tmp_path / "x.a.svg", tmp_path / "x.b.svg"]
    assert figure_paths(["a"], tmp_path, "png", "g") == [tmp_path / "g.a.png"]
    assert figure_paths(["a"], str(tmp_path / "new") + "/", "png", "g") == [tmp_path / "new" / "g.a.png"]
    assert figure_paths(["a"], None, "pdf", "g") == [Path("g.a.pdf")]
    assert format_of("x.gv") == "dot" and format_of("x.PNG") == "png" and format_of("x") is None


# Files through `dot` -------------------------------------------------------------------
def _svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    return ["".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")]


@needs_dot
def test_svg_cell_has_labels():
    texts = _svg_texts(graph_bytes(render_cell(darts_v2().cells["reduction"], title="DARTS_V2 reduction"), "svg"))
    for label in ("0", "1", "2", "3", "k-2", "k-1", "k", "max_pool_3x3", "skip_connect"):
        assert label in texts, label
    assert texts.count("max_pool_3x3") == 5 and texts.count("skip_connect") == 3


@needs_dot
def test_svg_pruned_position_and_network(tmp_path):
    net = pruned_net()
    texts = _svg_texts(graph_bytes(render_position(net, 0), "svg"))
    assert "m=0.713" in texts and "m=0, pruned" in texts
    texts = _svg_texts(graph_bytes(render_network(dead_net()), "svg"))
    assert "dead" in texts and "4: normal" in texts


@needs_dot
def test_svg_is_deterministic():
    g = render_position(pruned_net(), 2)
    assert graph_bytes(g, "svg") == graph_bytes(g, "svg")


@needs_dot
@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_write_formats(tmp_path, fmt, magic):
    p = write_graph(render_cell(darts_v2().cells["normal"]), tmp_path / f"cell.{fmt}")
    assert p.read_bytes().startswith(magic)
    assert [x.name for x in tmp_path.iterdir()] == [f"cell.{fmt}"]  # no temporary files left


def test_without_dot(monkeypatch, tmp_path):
    import nasgal.render.output as output

    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    g = render_cell(darts_v2().cells["normal"])
    assert graph_bytes(g, "dot").startswith(b"digraph cell")
    write_graph(g, tmp_path / "c.dot")
    assert (tmp_path / "c.dot").read_text().startswith("digraph")
    with pytest.raises(NasgalError) as exc:
        graph_bytes(g, "png")
    assert "Graphviz 'dot' program" in exc.value.message
    assert "apt-get install graphviz" in exc.value.hint and "--format dot" in exc.value.hint


# Command ------------------------------------------------------------------------------
def _main(argv, capsys):
    from nasgal.cli.main import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def specs(tmp_path):
    save(darts_v2(), tmp_path / "darts_v2.json")
    save(pruned_net(), tmp_path / "pruned.json")
    return tmp_path


def test_cli_dot_to_stdout(specs, capsys):
    rc, out, err = _main(["render", str(specs / "darts_v2.json"), "--cell", "normal", "--format", "dot"], capsys)
    assert rc == 0
    assert out == figures(darts_v2(), cells=["normal"])[0].graph.source


def test_cli_writes_one_file_per_position(specs, capsys):
    out_base = specs / "figs" / "pruned.dot"
    rc, out, err = _main(["render", str(specs / "pruned.json"), "-o", str(out_base)], capsys)
    assert rc == 0
    names = sorted(p.name for p in (specs / "figs").iterdir())
    assert names == sorted(["pruned.network.dot"] + [f"pruned.pos{i}.dot" for i in range(5)])
    assert err.count("wrote ") == 6


def test_cli_trailing_slash_means_a_new_folder(specs, capsys, monkeypatch):
    """`-o figures/` (as the README shows it) creates the folder and writes into it, even when it
    does not exist yet; nothing lands in the current directory."""
    monkeypatch.chdir(specs)
    rc, _, err = _main(["render", "darts_v2.json", "-o", "figures/", "-f", "dot"], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in (specs / "figures").iterdir()) == ["darts_v2.normal.dot", "darts_v2.reduction.dot"]
    assert not list(specs.glob("figures.*"))


def test_cli_hide_pruned(specs, capsys):
    rc, out, _ = _main(["render", str(specs / "pruned.json"), "--cell", "0", "--hide-pruned", "-f", "dot"], capsys)
    assert rc == 0 and "pruned" not in out


def test_cli_without_dot_is_a_clear_error(specs, capsys, monkeypatch):
    import nasgal.render.output as output

    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    rc, out, err = _main(["render", str(specs / "darts_v2.json"), "-o", str(specs / "x.png")], capsys)
    assert rc == 1
    assert "Error: rendering png needs the Graphviz 'dot' program" in err
    assert "apt-get install graphviz" in err and "Traceback" not in err
    assert not (specs / "x.png").exists()


def test_cli_format_and_suffix_must_agree(specs, capsys):
    rc, _, err = _main(["render", str(specs / "darts_v2.json"), "-o", str(specs / "x.png"), "-f", "svg"], capsys)
    assert rc == 1 and "asks for png by its suffix, but --format says svg" in err


def test_cli_bad_cell(specs, capsys):
    rc, _, err = _main(["render", str(specs / "darts_v2.json"), "--cell", "nope", "-f", "dot"], capsys)
    assert rc == 1 and "no cell 'nope'" in err and "normal, reduction" in err


@needs_dot
def test_cli_svg(specs, capsys):
    rc, _, _ = _main(["render", str(specs / "pruned.json"), "--network", "-o", str(specs / "net.svg")], capsys)
    assert rc == 0
    assert "2: normal" in _svg_texts((specs / "net.svg").read_bytes())


@needs_dot
def test_gallery(tmp_path, capsys):
    from nasgal.cli.render_cmds import build_gallery

    save(darts_v2(), tmp_path / "darts_v2.json")
    files = build_gallery(tmp_path / "gallery", [tmp_path / "darts_v2.json"])
    names = sorted(p.name for p in files)
    assert names == ["README.md", "darts_v2.normal.png", "darts_v2.normal.svg", "darts_v2.reduction.png",
                     "darts_v2.reduction.svg"]
    readme = (tmp_path / "gallery" / "README.md").read_text()
    assert "## DARTS_V2" in readme and "(darts_v2.normal.svg)" in readme


# Dependencies -------------------------------------------------------------------------
def test_render_and_diff_do_not_import_torch():
    code = (
        "import sys; import nasgal.cli.render_cmds, nasgal.render, nasgal.diff, nasgal.plot; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_node_kept_at_mask_zero_is_marked_not_drawn_as_pruned():
    """Budgets and the connectivity guard may keep a node whose mask is 0: it is drawn live, with
    a double border and "kept", while a pruned node at mask 0 stays faded."""
    net = paper_net().with_kept_nodes(
        [[0, 1], [0, 1], [3], [0, 1, 2], [1]],
        mask=[{0: 0.0, 1: 0.7, 2: 0.0, 3: 0.2}, None, None, None, None],
    )
    src = render_position(net, 0).source
    kept_line = next(line for line in src.splitlines() if line.strip().startswith("0 [label"))
    pruned_line = next(line for line in src.splitlines() if line.strip().startswith("2 [label"))
    assert "kept" in kept_line and "peripheries=2" in kept_line and "lightblue" in kept_line
    assert "pruned" in pruned_line and "dashed" in pruned_line and "peripheries" not in pruned_line
    strong = next(line for line in src.splitlines() if line.strip().startswith("1 [label"))
    assert "kept" not in strong and "peripheries" not in strong


def test_a_baselines_node_scores_are_drawn_on_its_cells():
    """`nasgal prune --method ablation` records a score per node; the figure shows it, so a
    user sees which nodes matter (with --keep-nodes 1 before choosing a budget)."""
    from nasgal.spec import Pruning

    net = paper_net()
    pruned = net.with_kept_nodes(
        [list(net.cell_at(p).nodes) for p in range(net.num_positions)],
        pruning=Pruning(method="ablation", params={"scores": [{"0": 0.25, "1": -0.001, "2": 0.0, "3": 1.5}] + [{}] * 4}),
    )
    src = render_position(pruned, 0).source
    assert "ablation=0.25" in src and "ablation=-0.001" in src and "ablation=1.5" in src
    assert "ablation=" not in render_position(pruned, 1).source
