"""`nasgal search`: run a DARTS search on a dataset and write a genotype spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import NasgalError
from ..search.config import SearchConfig
from .options import RESTART_HELP, RESUME_HELP, check_resume, setting


def _s(name: str, *flags: str) -> Any:
    return setting(SearchConfig, name, *flags)


def search_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset: fashion_mnist, mnist, cifar10, cifar100, image_folder:<path>, voice (with --data-dir).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (genotype.json, checkpoint, α history, metrics, heat maps).")],
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space JSON (default: the DARTS space).")] = None,
    epochs: Annotated[Optional[int], _s("epochs")] = None,
    order: Annotated[Optional[str], _s("order")] = None,
    partial_channels: Annotated[Optional[int], _s("partial_channels")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Folder searched first for the dataset files.")] = None,
    subset: Annotated[Optional[int], _s("subset")] = None,
    batch_size: Annotated[Optional[int], _s("batch_size")] = None,
    seed: Annotated[Optional[int], _s("seed")] = None,
    lr: Annotated[Optional[float], _s("lr")] = None,
    lr_min: Annotated[Optional[float], _s("lr_min")] = None,
    momentum: Annotated[Optional[float], _s("momentum")] = None,
    weight_decay: Annotated[Optional[float], _s("weight_decay")] = None,
    grad_clip: Annotated[Optional[float], _s("grad_clip")] = None,
    arch_lr: Annotated[Optional[float], _s("arch_lr")] = None,
    arch_weight_decay: Annotated[Optional[float], _s("arch_weight_decay")] = None,
    device: Annotated[Optional[str], _s("device")] = None,
    threads: Annotated[Optional[int], _s("threads")] = None,
    cells: Annotated[Optional[int], typer.Option(help="Supernet cells (overrides the space).")] = None,
    channels: Annotated[Optional[int], typer.Option(help="Supernet initial channels C (overrides the space).")] = None,
    stem: Annotated[Optional[str], typer.Option(help="Stem: cifar, or stride2 for large images (overrides the space).")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Resize images to this size at load time.")] = None,
    precision: Annotated[Optional[str], _s("precision")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", hidden=True, help="Same as --precision bf16.")] = False,
    channels_last: Annotated[Optional[bool], _s("channels_last", "--channels-last/--no-channels-last")] = None,
    capture: Annotated[Optional[str], _s("capture")] = None,
    recompute: Annotated[Optional[bool], _s("recompute", "--recompute/--no-recompute")] = None,
    tensorboard: Annotated[Optional[bool], _s("tensorboard", "--tensorboard/--no-tensorboard")] = None,
    sync_bn: Annotated[Optional[bool], _s("sync_bn", "--sync-bn/--no-sync-bn")] = None,
    resume: Annotated[bool, typer.Option("--resume", help=RESUME_HELP)] = False,
    restart: Annotated[bool, typer.Option("--restart", help=RESTART_HELP)] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the genotype JSON on stdout instead of a summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Search cells with DARTS on a dataset; write RUN_DIR/genotype.json and the run's records.

    Re-running into the same --out continues after the last completed epoch.
    """
    from ..data import load_dataset
    from ..progress import default_reporter
    from ..search.derive import summary
    from ..search.run import search
    from ..search.space import load_space
    from ..spec.io import dumps
    from ..spec.stem import SEARCH_STEM_KINDS

    check_resume(out, resume, restart)  # before anything slow: a wrong --out fails at once
    if stem is not None and stem not in SEARCH_STEM_KINDS:
        raise NasgalError(f"--stem must be {' or '.join(map(repr, SEARCH_STEM_KINDS))}, got {stem!r}")
    if bf16 and precision not in (None, "bf16"):
        raise NasgalError(f"--bf16 contradicts --precision {precision}")
    values = dict(
        epochs=epochs, order=order, partial_channels=partial_channels, batch_size=batch_size, seed=seed, lr=lr,
        lr_min=lr_min, momentum=momentum, weight_decay=weight_decay, grad_clip=grad_clip, arch_lr=arch_lr,
        arch_weight_decay=arch_weight_decay, precision="bf16" if bf16 else precision, channels_last=channels_last,
        capture=capture, recompute=recompute, device=device, threads=threads, subset=subset, tensorboard=tensorboard,
        sync_bn=sync_bn,
    )
    cfg = SearchConfig.resolve(**values)  # checked before any data is read, so a bad value fails at once
    sp = load_space(space).resized(cells=cells, channels=channels, stem=stem)
    ds = load_dataset(dataset, data_dir=data_dir, split="train", image_size=image_size)
    if subset is not None:
        ds = ds.subset(subset, seed=cfg.seed)
    cfg = SearchConfig.resolve(**values, dataset=ds.info.name)
    genotype = search(sp, ds, cfg, out, restart=restart, reporter=default_reporter(not quiet))
    assert genotype is not None  # no stop_after: the search ran to its end
    if json_out:
        sys.stdout.write(dumps(genotype))
    else:
        typer.echo(f"{out / 'genotype.json'}: {summary(genotype)}")


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
