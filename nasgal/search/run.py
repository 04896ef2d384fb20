"""A DARTS search run: data halves, the bilevel loop, per-epoch outputs, checkpoint and resume.

``search(space, dataset, config, out_dir)`` returns the derived :class:`~nasgal.spec.Genotype`
and leaves in ``out_dir``::

    genotype.json              the latest derived genotype (provenance: dataset, seed, epochs, order, α)
    genotypes/epoch_XXX.json   the genotype derived after each epoch (1-indexed)
    alpha_history.json         raw α (and β) after each epoch
    metrics.jsonl              one line per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, epoch_time_s
    alpha_normal.png, alpha_reduce.png   heat maps of the softmaxed α
    checkpoint.pt              weights, α, optimizer states, RNG states, epoch
    space.json, config.json    the search space and the run's record (dataset, settings)
    metrics.json, env.json     final results and the environment

Running again into the same ``out_dir`` continues after the last completed epoch (the
config must match); ``restart=True`` starts over. The run is a stage of the shared engine
(:mod:`nasgal.engine.loop`), as training and pruning are.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from ..engine import distributed
from ..engine.loop import Interrupted, Stage, run_stage
from ..engine.optim import set_lr
from ..engine.tracking import numbers
from ..engine.rundir import environment, use_device, write_json, write_jsonl
from ..engine.step import evaluate
from ..runfiles import ALPHA_HISTORY, ENV, GENOTYPE, GENOTYPES, RESULTS, SPACE
from ..errors import NasgalError
from ..progress import Reporter
from ..spec.genotype import Genotype
from ..spec.space import SearchSpace
from ..spec.io import atomic_write_text, load, save
from .derive import derive_genotype, edge_normalisation, summary
from .config import SearchConfig
from .heatmap import write_heatmap
from .step import SearchStep, make_optimizers
from .supernet import Architecture, Supernet


def _lists(t: torch.Tensor) -> list:
    return t.detach().float().cpu().tolist()


class SearchStage(Stage[Genotype]):
    """A DARTS search on the engine: the supernet's weights on one half of the training set,
    α on the other; α's history and the derived genotypes are its records."""

    kind, what, spec_name = "search", "search run", SPACE
    finite = {"train_loss": "the training loss", "val_loss": "the validation loss"}
    diverged_hint = "search again with --restart (or into another --out) with other settings (e.g. a smaller batch or lr)"
    records = (ALPHA_HISTORY, ENV, "alpha_*.png", f"{GENOTYPES}/epoch_*.json")
    outputs = (RESULTS, GENOTYPE)

    def __init__(self, space: SearchSpace, dataset, config: SearchConfig, out: Path) -> None:
        self.space, self.dataset, self.config, self.out = space, dataset, config, out
        self.epochs, self.spec, self.ignore = config.epochs, space, config.RUNTIME
        self.tensorboard = config.tensorboard
        space_json = space.model_dump_json(by_alias=True)
        self.record = {"dataset": config.dataset, "space": space.name,
                       "space_hash": hashlib.sha256(space_json.encode()).hexdigest()[:16],
                       "config": config.model_dump(mode="json")}
        self.identity = {"space_hash": "search space", "dataset": "dataset"}
        self.history: list[dict[str, Any]] = []  # α (and β) after each completed epoch
        self.epoch = 0  # completed epochs
        if len(dataset) < 4 * config.batch_size:
            raise NasgalError(
                f"{len(dataset)} images are too few for two halves of at least 2 batches of {config.batch_size}",
                hint="use more images (--subset) or a smaller --batch-size",
            )

    def stored(self) -> Genotype:
        g = load(self.out / GENOTYPE)
        if not isinstance(g, Genotype):
            raise NasgalError(f"{self.out / GENOTYPE} holds no genotype", hint="start the run over with --restart")
        return g

    def setup(self) -> None:
        from ..data import DeviceLoader, default_augment

        config, space = self.config, self.space
        self.device = use_device(config.device, config.threads)
        distributed.local_batch(config.batch_size)
        info = self.info = self.dataset.info
        # Half of the training set trains the weights, the other half α (stratified, seeded).
        w_half, a_half = self.dataset.split_validation(0.5, seed=config.seed)
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        model = Supernet(space, info.channels, info.classes, partial=config.partial_channels, recompute=config.recompute)
        self.model = model.to(self.device)
        if config.sync_bn and distributed.active():
            distributed.sync_batchnorm(self.model, self.device)
            self.model.count_bns()  # the converted BNs count their own batches
        self.arch = Architecture(space, config.partial_channels, generator=gen).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.w_opt, self.a_opt = make_optimizers(
            self.model, self.arch, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            arch_lr=config.arch_lr, arch_betas=config.arch_betas, arch_weight_decay=config.arch_weight_decay,
            device=self.device,
        )
        loader: dict[str, Any] = dict(batch_size=config.batch_size, device=self.device,
                                      channels_last=config.channels_last, rank=distributed.rank(),
                                      world=distributed.world_size())
        try:
            augment = default_augment(info.name).model_copy(update={"cutout": 0})
        except NasgalError:  # unknown or synthetic datasets: no augmentation
            augment = None
        self.train_loader = DeviceLoader(w_half, seed=config.seed, augment=augment, shuffle=True, drop_last=True,
                                         **loader)
        self.val_loader = DeviceLoader(a_half, seed=config.seed + 1, augment=augment, shuffle=True, drop_last=True,
                                       **loader)
        self.eval_loader = DeviceLoader(a_half, shuffle=False, drop_last=False, **loader)

    def parts(self) -> dict[str, tuple[Any, str]]:
        return {"model": (self.model, "supernet weights"), "arch": (self.arch, "architecture (α)"),
                "w_opt": (self.w_opt, "weight optimizer state"), "a_opt": (self.a_opt, "α optimizer state")}

    def extra(self) -> dict[str, Any]:
        return {"alpha_history": self.history}

    def load_extra(self, ck: dict[str, Any]) -> None:
        history = list(ck["alpha_history"])
        if len(history) != int(ck["epochs_done"]):
            raise ValueError("α history and epochs disagree")
        self.history = history

    def ready(self, epochs_done: int) -> None:
        # Built after a resume has loaded the optimizer states: a captured step keeps them.
        self.epoch = epochs_done
        c = self.config
        self.step = SearchStep(self.model, self.arch, self.w_opt, self.a_opt, order=c.order, grad_clip=c.grad_clip,
                               precision=c.precision, capture=c.capture, device=self.device,
                               average=distributed.average_ if distributed.active() else None)

    def steps(self) -> int:
        return min(len(self.train_loader), len(self.val_loader))

    def run_epoch(self, epoch: int, reporter: Reporter) -> dict[str, Any]:
        self.train_loader.set_epoch(epoch)
        self.val_loader.set_epoch(epoch)
        self.model.train()
        lr = self.config.lr_at(epoch)
        set_lr(self.w_opt, lr)
        for (x, y), (xv, yv) in zip(self.train_loader, self.val_loader):
            self.step(x, y, xv, yv)  # an α step, then a weight step (nasgal.search.step)
            reporter.advance()
        loss, acc, _ = self.step.read_stats()
        distributed.broadcast_buffers(self.model)  # rank 0's BN statistics for evaluation and checkpoint
        row = {"train_loss": loss, "train_acc": acc, "lr": lr, **self.evaluate()}
        self.epoch = epoch + 1  # on every process (rank 0 also counts in write_records)
        self.history.append({"epoch": epoch + 1, **self.alphas()})
        return row

    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy of the supernet under the current α (this process's
        shard under torchrun, summed over the processes)."""
        arch = self.arch.as_dict(detach=True)
        loss, acc = evaluate(self.model, self.eval_loader, self.config.precision, self.device, fold=False,
                             call=lambda net, x: net(x, arch))
        return {"val_loss": loss, "val_acc": acc}

    # Outputs ---------------------------------------------------------------------
    def weights(self, key: str) -> list[list[float]]:
        """softmax(α) of the ``key`` ("normal" or "reduce") cell now: a row per edge, a column per op."""
        return torch.softmax(getattr(self.arch, f"alpha_{key}").detach().float().cpu(), -1).tolist()

    def alphas(self) -> dict[str, list]:
        d = {"alpha_normal": _lists(self.arch.alpha_normal), "alpha_reduce": _lists(self.arch.alpha_reduce)}
        if self.config.partial_channels > 1:
            d["beta_normal"] = _lists(self.arch.beta_normal)
            d["beta_reduce"] = _lists(self.arch.beta_reduce)
        return d

    def genotype(self, alphas: dict[str, list] | None = None, epoch: int | None = None) -> Genotype:
        """The genotype derived from ``alphas`` (an α-history entry; default: the current α)
        after ``epoch`` completed epochs (default: the current count)."""
        cfg = self.config
        a = {k: v for k, v in (alphas or self.alphas()).items() if k != "epoch"}
        w_n = torch.softmax(torch.tensor(a["alpha_normal"], dtype=torch.float32), -1).tolist()
        w_r = torch.softmax(torch.tensor(a["alpha_reduce"], dtype=torch.float32), -1).tolist()
        e_n = e_r = None
        if cfg.partial_channels > 1:
            e_n = edge_normalisation(self.space, a["beta_normal"])
            e_r = edge_normalisation(self.space, a["beta_reduce"])
        facts: dict[str, Any] = {
            "dataset": cfg.dataset,
            "subset": cfg.subset,
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "epochs_completed": self.epoch if epoch is None else epoch,
            "order": cfg.order,
            "partial_channels": cfg.partial_channels,
            "batch_size": cfg.batch_size,
            "space": self.space.name,
            "ops": list(self.space.ops),
            "cells": self.space.cells,
            "channels": self.space.channels,
            "nodes": self.space.nodes,
            "stem": self.space.stem,
            "reductions": self.space.reduction_positions(),
            "image_size": list(self.info.size),
            **a,
        }
        return derive_genotype(
            self.space, w_n, w_r, name=f"search-{cfg.dataset}-s{cfg.seed}",
            normal_edges=e_n, reduce_edges=e_r, search=facts,
        )

    def write_records(self, rows: list[dict[str, Any]]) -> None:
        """Write every record of the completed epochs from the run's state, each file atomically.

        Called after each epoch *before* its checkpoint, and again on resume: a kill (or a full
        disk) between the two loses nothing, since the resumed run rewrites what the checkpoint
        knows (metrics.jsonl from its rows, any missing epoch genotype from the α history).
        """
        self.epoch = len(rows)
        g = self.last_genotype = self.genotype()
        save(g, self.out / GENOTYPE)
        for entry in self.history:
            e = int(entry["epoch"])
            path = self.out / GENOTYPES / f"epoch_{e:03d}.json"
            if e == self.epoch:
                save(g, path)
            elif not path.exists():
                save(self.genotype(entry, epoch=e), path)
        doc = {"ops": list(self.space.ops), "edges": [f"{s}->{d}" for s, d in self.space.edges()], "epochs": self.history}
        atomic_write_text(self.out / ALPHA_HISTORY, json.dumps(doc) + "\n")
        write_jsonl(self.out / self.log, rows)
        edges = [f"{src}->{dst}" for src, dst in self.space.edges()]
        for key, cell in (("normal", "normal"), ("reduce", "reduction")):
            w = self.weights(key)
            kept = set()
            if cell in g.cells:
                for ed in g.cells[cell].edges:
                    kept.add((self.space.edge_row_of(ed.src, ed.dst), self.space.ops.index(ed.op)))
            write_heatmap(
                self.out / f"alpha_{key}.png", w, self.space.ops, edges,
                title=f"softmax(alpha_{key}), epoch {self.epoch}", kept=kept,
            )

    def shown(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "genotype": summary(self.last_genotype)}

    def scalars(self, row: dict[str, Any]) -> dict[str, float]:
        """The row's figures and softmax(α) of every edge and op (``alpha_normal/0->2/sep_conv_3x3``)."""
        out = numbers(row)
        edges = [f"{src}->{dst}" for src, dst in self.space.edges()]
        for key in ("normal", "reduce"):
            w = self.weights(key)
            for edge, weights in zip(edges, w):
                out.update({f"alpha_{key}/{edge}/{op}": v for op, v in zip(self.space.ops, weights)})
        return out

    def finish(self, rows: list[dict[str, Any]], elapsed: float, reporter: Reporter) -> Genotype:
        g = self.genotype()
        last = rows[-1] if rows else {}
        results = {
            "space": self.space.name,
            "dataset": self.config.dataset,
            "genotype": summary(g),
            "epochs": self.config.epochs,
            "final_val_accuracy": last.get("val_acc"),
            "final_train_accuracy": last.get("train_acc"),
            "train_images": len(self.dataset),
            "wall_time_s": elapsed,
            "device": str(self.device),
        }
        if distributed.is_main():  # rank 0 writes
            write_json(self.out / ENV, environment(self.device, self.config.seed))
            write_json(self.out / RESULTS, results)
        return g


def search(
    space: SearchSpace,
    dataset,
    config: SearchConfig,
    out_dir: str | os.PathLike,
    *,
    restart: bool = False,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
) -> Genotype | None:
    """Run a DARTS search of ``space`` on ``dataset`` (a :class:`nasgal.data.Dataset`, training
    split) and return the derived genotype; outputs go to ``out_dir`` (see the module docstring).

    ``reporter`` is told of every step (``advance``) and every epoch (``end``: the metrics of
    ``metrics.jsonl`` plus ``genotype``, the derived genotype in one line). ``stop_after`` ends
    the call after that many completed epochs in total, as an interruption would, returning
    ``None``; run again to continue.
    """
    result = run_stage(SearchStage(space, dataset, config, Path(out_dir)), reporter=reporter, restart=restart,
                       stop_after=stop_after)
    return None if isinstance(result, Interrupted) else result
