"""The one epoch loop under ``train``, ``prune`` and ``search``, with one resume scheme.

A stage (:class:`Stage`) says what it trains in an epoch and which objects hold its state;
:func:`run_stage` does the rest, the same way for every stage:

1. hold the run directory (:func:`~nasgal.engine.rundir.run_lock`); ``restart`` removes an old
   run first;
2. refuse a directory that holds another run (``config.json``), and return the stored result
   when this run is already complete;
3. let the stage build its data, modules and optimizers (:meth:`Stage.setup`): a failure here
   writes nothing;
4. resume from ``checkpoint.pt`` when there is one: the checkpoint records the stage, a format
   number and the run's identity, and must match; every state, the per-epoch rows, the elapsed
   time and the random-number state come back, and the stage rewrites its records from them
   (whatever a kill between the records and the checkpoint lost);
5. write the spec and ``config.json`` (the run has really started), then per epoch: run it,
   refuse non-finite losses, write the records *before* the checkpoint, save the checkpoint;
6. let the stage write its final results (:meth:`Stage.finish`).

An interrupted run therefore loses at most the epoch it was in.

Under ``torchrun`` (:mod:`nasgal.engine.distributed`) every process runs the same loop on its
shard of the data; rank 0 alone holds the run directory, writes every file and reports
progress, and all processes resume from the same checkpoint. The phases before the epochs
(claiming the directory, :meth:`Stage.setup`, the resume) are agreed on: when one process
fails in one, every process stops with an error instead of waiting for the others, so
``setup`` must use no collective (build a ``DistributedDataParallel`` wrapper in
:meth:`Stage.ready`).
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import BaseModel

from ..errors import NasgalError
from ..progress import Reporter
from ..runfiles import CHECKPOINT, METRICS_LOG, NETWORK, RESULTS, TENSORBOARD
from . import distributed
from .tracking import numbers, tracker
from .rundir import (
    RESTART_HINT,
    forget_run,
    load_state,
    open_run,
    run_checkpoint,
    run_lock,
    run_record,
    save_checkpoint,
    start_run,
    write_jsonl,
)

#: Spreads the per-epoch random streams of the processes of a torchrun launch apart (odd, 64-bit).
_RANK_STRIDE = 0x9E3779B97F4A7C15

#: The layout of checkpoints written by :func:`run_stage` (4: one layout for every stage).
CHECKPOINT_FORMAT = 4

R = TypeVar("R")


@dataclass(frozen=True)
class Interrupted:
    """What :func:`run_stage` returns when ``stop_after`` ended it: the epochs completed."""

    epochs_done: int


class Stage(ABC, Generic[R]):
    """One kind of run on the engine. Subclasses set the class attributes and the attributes
    below in ``__init__`` (cheap: no data, no modules), and build the rest in :meth:`setup`."""

    kind: ClassVar[str]  #: "train", "prune", "search": the checkpoint's stage and the progress label
    what: ClassVar[str]  #: words for messages: "training run"
    log: ClassVar[str] = METRICS_LOG  #: the file of per-epoch rows
    spec_name: ClassVar[str] = NETWORK  #: the file the spec is written to
    #: Row keys that must be finite, with words for them: a NaN or infinite loss stops the run
    #: (the last checkpoint is kept), with ``diverged_hint``.
    finite: ClassVar[dict[str, str]] = {}
    diverged_hint: ClassVar[str] = "run again with --restart (or into another --out) with a lower learning rate"
    #: Globs (relative to the run directory) of the files a restart removes, besides the
    #: checkpoint and config.json.
    records: ClassVar[tuple[str, ...]] = ()
    #: Files whose presence marks the run complete.
    outputs: ClassVar[tuple[str, ...]] = (RESULTS,)

    out: Path
    epochs: int
    record: dict[str, Any]  #: config.json: the run's identity
    identity: dict[str, str]  #: record keys that must match exactly, with words for messages
    ignore: frozenset[str] = frozenset()  #: settings a resumed run may change
    spec: BaseModel  #: what the run works on (network or search space), written to ``spec_name``
    device: torch.device
    tensorboard: bool = False  #: also write TensorBoard event files (RUN_DIR/tensorboard)
    #: Seed of the per-epoch random streams (``seed * 1_000_003 + epoch``); ``None`` keeps one
    #: stream over the run (its state travels in the checkpoint).
    epoch_seed: int | None = None

    @abstractmethod
    def stored(self) -> R:
        """The result of a complete run, read from its files."""

    @abstractmethod
    def setup(self) -> None:
        """Load the data and build modules and optimizers (may be slow; must not write in ``out``)."""

    @abstractmethod
    def parts(self) -> dict[str, tuple[Any, str]]:
        """Objects whose ``state_dict()`` the checkpoint holds: ``{key: (object, words)}``."""

    def extra(self) -> dict[str, Any]:
        """Further plain data the checkpoint holds (and :meth:`load_extra` takes back)."""
        return {}

    def load_extra(self, ck: dict[str, Any]) -> None:
        """Take back :meth:`extra` from a checkpoint ``ck``; raise ``ValueError`` if it is inconsistent."""

    def ready(self, epochs_done: int) -> None:
        """Called once the state is loaded (or fresh), before the first epoch: e.g. build a
        captured step, which keeps the optimizer states it was recorded with."""

    @abstractmethod
    def steps(self) -> int:
        """Steps per epoch (for the progress display)."""

    @abstractmethod
    def run_epoch(self, epoch: int, reporter: Reporter) -> dict[str, Any]:
        """Run epoch ``epoch`` (0-indexed), calling ``reporter.advance()`` per step; return its
        row (without ``epoch`` and ``epoch_time_s``, which the engine adds)."""

    def write_records(self, rows: list[dict[str, Any]]) -> None:
        """Write the per-epoch records of the completed epochs (``rows``), each file atomically.
        Called after each epoch before its checkpoint, and again on resume."""
        write_jsonl(self.out / self.log, rows)

    def shown(self, row: dict[str, Any]) -> dict[str, Any]:
        """What the progress display shows at the end of an epoch."""
        return row

    def scalars(self, row: dict[str, Any]) -> dict[str, float]:
        """What a tracker (TensorBoard) records of an epoch: its row's numbers by default."""
        return numbers(row)

    @abstractmethod
    def finish(self, rows: list[dict[str, Any]], elapsed: float, reporter: Reporter) -> R:
        """Evaluate, write the final results (``outputs``) and return them."""


class QuietReporter(Reporter):
    """The reporter of every process but rank 0 under torchrun: says nothing."""

    def end(self, row: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def run_stage(stage: Stage[R], *, reporter: Reporter | None = None, restart: bool = False,
              stop_after: int | None = None) -> R | Interrupted:
    """Run ``stage`` to its end (or for ``stop_after`` completed epochs in total, as an
    interruption would) in its run directory; see the module docstring for the steps."""
    with distributed.session():
        main = distributed.is_main()
        reporter = (reporter or Reporter()) if main else QuietReporter()
        with run_lock(stage.out) if main else contextlib.nullcontext():
            return _run(stage, reporter, restart, stop_after, main)


def _run(stage: Stage[R], reporter: Reporter, restart: bool, stop_after: int | None, main: bool) -> R | Interrupted:
    out, rank = stage.out, distributed.rank()

    def claim() -> bool:  # rank 0 only: the directory is its
        if not main:
            return False
        if restart:
            forget_run(out, (stage.log, *stage.outputs, *stage.records, f"{TENSORBOARD}/*"))
        return open_run(out, stage.record, stage.identity, what=stage.what, outputs=stage.outputs, ignore=stage.ignore)

    if distributed.share_flag(distributed.agree(claim, f"checking {out}")):
        result = distributed.agree(stage.stored, f"reading the complete run in {out}")
        reporter.message(f"{out} is already complete ({stage.epochs} epochs); nothing to do")
        reporter.close()
        return result
    distributed.agree(stage.setup, f"setting up the {stage.what}")
    rows, elapsed, start = distributed.agree(lambda: _resume(stage, reporter, main),
                                             f"resuming from {out / CHECKPOINT}")
    distributed.check_same(start, f"the epochs completed in {out}",
                           hint="every process must see the same run directory: put --out on a filesystem shared by all nodes")
    stage.ready(start)
    if main:
        start_run(out, stage.spec, stage.record, stage.spec_name)  # the run has really started
    track = tracker(stage.tensorboard and main, out)
    try:
        for epoch in range(start, stage.epochs):
            if stop_after is not None and epoch >= stop_after:
                return Interrupted(epoch)
            t0 = time.perf_counter()
            if stage.epoch_seed is not None:  # each process its own stream (drop-path masks of its images)
                torch.manual_seed((stage.epoch_seed * 1_000_003 + epoch + rank * _RANK_STRIDE) % (1 << 63))
            reporter.start(stage.kind, epoch, stage.epochs, stage.steps())
            row: dict[str, Any] = {"epoch": epoch + 1, **stage.run_epoch(epoch, reporter)}
            if stage.device.type == "cuda":
                torch.cuda.synchronize(stage.device)
            row["epoch_time_s"] = time.perf_counter() - t0
            _check_finite(stage, row)  # the losses are the same on every process
            elapsed += row["epoch_time_s"]
            rows.append(row)
            if main:
                stage.write_records(rows)  # records first: a checkpoint never runs ahead of them
                _save(stage, rows, elapsed)
                track.epoch(stage.kind, epoch + 1, stage.scalars(row))
                reporter.end(stage.shown(row))
    finally:
        track.close()
        reporter.close()
    # Agreed on: rank 0's files are written before any process goes on, and a failure to write
    # them stops every process.
    return distributed.agree(lambda: stage.finish(rows, elapsed, reporter), f"finishing {out}")


def _check_finite(stage: Stage, row: dict[str, Any]) -> None:
    for key, words in stage.finite.items():
        value = row.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            epoch = row["epoch"]
            raise NasgalError(
                f"epoch {epoch}: {words} is {value}; the {stage.what} diverged "
                f"(the checkpoint of epoch {epoch - 1} is kept)",
                hint=stage.diverged_hint,
            )


def _save(stage: Stage, rows: list[dict[str, Any]], elapsed: float) -> None:
    ck: dict[str, Any] = {
        "stage": stage.kind,
        "format": CHECKPOINT_FORMAT,
        "run": run_record(stage.record),
        "epochs_done": len(rows),
        "rows": rows,
        "elapsed": elapsed,
        "rng_cpu": torch.get_rng_state(),
        **{key: obj.state_dict() for key, (obj, _) in stage.parts().items()},
        **stage.extra(),
    }
    if stage.device.type == "cuda":
        ck["rng_cuda"] = torch.cuda.get_rng_state(stage.device)
    save_checkpoint(stage.out / CHECKPOINT, ck)


def _resume(stage: Stage, reporter: Reporter, main: bool = True) -> tuple[list[dict[str, Any]], float, int]:
    """Load the checkpoint of ``stage`` if there is one: (rows, elapsed seconds, epochs done)."""
    path = stage.out / CHECKPOINT
    if not path.exists():
        return [], 0.0, 0
    ck = run_checkpoint(path, stage.kind, (), what=stage.what, map_location=stage.device)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise NasgalError(
            f"{path}: checkpoint format {ck.get('format', 'none')!r}, this nasgal reads format {CHECKPOINT_FORMAT}",
            hint=RESTART_HINT,
        )
    parts = stage.parts()
    keys = ("epochs_done", "rows", "elapsed", "rng_cpu", *parts)
    ck = run_checkpoint(path, stage.kind, keys, stage.record, stage.identity, what=stage.what,
                        map_location=stage.device, ignore=stage.ignore)
    try:
        rows, done, elapsed = list(ck["rows"]), int(ck["epochs_done"]), float(ck["elapsed"])
        if len(rows) != done or not all(isinstance(r, dict) for r in rows) or done > stage.epochs:
            raise ValueError("inconsistent rows")
        stage.load_extra(ck)
    except (TypeError, ValueError, KeyError):
        raise NasgalError(f"{path}: its run records are unreadable or inconsistent", hint=RESTART_HINT) from None
    for key, (obj, words) in parts.items():
        load_state(obj, ck[key], path, words)
    try:
        torch.set_rng_state(ck["rng_cpu"].cpu())
        if stage.device.type == "cuda" and "rng_cuda" in ck:
            torch.cuda.set_rng_state(ck["rng_cuda"].cpu(), stage.device)
    except (AttributeError, RuntimeError, TypeError):
        raise NasgalError(f"{path}: its random-number state is unreadable", hint=RESTART_HINT) from None
    if main:
        stage.write_records(rows)  # whatever a kill (or a full disk) lost after the checkpoint
    if done < stage.epochs:
        reporter.message(f"resuming {stage.out} after epoch {done}/{stage.epochs}")
    return rows, elapsed, done
