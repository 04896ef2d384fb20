"""`nasgal prune`: GAL-prune a trained network into a pruned network spec."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NasgalError


def print_prune_results(results: dict, as_json: bool) -> None:
    """The paper's Table 1 (cell, type, kept nodes) plus parameters before and after."""
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    reductions = set(results.get("reductions", []))
    table = Table(title=f"{results.get('network')} pruned on {results.get('dataset')}")
    table.add_column("Cell", justify="right")
    table.add_column("Type")
    table.add_column("Kept nodes")
    table.add_column("Masks")
    for p, kept in enumerate(results["kept"]):
        masks = results["masks"][p]
        shown = " ".join(f"{n}:{v:.2f}" for n, v in masks.items())
        table.add_row(str(p + 1), "reduction" if p in reductions else "normal",
                      ", ".join(str(n) for n in kept) if kept else "(dead)", shown)
    console = Console()
    console.print(table)
    before, after = results["params_before"], results["params_after"]
    console.print(f"parameters: {before:,} -> {after:,} ({after / before:.1%}); "
                  f"nodes: {results['nodes_before']} -> {results['nodes_after']}")
    for key in ("val_accuracy_teacher", "val_accuracy_generator", "val_accuracy_generator_pruned"):
        if results.get(key) is not None:
            console.print(f"{key}: {results[key]:.2%}")
    for event in results.get("events", []):
        console.print(f"note: {event}")


def prune_cmd(
    network: Annotated[str, typer.Argument(help="Network spec file of the trained network.", show_default=False)],
    weights: Annotated[str, typer.Option("--weights", "-w", help="Training run directory or checkpoint of NETWORK.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fashion_mnist, mnist, cifar10, cifar100 or image_folder:PATH.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created; re-running resumes).")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the dataset files (searched first).")] = None,
    subset: Annotated[Optional[int], typer.Option(help="Use N training images, stratified by class.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Pruning epochs (default 10).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per GAL iteration (default 100).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Generator weights' learning rate (default 0.01).")] = None,
    lam: Annotated[Optional[float], typer.Option(help="L1 strength λ on the node masks.")] = None,
    mu: Annotated[Optional[float], typer.Option(help="Weight μ of the teacher-generator data loss.")] = None,
    mask_lr: Annotated[Optional[float], typer.Option(help="Step size of the FISTA mask updates.")] = None,
    critic_steps: Annotated[Optional[int], typer.Option(help="Critic steps per generator step (default 5).")] = None,
    clip: Annotated[Optional[float], typer.Option(help="Critic weight clipping (0: off).")] = None,
    gp: Annotated[Optional[float], typer.Option(help="Gradient-penalty weight (0: off).")] = None,
    bn: Annotated[Optional[str], typer.Option(help="Generator BatchNorm: eval (teacher statistics) or train.")] = None,
    critic_weight_decay: Annotated[Optional[float], typer.Option(
        help="L2 weight decay of the critic, the paper's R(W_D) (default 3e-4; 0: off).")] = None,
    noise_dropout: Annotated[Optional[float], typer.Option(
        help="The paper's noise z: dropout rate on the generator's input images (default 0: off).")] = None,
    keep_params: Annotated[Optional[float], typer.Option(help="Keep at most this fraction of the parameters.")] = None,
    keep_nodes: Annotated[Optional[float], typer.Option(help="Keep this fraction of the nodes (within one node).")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Remove a node when its mask is at or below this (default 0).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32 or bf16 (autocast).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Prune NETWORK's nodes with GAL against its trained weights; writes OUT/pruned.json.

    Retrain it with `nasgal train OUT/pruned.json ...` (from scratch) or add `--inherit TEACHER_RUN`.
    """
    from ..progress import default_reporter
    from ..prune import prune, resolve_prune_config
    from ..train import load_weights
    from .train_cmds import load_network_arg

    from ..train.rundir import check_out_dir

    check_out_dir(out)  # before anything slow: a wrong --out fails at once
    net = load_network_arg(network)
    if keep_params is not None and keep_nodes is not None:
        raise NasgalError("give --keep-params or --keep-nodes, not both")
    wpath = Path(weights)
    if not wpath.exists():
        raise NasgalError(f"--weights: {weights} does not exist", hint="pass a `nasgal train` run directory or checkpoint")
    cfg = resolve_prune_config(
        epochs=epochs, batch_size=batch_size, lr=lr, lam=lam, mu=mu, mask_lr=mask_lr, critic_steps=critic_steps,
        gp=gp, bn=bn, critic_weight_decay=critic_weight_decay, noise_dropout=noise_dropout,
        keep_params=keep_params, keep_nodes=keep_nodes, threshold=threshold, subset=subset,
        seed=seed, device=device, precision=precision, threads=threads,
    )
    if clip is not None:
        cfg = cfg.model_copy(update={"clip": clip if clip > 0 else None})
    _, results = prune(net, load_weights(wpath), dataset=dataset, config=cfg, out_dir=out, data_dir=data_dir,
                       reporter=default_reporter(not quiet))
    print_prune_results(results, as_json)
    if not as_json:
        sys.stderr.write(f"pruned spec: {out / 'pruned.json'}\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command("prune", no_args_is_help=True)(prune_cmd)
