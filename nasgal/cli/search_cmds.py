"""`nasgal search`: run a DARTS search on a dataset and write a genotype spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NasgalError


def search_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset: fashion_mnist, mnist, cifar10, cifar100, image_folder:<path>.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (genotype.json, checkpoint, α history, metrics, heat maps).")],
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space JSON (default: the DARTS space).")] = None,
    epochs: Annotated[int, typer.Option(help="Search epochs.")] = 50,
    order: Annotated[str, typer.Option(help="α gradient: 'first' or 'second' order (DARTS).")] = "first",
    partial_channels: Annotated[int, typer.Option("--partial-channels", help="PC-DARTS: ops see 1/K of the channels, with edge normalisation (1: off).")] = 1,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Folder searched first for the dataset files.")] = None,
    subset: Annotated[Optional[int], typer.Option(help="Use only N training images (class proportions kept), split in half for weights and α.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size of both the weight and the α steps.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed (weights, α, data halves and order).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    cells: Annotated[Optional[int], typer.Option(help="Supernet cells (overrides the space).")] = None,
    channels: Annotated[Optional[int], typer.Option(help="Supernet initial channels C (overrides the space).")] = None,
    stem: Annotated[Optional[str], typer.Option(help="Stem: cifar, or stride2 for large images (overrides the space).")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Resize images to this size at load time.")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 autocast (GPU).")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="channels_last memory format.")] = False,
    capture: Annotated[str, typer.Option(help="Graph capture of the search step: none, compile, cuda-graph or compile+cuda-graph.")] = "none",
    recompute: Annotated[bool, typer.Option("--recompute", help="Recompute depthwise outputs in backward: ~40% less memory in the weight step, same results.")] = False,
    resume: Annotated[bool, typer.Option("--resume/--restart", help="Continue a run found in --out (default), or start it over.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the genotype JSON on stdout instead of a summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Search cells with DARTS on a dataset; write RUN_DIR/genotype.json and the run's records.

    Re-running into the same --out continues after the last completed epoch.
    """
    from ..data import load_dataset
    from ..progress import default_reporter
    from ..search.derive import summary
    from ..search.run import search, search_config
    from ..search.space import load_space
    from ..spec.io import dumps
    from ..spec.stem import SEARCH_STEM_KINDS

    from ..train.rundir import check_out_dir

    check_out_dir(out)  # before anything slow: a wrong --out fails at once
    if stem is not None and stem not in SEARCH_STEM_KINDS:
        raise NasgalError(f"--stem must be {' or '.join(map(repr, SEARCH_STEM_KINDS))}, got {stem!r}")
    # Checked before any data is read, so a bad value fails at once.
    cfg = search_config(
        epochs=epochs, order=order, partial_channels=partial_channels, batch_size=batch_size, seed=seed,
        bf16=bf16, channels_last=channels_last, capture=capture, recompute=recompute, device=device, subset=subset,
    )
    sp = load_space(space).resized(cells=cells, channels=channels, stem=stem)
    ds = load_dataset(dataset, data_dir=data_dir, split="train", image_size=image_size)
    if subset is not None:
        ds = ds.subset(subset, seed=seed)
    cfg = cfg.model_copy(update={"dataset": ds.info.name})
    genotype = search(sp, ds, cfg, out, restart=not resume, reporter=default_reporter(not quiet))
    if json_out:
        sys.stdout.write(dumps(genotype))
    else:
        typer.echo(f"{out / 'genotype.json'}: {summary(genotype)}")


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
