"""`nasgal export-onnx` and `nasgal latency`: what a trained network costs to ship and to run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NasgalError

SOURCE_HELP = "A training run directory (network.json + weights.pt), or a network spec file with --weights."


def export_onnx_cmd(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The ONNX file to write (atomically).")],
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Run directory or checkpoint with SOURCE's trained weights.")] = None,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default: the exporter's).")] = None,
    atol: Annotated[Optional[float], typer.Option(help="Parity tolerance, absolute part (default 1e-4).")] = None,
    rtol: Annotated[Optional[float], typer.Option(help="Parity tolerance, part relative to the largest logit (default 1e-4).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> int:
    """Export a trained network to ONNX (eval mode, dynamic batch, spec as metadata), checked against torch with onnxruntime.

    Fails, writing nothing, when onnxruntime's logits differ from torch's beyond the tolerance.
    """
    from ..deploy import DEFAULT_ATOL, DEFAULT_RTOL, export_onnx, load_trained

    network, state = load_trained(source, weights)
    res = export_onnx(network, state, out, opset=opset,
                      atol=DEFAULT_ATOL if atol is None else atol, rtol=DEFAULT_RTOL if rtol is None else rtol)
    if as_json:
        data = {"path": str(res.path), "bytes": res.size_bytes, "opset": res.opset, "op_counts": res.op_counts,
                "parity": res.parity.as_dict(),
                "metadata": {k: v for k, v in res.metadata.items() if k != "nasgal.spec"}}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    meta = res.metadata
    typer.echo(f"wrote {res.path} ({res.size_bytes / 1024:,.0f} KiB, opset {res.opset}): network '{meta['nasgal.network']}', "
               f"spec {meta['nasgal.spec_hash']}, {res.op_counts.get('Conv', 0)} Conv nodes, kept nodes {meta['nasgal.kept_nodes']}")
    typer.echo(f"parity ok: {res.parity.describe()}")
    return 0


def _candidate(arg: str, weights: Optional[str] = None):
    """A run directory (trained weights) or a network spec (freshly initialised weights: same cost)."""
    from ..deploy import Candidate, load_trained
    from ..spec import Network
    from .spec_cmds import load_spec_arg

    if Path(arg).is_dir() or weights is not None:
        network, state = load_trained(arg, weights)
        return Candidate(arg, network, state)
    spec = load_spec_arg(arg)
    if not isinstance(spec, Network):
        raise NasgalError(f"{arg} is a {getattr(spec, 'kind', 'spec')}, not a network or a training run directory",
                          hint="stack a genotype into a network first: nasgal stack ...")
    return Candidate(arg, spec, None)


def print_latency(res, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(res.as_dict(), indent=2) + "\n")
        return
    from .output import stdout_console, table as make_table

    names = [n["name"] for n in res.networks]
    console = stdout_console()
    table = make_table(console, title=f"inference latency, {res.device}: {res.machine}")
    table.add_column("runtime")
    table.add_column("batch", justify="right")
    for name in names:
        table.add_column(f"{name}\nms (img/s)", justify="right")
    for name in names[1:]:
        table.add_column(f"{name} / {names[0]}\nlatency", justify="right")
    keys = sorted({(r["runtime"], r["batch"]) for r in res.rows}, key=lambda k: ([x["runtime"] for x in res.rows].index(k[0]), k[1]))
    for rt, b in keys:
        cells = []
        for name in names:
            row = next((r for r in res.rows if (r["runtime"], r["batch"], r["network"]) == (rt, b, name)), None)
            cells.append("–" if row is None else f"{row['latency_ms']:,.2f} ({row['images_per_s']:,.0f})")
        for name in names[1:]:
            q = next((r["ratio"] for r in res.ratios if (r["runtime"], r["batch"], r["network"]) == (rt, b, name)), None)
            cells.append("–" if q is None else f"{q:.2f}x")
        table.add_row(rt, str(b), *cells)
    console.print(table)
    base = res.networks[0]
    for n in res.networks[1:]:
        console.print(f"{n['name']} / {base['name']}: params {n['params'] / base['params']:.2f}x "
                      f"({n['params']:,} / {base['params']:,}), MACs {n['macs'] / base['macs']:.2f}x", markup=False)
    load = f"; load average at start {res.load_avg[0]:.2f}" if res.load_avg else ""
    console.print(f"medians of {res.rounds} interleaved rounds, {res.threads} threads{load}", markup=False)
    for rt, why in res.unavailable.items():
        console.print(f"{rt}: unavailable ({why})", markup=False)


def latency_cmd(
    networks: Annotated[list[str], typer.Argument(help="Training run directories (or network specs: fresh weights, same cost) to compare; ratios are against the first.", show_default=False)],
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    batch: Annotated[Optional[list[int]], typer.Option("--batch", "-b", help="Batch size (repeat for several; default 1 and 64).")] = None,
    runtime: Annotated[Optional[list[str]], typer.Option("--runtime", "-r", help="eager, compiled or onnxruntime (repeat; default all three).")] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved timing rounds (medians are reported).")] = 5,
    block_ms: Annotated[float, typer.Option(help="Milliseconds per timed block of calls.")] = 200.0,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch and onnxruntime (default: torch's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Measure batch-1 and batch-64 inference latency of trained networks side by side, interleaved in one run.

    Times torch eager, torch.compile and onnxruntime; prints latencies, throughputs and ratios.
    """
    from ..deploy import RUNTIMES, measure_latency
    from ..progress import PlainReporter, Reporter

    if len(set(networks)) != len(networks):
        raise NasgalError("a network is listed twice", hint="give each run directory once")
    runtimes = tuple(runtime or RUNTIMES)
    cands = [_candidate(n) for n in networks]
    res = measure_latency(cands, device=device, batches=tuple(batch or (1, 64)), runtimes=runtimes, rounds=rounds,
                          block_s=block_ms / 1e3, threads=threads,
                          reporter=Reporter() if quiet else PlainReporter())
    print_latency(res, as_json)
    return 0


def register(app: typer.Typer) -> None:
    app.command("export-onnx", no_args_is_help=True)(export_onnx_cmd)
    app.command("latency", no_args_is_help=True)(latency_cmd)
