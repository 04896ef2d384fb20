"""Hostile spec files: each is refused with `location: message` lines, never a traceback or a hang.

The cases the fuzz target (benchmarks/fuzz_specs.py) found, and the limits of
nasgal.spec.limits (docs/spec.md, "Limits").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from nasgal.cli.main import main
from nasgal.spec import limits
from nasgal.errors import SpecError
from nasgal.spec.darts_text import parse_darts

ROOT = Path(__file__).resolve().parents[1]
DARTS_V2 = json.loads((ROOT / "genotypes" / "darts_v2.json").read_text())
NET = ["--cells", "3", "--channels", "4", "--classes", "2", "--in-channels", "1", "--input-size", "8"]


def _run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected" not in err
    return rc, err


def _write(tmp_path: Path, data, name: str = "spec.json") -> str:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


@pytest.mark.parametrize("cmd", [["validate"], ["compile", "--json"], ["render", "--format", "dot"]])
def test_an_imagenet_stem_with_odd_channels_is_refused_before_compiling(tmp_path, capsys, cmd):
    net = tmp_path / "net.json"
    rc, err = _run(capsys, "stack", "darts_v2", *NET[:2], "--channels", "3", *NET[4:], "--stem", "imagenet",
                   "-o", str(net))
    assert rc == 1 and "positions[0]: " in err and "3 is odd" in err and not net.exists()
    ok = _run(capsys, "stack", "darts_v2", *NET, "--stem", "imagenet", "-o", str(net))[0]
    assert ok == 0
    data = json.loads(net.read_text())
    data["channels"] = 5
    rc, err = _run(capsys, cmd[0], _write(tmp_path, data, "odd.json"), *cmd[1:])
    assert rc == 1 and "positions[0]: " in err and "5 is odd" in err


def test_a_file_over_the_size_limit_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("nasgal.spec.io.MAX_FILE_BYTES", 1000)
    data = dict(DARTS_V2, name="x" * 2000)
    rc, err = _run(capsys, "validate", _write(tmp_path, data))
    assert rc == 1 and "the limit for a spec file" in err


@pytest.mark.parametrize("depth", [limits.MAX_DEPTH + 1, 5000, 200_000])
def test_deep_nesting_is_refused(tmp_path, capsys, depth):
    text = json.dumps(DARTS_V2)[:-1] + ', "provenance": ' + "[" * depth + "]" * depth + "}"
    for cmd in (["validate"], ["render", "--format", "dot"]):
        rc, err = _run(capsys, cmd[0], _write(tmp_path, text), *cmd[1:])
        assert rc == 1 and "nested deeper than" in err


def test_a_lone_surrogate_is_refused_with_its_place(tmp_path, capsys):
    text = json.dumps(DARTS_V2).replace('"DARTS_V2"', '"D\\ud800"', 1)
    rc, err = _run(capsys, "validate", _write(tmp_path, text))
    assert rc == 1 and "name: text 'D\\ud800' is not valid Unicode" in err


def test_an_integer_too_long_to_convert_is_malformed_json(tmp_path, capsys):
    rc, err = _run(capsys, "validate", _write(tmp_path, '{"kind": 1' + "0" * 5000 + "}"))
    assert rc == 1 and "malformed JSON" in err


def test_diff_refuses_a_search_space(capsys):
    rc, err = _run(capsys, "diff", str(ROOT / "spaces" / "darts.json"), "darts_v2")
    assert rc == 2 and "diff compares genotypes and networks, not a search_space file" in err


@pytest.mark.parametrize(
    "edit, where, words",
    [
        ({"channels": 10**6}, "channels", "at most"),
        ({"classes": 10**9}, "classes", "at most"),
        ({"input": {"channels": 1, "size": [10**6, 8]}}, "input.size[0]", "at most"),
        ({"positions": [{"cell": "normal"}] * (limits.MAX_POSITIONS + 1)}, "positions", "at most"),
        ({"channels": 2000, "classes": 1000}, "", "parameters; a network has at most"),
        ({"stem": {"kind": "cifar", "multiplier": 10**4}}, "stem.multiplier", "at most"),
    ],
)
def test_networks_too_large_to_compile_are_refused(tmp_path, capsys, edit, where, words):
    net = tmp_path / "net.json"
    assert _run(capsys, "stack", "darts_v2", *NET, "-o", str(net))[0] == 0
    data = json.loads(net.read_text())
    data.update(edit)
    rc, err = _run(capsys, "compile", _write(tmp_path, data, "big.json"), "--json")
    assert rc == 1 and f"  {where}: " * bool(where) in err and words in err


def test_a_cell_with_too_many_nodes_is_refused_up_front(tmp_path, capsys):
    n = limits.MAX_NODES + 1
    cell = {"nodes": list(range(n)), "edges": [{"src": "c_{k-1}", "dst": i, "op": "skip_connect"} for i in range(n)],
            "concat": [0]}
    data = dict(DARTS_V2, cells={"normal": cell, "reduction": cell})
    rc, err = _run(capsys, "validate", _write(tmp_path, data))
    assert rc == 1 and f"cells.normal.nodes: {n} nodes; a cell has at most {limits.MAX_NODES}" in err


def test_a_search_space_too_large_for_a_supernet_is_refused(tmp_path, capsys):
    space = json.loads((ROOT / "spaces" / "darts.json").read_text())
    rc, err = _run(capsys, "validate", _write(tmp_path, dict(space, nodes=10**9, cells=10**9)))
    assert rc == 1 and "nodes: 1000000000 nodes" in err and "cells: 1000000000 cells" in err


CALL = "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])"


@pytest.mark.parametrize("kind", ["calls", "aliases"])
def test_import_bounds_the_genotypes_and_aliases_it_follows(tmp_path, capsys, kind):
    if kind == "calls":
        text = "".join(f"G{i} = {CALL}\n" for i in range(50_000))
    else:
        text = f"G0 = {CALL}\n" + "".join(f"G{i + 1} = G{i}\n" for i in range(50_000))
    src = tmp_path / "genotypes.py"
    src.write_text(text)
    rc, err = _run(capsys, "import", str(src), "--name", "G7")
    assert rc == 1
    # 50,000 calls are a 7 MB file, over the size limit; 50,000 aliases fit in it and are counted
    assert ("the limit for DARTS text" if kind == "calls" else "more than 1,000 Genotype(...) calls and aliases") in err
    rc, err = _run(capsys, "import", text[: limits.MAX_DARTS_TEXT - 1].rsplit("\n", 1)[0] + "\n", "--name", "G7")
    assert rc == 1 and ("1,000 are read" if kind == "calls" else "no more are read") in err
    small = f"G0 = {CALL}\n" + "".join(f"G{i + 1} = G{i}\n" for i in range(limits.MAX_DARTS_NAMES - 1))
    assert parse_darts(small, "G900").cells["normal"].num_nodes == 1
    with pytest.raises(SpecError) as info:
        parse_darts(small + f"G{limits.MAX_DARTS_NAMES} = G0\nG{limits.MAX_DARTS_NAMES + 1} = G0\n", "G1")
    assert "no more are read" in str(info.value)


@pytest.mark.parametrize("text", ["Genotype(" + "(" * 100_000, "Genotype(" + "-" * 100_000 + "1)", "G = Genotype(\x00)"])
def test_import_of_pathological_python_is_a_clean_error(capsys, text):
    rc, err = _run(capsys, "import", text)
    assert rc == 1 and "Error" in err


def test_the_fuzz_target_runs_clean_and_catches_a_compile_failure(tmp_path, monkeypatch, capsys):
    import typer.main

    from benchscripts import load_benchmark

    monkeypatch.setattr(typer.main, "get_command", typer.main.get_command)  # the fuzz target caches it
    fuzz = load_benchmark("fuzz_specs")
    assert fuzz.main(["--cases", "30", "--seed", "5", "--failures", str(tmp_path / "f")]) == 0
    assert '"cases": 30' in capsys.readouterr().out and not (tmp_path / "f").exists()

    # a spec that validates and then fails to compile is caught, and its input kept
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr("nasgal.compile_network", broken)
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(DARTS_V2))
    outcome, detail = fuzz.classify(str(seed), str(seed), seed.read_bytes(), 5.0)
    assert outcome == "traceback" and "RuntimeError: boom" in detail["compile"]["stderr"]


def test_a_dead_position_builds_nothing_and_costs_nothing():
    """Found by the fuzz target: a position whose kept nodes do not reach its concat is dead; it used
    to be charged for the edges into its kept nodes, which the compiler (rightly) does not build."""
    from nasgal.compiler import compile_network
    from nasgal.spec import Genotype, count_params, network_cost, stack

    cell = {"nodes": [0, 1], "concat": [1], "edges": [
        {"src": "c_{k-1}", "dst": 0, "op": "sep_conv_3x3"}, {"src": 0, "dst": 1, "op": "sep_conv_3x3"},
        {"src": "c_{k-2}", "dst": 1, "op": "skip_connect"}]}
    g = Genotype.model_validate({"name": "g", "cells": {"normal": cell}})
    net = stack(g, cells=3, channels=4, classes=2, in_channels=1, input_size=8, reductions=[])
    net = net.with_kept_nodes([None, [0], None])
    cost = network_cost(net)
    assert cost.cells[1].dead and cost.cells[1].params == 0
    module = compile_network(net)
    assert "1" not in module.cells
    assert sum(p.numel() for p in module.parameters()) == count_params(net)
