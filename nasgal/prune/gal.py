"""GAL pruning of a trained network into a pruned network spec, in a resumable run directory.

Run directory layout:
``network.json`` (the teacher spec), ``config.json`` (resolved config, dataset, teacher spec
hash and weights fingerprint), ``checkpoint.pt`` (after every epoch), ``prune_log.jsonl``
(one line per epoch), ``pruned.json`` (the pruned spec), ``metrics.json`` (final results),
``env.json``. An interrupted run continues from its last completed epoch when started again;
a complete one returns its result.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch

from ..compiler import compile_network
from ..data import DeviceLoader
from ..errors import NasgalError
from ..progress import Reporter
from ..spec import Network, Pruning, count_params, load, save, spec_hash
from ..train.config import resolve_config
from ..train.rundir import (
    environment,
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
from ..train.runner import DataSplits, prepare_data
from ..train.step import evaluate
from .budget import candidates, select_nodes
from .config import PruneConfig
from .critic import Critic
from .fista import MaskFista
from .step import GALStep

CHECKPOINT = "checkpoint.pt"
PRUNED = "pruned.json"
LOG = "prune_log.jsonl"


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of a state dict's names, shapes and values."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{list(v.shape)}:{v.dtype}".encode())
        h.update(v.view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


def load_teacher(network: Network, state: dict[str, torch.Tensor], gates: bool = False) -> torch.nn.Module:
    """Compile ``network`` and load ``state`` into it, with a clear error when they do not fit."""
    model = compile_network(network, gates=gates)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(".gate")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            eg = f"{k} has shape {list(state[k].shape)}, the network needs {list(own[k].shape)}"
        else:
            eg = f"e.g. {(missing or unexpected)[0]} is {'missing' if missing else 'unexpected'}"
        raise NasgalError(
            f"the weights do not fit {network.name}: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} of another shape ({eg})",
            hint="pass the training run (or checkpoint) of this very network spec",
        )
    model.load_state_dict({k: v for k, v in state.items()}, strict=False)
    return model


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
    download: bool = True,
    data: DataSplits | None = None,
) -> tuple[Network | None, dict[str, Any]]:
    """Prune ``network`` (trained weights ``teacher_state``) with GAL; return the pruned spec and results.

    Writes ``pruned.json``, ``prune_log.jsonl``, ``checkpoint.pt`` and ``metrics.json`` in
    ``out_dir``. ``stop_after`` ends the call after that many completed epochs in total (as an
    interruption would), returning ``(None, {"interrupted_after_epoch": n})``; run again to
    continue. Selection uses the training split and its held-out validation part only.
    ``out_dir`` is held for this process while it runs (:func:`~nasgal.train.rundir.run_lock`).
    """
    out = Path(out_dir)
    with run_lock(out):
        return _prune(network, teacher_state, dataset, config, out, data_dir, reporter or Reporter(), stop_after,
                      download, data)


def _prune(network: Network, teacher_state: dict[str, torch.Tensor], dataset: str, cfg: PruneConfig, out: Path,
           data_dir: str | None, reporter: Reporter, stop_after: int | None, download: bool,
           data: DataSplits | None) -> tuple[Network | None, dict[str, Any]]:
    teacher = load_teacher(network, teacher_state)  # fails early on weights of another network
    record = {"dataset": dataset, "network": network.name, "network_hash": spec_hash(network),
              "weights": weights_fingerprint(teacher_state), "config": cfg.model_dump()}
    identity = {"network_hash": "network", "dataset": "dataset", "weights": "teacher weights"}
    if open_run(out, record, identity, what="pruning run", outputs=("metrics.json", PRUNED), reporter=reporter):
        return load(out / PRUNED), read_json_object(out / "metrics.json")

    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tcfg = resolve_config("paper", subset=cfg.subset, seed=cfg.seed, val_fraction=cfg.val_fraction)
    data = data or prepare_data(network, dataset, data_dir, tcfg, download)
    loader = DeviceLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True, device=device,
                          seed=cfg.seed, channels_last=cfg.channels_last)
    val_loader = (DeviceLoader(data.val, batch_size=cfg.eval_batch_size, shuffle=False, drop_last=False,
                               device=device, channels_last=cfg.channels_last) if data.val is not None else None)
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format

    # Teacher: frozen, eval mode. Generator: same weights, gates at 1. Critic: seeded MLP.
    teacher.to(device, memory_format=memory).eval().requires_grad_(False)
    generator = load_teacher(network, teacher_state, gates=True).to(device, memory_format=memory)
    generator.set_drop_path(0.0, enabled=False)
    generator.train(cfg.bn == "train")
    torch.manual_seed(cfg.seed)
    critic = Critic(network.classes).to(device)
    weights = [p for n, p in generator.named_parameters() if not n.endswith(".gate")]
    opt_g = torch.optim.SGD(weights, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    # R(W_D): L2 weight decay on the critic, added to its gradient as R(W_G) is to the generator's.
    if cfg.gp > 0:
        opt_d: torch.optim.Optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr_value, betas=(0.5, 0.9),
                                                        weight_decay=cfg.critic_weight_decay)
    else:
        opt_d = torch.optim.RMSprop(critic.parameters(), lr=cfg.critic_lr_value, weight_decay=cfg.critic_weight_decay)
    gates = generator.gates()
    fista = MaskFista([gates[p] for p in sorted(gates)], cfg.mask_lr, cfg.fista_restart)
    step = GALStep(teacher, generator, critic, opt_g, opt_d, fista, mu=cfg.mu, critic_steps=cfg.critic_steps,
                   clip=cfg.clip, gp=cfg.gp, noise=cfg.noise_dropout, precision=cfg.precision, device=device)
    cand = candidates(network)
    params_before = count_params(network)

    history: list[dict[str, Any]] = []
    integral = [{n: 0.0 for n in nodes} for nodes in cand]
    start_epoch, elapsed = 0, 0.0
    teacher_val = evaluate(teacher, val_loader, cfg.precision, device)[1] if val_loader is not None else None
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        keys = ("epoch", "generator", "critic", "opt_g", "opt_d", "fista", "history", "integral")
        ckpt = run_checkpoint(ckpt_path, "prune", keys, record, identity, what="pruning run", map_location=device)
        load_state(generator, ckpt["generator"], ckpt_path, "generator")
        load_state(critic, ckpt["critic"], ckpt_path, "critic")
        load_state(opt_g, ckpt["opt_g"], ckpt_path, "generator optimizer")
        load_state(opt_d, ckpt["opt_d"], ckpt_path, "critic optimizer")
        load_state(fista, ckpt["fista"], ckpt_path, "mask state")
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt["history"])
        integral = [{int(n): float(v) for n, v in d.items()} for d in ckpt["integral"]]
        elapsed = float(ckpt.get("elapsed", 0.0))
        reporter.message(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")

    steps = len(loader)
    start_run(out, network, record)  # the run has really started: now it may write its record
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if stop_after is not None and epoch >= stop_after:
                return None, {"interrupted_after_epoch": epoch}
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # gradient-penalty stream of this epoch
            loader.set_epoch(epoch)
            reporter.start("prune", epoch, cfg.epochs, steps)
            for i, (x, _) in enumerate(loader):
                step(x, lam_at(cfg, epoch * steps + i, steps))
                reporter.advance()
            fista.finish()
            stats = step.read_stats()
            masks = _mask_dicts(gates, fista.masks(), network, cand)
            for p, m in enumerate(masks):
                for n, v in m.items():
                    integral[p][n] += v
            train_time = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch + 1, **{k: v for k, v in stats.items() if k != "images"}}
            row["mask_l1"] = sum(sum(m.values()) for m in masks)
            row["nodes_alive"] = sum(1 for m in masks for v in m.values() if v > cfg.threshold)
            row["lam"] = lam_at(cfg, (epoch + 1) * steps - 1, steps)
            row.update(epoch_time_s=train_time, images_per_s=stats["images"] / max(train_time, 1e-9))
            row["masks"] = {str(p): {str(n): v for n, v in m.items()} for p, m in enumerate(masks)}
            elapsed += train_time
            history.append(row)
            save_checkpoint(ckpt_path, {
                "stage": "prune", "run": run_record(record),
                "epoch": epoch, "generator": generator.state_dict(), "critic": critic.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "fista": fista.state_dict(),
                "history": history, "integral": [{int(n): v for n, v in d.items()} for d in integral],
                "elapsed": elapsed,
            })
            write_jsonl(out / LOG, history)
            reporter.end({k: v for k, v in row.items() if k != "masks"})
    finally:
        reporter.close()

    masks = _mask_dicts(gates, fista.masks(), network, cand)
    sel = select_nodes(network, masks, threshold=cfg.threshold, keep_params=cfg.keep_params,
                       keep_nodes=cfg.keep_nodes, integral=integral)
    for event in sel.events:
        reporter.message(event)
    gen_val = gen_pruned_val = None
    if val_loader is not None:
        gen_val = evaluate(generator, val_loader, cfg.precision, device)[1]
        with torch.no_grad():  # the masked generator after thresholding: removed nodes' gates at 0
            saved = {p: g.detach().clone() for p, g in gates.items()}
            for p, g in gates.items():
                ids = list(network.cell_at(p).nodes)
                for j, n in enumerate(ids):
                    if n not in sel.kept[p]:
                        g[j] = 0.0
            gen_pruned_val = evaluate(generator, val_loader, cfg.precision, device)[1]
            for p, g in gates.items():
                g.copy_(saved[p])

    params = {**cfg.record(), "dataset": dataset, "teacher_weights": record["weights"],
              "budget": cfg.budget, "budget_met": sel.budget_met, "revived": sel.revived}
    pruned = network.with_kept_nodes(
        sel.kept, mask=masks,
        pruning=Pruning(method="gal", parent=spec_hash(network), threshold=cfg.threshold, params=params),
    )
    pruned = pruned.model_copy(update={"name": f"{network.name}-gal"})
    save(pruned, out / PRUNED)
    params_after = count_params(pruned)
    results: dict[str, Any] = {
        "network": network.name,
        "pruned": pruned.name,
        "network_hash": spec_hash(network),
        "pruned_hash": spec_hash(pruned),
        "dataset": dataset,
        "params_before": params_before,
        "params_after": params_after,
        "params_kept": params_after / params_before,
        "nodes_before": sum(len(c) for c in cand),
        "nodes_after": sum(len(k) for k in sel.kept),
        "kept": sel.kept,
        "reductions": network.reductions,
        "masks": [{str(n): v for n, v in m.items()} for m in masks],
        "threshold": cfg.threshold,
        "budget": cfg.budget,
        "budget_target": sel.target,
        "budget_met": sel.budget_met,
        "revived": sel.revived,
        "events": sel.events,
        "val_accuracy_teacher": teacher_val,
        "val_accuracy_generator": gen_val,
        "val_accuracy_generator_pruned": gen_pruned_val,
        "epochs": cfg.epochs,
        "train_images": len(data.train),
        "wall_time_s": elapsed,
        "device": str(device),
    }
    write_json(out / "env.json", environment(device, cfg.seed))
    write_json(out / "metrics.json", results)
    return pruned, results
