"""Train a network spec on a dataset into a run directory, resumably.

Run directory layout:
``network.json`` (the spec), ``config.json`` (resolved config, dataset, spec hash),
``checkpoint.pt`` (after every epoch), ``metrics.jsonl`` (one line per epoch),
``weights.pt`` (final state dict), ``metrics.json`` (final results), ``env.json``.
An interrupted run continues from its last completed epoch when started again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..compiler import compile_network
from ..data import Augment, DeviceLoader, default_augment
from ..engine import distributed
from ..engine.data import DataSplits, prepare_splits
from ..engine.loop import Interrupted, Stage, run_stage
from ..engine.optim import cosine_lr, set_lr, sgd
from ..engine.rundir import environment, read_json_object, save_checkpoint, use_device, write_json
from ..runfiles import ENV, RESULTS, WEIGHTS
from ..engine.step import evaluate
from ..engine.weights import fitted_model, load_weights
from ..progress import Reporter
from ..spec import Network, network_cost, spec_hash
from .config import TrainConfig
from .step import TrainStep


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    return cosine_lr(cfg.lr, cfg.lr_min, epoch, cfg.epochs)


def prepare_data(network: Network, dataset: str, data_dir: str | None, cfg: TrainConfig,
                 download: bool = True) -> DataSplits:
    """The splits a training run with ``cfg`` uses (:func:`nasgal.engine.data.prepare_splits`)."""
    return prepare_splits(network, dataset, data_dir, subset=cfg.subset, val_fraction=cfg.val_fraction,
                          seed=cfg.seed, download=download)


def train(
    network: Network,
    *,
    dataset: str,
    config: TrainConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    inherit: str | Path | None = None,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    restart: bool = False,
    download: bool = True,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Train ``network`` and return the final results (also in ``out_dir/metrics.json``).

    ``init_state`` starts from these weights instead of a fresh initialisation; ``inherit``
    starts from the surviving weights of a training run or checkpoint of a larger network
    (weight inheritance for pruned networks). ``stop_after`` ends the call after that many
    completed epochs in total, as an interruption would (for tests and time-boxed runs),
    returning ``{"interrupted_after_epoch": n}``; run again to continue. ``restart`` removes an
    old run in ``out_dir`` first. ``out_dir`` is held for this process while it runs
    (:func:`~nasgal.engine.rundir.run_lock`).
    """
    if inherit is not None:
        from ..engine.inherit import inherit_weights

        init_state = inherit_weights(network, load_weights(inherit))
    stage = TrainStage(network, dataset, config, Path(out_dir), data_dir, init_state, download, data)
    result = run_stage(stage, reporter=reporter, restart=restart, stop_after=stop_after)
    if isinstance(result, Interrupted):
        return {"interrupted_after_epoch": result.epochs_done}
    return result


class TrainStage(Stage[dict[str, Any]]):
    """``nasgal train`` on the engine: SGD on a network spec, evaluated on a held-out split."""

    kind, what = "train", "training run"
    finite = {"train_loss": "the training loss"}
    diverged_hint = "train again with --restart (or into another --out) with a lower --lr, or with --grad-clip"
    records = (WEIGHTS, ENV)

    def __init__(self, network: Network, dataset: str, cfg: TrainConfig, out: Path, data_dir: str | None,
                 init_state: dict[str, torch.Tensor] | None, download: bool, data: DataSplits | None) -> None:
        self.network, self.dataset, self.cfg, self.out = network, dataset, cfg, out
        self.data_dir, self.init_state, self.download, self.data = data_dir, init_state, download, data
        self.epochs, self.spec, self.epoch_seed, self.ignore = cfg.epochs, network, cfg.seed, cfg.RUNTIME
        self.tensorboard = cfg.tensorboard
        self.record = {"dataset": dataset, "network": network.name, "network_hash": spec_hash(network),
                       "config": cfg.model_dump()}
        self.identity = {"network_hash": "network", "dataset": "dataset"}

    def stored(self) -> dict[str, Any]:
        return read_json_object(self.out / RESULTS, hint=f"remove {self.out / RESULTS} to finish the run again")

    def setup(self) -> None:
        cfg, network = self.cfg, self.network
        self.device = device = use_device(cfg.device, cfg.threads)
        self.data = self.data or prepare_data(network, self.dataset, self.data_dir, cfg, self.download)
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else True
        distributed.local_batch(cfg.batch_size)
        distributed.check_images(len(self.data.train))
        aug = default_augment(self.dataset)
        aug = Augment(
            random_crop_padding=aug.random_crop_padding if cfg.crop_padding is None else cfg.crop_padding,
            hflip=aug.hflip if cfg.hflip is None else cfg.hflip,
            cutout=cfg.cutout,
        )
        self.loader = DeviceLoader(
            self.data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True, device=device,
            augment=aug, seed=cfg.seed, channels_last=self.channels_last,
            rank=distributed.rank(), world=distributed.world_size(),
        )
        self.val_loader = self.eval_loader(self.data.val) if self.data.val is not None else None
        torch.manual_seed(cfg.seed)
        if self.init_state is None:
            self.model = model = compile_network(network)
        else:
            self.model = model = fitted_model(network, self.init_state, what="initial weights",
                                              hint="pass weights of this network, or --inherit from its teacher")
        model.to(device)
        if cfg.sync_bn:
            distributed.sync_batchnorm(model, device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.drop_max = network.drop_path if cfg.drop_path is None else cfg.drop_path
        model.set_drop_path(0.0, enabled=self.drop_max > 0)
        self.optimizer = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay, device)

    def eval_loader(self, ds) -> DeviceLoader:
        return DeviceLoader(ds, batch_size=self.cfg.eval_batch_size, shuffle=False, drop_last=False,
                            device=self.device, channels_last=self.channels_last,
                            rank=distributed.rank(), world=distributed.world_size())

    def parts(self) -> dict[str, tuple[Any, str]]:
        # The optimizer's lr tensor stays on the device (loaded with map_location).
        return {"model": (self.model, "model"), "optimizer": (self.optimizer, "optimizer state")}

    def ready(self, epochs_done: int) -> None:
        cfg = self.cfg
        aux_weight = cfg.aux_weight if self.network.auxiliary is not None else 0.0
        # Under torchrun the step's forward runs in DistributedDataParallel (the gradients are
        # averaged in the backward pass); an auxiliary head without weight gets no gradient.
        forward = distributed.data_parallel(
            self.model, self.device, find_unused=self.network.auxiliary is not None and aux_weight == 0,
            broadcast_buffers=not cfg.sync_bn)
        self.step = TrainStep(self.model, self.optimizer, aux_weight=aux_weight, grad_clip=cfg.grad_clip,
                              precision=cfg.precision, capture=cfg.capture, device=self.device, forward=forward)

    def steps(self) -> int:
        return len(self.loader)

    def run_epoch(self, epoch: int, reporter: Reporter) -> dict[str, Any]:
        cfg, t0 = self.cfg, time.perf_counter()
        self.loader.set_epoch(epoch)
        lr = lr_at(cfg, epoch)
        set_lr(self.optimizer, lr)
        self.model.set_drop_path(self.drop_max * epoch / cfg.epochs)
        self.model.train()
        for x, y in self.loader:
            self.step(x, y)
            reporter.advance()
        train_loss, train_acc, seen = self.step.read_stats()
        train_time = time.perf_counter() - t0
        distributed.broadcast_buffers(self.model)  # rank 0's BN statistics for evaluation and checkpoint
        row: dict[str, Any] = {"train_loss": train_loss, "train_acc": train_acc}
        if self.val_loader is not None and math.isfinite(train_loss):
            row["val_loss"], row["val_acc"] = evaluate(self.model, self.val_loader, cfg.precision, self.device)
        row.update(lr=lr, drop_path=self.drop_max * epoch / cfg.epochs, images_per_s=seen / train_time)
        return row

    def finish(self, rows: list[dict[str, Any]], elapsed: float, reporter: Reporter) -> dict[str, Any]:
        cfg, network, device, out = self.cfg, self.network, self.device, self.out
        test_loss, test_acc = evaluate(self.model, self.eval_loader(self.data.test), cfg.precision, device)
        cost = network_cost(network)
        has_val = self.val_loader is not None
        best = max((r.get("val_acc", float("nan")) for r in rows), default=None) if has_val else None
        results = {
            "network": network.name,
            "network_hash": spec_hash(network),
            "dataset": self.dataset,
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "final_val_accuracy": rows[-1].get("val_acc") if rows else None,
            "best_val_accuracy": best,
            "final_train_accuracy": rows[-1]["train_acc"] if rows else None,
            "params": cost.params,
            "macs": cost.macs,
            "epochs": cfg.epochs,
            "train_images": len(self.data.train),
            "wall_time_s": elapsed,
            "images_per_s": sum(r["images_per_s"] for r in rows[-3:]) / max(1, len(rows[-3:])),
            "device": str(device),
        }
        if distributed.active():
            results["processes"] = distributed.world_size()
        if not distributed.is_main():  # rank 0 writes
            return results
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_checkpoint(out / WEIGHTS, weights)
        write_json(out / ENV, environment(device, cfg.seed))
        write_json(out / RESULTS, results)
        return results


