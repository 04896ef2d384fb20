"""Deployment: ONNX export (parity, metadata, dynamic batch, pruned nodes absent), latency, the deploy extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nasgal
from nasgal.cli.main import main
from nasgal.compiler import compile_network
from nasgal.deploy import (
    Candidate, ParityError, check_parity, export_onnx, measure_latency, onnx_metadata, onnx_op_counts, trained_model,
)
from nasgal.prune import inherit_weights
from nasgal.spec import parse_spec
from nasgal.spec.library import resolve_spec_path
from nasgal.spec.network import Pruning
from nasgal.spec.plan import plan_network
from nasgal.engine.rundir import save_checkpoint

from datafiles import offline

ort = pytest.importorskip("onnxruntime", reason="needs the deploy extra")
pytest.importorskip("onnxscript", reason="needs the deploy extra")

ROOT = Path(__file__).resolve().parents[1]
GENO = ROOT / "genotypes" / "darts_v2.json"
KEPT = [[1, 2], [0, 1], [3], [0, 1, 2], [1]]  # the paper's FashionMNIST Table 1

# Conv nodes per built op (stride 1 / stride 2), counted from the op definitions, not from the compiler.
CONVS = {"sep_conv_3x3": 4, "sep_conv_5x5": 4, "sep_conv_7x7": 4, "dil_conv_3x3": 2, "dil_conv_5x5": 2,
         "conv_7x1_1x7": 2, "max_pool_3x3": 0, "avg_pool_3x3": 0, "none": 0}
STEM_CONVS = {"cifar": 1, "stride2": 2, "imagenet": 3}
PRE_CONVS = {"conv": 1, "fr": 2, None: 0}


def edge_convs(op: str, stride: int) -> int:
    if op == "skip_connect":
        return 2 if stride == 2 else 0  # FactorizedReduce: two 1x1 convs
    return CONVS[op]


def expected_convs(net: nasgal.Network) -> int:
    plan = plan_network(net)
    n = STEM_CONVS[net.stem.kind]
    for cp in plan.cells:
        n += PRE_CONVS[cp.pre[0]] + PRE_CONVS[cp.pre[1]] + sum(edge_convs(e.op, e.stride) for e in cp.edges)
    return n


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


def random_state(net: nasgal.Network, seed: int) -> dict[str, torch.Tensor]:
    """Weights and BN statistics away from their initial values (BN must not be an identity)."""
    torch.manual_seed(seed)
    model = compile_network(net)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(0.1 * torch.randn_like(t))
            elif t.is_floating_point():
                t.add_(0.1 * torch.randn_like(t))
    return {k: v.clone() for k, v in model.state_dict().items()}


def five_cells(channels: int = 8, size: int = 16) -> nasgal.Network:
    return nasgal.stack(nasgal.load(GENO), cells=5, channels=channels, classes=10, in_channels=1, input_size=size)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A full 5-cell C=8 net exported from a run directory through the CLI, and its pruned version
    (the paper's kept nodes, weights inherited from the full net) exported through the library."""
    tmp = tmp_path_factory.mktemp("onnx")
    full = five_cells()
    full_state = random_state(full, seed=0)
    run = tmp / "base"
    run.mkdir()
    nasgal.save(full, run / "network.json")
    save_checkpoint(run / "weights.pt", full_state)
    assert main(["export-onnx", str(run), "-o", str(tmp / "full.onnx"), "--json"]) == 0

    pruned = full.with_kept_nodes(KEPT, pruning=Pruning(parent=nasgal.spec_hash(full)))
    pruned_state = inherit_weights(pruned, full_state)
    res = export_onnx(pruned, pruned_state, tmp / "pruned.onnx")
    return {"full": (full, full_state, tmp / "full.onnx"), "pruned": (pruned, pruned_state, tmp / "pruned.onnx"),
            "result": res}


def ort_logits(path: Path, x: torch.Tensor) -> torch.Tensor:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(["logits"], {"images": x.numpy()})[0])


@pytest.mark.parametrize("which", ["full", "pruned"])
def test_round_trip_matches_torch(exported, which):
    net, state, path = exported[which]
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = trained_model(net, state)(x)
    got = ort_logits(path, x)
    assert got.shape == (3, 10)
    assert (got - ref).abs().max() < 1e-4
    assert ref.abs().max() > 1e-2  # the comparison means something


def test_export_reports_parity_and_counts(exported):
    res = exported["result"]
    assert res.parity.ok and res.parity.max_abs_diff <= res.parity.tolerance
    assert res.parity.batches == (1, 7, 32) and res.parity.argmax_agreement == 1.0
    assert res.op_counts == onnx_op_counts(res.path) and res.size_bytes == res.path.stat().st_size


@pytest.mark.parametrize("which", ["full", "pruned"])
def test_metadata_traces_back_to_the_spec(exported, which):
    net, state, path = exported[which]
    meta = onnx_metadata(path)
    assert meta["nasgal.network"] == net.name
    assert meta["nasgal.spec_hash"] == nasgal.spec_hash(net)
    assert json.loads(meta["nasgal.kept_nodes"]) == net.kept_nodes()
    embedded = parse_spec(json.loads(meta["nasgal.spec"]))
    assert nasgal.spec_hash(embedded) == nasgal.spec_hash(net)
    if which == "pruned":
        assert meta["nasgal.parent_hash"] == nasgal.spec_hash(exported["full"][0])
        assert json.loads(meta["nasgal.kept_nodes"]) == KEPT
    else:
        assert "nasgal.parent_hash" not in meta


def test_pruned_nodes_are_absent_from_the_graph(exported):
    full, _, full_path = exported["full"]
    pruned, _, pruned_path = exported["pruned"]
    n_full = onnx_op_counts(full_path)["Conv"]
    n_pruned = onnx_op_counts(pruned_path)["Conv"]
    assert n_full == expected_convs(full)
    assert n_pruned == expected_convs(pruned)
    # the difference is exactly the convs of the edges (and input preprocessing) pruning removed
    removed = 0
    for a, b in zip(plan_network(full).cells, plan_network(pruned).cells):
        kept_edges = {e.index for e in b.edges}
        removed += sum(edge_convs(e.op, e.stride) for e in a.edges if e.index not in kept_edges)
        removed += sum(PRE_CONVS[p] - PRE_CONVS[q] for p, q in zip(a.pre, b.pre))
    assert removed > 0 and n_full - n_pruned == removed
    # and no edge survives as a multiply-by-zero: the module has exactly the convs of the graph
    n_modules = sum(isinstance(m, torch.nn.Conv2d) for m in compile_network(pruned).modules())
    assert n_modules == n_pruned


def test_dynamic_batch(exported):
    net, state, path = exported["pruned"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dim = sess.get_inputs()[0].shape[0]
    assert isinstance(dim, str)  # a named, free batch axis
    model = trained_model(net, state)
    for b in (1, 5, 64):
        x = torch.randn(b, 1, 16, 16)
        got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
        with torch.no_grad():
            assert (got - model(x)).abs().max() < 1e-4


def test_parity_failure_is_detected(exported):
    net, state, path = exported["pruned"]
    model = trained_model(net, state)
    check_parity(path, model, (1, 16, 16))  # passes before
    with torch.no_grad():
        model.classifier.weight[0, 0] += 0.5  # perturb a weight after export
    with pytest.raises(ParityError, match="does not match torch"):
        check_parity(path, model, (1, 16, 16))
    parity = check_parity(path, model, (1, 16, 16), strict=False)
    assert not parity.ok and parity.max_abs_diff > 100 * parity.tolerance


def test_cli_fails_on_parity_and_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    """An exporter that produced another model's file (here: the module's exported full net,
    for the same network with other weights) is caught by the parity check; nothing is written."""
    import onnx

    import nasgal.deploy.onnx_export as onnx_export

    net, _, full_onnx = exported["full"]
    nasgal.save(net, tmp_path / "net.json")
    save_checkpoint(tmp_path / "w.pt", random_state(net, seed=1))  # not the exported weights (seed 0)
    monkeypatch.setattr(onnx_export, "_to_onnx", lambda model, network, opset: onnx.load(str(full_onnx)))
    out = tmp_path / "net.onnx"
    code = main(["export-onnx", str(tmp_path / "net.json"), "--weights", str(tmp_path / "w.pt"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Error: the ONNX file does not match torch: max |onnxruntime - torch| = " in err
    assert "Traceback" not in err and not out.exists()


def test_stride2_stem_odd_input_with_auxiliary_head(tmp_path):
    net = nasgal.stack(nasgal.load(resolve_spec_path("pdarts")), cells=3, channels=4, classes=3,
                       in_channels=3, input_size=(27, 21), stem="stride2", auxiliary=True)
    res = export_onnx(net, random_state(net, seed=2), tmp_path / "odd.onnx")
    assert res.parity.ok and res.op_counts["Conv"] == expected_convs(net)  # the aux head is not exported
    x = torch.randn(2, 3, 27, 21)
    assert ort_logits(res.path, x).shape == (2, 3)


@pytest.mark.slow
def test_imagenet_stem_exports(tmp_path):
    net = nasgal.stack(nasgal.load(GENO), cells=3, channels=4, classes=5, in_channels=3, input_size=33, stem="imagenet")
    res = export_onnx(net, random_state(net, seed=6), tmp_path / "imagenet.onnx")
    assert res.parity.ok and res.op_counts["Conv"] == expected_convs(net)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["darts_v1", "darts_v2", "pdarts", "pc_darts_cifar", "pc_darts_imagenet",
                                  "nasnet_a", "amoebanet_a"])
def test_every_shipped_genotype_exports(tmp_path, name):
    geno = nasgal.load(resolve_spec_path(name))
    net = nasgal.stack(geno, cells=3, channels=4, classes=10, in_channels=3, input_size=17)
    res = export_onnx(net, random_state(net, seed=3), tmp_path / f"{name}.onnx")
    assert res.parity.ok and res.op_counts["Conv"] == expected_convs(net)


def test_genotype_and_weightless_specs_are_refused(tmp_path, capsys):
    assert main(["export-onnx", str(GENO), "-o", str(tmp_path / "g.onnx")]) == 1
    err = capsys.readouterr().err
    assert "Error: " in err and "is a genotype: it has no trained weights to deploy" in err and "Traceback" not in err
    net = five_cells()
    nasgal.save(net, tmp_path / "net.json")
    assert main(["export-onnx", str(tmp_path / "net.json"), "-o", str(tmp_path / "n.onnx")]) == 1
    err = capsys.readouterr().err
    assert "is a network spec without weights" in err and "--weights" in err
    other = nasgal.stack(nasgal.load(GENO), cells=3, channels=4, classes=10, in_channels=1, input_size=16)
    save_checkpoint(tmp_path / "other.pt", compile_network(other).state_dict())
    assert main(["export-onnx", str(tmp_path / "net.json"), "-w", str(tmp_path / "other.pt"), "-o", str(tmp_path / "n.onnx")]) == 1
    assert "the weights do not fit" in capsys.readouterr().err
    assert main(["export-onnx", str(tmp_path), "-o", str(tmp_path / "n.onnx")]) == 1
    assert "not a training run directory" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_latency_interleaved_eager_and_onnxruntime():
    base = nasgal.stack(nasgal.load(GENO), cells=2, channels=4, classes=10, in_channels=1, input_size=12)
    pruned = base.with_kept_nodes([[0, 1], [2]])
    threads = torch.get_num_threads()
    res = measure_latency([Candidate("base", base, random_state(base, 4)), Candidate("pruned", pruned)],
                          batches=(1, 4), runtimes=("eager", "onnxruntime"), rounds=2, block_s=0.01, threads=1)
    assert not res.unavailable, res.unavailable
    assert {(r["runtime"], r["batch"], r["network"]) for r in res.rows} == {
        (rt, b, n) for rt in ("eager", "onnxruntime") for b in (1, 4) for n in ("base", "pruned")}
    for r in res.rows:
        assert r["min_ms"] <= r["latency_ms"] <= r["max_ms"] and r["images_per_s"] > 0
    assert {(q["runtime"], q["batch"]) for q in res.ratios} == {(rt, b) for rt in ("eager", "onnxruntime") for b in (1, 4)}
    assert all(q["ratio"] > 0 and q["of"] == "base" for q in res.ratios)
    assert res.networks[1]["params"] < res.networks[0]["params"]
    assert "cores" in res.machine and res.threads == 1
    assert torch.get_num_threads() == threads  # restored


def test_cli_latency_json(tmp_path, capsys):
    net = nasgal.stack(nasgal.load(GENO), cells=3, channels=4, classes=10, in_channels=1, input_size=12)
    nasgal.save(net, tmp_path / "a.json")
    nasgal.save(net.with_kept_nodes([[0, 1], [0], [2]]), tmp_path / "b.json")
    code = main(["latency", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-r", "eager", "-b", "1", "-b", "2",
                 "--rounds", "2", "--block-ms", "5", "--threads", "1", "--json", "-q"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert len(data["rows"]) == 4 and len(data["ratios"]) == 2 and data["device"] == "cpu"
    assert main(["latency", str(GENO)]) == 1
    assert "not a network or a training run directory" in capsys.readouterr().err
    assert main(["latency", str(tmp_path / "a.json"), "-r", "tensorrt"]) == 1
    assert "unknown runtime(s) tensorrt" in capsys.readouterr().err


@pytest.mark.slow
def test_latency_compiled_runtime():
    net = nasgal.stack(nasgal.load(GENO), cells=3, channels=4, classes=10, in_channels=1, input_size=12)
    res = measure_latency([Candidate("a", net)], batches=(1,), runtimes=("compiled",), rounds=1, block_s=0.01)
    assert not res.unavailable and res.rows[0]["runtime"] == "compiled"


def test_core_imports_without_the_deploy_extra(tmp_path):
    """Without onnx/onnxruntime/onnxscript: nasgal and its CLI import, and export says which extra to install."""
    net = nasgal.stack(nasgal.load(GENO), cells=3, channels=4, classes=10, in_channels=1, input_size=12)
    nasgal.save(net, tmp_path / "net.json")
    save_checkpoint(tmp_path / "w.pt", compile_network(net).state_dict())
    code = (
        "import sys\n"
        "for m in ('onnx', 'onnxruntime', 'onnxscript'): sys.modules[m] = None\n"
        "import nasgal, nasgal.deploy\n"
        "from nasgal.cli.main import main\n"
        f"sys.exit(main(['export-onnx', {str(tmp_path / 'net.json')!r}, '-w', {str(tmp_path / 'w.pt')!r}, "
        f"'-o', {str(tmp_path / 'n.onnx')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Error: ONNX export needs the Python package 'onnx', which is not installed" in proc.stderr
    assert "pip install 'nasgal[deploy]'" in proc.stderr and "Traceback" not in proc.stderr
