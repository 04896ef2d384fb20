"""Time one DARTS search step (α step + weight step) of the nasgal supernet.

    python benchmarks/search_step.py --cells 8 --channels 16 --batch 64 --size 32 --device cuda --order first
    python benchmarks/search_step.py ... --reference     # also time a plain DARTS-style supernet
    python benchmarks/search_step.py ... --capture cuda-graph --bf16 --partial-channels 4

Times the implementations in interleaved rounds (benchmarks/_interleave.py): a line per round
with the round's speed-up, then the medians and the peak device memory (CUDA) of each
implementation. ``--reference`` builds, in this file, a straightforward supernet written the
way the reference DARTS code is (``sum(w * op(x) for op in ops)`` per edge, one module per op
and edge), with the same weights, so the ratio comes from one run on one device.
Needs only python3 and torch (nasgal itself).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _count

from _count import count_step  # noqa: E402
from _reference_net import ReferenceFactorizedReduce, torch_convs  # noqa: E402
from _interleave import interleave_processes, machine, round_printer  # noqa: E402
from nasgal.compiler.ops import ReLUConvBN, build_op  # noqa: E402
from nasgal.compiler.cpu_paths import other_device_paths  # noqa: E402
from nasgal.engine.cpu import keep_freed_memory  # noqa: E402
from nasgal.search import architect  # noqa: E402
from nasgal.search.space import SearchSpace, default_space  # noqa: E402
from nasgal.search.step import SearchStep, make_optimizers  # noqa: E402
from nasgal.search.supernet import Architecture, Supernet  # noqa: E402
from nasgal.engine.step import CAPTURE_MODES, GRAPH_MODES  # noqa: E402


# The plain reference-style supernet ---------------------------------------------------
class PlainMixedOp(nn.Module):
    def __init__(self, ops: list[str], c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList()
        for op in ops:
            if op == "skip_connect" and stride == 2:  # the reference's FactorizedReduce
                m = ReferenceFactorizedReduce(c, c, affine=False)
            else:
                m = torch_convs(build_op(op, c, stride, affine=False))
            if "pool" in op:
                m = nn.Sequential(m, nn.BatchNorm2d(c, affine=False))
            self.ops.append(m)

    def forward(self, x, w):
        return sum(wi * op(x) for wi, op in zip(w, self.ops))


class PlainCell(nn.Module):
    """``partial`` K > 1: PC-DARTS as its paper writes it, per edge: the ops see the first C/K
    channels, the rest bypass (max-pooled on strided edges), the two are concatenated and
    channel-shuffled, and a node sums its edges weighted by the edge normalisation."""

    def __init__(self, space: SearchSpace, c_pp, c_p, c, reduction, reduction_prev, partial: int = 1):
        super().__init__()
        self.reduction, self.partial = reduction, partial
        self.pre0 = ReferenceFactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, affine=False)
        self.pre1 = ReLUConvBN(c_p, c, affine=False)
        self.nodes = space.nodes
        self.edges = nn.ModuleList()
        self.strides = []
        for j in range(space.nodes):
            for s in range(2 + j):
                self.strides.append(2 if reduction and s < 2 else 1)
                self.edges.append(PlainMixedOp(space.ops, c // partial, self.strides[-1]))

    def edge(self, e, h, w):
        k = self.partial
        if k == 1:
            return self.edges[e](h, w)
        c = h.shape[1]
        mixed = self.edges[e](h[:, : c // k], w)
        rest = h[:, c // k :]
        if self.strides[e] == 2:
            rest = F.max_pool2d(rest, 2, 2, ceil_mode=True)
        out = torch.cat([mixed, rest], dim=1)
        B, _, H, W = out.shape
        return out.view(B, k, c // k, H, W).transpose(1, 2).reshape(B, c, H, W)  # channel shuffle

    def forward(self, s0, s1, weights, edge_weights=None):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            terms = [self.edge(offset + i, h, weights[offset + i]) for i, h in enumerate(states)]
            if edge_weights is not None:
                terms = [edge_weights[offset + i] * t for i, t in enumerate(terms)]
            offset += len(states)
            states.append(sum(terms))
        return torch.cat(states[2:], dim=1)


class PlainSupernet(nn.Module):
    def __init__(self, space: SearchSpace, in_channels: int, classes: int, partial: int = 1):
        super().__init__()
        self.space, self.partial = space, partial
        c = space.channels
        cs = space.stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, cs, 3, padding=1, bias=False), nn.BatchNorm2d(cs))
        red = set(space.reduction_positions())
        c_pp, c_p, c_cur, rp = cs, cs, c, False
        self.cells = nn.ModuleList()
        for i in range(space.cells):
            if i in red:
                c_cur *= 2
            self.cells.append(PlainCell(space, c_pp, c_p, c_cur, i in red, rp, partial))
            rp = i in red
            c_pp, c_p = c_p, space.nodes * c_cur
        self.classifier = nn.Linear(c_p, classes)

    def _edge_weights(self, beta):
        out, start = [], 0
        for j in range(self.space.nodes):
            out.append(F.softmax(beta[start : start + 2 + j], dim=0))
            start += 2 + j
        return torch.cat(out)

    def forward(self, x, arch):
        w = {key: F.softmax(arch[key], dim=-1) for key in ("normal", "reduce")}
        e = {key: None for key in w}
        if self.partial > 1:
            e = {key: self._edge_weights(arch[f"beta_{key}"]) for key in w}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            key = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, w[key], e[key])
        return self.classifier(s1.mean(dim=(2, 3)))


def _precision(args) -> str:
    return "bf16" if args.bf16 else "fp32"


@torch.no_grad()
def port_weights(fused: Supernet, plain: PlainSupernet) -> None:
    """Copy the fused supernet's weights into the plain one (same function afterwards)."""
    plain.stem.load_state_dict(fused.stem.state_dict())
    plain.classifier.load_state_dict(fused.classifier.state_dict())
    space = fused.space
    for fc, pc in zip(fused.cells, plain.cells):
        if fc.reduction_prev:
            pc.pre0.conv_1.weight.copy_(fc.pre0_a.weight)
            pc.pre0.conv_2.weight.copy_(fc.pre0_b.weight)
        else:
            pc.pre0[1].weight.copy_(fc.pre0.weight)
        pc.pre1[1].weight.copy_(fc.pre1.weight)
        for b, batch in enumerate(fc.batches):
            rows = fc.rows[b]
            for s in range(batch.n_s):
                for t in range(batch.n_t):
                    mixed = pc.edges[rows[s][t]]
                    for col in range(len(space.ops)):
                        src = batch.edge_op_weights(s, t, col)
                        dst = list(mixed.ops[col].parameters())
                        assert len(src) == len(dst), (space.ops[col], len(src), len(dst))
                        for d, w in zip(dst, src):
                            d.copy_(w.reshape(d.shape))


# Timing -----------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inputs(args, device):
    B, C = args.batch, args.in_channels
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(B, C, args.size, args.size, device=device).contiguous(memory_format=mf)
    xv = torch.randn(B, C, args.size, args.size, device=device).contiguous(memory_format=mf)
    y = torch.randint(0, args.classes, (B,), device=device)
    yv = torch.randint(0, args.classes, (B,), device=device)
    return x, y, xv, yv


def make_reference_step(model, arch, args, device):
    """DARTS's loop: torch.optim.SGD and Adam, eager, as the reference code runs it."""
    w_opt = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch.parameters(), 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    weights = list(model.parameters())
    x, y, xv, yv = _inputs(args, device)

    def step():
        a_opt.zero_grad(set_to_none=True)
        if args.order == "first":
            grads = architect.first_order(model, arch, xv, yv, _precision(args))
        else:
            grads = architect.second_order(
                model, arch, x, y, xv, yv, 0.025, 0.9, 3e-4, architect.momentum_buffers(model, w_opt), _precision(args)
            )
        for p, g in zip(arch.parameters(), grads):
            p.grad = g
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x, arch.as_dict(detach=True))
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()

    return step


def make_nasgal_step(model, arch, args, device):
    """nasgal's search step (nasgal.search.step.SearchStep), as `nasgal search` runs it."""
    w_opt, a_opt = make_optimizers(
        model, arch, lr=0.025, momentum=0.9, weight_decay=3e-4, arch_lr=3e-4, arch_betas=(0.5, 0.999),
        arch_weight_decay=1e-3, device=device,
    )
    step = SearchStep(model, arch, w_opt, a_opt, order=args.order, grad_clip=5.0, precision=_precision(args),
                      capture=args.capture, device=device)
    batch = _inputs(args, device)

    def run():
        step(*batch)

    run.search_step = step  # for prepare_impl's report of the capture
    return run


def saved_gib(model, arch, args, device, reference: bool = False) -> tuple[float, float]:
    """GiB of tensors autograd keeps for backward in the α step and in the weight step: the
    activation memory of each, the same on every device (CUDA adds workspaces and weights).
    ``reference``: the α step as the reference code runs it (``loss.backward()``, weights too)."""
    x, y, xv, yv = _inputs(args, device)
    model.to(device).train()
    arch.to(device)

    def count(fn) -> float:
        seen: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            seen.setdefault(st.data_ptr(), st.nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(seen.values()) / 2**30

    def weight_forward():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            model(x, arch.as_dict(detach=True))

    def reference_alpha_forward():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            model(xv, arch.as_dict())

    alpha = reference_alpha_forward if reference else (lambda: architect.first_order(model, arch, xv, yv, _precision(args)))
    return count(alpha), count(weight_forward)


def profile_steps(name, step, args, device) -> None:
    """``--profile N``: N more steps under torch.profiler; the kernels that take the device's
    time, and the device's busy time per step (what a CUDA graph cannot remove)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(args.profile):
            step()
        sync(device)
    events = prof.key_averages()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    busy = sum(getattr(e, key) for e in events) / 1000 / args.profile
    print(f"{name:10s} profile: {'device' if device.type == 'cuda' else 'cpu'} busy {busy:.1f} ms/step", flush=True)
    print(events.table(sort_by=key, row_limit=25), flush=True)


def prepare_impl(name, model, arch, args, device, make_step):
    """The step function of one implementation, after its first step (which compiles or
    captures, if asked: reported here, not timed)."""
    model.to(device).train()
    arch.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    step = make_step(model, arch, args, device)
    t0 = time.perf_counter()
    step()
    sync(device)
    graph = ""
    if hasattr(step, "search_step") and args.capture in GRAPH_MODES:
        graph = "; CUDA graph captured" if step.search_step.captured else "; CUDA graph NOT captured, eager"
    print(f"{name:10s} first step {time.perf_counter() - t0:.1f} s{graph}", flush=True)
    return step


def peak_gib(step, device) -> float:
    """CUDA only: the memory two more steps take above what is allocated before them (the
    other implementation's weights, resident for the interleaving, are not counted)."""
    if device.type != "cuda":
        return float("nan")
    sync(device)
    resting = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    step()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - resting) / 2**30


def nasgal_nets(space, args) -> tuple[Supernet, Architecture]:
    return (Supernet(space, args.in_channels, args.classes, partial=args.partial_channels, recompute=args.recompute),
            Architecture(space, args.partial_channels))


def reference_nets(space, args) -> tuple[PlainSupernet, Architecture]:
    """The reference supernet has no partial channels: it stands for DARTS itself."""
    return PlainSupernet(space, args.in_channels, args.classes), Architecture(space, 1)


def count_main(space, args, device) -> int:
    """``--count``: one step of each implementation under the kernel counter (benchmarks/_count.py)."""
    impls = []
    if not args.reference_only:
        impls.append(("nasgal", *nasgal_nets(space, args), make_nasgal_step))
    if args.reference or args.reference_only:
        impls.append(("reference", *reference_nets(space, args), make_reference_step))
    for name, model, arch, make_step in impls:
        model.to(device).train()
        arch.to(device)
        step = make_step(model, arch, args, device)
        step()  # optimizer state exists from here on, as in every later step
        c = count_step(step)
        print(f"{name:10s} " + json.dumps(c.summary()), flush=True)
        if args.top:
            top = ", ".join(f"{op} {n}" for op, n in c.by_op.most_common(args.top))
            print(f"{'':10s} most frequent ops: {top}", flush=True)
    return 0


def count_or_saved(space, args, device) -> int:
    """``--saved`` or ``--count``."""
    if args.count:
        return count_main(space, args, device)
    a, w = saved_gib(*nasgal_nets(space, args), args, device)
    print(f"nasgal     saved for backward: alpha step {a:.2f} GiB, weight step {w:.2f} GiB", flush=True)
    if args.reference:
        a, w = saved_gib(*reference_nets(space, args), args, device, True)
        print(f"reference  saved for backward: alpha step {a:.2f} GiB, weight step {w:.2f} GiB", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--order", choices=["first", "second"], default="first")
    p.add_argument("--partial-channels", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--capture", default="none", choices=list(CAPTURE_MODES),
                   help="nasgal's step: eager, torch.compile of the supernet, a CUDA graph of the whole step, or both")
    p.add_argument("--recompute", action="store_true", help="recompute depthwise outputs in backward (less memory)")
    p.add_argument("--saved", action="store_true",
                   help="only print the GiB autograd keeps for backward in each step (no timing; any device)")
    p.add_argument("--count", action="store_true",
                   help="only count one step's kernels, bytes moved, FLOPs, host syncs and host tensors (no timing; any device)")
    p.add_argument("--cpu-paths", action="store_true",
                   help="with --saved/--count on the CPU: count the CPU's own code paths, not those a GPU runs")
    p.add_argument("--reference", action="store_true", help="also time the plain reference-style supernet")
    p.add_argument("--reference-only", action="store_true", help="time only the plain reference-style supernet")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N more steps: busy time per step and the costliest kernels")
    p.add_argument("--top", type=int, default=0, help="with --count: also list the N most frequent ops")
    p.add_argument("--steps", type=int, default=2, help="timed steps of each implementation per round")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds; the figures are their medians")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each implementation first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = default_space().resized(cells=args.cells, channels=args.channels, nodes=args.nodes)
    print(
        f"device {device} ({machine(device)}), torch {torch.__version__}; "
        f"C={args.channels} cells={args.cells} batch={args.batch} size={args.size} order={args.order} "
        f"K={args.partial_channels} bf16={args.bf16} channels_last={args.channels_last} capture={args.capture} "
        f"recompute={args.recompute}",
        flush=True,
    )
    torch.manual_seed(0)
    if (args.saved or args.count) and not args.cpu_paths:
        with other_device_paths():  # what a GPU runs, counted here
            return count_or_saved(space, args, device)
    if args.saved or args.count:
        return count_or_saved(space, args, device)
    impls = []
    if not args.reference_only:
        impls.append("nasgal")
    if args.reference or args.reference_only:
        if args.partial_channels > 1:
            print("(the reference supernet has no partial channels; timing it at K=1)")
        impls.append("reference")

    def build(name: str):
        """Runs in the implementation's own process."""
        torch.manual_seed(0)
        if name == "nasgal":
            if device.type == "cpu":
                keep_freed_memory()  # as `nasgal search` does on the CPU
            step = prepare_impl(name, *nasgal_nets(space, args), args, device, make_nasgal_step)
        else:
            step = prepare_impl(name, *reference_nets(space, args), args, device, make_reference_step)

        def finish() -> dict:
            if args.profile:
                profile_steps(name, step, args, device)
            return {"peak_gib": peak_gib(step, device)}

        return step, lambda: sync(device), finish

    baseline = "reference" if len(impls) == 2 else None
    print(f"{args.rounds} interleaved rounds of {args.steps} steps each, one process per implementation", flush=True)
    res, extras = interleave_processes({n: (lambda n=n: build(n)) for n in impls}, rounds=args.rounds,
                                       steps_per_round=args.steps, warmup=args.warmup,
                                       on_round=round_printer(impls, baseline))
    for name in impls:
        peak = extras[name]["peak_gib"]
        print(f"{name:10s} median {res.median_seconds(name) * 1e3:9.1f} ms/step"
              + (f"  peak {peak:.2f} GiB above resting" if device.type == "cuda" else ""), flush=True)
    if baseline:
        ups = res.speedups("nasgal", baseline)
        print(f"speed-up {statistics.median(ups):.2f}x (median of {len(ups)} rounds; "
              f"rounds {min(ups):.2f}-{max(ups):.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
