"""A DARTS search run: data halves, the bilevel loop, per-epoch outputs, checkpoint and resume.

``search(space, dataset, config, out_dir)`` returns the derived :class:`~nasgal.spec.Genotype`
and leaves in ``out_dir``::

    genotype.json              the latest derived genotype (provenance: dataset, seed, epochs, order, α)
    genotypes/epoch_XXX.json   the genotype derived after each epoch (1-indexed)
    alpha_history.json         raw α (and β) after each epoch
    metrics.jsonl              one line per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, epoch_time_s
    alpha_normal.png, alpha_reduce.png   heat maps of the softmaxed α
    checkpoint.pt              weights, α, optimizer states, RNG states, epoch

Running again into the same ``out_dir`` continues after the last completed epoch (the
config must match); ``restart=True`` starts over.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, NasgalError
from ..options import Capture
from ..progress import Reporter
from ..spec.genotype import Genotype
from ..spec.io import atomic_write_text, problems_of, save
from ..train.rundir import RESTART_HINT, load_state, resolve_device, run_checkpoint, run_lock, save_checkpoint, write_jsonl
from ..train.step import cosine_lr, set_lr
from .derive import derive_genotype, edge_normalisation, summary
from .heatmap import write_heatmap
from .space import SearchSpace
from .step import SearchStep, make_optimizers
from .supernet import Architecture, Supernet

CHECKPOINT_FORMAT = 3  # 3: the epochs' metric rows travel in the checkpoint; 2: DeviceSGD/DeviceAdam states


class SearchConfig(BaseModel):
    """Hyperparameters of a search; the defaults are DARTS's (Liu et al. 2019)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    epochs: int = Field(50, ge=1, le=100_000, description="Search epochs.")
    order: Literal["first", "second"] = Field("first", description="First- or second-order α gradient.")
    partial_channels: int = Field(1, ge=1, le=1024, description="PC-DARTS K (1: off).")
    batch_size: int = Field(64, ge=1, le=1_000_000, description="Batch size of the weight and the α steps.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of weights, α, data halves and order.")
    lr: float = Field(0.025, gt=0, description="Weights: SGD, cosine from lr to lr_min over the epochs.")
    lr_min: float = Field(0.001, ge=0, description="Final learning rate of the weights.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of the weights.")
    weight_decay: float = Field(3e-4, ge=0, description="Weight decay of the weights.")
    grad_clip: float = Field(5.0, gt=0, description="Gradient-norm clip of the weights.")
    arch_lr: float = Field(3e-4, ge=0, description="α: Adam learning rate.")
    arch_betas: tuple[float, float] = Field((0.5, 0.999), description="α: Adam betas.")
    arch_weight_decay: float = Field(1e-3, ge=0, description="α: weight decay.")
    bf16: bool = Field(False, description="bf16 autocast.")
    channels_last: bool = Field(False, description="channels_last memory format.")
    capture: Capture = Field("none", description="Graph capture of the search step.")
    recompute: bool = Field(False, description="Recompute depthwise outputs in backward: less memory, same results.")
    device: str = Field("cpu", description="Device: auto, cpu, cuda, cuda:N.")
    dataset: str = Field("unknown", description="Dataset name, recorded in the provenance.")
    subset: int | None = Field(None, ge=1, description="Training images used, recorded in the provenance.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form facts for the provenance.")

    @field_validator("arch_betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"Adam betas must lie in [0, 1), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _lr_min_below_lr(self) -> "SearchConfig":
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in ``epoch`` (0-indexed): cosine from ``lr`` to ``lr_min``."""
        return cosine_lr(self.lr, self.lr_min, epoch, self.epochs)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        d = self.model_dump(exclude={"device", "capture", "recompute", "extra"})
        d["arch_betas"] = list(d["arch_betas"])
        return d


def search_config(**values: Any) -> SearchConfig:
    """A :class:`SearchConfig` from ``values`` (those not ``None``); bad values are a
    :class:`~nasgal.errors.SpecError` listing each problem."""
    try:
        return SearchConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise ConfigError(problems_of(err), source="search settings") from None


def _lists(t: torch.Tensor) -> list:
    return t.detach().float().cpu().tolist()


class _Run:
    """The state of one search run (module, α, optimizers) and its outputs."""

    def __init__(self, space: SearchSpace, dataset, config: SearchConfig, out_dir: Path, restart: bool):
        from ..data import DeviceLoader

        self.space, self.config, self.out = space, config, out_dir
        self.device = resolve_device(config.device)
        info = dataset.info
        self.info = info
        if len(dataset) < 4 * config.batch_size:
            raise NasgalError(
                f"{len(dataset)} images are too few for two halves of at least 2 batches of {config.batch_size}",
                hint="use more images (--subset) or a smaller --batch-size",
            )
        # Half of the training set trains the weights, the other half α (stratified, seeded).
        w_half, a_half = dataset.split_validation(0.5, seed=config.seed)
        self.w_half, self.a_half = w_half, a_half
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        model = Supernet(space, info.channels, info.classes, partial=config.partial_channels, recompute=config.recompute)
        arch = Architecture(space, config.partial_channels, generator=gen)
        self.model = model.to(self.device)
        self.arch = arch.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.w_opt, self.a_opt = make_optimizers(
            self.model, self.arch, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            arch_lr=config.arch_lr, arch_betas=config.arch_betas, arch_weight_decay=config.arch_weight_decay,
            device=self.device,
        )
        loader = dict(
            batch_size=config.batch_size, shuffle=True, drop_last=True, device=self.device,
            channels_last=config.channels_last,
        )
        from ..data import default_augment

        try:
            augment = default_augment(info.name).model_copy(update={"cutout": 0})
        except Exception:  # unknown or synthetic datasets: no augmentation
            augment = None
        self.train_loader = DeviceLoader(w_half, seed=config.seed, augment=augment, **loader)
        self.val_loader = DeviceLoader(a_half, seed=config.seed + 1, augment=augment, **loader)
        self.eval_loader = DeviceLoader(a_half, shuffle=False, drop_last=False, **{k: v for k, v in loader.items() if k not in ("shuffle", "drop_last")})
        self.history: list[dict[str, Any]] = []  # α (and β) after each completed epoch
        self.metrics: list[dict[str, Any]] = []  # the metrics.jsonl row of each completed epoch
        self.epoch = 0  # completed epochs
        self.ckpt_path = out_dir / "checkpoint.pt"
        if restart:
            self._forget_records()
        elif self.ckpt_path.exists():
            self._load_checkpoint()
            self.write_records()  # whatever a kill or a full disk lost after the checkpoint
        # Built after a resume has loaded the optimizer states: a captured step keeps them.
        self.step = SearchStep(
            self.model, self.arch, self.w_opt, self.a_opt, order=config.order, grad_clip=config.grad_clip,
            bf16=config.bf16, capture=config.capture, device=self.device,
        )

    # Checkpoints ----------------------------------------------------------------
    def _load_checkpoint(self) -> None:
        path = self.ckpt_path
        keys = ("format", "epoch", "config", "space", "model", "arch", "w_opt", "a_opt", "rng_cpu", "alpha_history",
                "metrics")
        ck = run_checkpoint(path, "search", keys[:1], map_location=self.device)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise NasgalError(
                f"{path}: checkpoint format {ck.get('format')!r}, this nasgal reads format {CHECKPOINT_FORMAT}",
                hint=RESTART_HINT,
            )
        ck = run_checkpoint(path, "search", keys, map_location=self.device)
        try:
            theirs = json.loads(ck["config"])
            space_theirs = json.loads(ck["space"])
            history, metrics, epoch = list(ck["alpha_history"]), list(ck["metrics"]), int(ck["epoch"])
            if not isinstance(theirs, dict) or len(history) != epoch or len(metrics) != epoch:
                raise ValueError("inconsistent records")
        except (TypeError, ValueError):
            raise NasgalError(f"{path}: its run records are unreadable or inconsistent", hint=RESTART_HINT) from None
        mine = json.loads(json.dumps(self.config.identity()))
        space_mine = json.loads(self.space.model_dump_json(by_alias=True))
        diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        if space_theirs != space_mine:
            diff.append("search space")
        if diff:
            raise NasgalError(
                f"{self.out} holds a search run with different settings ({', '.join(diff)}); cannot resume it",
                hint="use another --out directory, or --restart to start this one over",
            )
        load_state(self.model, ck["model"], path, "supernet weights")
        load_state(self.arch, ck["arch"], path, "architecture (α)")
        load_state(self.w_opt, ck["w_opt"], path, "weight optimizer state")
        load_state(self.a_opt, ck["a_opt"], path, "α optimizer state")
        try:
            torch.set_rng_state(ck["rng_cpu"].cpu())
            if self.device.type == "cuda" and "rng_cuda" in ck:
                torch.cuda.set_rng_state(ck["rng_cuda"].cpu(), self.device)
        except (AttributeError, RuntimeError, TypeError):
            raise NasgalError(f"{path}: its random-number state is unreadable", hint=RESTART_HINT) from None
        self.history, self.metrics, self.epoch = history, metrics, epoch

    def _save_checkpoint(self) -> None:
        ck = {
            "stage": "search",
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "config": json.dumps(self.config.identity()),
            "space": self.space.model_dump_json(by_alias=True),
            "model": self.model.state_dict(),
            "arch": self.arch.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "alpha_history": self.history,
            "metrics": self.metrics,
        }
        if self.device.type == "cuda":
            ck["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(self.ckpt_path, ck)

    def _forget_records(self) -> None:
        """--restart: remove the old run's checkpoint and records, so none of them outlives it."""
        out = self.out
        for p in [self.ckpt_path, out / "metrics.jsonl", out / "alpha_history.json", out / "genotype.json",
                  *out.glob("alpha_*.png"), *(out / "genotypes").glob("epoch_*.json")]:
            p.unlink(missing_ok=True)

    # The loop --------------------------------------------------------------------
    def train_epoch(self, reporter: Reporter) -> dict[str, float]:
        e = self.epoch  # 0-indexed epoch being run
        self.train_loader.set_epoch(e)
        self.val_loader.set_epoch(e)
        self.model.train()
        lr = self.config.lr_at(e)
        set_lr(self.w_opt, lr)
        for (x, y), (xv, yv) in zip(self.train_loader, self.val_loader):
            self.step(x, y, xv, yv)  # an α step, then a weight step (nasgal.search.step)
            reporter.advance()
        loss, acc, _ = self.step.read_stats()
        return {"train_loss": loss, "train_acc": acc, "lr": lr}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        arch = self.arch.as_dict(detach=True)
        for x, y in self.eval_loader:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
                logits = self.model(x, arch).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            seen += y.shape[0]
        self.model.train()
        return {"val_loss": loss_sum.item() / seen, "val_acc": correct.item() / seen}

    # Outputs ---------------------------------------------------------------------
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

    def write_records(self) -> Genotype:
        """Write every record of the completed epochs from the run's state, each file atomically.

        Called after each epoch *before* its checkpoint, and again on resume: a kill (or a full
        disk) between the two loses nothing, since the resumed run rewrites what the checkpoint
        knows (metrics.jsonl from its rows, any missing epoch genotype from the α history).
        """
        g = self.genotype()
        save(g, self.out / "genotype.json")
        for entry in self.history:
            e = int(entry["epoch"])
            path = self.out / "genotypes" / f"epoch_{e:03d}.json"
            if e == self.epoch:
                save(g, path)
            elif not path.exists():
                save(self.genotype(entry, epoch=e), path)
        self._write_history()
        write_jsonl(self.out / "metrics.jsonl", self.metrics)
        edges = [f"{src}->{dst}" for src, dst in self.space.edges()]
        for key, cell in (("normal", "normal"), ("reduce", "reduction")):
            w = torch.softmax(getattr(self.arch, f"alpha_{key}").detach().float().cpu(), -1).tolist()
            kept = set()
            if cell in g.cells:
                for ed in g.cells[cell].edges:
                    s = {"c_{k-2}": 0, "c_{k-1}": 1}.get(ed.src, None)
                    s = s if s is not None else 2 + int(ed.src)
                    kept.add((self.space.edge_row(s, ed.dst), self.space.ops.index(ed.op)))
            write_heatmap(
                self.out / f"alpha_{key}.png", w, self.space.ops, edges,
                title=f"softmax(alpha_{key}), epoch {self.epoch}", kept=kept,
            )
        return g

    def _write_history(self) -> None:
        doc = {"ops": list(self.space.ops), "edges": [f"{s}->{d}" for s, d in self.space.edges()], "epochs": self.history}
        atomic_write_text(self.out / "alpha_history.json", json.dumps(doc) + "\n")


def search(
    space: SearchSpace,
    dataset,
    config: SearchConfig,
    out_dir: str | os.PathLike,
    *,
    restart: bool = False,
    reporter: Reporter | None = None,
) -> Genotype:
    """Run a DARTS search of ``space`` on ``dataset`` (a :class:`nasgal.data.Dataset`, training
    split) and return the derived genotype; outputs go to ``out_dir`` (see the module docstring).

    ``reporter`` is told of every step (``advance``) and every epoch (``end``: the metrics of
    ``metrics.jsonl`` plus ``genotype``, the derived genotype in one line).
    """
    out = Path(out_dir)
    with run_lock(out):
        return _search(space, dataset, config, out, restart, reporter or Reporter())


def _search(space: SearchSpace, dataset, config: SearchConfig, out: Path, restart: bool, reporter: Reporter) -> Genotype:
    run = _Run(space, dataset, config, out, restart)
    steps = min(len(run.train_loader), len(run.val_loader))
    try:
        if run.epoch >= config.epochs:
            reporter.message(f"{out} is already complete ({config.epochs} epochs); nothing to do")
            return run.write_records()
        if run.epoch > 0:
            reporter.message(f"resuming {out} after epoch {run.epoch}/{config.epochs}")
        g = None
        while run.epoch < config.epochs:
            t0 = time.perf_counter()
            reporter.start("search", run.epoch, config.epochs, steps)
            m = run.train_epoch(reporter)
            m.update(run.evaluate())
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            metrics = {"epoch": run.epoch + 1, **m, "epoch_time_s": round(time.perf_counter() - t0, 3)}
            for k in ("train_loss", "val_loss"):
                if not math.isfinite(metrics[k]):
                    raise NasgalError(
                        f"epoch {run.epoch + 1}: {k} is {metrics[k]}; the search diverged "
                        f"(the checkpoint of epoch {run.epoch} is kept)",
                        hint="search again into another --out with other settings (e.g. a smaller batch or lr)",
                    )
            run.epoch += 1
            run.history.append({"epoch": run.epoch, **run.alphas()})
            run.metrics.append(metrics)
            g = run.write_records()  # records first: a checkpoint never runs ahead of them
            run._save_checkpoint()
            reporter.end({**metrics, "genotype": summary(g)})
        return g
    finally:
        reporter.close()
