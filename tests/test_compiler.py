"""Compiler oracle tests: parameter counts of the reference DARTS code, MACs against
torch's flop counter, gradients everywhere, dead-signal rules, graph capture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nasgal
from nasgal.compiler import OP_BUILDERS, build_op, compile_network
from nasgal.spec import KNOWN_OPS, OP_COSTS, network_cost, stack

ROOT = Path(__file__).resolve().parents[1]
GENOTYPES = sorted((ROOT / "genotypes").glob("*.json"))


def genotype(name: str):
    return nasgal.load(ROOT / "genotypes" / f"{name}.json")


def n_params(module: torch.nn.Module, skip_aux: bool = True) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not (skip_aux and n.startswith("aux_head")))


# docs/design.md, "Reference parameter counts": measured on the reference DARTS model code (aux head excluded).
REFERENCE = [
    ("darts_v2", 36, 20, 3, 10, None, 3_349_342),
    ("darts_v1", 36, 20, 3, 10, None, 3_169_414),
    ("pdarts", 36, 20, 3, 10, None, 3_433_798),
    ("pc_darts_cifar", 36, 20, 3, 10, None, 3_634_678),
    ("darts_v2", 16, 12, 3, 10, None, 369_114),
    ("darts_v2", 16, 5, 1, 10, None, 128_842),
    ("darts_v2", 16, 5, 1, 10, [1, 2], 189_162),
    ("darts_v2", 16, 8, 3, 2, [2, 4], 306_418),
]


@pytest.mark.parametrize("name,c,cells,in_ch,classes,reductions,expected", REFERENCE)
def test_parameter_counts_match_reference(name, c, cells, in_ch, classes, reductions, expected):
    net = stack(
        genotype(name), cells=cells, channels=c, classes=classes, in_channels=in_ch,
        input_size=28 if in_ch == 1 else 32, reductions=reductions, auxiliary=True,
    )
    assert nasgal.count_params(net) == expected
    assert n_params(compile_network(net)) == expected


def test_per_cell_counts_of_the_paper_network():
    net = stack(genotype("darts_v2"), cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    assert [c.params for c in network_cost(net).cells] == [6352, 3712, 21408, 16640, 77632]


@pytest.mark.parametrize("reductions,expected", [(None, 49_338), ([1, 2], 104_570)])
def test_pruned_counts_match_design(reductions, expected):
    """The check figures of docs/design.md ("What pruning a node means"): the paper's FashionMNIST kept nodes."""
    net = stack(genotype("darts_v2"), cells=5, channels=16, classes=10, in_channels=1,
                input_size=28, reductions=reductions)
    pruned = net.with_kept_nodes([[1, 2], [0, 1], [3], [0, 1, 2], [1]])
    assert nasgal.count_params(pruned) == expected
    model = compile_network(pruned)
    assert n_params(model) == expected
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_registry_matches_catalog_and_analytic_costs():
    assert set(OP_BUILDERS) == set(KNOWN_OPS) == set(OP_COSTS)
    for op in KNOWN_OPS:
        for stride in (1, 2):
            m = build_op(op, 8, stride)
            params, macs = OP_COSTS[op](8, stride, 9, 9)
            assert sum(p.numel() for p in m.parameters()) == params, (op, stride)
            x = torch.randn(1, 8, 9, 9)
            with FlopCounterMode(display=False) as fc:
                y = m(x)
            assert y.shape == (1, 8, 5 if stride == 2 else 9, 5 if stride == 2 else 9), (op, stride)
            assert fc.get_total_flops() // 2 == macs, (op, stride)


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        nasgal.compiler.register_op("sep_conv_3x3")(lambda c, s, a: None)
    with pytest.raises(KeyError, match="known ops: none, max_pool_3x3"):
        build_op("sep_conv_9x9", 4, 1)


@pytest.mark.parametrize("path", GENOTYPES, ids=[p.stem for p in GENOTYPES])
@pytest.mark.parametrize("in_ch,size", [(1, 28), (3, 32)])
def test_every_genotype_compiles_and_trains(path, in_ch, size):
    net = stack(nasgal.load(path), cells=5, channels=16, classes=10, in_channels=in_ch,
                input_size=size, auxiliary=True, drop_path=0.2)
    model = compile_network(net)
    assert n_params(model) == nasgal.count_params(net)
    model.train()
    model.drop_path_prob = 0.2
    logits, aux = model(torch.randn(2, in_ch, size, size))
    assert logits.shape == aux.shape == (2, 10)
    (logits.logsumexp(1).sum() + aux.logsumexp(1).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    model.eval()
    assert model(torch.randn(2, in_ch, size, size)).shape == (2, 10)


def test_macs_match_flop_counter():
    for kept in (None, [[1, 2], [0, 1], [3], [0, 1, 2], [1]]):
        net = stack(genotype("darts_v2"), cells=5, channels=16, classes=10, in_channels=1, input_size=28)
        if kept:
            net = net.with_kept_nodes(kept)
        model = compile_network(net).eval()
        with FlopCounterMode(display=False) as fc:
            model(torch.randn(1, 1, 28, 28))
        assert fc.get_total_flops() // 2 == nasgal.count_macs(net)


@pytest.mark.parametrize("stem,size", [("stride2", 64), ("imagenet", 64), ("cifar", 15)])
def test_stems_and_odd_sizes(stem, size):
    net = stack(genotype("darts_v2"), cells=4, channels=8, classes=3, in_channels=3, input_size=size, stem=stem)
    model = compile_network(net).eval()
    assert n_params(model) == nasgal.count_params(net)
    with FlopCounterMode(display=False) as fc:
        assert model(torch.randn(1, 3, size, size)).shape == (1, 3)
    assert fc.get_total_flops() // 2 == nasgal.count_macs(net)


def test_dead_cell_keeps_schedule_and_its_readers_lose_it():
    net = stack(genotype("darts_v2"), cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    pruned = net.with_kept_nodes([[0, 1, 2, 3], [], [0], [0, 1], [0, 1]])
    cost = network_cost(pruned)
    assert cost.cells[1].dead and cost.cells[1].size_out == (14, 14)
    model = compile_network(pruned)
    assert "1" not in model.cells
    # position 2 reads only c_{k-2} (position 0, at 28x28) through a factorized reduce
    assert model.cells["2"].pre1 is None and model.cells["2"].pre0 is not None
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert n_params(model) == nasgal.count_params(pruned)


def test_module_names_are_stable_under_pruning():
    net = stack(genotype("darts_v2"), cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    full = set(compile_network(net).state_dict())
    pruned = set(compile_network(net.with_kept_nodes([[1, 2], [0, 1], [3], [0, 1, 2], [1]])).state_dict())
    assert pruned < full
    assert "cells.0.edges.7.1.weight" in full  # cell 0, edge 7 (dil_conv_3x3 from node 0)


def test_disconnected_network_is_refused():
    net = stack(genotype("darts_v2"), cells=3, channels=8, classes=10, in_channels=1, input_size=28)
    with pytest.raises(nasgal.SpecError, match="network is disconnected: position 2"):
        net.with_kept_nodes([None, None, []])


def test_gates_scale_node_outputs():
    net = stack(genotype("darts_v2"), cells=3, channels=8, classes=10, in_channels=1, input_size=28)
    torch.manual_seed(0)
    model = compile_network(net, gates=True).eval()
    x = torch.randn(2, 1, 28, 28)
    y1 = model(x)
    with torch.no_grad():
        model.cells["1"].gate[2] = 0.0
    y2 = model(x)
    assert not torch.allclose(y1, y2)
    assert set(model.gates()) == {0, 1, 2}


def test_forward_has_no_graph_breaks():
    """No data-dependent Python control flow: dynamo traces the whole forward. Three cells
    (normal, reduction, reduction after a reduction) hold every kind of cell and preprocessing,
    the auxiliary head and drop path; more cells only lengthen the trace."""
    net = stack(genotype("darts_v2"), cells=3, channels=8, classes=10, in_channels=1, input_size=28,
                auxiliary=True, drop_path=0.2)
    pruned = net.with_kept_nodes([[1, 2], [0, 3], [0, 1, 2]])
    for spec in (net, pruned):
        model = compile_network(spec).eval()
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        x = torch.randn(2, 1, 28, 28)
        torch.testing.assert_close(compiled(x), model(x))
        model.train()
        model.drop_path_prob = 0.1
        logits, aux = compiled(x)
        assert logits.shape == aux.shape == (2, 10)


# The auxiliary head ----------------------------------------------------------------------
class ReferenceStyleAuxHead(torch.nn.Module):
    """The reference DARTS CIFAR auxiliary head, written out as that code lays it out (for an
    8x8 input): ReLU, 5x5 average pool at stride 3 without padding, 1x1 conv to 128, BN, ReLU,
    2x2 conv to 768, BN, ReLU, then a linear classifier on the flattened 768 features."""

    def __init__(self, c_in: int, classes: int):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.ReLU(inplace=False),
            torch.nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            torch.nn.Conv2d(c_in, 128, 1, bias=False),
            torch.nn.BatchNorm2d(128),
            torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(128, 768, 2, bias=False),
            torch.nn.BatchNorm2d(768),
            torch.nn.ReLU(inplace=True),
        )
        self.classifier = torch.nn.Linear(768, classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def test_aux_head_equals_the_reference_head_on_a_cifar_size_network():
    torch.manual_seed(0)
    net = stack(genotype("darts_v2"), cells=8, channels=8, classes=10, in_channels=3, input_size=32,
                auxiliary=True)
    model = compile_network(net).double().train()
    pos = net.auxiliary.position
    assert model.plan.aux[1] == (8, 8)
    seen = {}
    model.cells[str(pos)].register_forward_hook(lambda m, i, out: seen.setdefault("x", out))
    ref = ReferenceStyleAuxHead(model.plan.aux[0], 10).double().train()
    ref.load_state_dict(model.aux_head.state_dict())  # shared weights (and BN statistics)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    _, aux = model(x)
    expected = ref(seen["x"])
    assert (aux - expected).abs().max().item() == 0.0
    # The size-agnostic pool the head used before (adaptive, 2x2) computes another function here.
    adaptive = ReferenceStyleAuxHead(model.plan.aux[0], 10).double().train()
    adaptive.features[1] = torch.nn.AdaptiveAvgPool2d(2)
    adaptive.load_state_dict(model.aux_head.state_dict())
    assert (adaptive(seen["x"]) - expected).abs().max().item() > 1e-3
    # In eval mode (running statistics) they agree too.
    model.eval(), ref.eval()
    assert torch.equal(model.aux_head(seen["x"]), ref(seen["x"]))


@pytest.mark.parametrize("size,reference", [((8, 8), True), ((9, 10), True), ((10, 8), True),
                                            ((7, 7), False), ((11, 11), False), ((8, 14), False)])
def test_aux_pool_is_the_references_where_defined_and_adaptive_elsewhere(size, reference):
    from nasgal.compiler.network import AuxiliaryHead

    head = AuxiliaryHead(6, 10, size)
    pool = head.features[1]
    assert isinstance(pool, torch.nn.AvgPool2d if reference else torch.nn.AdaptiveAvgPool2d)
    assert head(torch.randn(2, 6, *size)).shape == (2, 10)
    if not reference and min(size) >= 5:  # the reference head cannot run there: no 1x1 map
        ref = ReferenceStyleAuxHead(6, 10)
        with pytest.raises(RuntimeError):
            ref(torch.randn(2, 6, *size))


def test_a_genotype_that_never_reads_c_k2_counts_only_the_layers_it_uses():
    """The reference DARTS cell builds its c_{k-2} preprocessing whether or not an edge reads
    it; nasgal builds (and counts) only what the forward pass uses."""
    from nasgal.spec import Genotype, plan_network

    def rewired(extra_edge: bool) -> Genotype:
        data = genotype("darts_v2").model_dump(mode="json", by_alias=True)
        for cell in data["cells"].values():
            for e in cell["edges"]:
                if e["src"] == "c_{k-2}":
                    e["src"] = "c_{k-1}"
            if extra_edge:  # a parameter-free reader of c_{k-2}: its preprocessing is then built
                cell["edges"].append({"src": "c_{k-2}", "dst": cell["nodes"][0], "op": "max_pool_3x3"})
        return Genotype.model_validate(data)

    kw = dict(cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    net = stack(rewired(False), **kw)
    model = compile_network(net)
    assert all(cell.pre0 is None for cell in model.cells.values())
    assert nasgal.count_params(net) == n_params(model) == 107_690
    # What the reference counts: the same network plus one preprocess layer per cell,
    # C_{k-2}·C + 2C parameters each (ReLU-conv-BN, or FactorizedReduce after a reduction).
    unused = sum(cp.c_in[0] * cp.c + 2 * cp.c for cp in plan_network(net).cells)
    assert nasgal.count_params(net) + unused == nasgal.count_params(stack(rewired(True), **kw)) == 128_842


# Inference copies ------------------------------------------------------------------------
def test_folded_inference_copy_equals_the_network_and_leaves_it_alone():
    from nasgal.compiler import FactorizedReduce
    from nasgal.compiler.fuse import folded_for_inference
    from nasgal.engine.step import evaluate

    net = stack(genotype("darts_v2"), cells=4, channels=8, classes=10, in_channels=1, input_size=16, auxiliary=True)
    torch.manual_seed(0)
    model = compile_network(net)
    with torch.no_grad():  # BN statistics and affine parameters away from the identity
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("running_mean", "bias")):
                t.normal_(0.0, 0.3)
            elif name.endswith("weight") and t.dim() == 1:
                t.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = folded_for_inference(model)
    x = torch.randn(6, 1, 16, 16)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    # every BN but FactorizedReduce's (after a concat) is folded away; the original is untouched
    left = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    expected = [m.bn for m in folded.modules() if isinstance(m, FactorizedReduce)]
    assert len(left) == len(expected) and all(any(a is b for b in expected) for a in left)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 5 * len(left)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ptrs = {p.data_ptr() for p in model.parameters()}
    assert not any(p.data_ptr() in ptrs for p in folded.parameters())
    # evaluation through the folded copy: the same accuracy, the loss to float rounding
    y = torch.randint(0, 10, (6,))
    model.train()
    loss_f, acc_f = evaluate(model, [(x, y)], fold=True)
    loss_p, acc_p = evaluate(model, [(x, y)], fold=False)
    assert acc_f == acc_p and loss_f == pytest.approx(loss_p, rel=1e-5) and model.training
