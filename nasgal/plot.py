"""Training curves: accuracy and loss per epoch for one or several runs, in one figure.

A run directory holds ``metrics.jsonl``, one JSON object per epoch (``epoch``,
``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ...), and optionally
``metrics.json`` with final results (its ``test_accuracy`` is drawn as a star at the last
epoch). Missing keys are skipped. Drawing uses matplotlib
with the Agg backend (headless), imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import NasgalError
from .runfiles import METRICS_LOG, PRUNE_LOG, RESULTS
from .spec.io import atomic_write_bytes

#: Per-epoch files looked for in a run directory, in order (training and search runs, then
#: pruning runs, then two common names of other tools).
EPOCH_FILES: tuple[str, ...] = (METRICS_LOG, PRUNE_LOG, "epochs.jsonl", "history.jsonl")
FINAL_FILE = RESULTS
PLOT_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")

# Okabe-Ito: one colour per run; one line style per split.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
SPLIT_STYLES = {"train": "-", "val": "--", "valid": "--", "test": ":"}


@dataclass(frozen=True)
class Run:
    """One run's per-epoch metrics (``rows``) and final results (``final``)."""

    name: str
    path: Path
    rows: list[dict[str, Any]]
    final: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> list[str]:
        """Numeric per-epoch keys, in first-seen order (``epoch`` excluded)."""
        keys: dict[str, None] = {}
        for r in self.rows:
            for k, v in r.items():
                if k != "epoch" and _is_number(v):
                    keys.setdefault(k)
        return list(keys)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of one metric, skipping epochs that lack it."""
        xs, ys = [], []
        for i, r in enumerate(self.rows):
            v = r.get(key)
            if _is_number(v):
                e = r.get("epoch")
                xs.append(float(e) if _is_number(e) else float(i + 1))
                ys.append(float(v))
        return xs, ys


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            # a run still being written may end in a partial line: tolerate only the last one
            if n == len(lines):
                break
            raise NasgalError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def load_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read a run directory (or a ``.jsonl`` file of per-epoch metrics)."""
    p = Path(path)
    if not p.exists():
        raise NasgalError(f"{p}: no such run directory")
    final: dict[str, Any] = {}
    if p.is_file():
        rows = _read_jsonl(p)
        run_dir = p.parent
    else:
        run_dir = p
        epoch_file = next((run_dir / f for f in EPOCH_FILES if (run_dir / f).is_file()), None)
        fp = run_dir / FINAL_FILE
        if fp.is_file():
            try:
                data = json.loads(fp.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise NasgalError(f"{fp}: not valid JSON (line {e.lineno}: {e.msg})") from None
            final = data if isinstance(data, dict) else {}
        if epoch_file is not None:
            rows = _read_jsonl(epoch_file)
        else:
            hist = final.get("history") or final.get("epochs")
            if not isinstance(hist, list):
                raise NasgalError(
                    f"{p} holds no per-epoch metrics",
                    hint=f"a run directory has {EPOCH_FILES[0]} (one JSON object per epoch), written by training",
                )
            rows = [r for r in hist if isinstance(r, dict)]
    if not rows:
        raise NasgalError(f"{p}: the per-epoch metrics are empty", hint="has the run finished an epoch yet?")
    return Run(name or (run_dir.name or str(run_dir)), run_dir, rows, final)


def _unique_names(paths: list[Path]) -> list[str]:
    names = [p.name if p.is_dir() else p.parent.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def load_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    ps = [Path(p) for p in paths]
    if not ps:
        raise NasgalError("no run directory given")
    return [load_run(p, n) for p, n in zip(ps, _unique_names([x.resolve() for x in ps]))]


def panel_of(metric: str) -> str:
    """The panel a metric is drawn in: accuracy, loss, or its own name."""
    m = metric.lower()
    if m.endswith(("acc", "accuracy", "acc1", "top1")):
        return "accuracy"
    if m.endswith("loss"):
        return "loss"
    return metric


#: Beside accuracy and loss, what a pruning run's curves show: how the masks shrink.
PRUNE_METRICS = ("mask_l1", "nodes_alive")


def default_metrics(runs: list[Run]) -> list[str]:
    """Accuracy and loss metrics present in any run (and a pruning run's mask figures)."""
    keys: dict[str, None] = {}
    for r in runs:
        for k in r.metrics():
            if panel_of(k) in ("accuracy", "loss") or k in PRUNE_METRICS:
                keys.setdefault(k)
    return list(keys)


def _split_style(metric: str) -> str:
    return SPLIT_STYLES.get(metric.split("_", 1)[0], "-.")


def plot_runs(
    runs: list[Run],
    out: str | os.PathLike,
    *,
    metrics: list[str] | None = None,
    title: str | None = None,
    fmt: str | None = None,
) -> Path:
    """Draw ``metrics`` (default: every accuracy and loss key) per epoch and write ``out``.

    One panel per kind (accuracy, loss, then any other metric asked for), one colour per
    run, one line style per split (train solid, val dashed, test dotted).
    """
    out = Path(out)
    fmt = fmt or out.suffix.lower().lstrip(".") or "png"
    if fmt not in PLOT_FORMATS:
        raise NasgalError(f"cannot write a plot as '{fmt}'", hint=f"formats: {', '.join(PLOT_FORMATS)}")
    metrics = list(metrics) if metrics else default_metrics(runs)
    present = {m for r in runs for m in r.metrics()}
    missing = [m for m in metrics if m not in present]
    if missing:
        have = ", ".join(sorted(present)) or "(none)"
        raise NasgalError(f"no run has metric(s) {', '.join(missing)}", hint=f"metrics found: {have}")
    if not metrics:
        raise NasgalError("the runs have no accuracy or loss metric to plot", hint="choose metrics with --metric")
    panels: dict[str, list[str]] = {"accuracy": [], "loss": []}
    for m in metrics:
        panels.setdefault(panel_of(m), []).append(m)
    panels = {k: v for k, v in panels.items() if v}

    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the environment
        raise NasgalError("plot needs matplotlib", hint="pip install matplotlib") from None
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    n = len(panels)
    fig = Figure(figsize=(5.2 * n, 4.0), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    multi = len(runs) > 1
    for ax, (panel, keys) in zip(axes, panels.items()):
        for i, run in enumerate(runs):
            color = RUN_COLORS[i % len(RUN_COLORS)]
            for k in keys:
                xs, ys = run.series(k)
                if not xs:
                    continue
                label = f"{run.name}: {k}" if multi else k
                ax.plot(xs, ys, _split_style(k), color=color, label=label, linewidth=1.6,
                        marker="o" if len(xs) == 1 else None)
            final_test = run.final.get("test_accuracy")
            if panel == "accuracy" and _is_number(final_test) and "test_acc" not in keys:
                last = max((run.series(k)[0][-1] for k in keys if run.series(k)[0]), default=None)
                if last is not None:  # the final test result, from metrics.json
                    ax.plot([last], [final_test], "*", color=color, markersize=10,
                            label=f"{run.name}: test (final)" if multi else "test (final)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(panel)
        ax.set_title(panel.capitalize())
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    if title or multi or runs:
        fig.suptitle(title or ", ".join(r.name for r in runs))
    buf = io.BytesIO()
    # fixed metadata and SVG ids, so the same runs give the same file
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {"Software": None}}[fmt]
    with matplotlib.rc_context({"svg.hashsalt": "nasgal", "svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return atomic_write_bytes(out, buf.getvalue())


__all__ = ["EPOCH_FILES", "PLOT_FORMATS", "Run", "default_metrics", "load_run", "load_runs", "panel_of", "plot_runs"]
