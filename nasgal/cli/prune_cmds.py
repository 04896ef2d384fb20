"""`nasgal prune`: GAL-prune a trained network into a pruned network spec."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import NasgalError
from ..prune.config import PruneConfig
from .options import RESTART_HELP, RESUME_HELP, check_resume, setting


def print_prune_results(results: dict, as_json: bool) -> None:
    """The paper's Table 1 (cell, type, kept nodes) plus parameters before and after."""
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    from .output import stdout_console, table as make_table

    console = stdout_console()
    reductions = set(results.get("reductions", []))
    table = make_table(console, title=f"{results.get('network')} pruned on {results.get('dataset')}")
    table.add_column("Cell", justify="right")
    table.add_column("Type")
    table.add_column("Kept nodes")
    table.add_column("Masks" if results.get("method", "gal") == "gal" else f"{results['method']} scores")
    for p, kept in enumerate(results["kept"]):
        masks = results["masks"][p]
        shown = " ".join(f"{n}:{v:.2f}" for n, v in masks.items())
        table.add_row(str(p + 1), "reduction" if p in reductions else "normal",
                      ", ".join(str(n) for n in kept) if kept else "(dead)", shown)
    console.print(table)
    before, after = results["params_before"], results["params_after"]
    console.print(f"parameters: {before:,} -> {after:,} ({after / before:.1%}); "
                  f"nodes: {results['nodes_before']} -> {results['nodes_after']}")
    for key in ("val_accuracy_teacher", "val_accuracy_generator", "val_accuracy_generator_pruned"):
        if results.get(key) is not None:
            console.print(f"{key}: {results[key]:.2%}")
    for event in results.get("events", []):
        console.print(f"note: {event}")


def _p(name: str, *flags: str) -> Any:
    return setting(PruneConfig, name, *flags)


def prune_cmd(
    network: Annotated[str, typer.Argument(help="Network spec file of the trained network.", show_default=False)],
    weights: Annotated[str, typer.Option("--weights", "-w", help="Training run directory or checkpoint of NETWORK.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fashion_mnist, mnist, cifar10, cifar100, image_folder:PATH or voice (with --data-dir).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created; re-running resumes).")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the dataset files (searched first).")] = None,
    method: Annotated[Optional[str], _p("method")] = None,
    subset: Annotated[Optional[int], _p("subset")] = None,
    val_fraction: Annotated[Optional[float], _p("val_fraction")] = None,
    epochs: Annotated[Optional[int], _p("epochs")] = None,
    batch_size: Annotated[Optional[int], _p("batch_size")] = None,
    lr: Annotated[Optional[float], _p("lr")] = None,
    momentum: Annotated[Optional[float], _p("momentum")] = None,
    weight_decay: Annotated[Optional[float], _p("weight_decay")] = None,
    bn: Annotated[Optional[str], _p("bn")] = None,
    lam: Annotated[Optional[float], _p("lam")] = None,
    mu: Annotated[Optional[float], _p("mu")] = None,
    noise_dropout: Annotated[Optional[float], _p("noise_dropout")] = None,
    mask_lr: Annotated[Optional[float], _p("mask_lr")] = None,
    lam_warmup: Annotated[Optional[int], _p("lam_warmup")] = None,
    fista_restart: Annotated[Optional[int], _p("fista_restart")] = None,
    threshold: Annotated[Optional[float], _p("threshold")] = None,
    critic_steps: Annotated[Optional[int], _p("critic_steps")] = None,
    critic_weight_decay: Annotated[Optional[float], _p("critic_weight_decay")] = None,
    critic_lr: Annotated[Optional[float], _p("critic_lr")] = None,
    clip: Annotated[Optional[float], _p("clip")] = None,
    gp: Annotated[Optional[float], _p("gp")] = None,
    keep_params: Annotated[Optional[float], _p("keep_params")] = None,
    keep_nodes: Annotated[Optional[float], _p("keep_nodes")] = None,
    seed: Annotated[Optional[int], _p("seed")] = None,
    device: Annotated[Optional[str], _p("device")] = None,
    precision: Annotated[Optional[str], _p("precision")] = None,
    channels_last: Annotated[Optional[bool], _p("channels_last", "--channels-last/--no-channels-last")] = None,
    eval_batch_size: Annotated[Optional[int], _p("eval_batch_size")] = None,
    threads: Annotated[Optional[int], _p("threads", "--threads")] = None,
    tensorboard: Annotated[Optional[bool], _p("tensorboard", "--tensorboard/--no-tensorboard")] = None,
    sync_bn: Annotated[Optional[bool], _p("sync_bn", "--sync-bn/--no-sync-bn")] = None,
    resume: Annotated[bool, typer.Option("--resume", help=RESUME_HELP)] = False,
    restart: Annotated[bool, typer.Option("--restart", help=RESTART_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Prune NETWORK's nodes with GAL against its trained weights; writes OUT/pruned.json.

    Retrain it with `nasgal train OUT/pruned.json ...` (from scratch) or add `--inherit TEACHER_RUN`.
    """
    from ..progress import default_reporter
    from ..prune import prune, resolve_prune_config
    from ..engine.weights import load_weights
    from .train_cmds import load_network_arg

    check_resume(out, resume, restart)  # before anything slow: a wrong --out fails at once
    net = load_network_arg(network)
    cfg = resolve_prune_config(
        method=method, subset=subset, val_fraction=val_fraction, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, bn=bn, lam=lam, mu=mu, noise_dropout=noise_dropout, mask_lr=mask_lr,
        lam_warmup=lam_warmup, fista_restart=fista_restart, threshold=threshold, critic_steps=critic_steps,
        critic_weight_decay=critic_weight_decay, critic_lr=critic_lr, clip=clip, gp=gp, keep_params=keep_params,
        keep_nodes=keep_nodes, seed=seed, device=device, precision=precision, channels_last=channels_last,
        eval_batch_size=eval_batch_size, threads=threads, tensorboard=tensorboard, sync_bn=sync_bn,
    )
    wpath = Path(weights)
    if not wpath.exists():
        raise NasgalError(f"--weights: {weights} does not exist", hint="pass a `nasgal train` run directory or checkpoint")
    _, results = prune(net, load_weights(wpath), dataset=dataset, config=cfg, out_dir=out, data_dir=data_dir,
                       restart=restart, reporter=default_reporter(not quiet))
    print_prune_results(results, as_json)
    if not as_json:
        sys.stderr.write(f"pruned spec: {out / 'pruned.json'}\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command("prune", no_args_is_help=True)(prune_cmd)
