"""`nasgal train`: train a network spec on a dataset into a run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NasgalError
from ..spec import Network

RECIPE_HELP = "Start from a recipe: 'paper' (DARTS-GAL: batch 128, lr 0.01, 50 epochs) or 'darts' (600 epochs, cutout, drop-path, aux)."


def load_network_arg(arg: str) -> Network:
    from .spec_cmds import load_spec_arg

    spec = load_spec_arg(arg)
    if not isinstance(spec, Network):
        raise NasgalError(
            f"{arg} is a {getattr(spec, 'kind', 'spec')}, not a network",
            hint=f"stack it first: nasgal stack {arg} --cells 5 --channels 16 --classes 10 "
            "--in-channels 1 --input-size 28 -o network.json",
        )
    return spec


def print_results(results: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results.get('network')} on {results.get('dataset')}", show_header=False)
    for key in ("test_accuracy", "best_val_accuracy", "final_train_accuracy", "params", "macs", "epochs",
                "train_images", "wall_time_s", "images_per_s", "device"):
        v = results.get(key)
        if v is None:
            continue
        if isinstance(v, float):
            v = f"{v:.2%}" if key.endswith("accuracy") else f"{v:,.1f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        table.add_row(key, str(v))
    Console().print(table)


def train_cmd(
    network: Annotated[str, typer.Argument(help="Network spec file (see `nasgal stack`).", show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fashion_mnist, mnist, cifar10, cifar100 or image_folder:PATH.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created; re-running resumes).")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the dataset files (searched first).")] = None,
    recipe: Annotated[str, typer.Option(help=RECIPE_HELP)] = "paper",
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (recipe default otherwise).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Initial learning rate.")] = None,
    lr_min: Annotated[Optional[float], typer.Option(help="Final learning rate of the cosine schedule.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="cosine or constant.")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="SGD momentum.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clip.")] = None,
    cutout: Annotated[Optional[int], typer.Option(help="Cutout side in pixels (0: off).")] = None,
    drop_path: Annotated[Optional[float], typer.Option(help="Max drop-path rate (default: the spec's).")] = None,
    aux_weight: Annotated[Optional[float], typer.Option(help="Auxiliary loss weight.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Part of the training set held out for validation.")] = None,
    subset: Annotated[Optional[int], typer.Option(help="Train on N training images, stratified by class.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32 or bf16 (autocast).")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="NHWC layout (default on).")] = None,
    capture: Annotated[Optional[str], typer.Option(help="none, compile, cuda-graph or compile+cuda-graph.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", "--workers", help="CPU threads for torch.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Require an existing checkpoint in --out and continue it.")] = False,
    inherit: Annotated[Optional[str], typer.Option(help="Start from the surviving weights of this run or checkpoint (weight inheritance for pruned networks).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Train NETWORK on a real dataset; checkpoints each epoch, resumes when re-run."""
    from ..progress import default_reporter
    from ..train import load_weights, resolve_config, train

    from ..train.rundir import check_out_dir

    check_out_dir(out)  # before anything slow: a wrong --out fails at once
    net = load_network_arg(network)
    if resume and not (out / "checkpoint.pt").exists():
        raise NasgalError(f"--resume: {out} has no checkpoint.pt to continue", hint="drop --resume to start a new run")
    cfg = resolve_config(
        recipe, epochs=epochs, batch_size=batch_size, lr=lr, lr_min=lr_min, schedule=schedule, momentum=momentum,
        weight_decay=weight_decay, grad_clip=grad_clip, cutout=cutout, drop_path=drop_path, aux_weight=aux_weight,
        val_fraction=val_fraction, subset=subset, seed=seed, device=device, precision=precision,
        channels_last=channels_last, capture=capture, threads=threads,
    )
    init_state = None
    if inherit is not None:
        from ..prune.inherit import inherit_weights

        init_state = inherit_weights(net, load_weights(inherit))
    results = train(net, dataset=dataset, config=cfg, out_dir=out, data_dir=data_dir, init_state=init_state,
                    reporter=default_reporter(not quiet))
    print_results(results, as_json)
    return 0


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(train_cmd)
