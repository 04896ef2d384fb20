"""`nasgal search`: run a DARTS search on a dataset and write a genotype spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..errors import NasgalError

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _progress_for_terminal():
    """A rich progress bar on a terminal (stderr); plain log lines otherwise."""
    from ..search.derive import summary
    from ..search.run import SearchProgress

    class Plain(SearchProgress):
        def start(self, epochs, first_epoch, steps):
            if first_epoch > 1:
                err.print(f"resuming at epoch {first_epoch} of {epochs}", markup=False)

        def epoch(self, m, genotype):
            err.print(
                f"epoch {m['epoch']}: train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  "
                f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f}  lr {m['lr']:.5f}  {m['epoch_time_s']:.1f}s",
                markup=False,
            )
            err.print(f"  {summary(genotype)}", markup=False)

    if not err.is_terminal:
        return Plain()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Bar(SearchProgress):
        def start(self, epochs, first_epoch, steps):
            self.steps = steps
            self.bar = Progress(
                TextColumn("[bold]search[/] epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
                console=err,
                transient=False,
            )
            self.bar.start()
            total = (epochs - first_epoch + 1) * steps
            self.task = self.bar.add_task("search", total=max(total, 1), epoch=first_epoch, epochs=epochs, stats="")
            self.genotype_line = None

        def step(self, epoch, step):
            self.bar.update(self.task, advance=1, epoch=epoch)

        def epoch(self, m, genotype):
            stats = (
                f"loss {m['train_loss']:.3f} acc {m['train_acc']:.3f} | val loss {m['val_loss']:.3f} "
                f"acc {m['val_acc']:.3f}"
            )
            self.bar.update(self.task, stats=stats)
            self.bar.console.print(f"epoch {m['epoch']}: {stats}  ({m['epoch_time_s']:.1f}s)", markup=False)
            self.bar.console.print(f"  {summary(genotype)}", markup=False, style="dim")

        def finish(self):
            if hasattr(self, "bar"):
                self.bar.stop()

    return Bar()


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
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the supernet (first order).")] = False,
    resume: Annotated[bool, typer.Option("--resume/--restart", help="Continue a run found in --out (default), or start it over.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the genotype JSON on stdout instead of a summary.")] = False,
) -> None:
    """Search cells with DARTS on a dataset; write RUN_DIR/genotype.json and the run's records.

    Re-running into the same --out continues after the last completed epoch.
    """
    from ..data import load_dataset
    from ..search.derive import summary
    from ..search.run import SearchConfig, search
    from ..search.space import load_space
    from ..spec.io import dumps

    if order not in ("first", "second"):
        raise NasgalError(f"--order must be 'first' or 'second', got {order!r}")
    if stem is not None and stem not in ("cifar", "stride2"):
        raise NasgalError(f"--stem must be 'cifar' or 'stride2', got {stem!r}")
    sp = load_space(space).resized(cells=cells, channels=channels, stem=stem)
    ds = load_dataset(dataset, data_dir=data_dir, split="train", image_size=image_size)
    if subset is not None:
        ds = ds.subset(subset, seed=seed)
    cfg = SearchConfig(
        epochs=epochs, order=order, partial_channels=partial_channels, batch_size=batch_size, seed=seed,
        bf16=bf16, channels_last=channels_last, compile=compile_, device=device, dataset=ds.info.name, subset=subset,
    )
    genotype = search(sp, ds, cfg, out, restart=not resume, progress=_progress_for_terminal())
    if json_out:
        sys.stdout.write(dumps(genotype))
    else:
        typer.echo(f"{out / 'genotype.json'}: {summary(genotype)}")


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
