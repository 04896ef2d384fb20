"""Inference latency before and after pruning: torch eager, torch.compile and onnxruntime, one interleaved run.

    python benchmarks/latency.py                                  # the paper's FashionMNIST net vs its pruned version
    python benchmarks/latency.py runs/base runs/retrain --device cpu --out benchmarks/results/cpu_latency.json

Without arguments it times the paper's 5-cell DARTS_V2 network (C=16, 28x28x1) against the
same network with the paper's kept nodes (Table 1), freshly initialised (latency does not
depend on the weights' values). With arguments, each is a training run directory or a
network spec, and ratios are against the first. The measurement is `nasgal latency`'s
(:func:`nasgal.deploy.measure_latency`); this script adds a markdown table and a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _args import add_network_args, network  # noqa: E402

from nasgal.deploy import RUNTIMES, Candidate, load_trained, measure_latency  # noqa: E402
from nasgal.progress import PlainReporter  # noqa: E402
from nasgal.spec.io import atomic_write_text  # noqa: E402

PAPER_KEPT = [[1, 2], [0, 1], [3], [0, 1, 2], [1]]


def candidates(args: argparse.Namespace) -> list[Candidate]:
    if not args.networks:
        base = network(args)
        return [Candidate("baseline", base), Candidate("pruned", base.with_kept_nodes(PAPER_KEPT))]
    out = []
    for arg in args.networks:
        if Path(arg).is_dir():
            net, state = load_trained(arg)
            out.append(Candidate(arg, net, state))
        else:
            import nasgal

            out.append(Candidate(arg, nasgal.load(arg)))
    return out


def markdown(res) -> str:
    names = [n["name"] for n in res.networks]
    head = "| runtime | batch | " + " | ".join(f"{n}: ms (img/s)" for n in names) + "".join(
        f" | {n} / {names[0]}" for n in names[1:]) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(names) - 1)]
    for rt in RUNTIMES:
        for b in sorted({r["batch"] for r in res.rows}):
            rows = {r["network"]: r for r in res.rows if r["runtime"] == rt and r["batch"] == b}
            if not rows:
                continue
            cells = [f"{rows[n]['latency_ms']:,.2f} ({rows[n]['images_per_s']:,.0f})" if n in rows else "–" for n in names]
            for n in names[1:]:
                q = next((x["ratio"] for x in res.ratios if (x["runtime"], x["batch"], x["network"]) == (rt, b, n)), None)
                cells.append("–" if q is None else f"{q:.2f}x")
            lines.append(f"| {rt} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("networks", nargs="*", help="Run directories or network specs (default: the paper's net and its pruned version).")
    add_network_args(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, action="append", help="Batch size (repeat; default 1 and 64).")
    p.add_argument("--runtime", action="append", choices=RUNTIMES, help="Runtime (repeat; default all).")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block-ms", type=float, default=200.0)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", type=Path, help="Also write the measurements as JSON here.")
    args = p.parse_args()
    res = measure_latency(candidates(args), device=args.device, batches=tuple(args.batch or (1, 64)),
                          runtimes=tuple(args.runtime or RUNTIMES), rounds=args.rounds, block_s=args.block_ms / 1e3,
                          threads=args.threads, reporter=PlainReporter())
    data = res.as_dict()
    if args.out:
        atomic_write_text(args.out, json.dumps(data, indent=2) + "\n")
    print(markdown(res))
    print()
    for n in res.networks[1:]:
        b = res.networks[0]
        print(f"{n['name']} / {b['name']}: params {n['params'] / b['params']:.2f}x, MACs {n['macs'] / b['macs']:.2f}x")
    load = f", load average at start {res.load_avg[0]:.2f}" if res.load_avg else ""
    print(f"{res.device}: {res.machine}; medians of {res.rounds} interleaved rounds{load}")
    for rt, why in res.unavailable.items():
        print(f"{rt}: unavailable ({why})")


if __name__ == "__main__":
    main()
