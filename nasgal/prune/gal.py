"""GAL pruning of a trained network into a pruned network spec, in a resumable run directory.

Run directory layout:
``network.json`` (the teacher spec), ``config.json`` (resolved config, dataset, teacher spec
hash and weights fingerprint), ``checkpoint.pt`` (after every epoch), ``prune_log.jsonl``
(one line per epoch), ``pruned.json`` (the pruned spec), ``metrics.json`` (final results),
``env.json``. An interrupted run continues from its last completed epoch when started again;
a complete one returns its result.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..data import DeviceLoader
from ..engine import distributed
from ..engine.data import DataSplits, prepare_splits
from ..engine.loop import Interrupted, Stage, run_stage
from ..engine.optim import sgd
from ..engine.rundir import environment, read_json_object, use_device, write_json
from ..runfiles import ENV, PRUNE_LOG, PRUNED, RESULTS
from ..engine.step import evaluate
from ..engine.tracking import numbers
from ..errors import NasgalError
from ..engine.weights import fitted_model, weights_fingerprint
from ..progress import Reporter
from ..spec import Network, Pruning, count_params, load, save, spec_hash
from .budget import candidates, select_nodes
from .config import PruneConfig
from .critic import Critic
from .fista import MaskFista
from .methods import ablation_scores, magnitude_scores, random_scores
from .step import GALStep


def load_teacher(network: Network, state: dict[str, torch.Tensor], gates: bool = False) -> torch.nn.Module:
    """Compile ``network`` and load ``state`` into it (:func:`nasgal.engine.weights.fitted_model`)."""
    return fitted_model(network, state, gates=gates)


def lam_at(cfg: PruneConfig, step: int, steps_per_epoch: int) -> float:
    """λ after a linear warm-up over ``lam_warmup`` epochs (step counts from 0 over the run)."""
    if cfg.lam_warmup == 0:
        return cfg.lam
    return cfg.lam * min(1.0, (step + 1) / (cfg.lam_warmup * steps_per_epoch))


def _mask_dicts(gates: dict[int, torch.Tensor], masks: list[torch.Tensor], network: Network,
                cand: list[list[int]]) -> list[dict[int, float]]:
    """Mask value per teacher-live node per position (empty for dead positions)."""
    by_pos = dict(zip(sorted(gates), masks))
    out: list[dict[int, float]] = []
    for p, nodes in enumerate(cand):
        ids = list(network.cell_at(p).nodes)
        vals = by_pos[p].tolist() if p in by_pos else []
        out.append({n: round(float(vals[ids.index(n)]), 6) for n in nodes} if vals else {})
    return out


def prune(
    network: Network,
    teacher_state: dict[str, torch.Tensor],
    *,
    dataset: str,
    config: PruneConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    restart: bool = False,
    download: bool = True,
    data: DataSplits | None = None,
) -> tuple[Network | None, dict[str, Any]]:
    """Prune ``network`` (trained weights ``teacher_state``) with GAL; return the pruned spec and results.

    Writes ``pruned.json``, ``prune_log.jsonl``, ``checkpoint.pt`` and ``metrics.json`` in
    ``out_dir``. ``stop_after`` ends the call after that many completed epochs in total (as an
    interruption would), returning ``(None, {"interrupted_after_epoch": n})``; run again to
    continue. ``restart`` removes an old run in ``out_dir`` first. Selection uses the training
    split and its held-out validation part only. ``out_dir`` is held for this process while it
    runs (:func:`~nasgal.engine.rundir.run_lock`).
    """
    stage = PruneStage(network, teacher_state, dataset, config, Path(out_dir), data_dir, download, data)
    result = run_stage(stage, reporter=reporter, restart=restart, stop_after=stop_after)
    if isinstance(result, Interrupted):
        return None, {"interrupted_after_epoch": result.epochs_done}
    return result


class PruneStage(Stage[tuple[Network, dict[str, Any]]]):
    """``nasgal prune`` on the engine: GAL iterations against the frozen teacher, then node selection."""

    kind, what, log = "prune", "pruning run", PRUNE_LOG
    records = (ENV,)
    outputs = (RESULTS, PRUNED)

    def __init__(self, network: Network, teacher_state: dict[str, torch.Tensor], dataset: str, cfg: PruneConfig,
                 out: Path, data_dir: str | None, download: bool, data: DataSplits | None) -> None:
        self.teacher = load_teacher(network, teacher_state)  # fails early on weights of another network
        self.network, self.teacher_state, self.dataset, self.cfg, self.out = network, teacher_state, dataset, cfg, out
        self.data_dir, self.download, self.data = data_dir, download, data
        # The baselines score nodes in one pass (finish); only GAL trains for epochs.
        self.gal = cfg.method == "gal"
        epochs = cfg.epochs if self.gal else 0
        self.epochs, self.spec, self.epoch_seed, self.ignore = epochs, network, cfg.seed, cfg.RUNTIME
        self.tensorboard = cfg.tensorboard
        self.record = {"dataset": dataset, "network": network.name, "network_hash": spec_hash(network),
                       "weights": weights_fingerprint(teacher_state), "config": cfg.model_dump()}
        self.identity = {"network_hash": "network", "dataset": "dataset", "weights": "teacher weights"}
        self.cand = candidates(network)
        self.integral: list[dict[int, float]] = [{n: 0.0 for n in nodes} for nodes in self.cand]

    def stored(self) -> tuple[Network, dict[str, Any]]:
        return load(self.out / PRUNED), read_json_object(self.out / RESULTS)

    def setup(self) -> None:
        cfg, network = self.cfg, self.network
        self.device = device = use_device(cfg.device, cfg.threads)
        self.data = data = self.data or prepare_splits(network, self.dataset, self.data_dir, subset=cfg.subset,
                                                       val_fraction=cfg.val_fraction, seed=cfg.seed,
                                                       download=self.download)
        shard = dict(rank=distributed.rank(), world=distributed.world_size())
        if self.gal:
            distributed.local_batch(cfg.batch_size)
            distributed.check_images(len(data.train))
        self.loader = DeviceLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True, device=device,
                                   seed=cfg.seed, channels_last=cfg.channels_last, **shard)
        self.val_loader = (DeviceLoader(data.val, batch_size=cfg.eval_batch_size, shuffle=False, drop_last=False,
                                        device=device, channels_last=cfg.channels_last, **shard)
                           if data.val is not None else None)
        if cfg.method == "ablation" and self.val_loader is None:
            raise NasgalError("method 'ablation' measures the validation loss, but val_fraction is 0",
                              hint="give --val-fraction above 0")
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # Teacher: frozen, eval mode. Generator: same weights, gates at 1. Critic: seeded MLP.
        self.teacher.to(device, memory_format=memory).eval().requires_grad_(False)
        if not self.gal:
            return
        self.generator = generator = load_teacher(network, self.teacher_state, gates=True).to(device, memory_format=memory)
        if cfg.bn == "train" and cfg.sync_bn:
            distributed.sync_batchnorm(generator, device)
        generator.set_drop_path(0.0, enabled=False)
        generator.train(cfg.bn == "train")
        torch.manual_seed(cfg.seed)
        self.critic = critic = Critic(network.classes).to(device)
        weights = [p for n, p in generator.named_parameters() if not n.endswith(".gate")]
        self.opt_g = sgd(weights, cfg.lr, cfg.momentum, cfg.weight_decay, device)
        # R(W_D): L2 weight decay on the critic, added to its gradient as R(W_G) is to the generator's.
        if cfg.gp > 0:
            self.opt_d: torch.optim.Optimizer = torch.optim.Adam(
                critic.parameters(), lr=cfg.critic_lr_value, betas=(0.5, 0.9), weight_decay=cfg.critic_weight_decay)
        else:
            self.opt_d = torch.optim.RMSprop(critic.parameters(), lr=cfg.critic_lr_value,
                                             weight_decay=cfg.critic_weight_decay)
        self.gates = gates = generator.gates()
        self.fista = MaskFista([gates[p] for p in sorted(gates)], cfg.mask_lr, cfg.fista_restart)
        self.step = GALStep(self.teacher, generator, critic, self.opt_g, self.opt_d, self.fista, mu=cfg.mu,
                            critic_steps=cfg.critic_steps, clip=cfg.clip, gp=cfg.gp, noise=cfg.noise_dropout,
                            precision=cfg.precision, device=device,
                            average=distributed.average_ if distributed.active() else None)

    def ready(self, epochs_done: int) -> None:
        # The teacher's validation accuracy: an evaluation over every process (a collective, so
        # not in setup).
        self.teacher_val = (evaluate(self.teacher, self.val_loader, self.cfg.precision, self.device)[1]
                            if self.val_loader is not None else None)

    def parts(self) -> dict[str, tuple[Any, str]]:
        if not self.gal:
            return {}
        return {"generator": (self.generator, "generator"), "critic": (self.critic, "critic"),
                "opt_g": (self.opt_g, "generator optimizer"), "opt_d": (self.opt_d, "critic optimizer"),
                "fista": (self.fista, "mask state")}

    def extra(self) -> dict[str, Any]:
        return {"integral": [{int(n): v for n, v in d.items()} for d in self.integral]}

    def load_extra(self, ck: dict[str, Any]) -> None:
        self.integral = [{int(n): float(v) for n, v in d.items()} for d in ck["integral"]]

    def steps(self) -> int:
        return len(self.loader)

    def run_epoch(self, epoch: int, reporter: Reporter) -> dict[str, Any]:
        cfg, steps, t0 = self.cfg, len(self.loader), time.perf_counter()
        self.loader.set_epoch(epoch)
        for i, (x, _) in enumerate(self.loader):
            self.step(x, lam_at(cfg, epoch * steps + i, steps))
            reporter.advance()
        self.fista.finish()
        stats = self.step.read_stats()
        distributed.broadcast_buffers(self.generator)  # rank 0's BN statistics (bn "train")
        masks = _mask_dicts(self.gates, self.fista.masks(), self.network, self.cand)
        for p, m in enumerate(masks):
            for n, v in m.items():
                self.integral[p][n] += v
        train_time = time.perf_counter() - t0
        row: dict[str, Any] = {k: v for k, v in stats.items() if k != "images"}
        row["mask_l1"] = sum(sum(m.values()) for m in masks)
        row["nodes_alive"] = sum(1 for m in masks for v in m.values() if v > cfg.threshold)
        row["lam"] = lam_at(cfg, (epoch + 1) * steps - 1, steps)
        row["images_per_s"] = stats["images"] / max(train_time, 1e-9)
        row["masks"] = {str(p): {str(n): v for n, v in m.items()} for p, m in enumerate(masks)}
        return row

    def shown(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "masks"}

    def scores(self) -> list[dict[int, float]]:
        """A baseline method's score per teacher-live node (larger: more worth keeping)."""
        cfg = self.cfg
        if cfg.method == "random":
            return random_scores(self.network, cfg.seed)
        if cfg.method == "magnitude":
            return magnitude_scores(self.network, self.teacher_state)
        return ablation_scores(self.network, self.teacher_state, self.val_loader, cfg.precision, self.device)

    def scalars(self, row: dict[str, Any]) -> dict[str, float]:
        """The row's figures and every node's mask (``masks/pos{p}/node{n}``) over the epochs."""
        out = numbers(self.shown(row))
        for p, m in row["masks"].items():
            out.update({f"masks/pos{p}/node{n}": float(v) for n, v in m.items()})
        return out

    def finish(self, rows: list[dict[str, Any]], elapsed: float, reporter: Reporter) -> tuple[Network, dict[str, Any]]:
        cfg, network, device, out = self.cfg, self.network, self.device, self.out
        if self.gal:
            masks = _mask_dicts(self.gates, self.fista.masks(), network, self.cand)
            sel = select_nodes(network, masks, threshold=cfg.threshold, keep_params=cfg.keep_params,
                               keep_nodes=cfg.keep_nodes, integral=self.integral)
        else:  # scores, not masks: no threshold, the budget decides
            masks = self.scores()
            sel = select_nodes(network, masks, threshold=float("-inf"), keep_params=cfg.keep_params,
                               keep_nodes=cfg.keep_nodes)
        for event in sel.events:
            reporter.message(event)
        gen_val = gen_pruned_val = None
        if self.val_loader is not None and self.gal:
            gates = self.gates
            gen_val = evaluate(self.generator, self.val_loader, cfg.precision, device)[1]
            with torch.no_grad():  # the masked generator after thresholding: removed nodes' gates at 0
                saved = {p: g.detach().clone() for p, g in gates.items()}
                for p, g in gates.items():
                    ids = list(network.cell_at(p).nodes)
                    for j, n in enumerate(ids):
                        if n not in sel.kept[p]:
                            g[j] = 0.0
                gen_pruned_val = evaluate(self.generator, self.val_loader, cfg.precision, device)[1]
                for p, g in gates.items():
                    g.copy_(saved[p])

        params = {**cfg.record(), "dataset": self.dataset, "teacher_weights": self.record["weights"],
                  "budget": cfg.budget, "budget_met": sel.budget_met, "revived": sel.revived}
        if not self.gal:  # the scores that chose the nodes, for the record (they are not masks)
            params["scores"] = [{str(n): round(float(v), 6) for n, v in m.items()} for m in masks]
        pruned = network.with_kept_nodes(
            sel.kept, mask=masks if self.gal else None,
            pruning=Pruning(method=cfg.method, parent=spec_hash(network),
                            threshold=cfg.threshold if self.gal else None, params=params),
        )
        pruned = pruned.model_copy(update={"name": f"{network.name}-{cfg.method}"})
        params_before, params_after = count_params(network), count_params(pruned)
        results: dict[str, Any] = {
            "network": network.name,
            "pruned": pruned.name,
            "network_hash": spec_hash(network),
            "pruned_hash": spec_hash(pruned),
            "dataset": self.dataset,
            "params_before": params_before,
            "params_after": params_after,
            "params_kept": params_after / params_before,
            "nodes_before": sum(len(c) for c in self.cand),
            "nodes_after": sum(len(k) for k in sel.kept),
            "kept": sel.kept,
            "reductions": network.reductions,
            "method": cfg.method,
            "masks": [{str(n): v for n, v in m.items()} for m in masks],  # a baseline's scores
            "threshold": cfg.threshold,
            "budget": cfg.budget,
            "budget_target": sel.target,
            "budget_met": sel.budget_met,
            "revived": sel.revived,
            "events": sel.events,
            "val_accuracy_teacher": self.teacher_val,
            "val_accuracy_generator": gen_val,
            "val_accuracy_generator_pruned": gen_pruned_val,
            "epochs": cfg.epochs,
            "train_images": len(self.data.train),
            "wall_time_s": elapsed,
            "device": str(device),
        }
        if distributed.is_main():  # rank 0 writes
            save(pruned, out / PRUNED)
            write_json(out / ENV, environment(device, cfg.seed))
            write_json(out / RESULTS, results)
        return pruned, results
