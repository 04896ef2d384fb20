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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..errors import NasgalError
from ..progress import Reporter
from ..spec.genotype import Genotype
from ..spec.io import atomic_write_text, save
from ..train.rundir import resolve_device, save_checkpoint
from ..train.step import CAPTURE_MODES, cosine_lr, set_lr
from .derive import derive_genotype, edge_normalisation, summary
from .heatmap import write_heatmap
from .space import SearchSpace
from .step import SearchStep, make_optimizers
from .supernet import Architecture, Supernet

CHECKPOINT_FORMAT = 2  # 2: DeviceSGD/DeviceAdam states, the lr follows the epoch (no scheduler state)


@dataclass
class SearchConfig:
    """Hyperparameters of a search; the defaults are DARTS's (DESIGN.md §5)."""

    epochs: int = 50
    order: Literal["first", "second"] = "first"
    partial_channels: int = 1  # PC-DARTS K (1: off)
    batch_size: int = 64
    seed: int = 0
    lr: float = 0.025  # weights: SGD, cosine to lr_min over the epochs
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4  # α: Adam
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    bf16: bool = False
    channels_last: bool = False
    capture: str = "none"  # none | compile | cuda-graph | compile+cuda-graph (nasgal.train.step.CAPTURE_MODES)
    recompute: bool = False  # recompute depthwise outputs in backward: less memory, same results
    device: str = "cpu"
    dataset: str = "unknown"  # recorded in the provenance
    subset: int | None = None  # recorded in the provenance
    extra: dict[str, Any] = field(default_factory=dict)

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in ``epoch`` (0-indexed): cosine from ``lr`` to ``lr_min``."""
        return cosine_lr(self.lr, self.lr_min, epoch, self.epochs)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        d = asdict(self)
        for k in ("device", "capture", "recompute", "extra"):
            d.pop(k)
        d["arch_betas"] = list(d["arch_betas"])
        return d


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
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.ckpt_path = out_dir / "checkpoint.pt"
        if self.ckpt_path.exists() and not restart:
            self._load_checkpoint()
        elif restart:
            for p in [out_dir / "metrics.jsonl", out_dir / "alpha_history.json"]:
                p.unlink(missing_ok=True)
        # Built after a resume has loaded the optimizer states: a captured step keeps them.
        self.step = SearchStep(
            self.model, self.arch, self.w_opt, self.a_opt, order=config.order, grad_clip=config.grad_clip,
            bf16=config.bf16, capture=config.capture, device=self.device,
        )

    # Checkpoints ----------------------------------------------------------------
    def _load_checkpoint(self) -> None:
        ck = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise NasgalError(
                f"{self.ckpt_path}: checkpoint format {ck.get('format')!r}, this nasgal reads format {CHECKPOINT_FORMAT}",
                hint="start the run over with --restart, or use another --out directory",
            )
        theirs = json.loads(ck["config"])
        mine = json.loads(json.dumps(self.config.identity()))
        space_theirs = json.loads(ck["space"])
        space_mine = json.loads(self.space.model_dump_json(by_alias=True))
        diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        if space_theirs != space_mine:
            diff.append("search space")
        if diff:
            raise NasgalError(
                f"{self.out} holds a search run with different settings ({', '.join(diff)}); cannot resume it",
                hint="use another --out directory, or --restart to start this one over",
            )
        self.model.load_state_dict(ck["model"])
        self.arch.load_state_dict(ck["arch"])
        self.w_opt.load_state_dict(ck["w_opt"])
        self.a_opt.load_state_dict(ck["a_opt"])
        torch.set_rng_state(ck["rng_cpu"].cpu())
        if self.device.type == "cuda" and "rng_cuda" in ck:
            torch.cuda.set_rng_state(ck["rng_cuda"].cpu(), self.device)
        self.history = ck["alpha_history"]
        self.epoch = int(ck["epoch"])
        # Forget metric lines of epochs that never made it into the checkpoint.
        mpath = self.out / "metrics.jsonl"
        if mpath.exists():
            lines = [ln for ln in mpath.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= self.epoch]
            atomic_write_text(mpath, "".join(ln + "\n" for ln in keep))

    def _save_checkpoint(self) -> None:
        ck = {
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
        }
        if self.device.type == "cuda":
            ck["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(self.ckpt_path, ck)

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

    def genotype(self) -> Genotype:
        cfg = self.config
        a = self.alphas()
        w_n = torch.softmax(self.arch.alpha_normal.detach().float().cpu(), -1).tolist()
        w_r = torch.softmax(self.arch.alpha_reduce.detach().float().cpu(), -1).tolist()
        e_n = e_r = None
        if cfg.partial_channels > 1:
            e_n = edge_normalisation(self.space, a["beta_normal"])
            e_r = edge_normalisation(self.space, a["beta_reduce"])
        facts: dict[str, Any] = {
            "dataset": cfg.dataset,
            "subset": cfg.subset,
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "epochs_completed": self.epoch,
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

    def write_outputs(self, metrics: dict[str, Any] | None) -> Genotype:
        g = self.genotype()
        save(g, self.out / "genotype.json")
        save(g, self.out / "genotypes" / f"epoch_{self.epoch:03d}.json")
        self._write_history()
        if metrics is not None:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(metrics) + "\n")
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
    if config.order not in ("first", "second"):
        raise NasgalError(f"order must be 'first' or 'second', got {config.order!r}")
    if config.partial_channels < 1:
        raise NasgalError(f"partial channels must be at least 1, got {config.partial_channels}")
    if config.epochs < 1:
        raise NasgalError(f"epochs must be at least 1, got {config.epochs}")
    if config.capture not in CAPTURE_MODES:
        raise NasgalError(f"capture must be one of {', '.join(CAPTURE_MODES)}, got {config.capture!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reporter = reporter or Reporter()
    run = _Run(space, dataset, config, out, restart)
    steps = min(len(run.train_loader), len(run.val_loader))
    try:
        if run.epoch >= config.epochs:
            reporter.message(f"{out} is already complete ({config.epochs} epochs); nothing to do")
            return run.write_outputs(None)
        if run.epoch > 0:
            reporter.message(f"resuming {out} after epoch {run.epoch}/{config.epochs}")
        g = None
        while run.epoch < config.epochs:
            t0 = time.perf_counter()
            reporter.start("search", run.epoch, config.epochs, steps)
            m = run.train_epoch(reporter)
            m.update(run.evaluate())
            run.epoch += 1
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            metrics = {"epoch": run.epoch, **m, "epoch_time_s": round(time.perf_counter() - t0, 3)}
            for k in ("train_loss", "val_loss"):
                if not math.isfinite(metrics[k]):
                    raise NasgalError(f"epoch {run.epoch}: {k} is {metrics[k]}; the search diverged")
            run.history.append({"epoch": run.epoch, **run.alphas()})
            run._save_checkpoint()
            g = run.write_outputs(metrics)
            reporter.end({**metrics, "genotype": summary(g)})
        return g
    finally:
        reporter.close()
