"""The spec commands as a user runs them: exit codes, the lines printed, no tracebacks.

Oracle: ``nasgal compile ... --json`` parameter counts equal the reference counts and check figures of
docs/design.md ("Reference parameter counts", "What pruning a node means").
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest

from nasgal.cli.main import main
from nasgal.spec import Network, load

REPO = Path(__file__).resolve().parent.parent
DARTS_V2 = REPO / "genotypes" / "darts_v2.json"
FASHION = ["--cells", "5", "--channels", "16", "--in-channels", "1", "--input-size", "28"]
PAPER_KEPT = [[1, 2], [0, 1], [3], [0, 1, 2], [1]]  # the paper's Table 1 (FashionMNIST)


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def json(self):
        return json.loads(self.out)


@pytest.fixture
def nasgal(capsys, monkeypatch):
    """Run ``nasgal ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Result(code, out, err)

    return run


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def genotype_data() -> dict:
    return json.loads(DARTS_V2.read_text())


# -- compile: the parameter oracle -----------------------------------------------------------

REFERENCE_COUNTS = [
    ("darts_v2", ["--cells", "20", "--channels", "36"], 3_349_342),
    ("darts_v1", [], 3_169_414),  # bare genotype: the DARTS CIFAR-10 evaluation network
    ("pdarts", [], 3_433_798),
    ("pc_darts_cifar", ["--in-channels", "3", "--input-size", "32", "--classes", "10"], 3_634_678),
    ("darts_v2", ["--cells", "12", "--channels", "16"], 369_114),
    ("darts_v2", FASHION, 128_842),
    ("darts_v2", FASHION + ["--reductions", "1,2"], 189_162),
    ("darts_v2", ["--cells", "8", "--channels", "16", "--classes", "2", "--reductions", "2,4"], 306_418),
]


@pytest.mark.parametrize("genotype,args,params", REFERENCE_COUNTS, ids=[f"{g}-{p}" for g, _, p in REFERENCE_COUNTS])
def test_compile_json_matches_design_figures(nasgal, genotype, args, params):
    r = nasgal("compile", genotype, *args, "--json")
    assert r.code == 0, r.err
    rep = r.json
    assert rep["params"] == params
    assert rep["params"] == rep["stem"]["params"] + sum(c["params"] for c in rep["cells"]) + rep["head"]["params"]
    assert rep["macs"] == rep["stem"]["macs"] + sum(c["macs"] for c in rep["cells"]) + rep["head"]["macs"]
    assert rep["aux_params"] == 0


def test_compile_json_per_cell_figures(nasgal):
    rep = nasgal("compile", "darts_v2", *FASHION, "--json").json
    assert [c["params"] for c in rep["cells"]] == [6352, 3712, 21408, 16640, 77632]
    assert [c["type"] for c in rep["cells"]] == ["normal", "reduction", "normal", "reduction", "normal"]
    assert set(rep) == {"name", "params", "macs", "cells", "stem", "head", "aux_params"}
    first = rep["cells"][0]
    assert first == {
        "position": 0, "type": "normal", "cell": "normal", "live_nodes": [0, 1, 2, 3], "out_channels": 64,
        "size": [28, 28], "params": 6352, "macs": first["macs"], "dead": False,
    }
    assert rep["stem"]["out_channels"] == 48 and rep["head"]["classes"] == 10
    assert [c["size"] for c in rep["cells"]] == [[28, 28], [14, 14], [14, 14], [7, 7], [7, 7]]


@pytest.mark.parametrize("reductions,params", [("1,3", 49_338), ("1,2", 104_570)])
def test_hand_pruned_network_matches_design(nasgal, tmp_path, reductions, params):
    """The check figures of docs/design.md the way docs/spec.md tells a person to do it: stack, edit `kept`, validate, compile."""
    net_path = tmp_path / "net.json"
    r = nasgal("stack", "darts_v2", *FASHION, "--classes", "10", "--reductions", reductions, "-o", net_path)
    assert r.code == 0 and f"wrote {net_path}" in r.err
    data = json.loads(net_path.read_text())
    for pos, kept in zip(data["positions"], PAPER_KEPT):
        pos["kept"] = kept
    write_json(net_path, data)
    r = nasgal("validate", net_path)
    assert r.code == 0
    assert r.out == f"ok  {net_path}  (network 'DARTS_V2-5c-C16', 5 positions, {params:,} params)\n"
    rep = nasgal("compile", net_path, "--json").json
    assert rep["params"] == params
    assert [c["live_nodes"] for c in rep["cells"]] == [[1, 2], [0, 1], [3], [0, 1, 2], [1]]


def test_compile_table(nasgal):
    r = nasgal("compile", DARTS_V2, *FASHION)
    assert r.code == 0
    lines = r.out.splitlines()
    assert any("DARTS_V2-5c-C16" in line for line in lines)
    row = next(line for line in lines if "│ 4 " in line)
    for cell in ("normal", "0,1,2,3  (4/4)", "256", "7×7", "77,632"):
        assert cell in row
    assert any("stem" in line and "cifar" in line and "528" in line for line in lines)
    assert any("head" in line and "2,570" in line for line in lines)
    assert any("total" in line and "128,842" in line for line in lines)
    assert "stacking it as 5 cells, C=16, 10 classes, 28×28×1 input, reductions at 1,3" in r.err


def test_bare_genotype_says_what_it_stacks(nasgal):
    r = nasgal("compile", "darts_v2", "--json")
    assert r.code == 0
    assert "stacking it as the DARTS CIFAR-10 evaluation network (20 cells, C=36, 10 classes, 32×32×3 input)" in r.err
    assert r.json["name"] == "DARTS_V2-20c-C36" and len(r.json["cells"]) == 20  # stdout is only the JSON


def test_compile_auxiliary_head_is_reported_but_not_counted(nasgal):
    r = nasgal("compile", "darts_v2", *FASHION, "--auxiliary", "--json")
    assert r.json["params"] == 128_842 and r.json["aux_params"] > 0
    r = nasgal("compile", "darts_v2", *FASHION, "--auxiliary")
    assert "auxiliary head at position 3" in r.out and "not in the total" in r.out


def test_compile_dead_cell(nasgal, tmp_path):
    net = load(DARTS_V2)
    from nasgal.spec import save, stack

    pruned = stack(net, cells=5, channels=16, classes=10, in_channels=1, input_size=28).with_kept_nodes(
        [None, None, [], None, None]
    )
    path = save(pruned, tmp_path / "dead.json")
    rep = nasgal("compile", path, "--json").json
    assert rep["cells"][2]["dead"] and rep["cells"][2]["live_nodes"] == [] and rep["cells"][2]["out_channels"] == 0
    assert "dead" in nasgal("compile", path).out


def test_compile_network_refuses_stacking_options(nasgal, tmp_path):
    path = tmp_path / "net.json"
    nasgal("stack", "darts_v2", *FASHION, "--classes", "10", "-o", path)
    r = nasgal("compile", path, "--cells", "8")
    assert r.code == 1
    assert f"Error: {path} is a network; stacking options (--cells) apply to genotypes only" in r.err


# -- stack ------------------------------------------------------------------------------------


def test_stack_writes_a_network(nasgal, tmp_path):
    out = tmp_path / "n.json"
    r = nasgal("stack", "darts_v2", "--cells", "8", "--channels", "16", "--classes", "3", "--in-channels", "3",
               "--input-size", "224", "--reductions", "2, 4", "--stem", "stride2", "--auxiliary",
               "--drop-path", "0.2", "--name", "cats", "-o", out)
    assert r.code == 0 and r.out == ""
    net = load(out)
    assert isinstance(net, Network)
    assert net.name == "cats" and net.reductions == [2, 4] and net.stem.kind == "stride2"
    assert net.auxiliary.position == 4 and net.drop_path == 0.2 and net.input.size == (224, 224)
    assert json.loads(out.read_text())["$schema"] == "../schemas/network.schema.json"


def test_stack_to_stdout(nasgal):
    r = nasgal("stack", "nasnet_a", *FASHION, "--classes", "10")
    assert r.code == 0
    assert r.json["kind"] == "network" and r.json["genotype"] == "NASNet_A"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reductions", "1,x"], "Error: --reductions: 'x' is not a position (in '1,x')"),
        (["--reductions", "1,7"], "reductions: position(s) 7 out of range for 5 cells; positions are 0..4 (0-indexed)"),
        (["--reductions", "-1"], "reductions: position(s) -1 out of range for 5 cells"),
        (["--input-size", "2a8"], "Error: --input-size: '2a8' is not an image size"),
        (["--stem", "big"], "Error: --stem: 'big' is not a stem kind; choose from cifar, stride2, imagenet"),
        (["--drop-path", "1.5"], "drop_path: 1.5 must be below 1"),
    ],
)
def test_stack_bad_options(nasgal, args, message):
    base = ["--cells", "5", "--channels", "16", "--classes", "10", "--in-channels", "1", "--input-size", "28"]
    opts = dict(zip(base[::2], base[1::2]))
    opts.update(dict(zip(args[::2], args[1::2])))
    r = nasgal("stack", "darts_v2", *[x for kv in opts.items() for x in kv])
    assert r.code == 1 and r.out == ""
    assert message in r.err, r.err


def test_stack_missing_sizes(nasgal):
    r = nasgal("stack", "darts_v2", "--cells", "5")
    assert r.code == 1
    assert "Error: missing --channels, --classes, --in-channels, --input-size" in r.err


def test_unknown_library_name(nasgal):
    r = nasgal("stack", "darts_v9", *FASHION, "--classes", "10")
    assert r.code == 1
    assert "Error: darts_v9: no such file, and no genotype of that name in the library" in r.err
    assert "Hint: library genotypes: amoebanet_a, darts_v1, darts_v2" in r.err


# -- validate: every kind of bad input ---------------------------------------------------------


def test_validate_ok(nasgal, tmp_path):
    r = nasgal("validate", DARTS_V2, "nasnet_a")
    assert r.code == 0
    assert r.out.splitlines() == [
        f"ok  {DARTS_V2}  (genotype 'DARTS_V2', normal 4 nodes, reduction 4 nodes)",
        "ok  nasnet_a  (genotype 'NASNet_A', normal 5 nodes, reduction 5 nodes)",
    ]


def test_validate_other_kinds(nasgal):
    r = nasgal("validate", REPO / "spaces" / "darts.json")
    assert r.code == 0 and r.out.startswith("ok  ") and "search_space 'darts'" in r.out


def _cell_edit(fn):
    def edit(d):
        fn(d["cells"]["normal"])

    return edit


BAD_GENOTYPES = {
    "cycle": (_cell_edit(lambda c: c["edges"].append({"src": 3, "dst": 0, "op": "skip_connect"})),
              "cells.normal.edges: the edges form a cycle: 0 -> 3 -> 0"),
    "missing-source": (_cell_edit(lambda c: c["edges"][7].update(src=9)),
                       "cells.normal.edges[7]: 9 -> 3 (dil_conv_3x3): source 9 is not a node of this cell; "
                       "sources are c_{k-2}, c_{k-1} and nodes 0, 1, 2, 3"),
    "missing-target": (_cell_edit(lambda c: c["edges"][0].update(dst=6)),
                       "cells.normal.edges[0]: c_{k-2} -> 6 (sep_conv_3x3): target 6 is not a node of this cell; "
                       "nodes are 0, 1, 2, 3"),
    "unknown-op": (_cell_edit(lambda c: c["edges"][7].update(op="conv_9x9")),
                   "cells.normal.edges[7]: 0 -> 3 (conv_9x9): unknown op 'conv_9x9'; known ops: none, "
                   "max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, "
                   "dil_conv_5x5, sep_conv_7x7, conv_7x1_1x7"),
    "node-without-input": (_cell_edit(lambda c: c.update(nodes=[0, 1, 2, 3, 4])),
                           "cells.normal.nodes[4]: node 4 has no input edge; every intermediate node needs at least one"),
    "concat-missing-node": (_cell_edit(lambda c: c.update(concat=[0, 1, 2, 5])),
                            "cells.normal.concat[3]: 5 is not a node of this cell; nodes are 0, 1, 2, 3"),
    "wrong-type": (_cell_edit(lambda c: c["edges"][1].update(dst="1")),
                   "cells.normal.edges[1].dst: Input should be a valid integer (got '1')"),
    "unknown-field": (lambda d: d.update(nmae="x"), "nmae: unknown field (not part of the spec; check the spelling)"),
    "missing-field": (lambda d: d.pop("name"), "name: Field required"),
    "unknown-kind": (lambda d: d.update(kind="genome"), "kind: unknown kind 'genome'; expected one of genotype, network"),
    "format-version": (lambda d: d.update(format_version=2), "format_version: Input should be 1 (got 2)"),
}


@pytest.mark.parametrize("case", BAD_GENOTYPES, ids=list(BAD_GENOTYPES))
def test_validate_bad_genotype(nasgal, tmp_path, case):
    edit, message = BAD_GENOTYPES[case]
    data = genotype_data()
    edit(data)
    path = write_json(tmp_path / f"{case}.json", data)
    r = nasgal("validate", path)
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines()[0] == f"Error: {path} is not a valid spec:"
    assert any(line.startswith(f"  {message}") for line in r.err.splitlines()), r.err


def test_validate_three_cell_problems_are_three_lines(nasgal, tmp_path):
    from test_spec import THREE_PROBLEMS, _three_problem_genotype

    path = write_json(tmp_path / "three.json", _three_problem_genotype())
    r = nasgal("validate", path)
    assert r.code == 1 and r.out == ""
    lines = r.err.splitlines()
    assert lines[0] == f"Error: {path} is not a valid spec:"
    problem_lines = [line for line in lines[1:] if line.startswith("  ")]
    assert len(problem_lines) == 3, r.err
    for line, (loc, msg) in zip(problem_lines, THREE_PROBLEMS):
        assert line.startswith(f"  {loc}: {msg}"), line


def _network_data(nasgal, tmp_path) -> dict:
    path = tmp_path / "base.json"
    assert nasgal("stack", "darts_v2", *FASHION, "--classes", "10", "-o", path).code == 0
    return json.loads(path.read_text())


BAD_NETWORKS = {
    "kept-missing-node": (lambda n: n["positions"][0].update(kept=[0, 7]),
                          "positions[0].kept: 7 not node(s) of cell 'normal'; nodes are 0, 1, 2, 3"),
    "mask-missing-node": (lambda n: n["positions"][1].update(mask={"0": 1.0, "9": 0.0}),
                          "positions[1].mask: 9 not node(s) of cell 'reduction'; nodes are 0, 1, 2, 3"),
    "position-cell-missing": (lambda n: n["positions"][2].update(cell="normal2"),
                              "positions[2].cell: 'normal2' is not a cell of this network; cells are normal, reduction"),
    "auxiliary-out-of-range": (lambda n: n.update(auxiliary={"position": 9}),
                               "auxiliary.position: 9 is out of range; positions are 0..4"),
    "disconnected": (lambda n: n["positions"][4].update(kept=[]),
                     "network is disconnected: position 4 ('normal') has no live node in its output"),
    "wrong-types": (lambda n: n.update(classes="ten"),
                    "classes: Input should be a valid integer, unable to parse string as an integer (got 'ten')"),
    "bad-stem": (lambda n: n.update(stem={"kind": "big"}),
                 "stem: Input tag 'big' found using 'kind' does not match any of the expected tags"),
    "unknown-field": (lambda n: n["positions"][3].update(keep=[0]),
                      "positions[3].keep: unknown field (not part of the spec; check the spelling)"),
}


@pytest.mark.parametrize("case", BAD_NETWORKS, ids=list(BAD_NETWORKS))
def test_validate_bad_network(nasgal, tmp_path, case):
    edit, message = BAD_NETWORKS[case]
    data = copy.deepcopy(_network_data(nasgal, tmp_path))
    edit(data)
    path = write_json(tmp_path / f"{case}.json", data)
    r = nasgal("validate", path)
    assert r.code == 1 and r.out == ""
    assert any(line.startswith(f"  {message}") for line in r.err.splitlines()), r.err
    # compile refuses the same file the same way
    r = nasgal("compile", path)
    assert r.code == 1 and any(line.startswith(f"  {message}") for line in r.err.splitlines())


def test_validate_malformed_json(nasgal, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"kind": "genotype",\n  "name": "x"\n  "cells": {}}')
    r = nasgal("validate", path)
    assert r.code == 1
    assert r.err.splitlines() == [f"Error: {path} is not a valid spec:", "  line 3 column 3: malformed JSON: Expecting ',' delimiter"]


def test_validate_not_an_object_and_missing_file(nasgal, tmp_path):
    path = write_json(tmp_path / "list.json", [1, 2])
    r = nasgal("validate", path)
    assert r.code == 1 and "  expected a JSON object, got list" in r.err
    r = nasgal("validate", tmp_path / "nope.json")
    assert r.code == 1 and f"Error: {tmp_path / 'nope.json'}: no such file" in r.err


def test_validate_many_files_continues(nasgal, tmp_path):
    data = genotype_data()
    data["cells"]["normal"]["edges"][7]["op"] = "conv_9x9"
    bad = write_json(tmp_path / "bad.json", data)
    r = nasgal("validate", bad, DARTS_V2, tmp_path / "nope.json", "darts_v1")
    assert r.code == 1
    assert r.out.splitlines() == [
        f"ok  {DARTS_V2}  (genotype 'DARTS_V2', normal 4 nodes, reduction 4 nodes)",
        "ok  darts_v1  (genotype 'DARTS_V1', normal 4 nodes, reduction 4 nodes)",
    ]
    assert f"Error: {bad} is not a valid spec:" in r.err
    assert "unknown op 'conv_9x9'" in r.err and "no such file" in r.err
    assert r.err.rstrip().endswith("2 of 4 files invalid")


# -- import / export ---------------------------------------------------------------------------


def test_export_import_round_trip(nasgal, tmp_path):
    text = nasgal("export", "darts_v2").out
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1),") and text.endswith(
        "reduce_concat=range(2, 6))\n"
    )
    r = nasgal("import", text.strip(), "--name", "DARTS_V2")
    assert r.code == 0
    assert load(DARTS_V2).cells == _genotype_from_stdout(r.out, tmp_path).cells
    assert r.json["name"] == "DARTS_V2"


def _genotype_from_stdout(out: str, tmp_path: Path):
    p = tmp_path / "g.json"
    p.write_text(out)
    return load(p)


def test_import_python_file(nasgal, tmp_path):
    py = tmp_path / "genotypes.py"
    v1 = nasgal("export", "darts_v1", "--assign").out
    v2 = nasgal("export", "darts_v2", "--assign").out
    py.write_text("from collections import namedtuple\n" + v1 + v2 + "DARTS = DARTS_V2\n")
    out = tmp_path / "imported.json"
    r = nasgal("import", py, "--name", "DARTS", "-o", out)
    assert r.code == 0 and r.out == ""
    assert f"wrote {out} (genotype 'DARTS'" in r.err
    assert load(out).cells == load(DARTS_V2).cells
    # no name with several genotypes: list them
    r = nasgal("import", py)
    assert r.code == 1
    assert "3 genotypes found: DARTS_V1, DARTS_V2, DARTS" in r.err and "--name" in r.err
    r = nasgal("import", py, "--name", "PDARTS")
    assert r.code == 1 and "no genotype named 'PDARTS'; found DARTS_V1, DARTS_V2, DARTS" in r.err


def test_import_stdin(nasgal):
    text = nasgal("export", "nasnet_a").out
    r = nasgal("import", "-", "--name", "NASNet_A", stdin=text)
    assert r.code == 0 and r.json["cells"]["reduction"]["concat"] == [2, 3, 4]


def test_import_malformed_text(nasgal):
    r = nasgal("import", "Genotype(normal=[('sep_conv_3x3', 0)")
    assert r.code == 1
    assert r.err.splitlines()[:2] == ["Error: <text> is not a valid spec:", "  line 1 column 17: not valid Python: '[' was never closed"]
    r = nasgal("import", "Genotype(normal=[('sep_conv_3x3', 0), ('conv_9x9', 1)], normal_concat=[2], "
                         "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])")
    assert r.code == 1
    assert "  line 1 column 39: normal[1] ('conv_9x9', 1): unknown op 'conv_9x9'; known ops:" in r.err


def test_import_missing_py_file(nasgal, tmp_path):
    r = nasgal("import", tmp_path / "genotypes.py")
    assert r.code == 1 and "no such file" in r.err


def test_export_refuses_what_darts_cannot_say(nasgal, tmp_path):
    data = genotype_data()
    data["cells"]["normal"]["edges"].append({"src": "c_{k-1}", "dst": 3, "op": "skip_connect"})
    path = write_json(tmp_path / "three.json", data)
    r = nasgal("export", path)
    assert r.code == 1 and r.out == ""
    assert "cells.normal: node 3 has 3 input edges; the DARTS encoding gives every node exactly two" in r.err


def test_export_needs_a_genotype(nasgal, tmp_path):
    path = tmp_path / "net.json"
    nasgal("stack", "darts_v2", *FASHION, "--classes", "10", "-o", path)
    r = nasgal("export", path)
    assert r.code == 1 and "kind: expected a genotype file, got network" in r.err


# -- schema, genotypes, help ---------------------------------------------------------------------


def test_schema_check_and_write(nasgal, tmp_path):
    r = nasgal("schema", "--check")
    assert r.code == 0 and "up to date" in r.err
    r = nasgal("schema", "--out-dir", tmp_path)
    assert r.code == 0 and f"wrote {tmp_path / 'genotype.schema.json'}" in r.err
    assert (tmp_path / "genotype.schema.json").read_text() == (REPO / "schemas" / "genotype.schema.json").read_text()
    (tmp_path / "network.schema.json").write_text("{}\n")
    r = nasgal("schema", "--out-dir", tmp_path, "--check")
    assert r.code == 1
    assert f"Error: stale schema files in {tmp_path}: network.schema.json" in r.err
    assert "Hint: run `nasgal schema` to regenerate them" in r.err


def test_genotypes_lists_library(nasgal):
    r = nasgal("genotypes")
    assert r.code == 0
    keys = [line.split()[0] for line in r.out.splitlines()[1:] if line.strip()]
    assert keys == ["amoebanet_a", "darts_v1", "darts_v2", "nasnet_a", "pc_darts_cifar", "pc_darts_imagenet", "pdarts"]


@pytest.mark.parametrize("command", ["validate", "import", "export", "stack", "compile", "schema", "genotypes"])
def test_help(nasgal, command):
    r = nasgal(command, "-h")
    assert r.code == 0 and "Usage:" in r.out
    assert command in nasgal("--help").out
