"""`nasgal train`: train a network spec on a dataset into a run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import NasgalError
from ..spec import Network
from ..train.config import RECIPES, TrainConfig
from .options import RESTART_HELP, RESUME_HELP, check_resume, setting

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
    from .output import stdout_console, table as make_table

    console = stdout_console()
    table = make_table(console, title=f"{results.get('network')} on {results.get('dataset')}", show_header=False)
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
    console.print(table)


def _t(name: str, *flags: str) -> Any:
    """An option for TrainConfig's field ``name``, showing the 'paper' recipe's value."""
    default = RECIPES["paper"].get(name, TrainConfig.model_fields[name].get_default())
    note = "" if name not in RECIPES["darts"] else " (recipe 'paper'; see --recipe)"
    return setting(TrainConfig, name, *flags, default=default, note=note)




def train_cmd(
    network: Annotated[str, typer.Argument(help="Network spec file (see `nasgal stack`).", show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fashion_mnist, mnist, cifar10, cifar100, image_folder:PATH or voice (with --data-dir).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created; re-running resumes).")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the dataset files (searched first).")] = None,
    recipe: Annotated[str, typer.Option(help=RECIPE_HELP)] = "paper",
    epochs: Annotated[Optional[int], _t("epochs")] = None,
    batch_size: Annotated[Optional[int], _t("batch_size")] = None,
    lr: Annotated[Optional[float], _t("lr")] = None,
    lr_min: Annotated[Optional[float], _t("lr_min")] = None,
    schedule: Annotated[Optional[str], _t("schedule")] = None,
    momentum: Annotated[Optional[float], _t("momentum")] = None,
    weight_decay: Annotated[Optional[float], _t("weight_decay")] = None,
    grad_clip: Annotated[Optional[float], _t("grad_clip")] = None,
    cutout: Annotated[Optional[int], _t("cutout")] = None,
    crop_padding: Annotated[Optional[int], _t("crop_padding")] = None,
    hflip: Annotated[Optional[bool], _t("hflip", "--hflip/--no-hflip")] = None,
    drop_path: Annotated[Optional[float], _t("drop_path")] = None,
    aux_weight: Annotated[Optional[float], _t("aux_weight")] = None,
    val_fraction: Annotated[Optional[float], _t("val_fraction")] = None,
    subset: Annotated[Optional[int], _t("subset")] = None,
    seed: Annotated[Optional[int], _t("seed")] = None,
    device: Annotated[Optional[str], _t("device")] = None,
    precision: Annotated[Optional[str], _t("precision")] = None,
    channels_last: Annotated[Optional[bool], _t("channels_last", "--channels-last/--no-channels-last")] = None,
    capture: Annotated[Optional[str], _t("capture")] = None,
    eval_batch_size: Annotated[Optional[int], _t("eval_batch_size")] = None,
    threads: Annotated[Optional[int], _t("threads", "--threads", "--workers")] = None,
    tensorboard: Annotated[Optional[bool], _t("tensorboard", "--tensorboard/--no-tensorboard")] = None,
    sync_bn: Annotated[Optional[bool], _t("sync_bn", "--sync-bn/--no-sync-bn")] = None,
    resume: Annotated[bool, typer.Option("--resume", help=RESUME_HELP)] = False,
    restart: Annotated[bool, typer.Option("--restart", help=RESTART_HELP)] = False,
    inherit: Annotated[Optional[str], typer.Option(help="Start from the surviving weights of this run or checkpoint (weight inheritance for pruned networks).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Train NETWORK on a real dataset; checkpoints each epoch, resumes when re-run."""
    from ..progress import default_reporter
    from ..train import resolve_config, train

    check_resume(out, resume, restart)  # before anything slow: a wrong --out fails at once
    net = load_network_arg(network)
    cfg = resolve_config(
        recipe, epochs=epochs, batch_size=batch_size, lr=lr, lr_min=lr_min, schedule=schedule, momentum=momentum,
        weight_decay=weight_decay, grad_clip=grad_clip, cutout=cutout, crop_padding=crop_padding, hflip=hflip,
        drop_path=drop_path, aux_weight=aux_weight, val_fraction=val_fraction, subset=subset, seed=seed,
        device=device, precision=precision, channels_last=channels_last, capture=capture,
        eval_batch_size=eval_batch_size, threads=threads, tensorboard=tensorboard, sync_bn=sync_bn,
    )
    results = train(net, dataset=dataset, config=cfg, out_dir=out, data_dir=data_dir, inherit=inherit,
                    restart=restart, reporter=default_reporter(not quiet))
    print_results(results, as_json)
    return 0


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(train_cmd)
