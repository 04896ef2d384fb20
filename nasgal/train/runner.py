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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..compiler import compile_network
from ..data import Augment, DeviceLoader, check_compatible, default_augment, load_dataset
from ..errors import NasgalError
from ..progress import Reporter
from ..spec import Network, network_cost, spec_hash
from .config import TrainConfig
from .rundir import (
    environment,
    load_checkpoint,
    load_state,
    open_run,
    read_json_object,
    resolve_device,
    run_checkpoint,
    run_lock,
    run_record,
    save_checkpoint,
    start_run,
    write_json,
    write_jsonl,
)
from .step import TrainStep, cosine_lr, evaluate, make_optimizer, set_lr

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    return cosine_lr(cfg.lr, cfg.lr_min, epoch, cfg.epochs)


@dataclass
class DataSplits:
    train: Any
    val: Any | None
    test: Any
    info: Any


def prepare_data(
    network: Network, dataset: str, data_dir: str | None, cfg: TrainConfig, download: bool = True
) -> DataSplits:
    """Load train/val/test splits that fit ``network``; validation comes from the training set."""
    ch, size = network.input.channels, tuple(network.input.size)
    name = dataset
    folder = name.startswith("image_folder")
    kwargs: dict[str, Any] = {"download": download}
    if folder:
        kwargs.update(image_size=size, channels=ch, split_seed=cfg.seed)
    train = load_dataset(name, data_dir, split="train", **kwargs)
    check_compatible(train.info, ch, size, network.classes)
    test = load_dataset(name, data_dir, split="test", **kwargs)
    if cfg.subset is not None and cfg.subset < len(train):
        train = train.subset(cfg.subset, seed=cfg.seed)
    val = None
    if cfg.val_fraction > 0:
        train, val = train.split_validation(cfg.val_fraction, seed=cfg.seed)
    return DataSplits(train, val, test, train.info)


def _config_record(network: Network, dataset: str, cfg: TrainConfig) -> dict[str, Any]:
    return {"dataset": dataset, "network": network.name, "network_hash": spec_hash(network), "config": cfg.model_dump()}


def train(
    network: Network,
    *,
    dataset: str,
    config: TrainConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    download: bool = True,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Train ``network`` and return the final results (also in ``out_dir/metrics.json``).

    ``init_state`` starts from these weights instead of a fresh initialisation (weight
    inheritance). ``stop_after`` ends the call after that many completed epochs in total,
    as an interruption would (for tests and time-boxed runs); run again to continue.
    ``out_dir`` is held for this process while it runs (:func:`~nasgal.train.rundir.run_lock`).
    """
    out = Path(out_dir)
    with run_lock(out):
        return _train(network, dataset, config, out, data_dir, init_state, reporter or Reporter(), stop_after,
                      download, data)


def _train(network: Network, dataset: str, cfg: TrainConfig, out: Path, data_dir: str | None,
           init_state: dict[str, torch.Tensor] | None, reporter: Reporter, stop_after: int | None,
           download: bool, data: DataSplits | None) -> dict[str, Any]:
    record = _config_record(network, dataset, cfg)
    identity = {"network_hash": "network", "dataset": "dataset"}
    if open_run(out, record, identity, reporter=reporter):
        return read_json_object(out / "metrics.json", hint=f"remove {out / 'metrics.json'} to finish the run again")

    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = data or prepare_data(network, dataset, data_dir, cfg, download)
    channels_last = cfg.channels_last if cfg.channels_last is not None else True
    aug = default_augment(dataset)
    aug = Augment(
        random_crop_padding=aug.random_crop_padding if cfg.crop_padding is None else cfg.crop_padding,
        hflip=aug.hflip if cfg.hflip is None else cfg.hflip,
        cutout=cfg.cutout,
    )
    loader = DeviceLoader(
        data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True, device=device,
        augment=aug, seed=cfg.seed, channels_last=channels_last,
    )
    def eval_loader(ds):
        return DeviceLoader(ds, batch_size=cfg.eval_batch_size, shuffle=False, drop_last=False,
                            device=device, channels_last=channels_last)

    val_loader = eval_loader(data.val) if data.val is not None else None

    torch.manual_seed(cfg.seed)
    model = compile_network(network)
    if init_state is not None:
        try:
            missing, unexpected = model.load_state_dict(init_state, strict=False)
        except RuntimeError as e:  # tensors of another shape
            raise NasgalError(f"initial weights do not fit {network.name}: {str(e).strip().splitlines()[-1].strip()}") from None
        if missing or unexpected:
            raise NasgalError(
                f"initial weights do not fit {network.name}: {len(missing)} missing, {len(unexpected)} unexpected "
                f"(e.g. {(missing or unexpected)[0]})"
            )
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    drop_max = network.drop_path if cfg.drop_path is None else cfg.drop_path
    model.set_drop_path(0.0, enabled=drop_max > 0)
    aux_weight = cfg.aux_weight if network.auxiliary is not None else 0.0
    optimizer = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, device)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    elapsed = 0.0
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        ckpt = run_checkpoint(ckpt_path, "train", ("epoch", "model", "optimizer", "history"), record, identity,
                              what="training run", map_location=device)
        load_state(model, ckpt["model"], ckpt_path, "model")
        load_state(optimizer, ckpt["optimizer"], ckpt_path, "optimizer state")  # keeps the lr tensor on the device
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt["history"])
        elapsed = float(ckpt.get("elapsed", 0.0))
        reporter.message(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")

    step = TrainStep(model, optimizer, aux_weight=aux_weight, grad_clip=cfg.grad_clip,
                     precision=cfg.precision, capture=cfg.capture, device=device)
    cost = network_cost(network)
    start_run(out, network, record)  # the run has really started: now it may write its record
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if stop_after is not None and epoch >= stop_after:
                return {"interrupted_after_epoch": epoch}
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # drop-path stream of this epoch
            loader.set_epoch(epoch)
            lr = lr_at(cfg, epoch)
            set_lr(optimizer, lr)
            model.set_drop_path(drop_max * epoch / cfg.epochs)
            model.train()
            reporter.start("train", epoch, cfg.epochs, len(loader))
            for x, y in loader:
                step(x, y)
                reporter.advance()
            train_loss, train_acc, seen = step.read_stats()
            if not math.isfinite(train_loss):
                raise NasgalError(
                    f"epoch {epoch + 1}: the training loss is {train_loss}; training diverged "
                    f"(the checkpoint of epoch {epoch} is kept)",
                    hint="train again into another --out with a lower --lr, or with --grad-clip",
                )
            train_time = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc}
            if val_loader is not None:
                row["val_loss"], row["val_acc"] = evaluate(model, val_loader, cfg.precision, device)
            row.update(lr=lr, drop_path=drop_max * epoch / cfg.epochs, epoch_time_s=time.perf_counter() - t0,
                       images_per_s=seen / train_time)
            elapsed += row["epoch_time_s"]
            history.append(row)
            save_checkpoint(ckpt_path, {
                "stage": "train", "run": run_record(record),
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "history": history, "elapsed": elapsed,
            })
            write_jsonl(out / "metrics.jsonl", history)
            reporter.end(row)
    finally:
        reporter.close()

    test_loss, test_acc = evaluate(model, eval_loader(data.test), cfg.precision, device)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(out / WEIGHTS, weights)
    write_json(out / "env.json", environment(device, cfg.seed))
    best = max((r.get("val_acc", float("nan")) for r in history), default=None) if val_loader is not None else None
    results = {
        "network": network.name,
        "network_hash": spec_hash(network),
        "dataset": dataset,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "final_val_accuracy": history[-1].get("val_acc") if history else None,
        "best_val_accuracy": best,
        "final_train_accuracy": history[-1]["train_acc"] if history else None,
        "params": cost.params,
        "macs": cost.macs,
        "epochs": cfg.epochs,
        "train_images": len(data.train),
        "wall_time_s": elapsed,
        "images_per_s": sum(r["images_per_s"] for r in history[-3:]) / max(1, len(history[-3:])),
        "device": str(device),
    }
    write_json(out / "metrics.json", results)
    return results


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights of a training run: a run directory (``weights.pt``, else the last
    checkpoint) or a checkpoint/state-dict file."""
    p = Path(path)
    if p.is_dir():
        if (p / WEIGHTS).exists():
            p = p / WEIGHTS
        elif (p / CHECKPOINT).exists():
            p = p / CHECKPOINT
        else:
            raise NasgalError(f"{path} holds no {WEIGHTS} or {CHECKPOINT}", hint="train first: nasgal train ...")
    state = load_checkpoint(p)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasgalError(f"{p} is not a state dict or nasgal checkpoint")
    return state
