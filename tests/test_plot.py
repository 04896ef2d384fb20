"""Training curves from run directories."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from nasgal.errors import NasgalError
from nasgal.plot import default_metrics, load_run, load_runs, panel_of, plot_runs


def write_run(path, epochs=5, keys=("train_loss", "train_acc", "val_acc", "lr"), scale=1.0, final=None):
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e}
        vals = {"train_loss": scale * 2.3 * math.exp(-e / 3), "train_acc": 1 - 0.5 * math.exp(-e / 3),
                "val_acc": 0.9 - 0.5 * math.exp(-e / 2), "val_loss": 2 * math.exp(-e / 4), "lr": 0.025 / e,
                "test_acc": 0.9}
        row.update({k: vals[k] for k in keys})
        rows.append(row)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if final is not None:
        (path / "metrics.json").write_text(json.dumps(final))
    return path


def test_load_run_tolerates_missing_keys(tmp_path):
    d = write_run(tmp_path / "a", final={"test_acc": 0.91})
    with open(d / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 6, "train_loss": 0.1, "note": "x", "val_acc": None}) + "\n")
        f.write('{"epoch": 7, "train_lo')  # a run still writing its last line
    run = load_run(d)
    assert run.name == "a" and run.final == {"test_acc": 0.91}
    assert run.metrics() == ["train_loss", "train_acc", "val_acc", "lr"]
    xs, ys = run.series("val_acc")
    assert xs == [1.0, 2.0, 3.0, 4.0, 5.0] and len(ys) == 5
    assert run.series("train_loss")[0][-1] == 6.0


def test_panels():
    assert panel_of("val_acc") == "accuracy" and panel_of("top1") == "accuracy"
    assert panel_of("train_loss") == "loss" and panel_of("lr") == "lr"


def test_no_metrics_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NasgalError, match="holds no per-epoch metrics") as exc:
        load_run(tmp_path / "empty")
    assert "metrics.jsonl" in exc.value.hint
    with pytest.raises(NasgalError, match="no such run directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "metrics.jsonl").write_text("\n")
    with pytest.raises(NasgalError, match="empty"):
        load_run(tmp_path / "blank")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text("{oops\n{}\n")
    with pytest.raises(NasgalError, match="line 1 is not valid JSON"):
        load_run(tmp_path / "bad")


def test_history_in_metrics_json(tmp_path):
    d = tmp_path / "h"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({"history": [{"epoch": 1, "val_acc": 0.5}], "test_acc": 0.5}))
    assert load_run(d).series("val_acc") == ([1.0], [0.5])


def test_same_names_are_disambiguated(tmp_path):
    a = write_run(tmp_path / "x" / "run")
    b = write_run(tmp_path / "y" / "run")
    names = [r.name for r in load_runs([a, b])]
    assert len(set(names)) == 2


def test_default_metrics(tmp_path):
    runs = load_runs([write_run(tmp_path / "a"), write_run(tmp_path / "b", keys=("val_loss", "val_acc"))])
    assert default_metrics(runs) == ["train_loss", "train_acc", "val_acc", "val_loss"]



@pytest.fixture
def two_runs(tmp_path):
    pytest.importorskip("matplotlib")
    return [write_run(tmp_path / "darts", final={"test_accuracy": 0.92}), write_run(tmp_path / "darts_gal", scale=0.8)]


def test_png(two_runs, tmp_path):
    out = plot_runs(load_runs(two_runs), tmp_path / "curves.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_svg_lists_runs_and_panels(two_runs, tmp_path):
    out = plot_runs(load_runs(two_runs), tmp_path / "c.svg", metrics=["val_acc", "train_loss", "lr"])
    root = ET.fromstring(out.read_bytes())
    texts = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for s in ("Accuracy", "Loss", "darts: val_acc", "darts_gal: train_loss", "epoch", "lr", "darts: test (final)"):
        assert s in texts, s
    # the same runs give the same file
    again = plot_runs(load_runs(two_runs), tmp_path / "d.svg", metrics=["val_acc", "train_loss", "lr"])
    assert again.read_bytes() == out.read_bytes()


def test_plot_errors(two_runs, tmp_path):
    runs = load_runs(two_runs)
    with pytest.raises(NasgalError, match="no run has metric"):
        plot_runs(runs, tmp_path / "x.png", metrics=["top5"])
    with pytest.raises(NasgalError, match="cannot write a plot as 'gif'"):
        plot_runs(runs, tmp_path / "x.gif")


def test_cli_plot(two_runs, tmp_path, capsys):
    from nasgal.cli.main import main

    out = tmp_path / "curves.svg"
    assert main(["plot", *map(str, two_runs), "-o", str(out), "--metric", "val_acc"]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Error:" in err and "no such run directory" in err and "Traceback" not in err


def test_a_pruning_run_plots_its_losses_and_masks_with_whole_epoch_ticks(tmp_path):
    """`nasgal plot` on a `nasgal prune` run directory (prune_log.jsonl); two epochs give the
    ticks 1 and 2, never 1.2 or 1.5."""
    run = tmp_path / "gal"
    run.mkdir()
    rows = [{"epoch": e, "critic_loss": -0.1 * e, "data_loss": 0.01 / e, "teacher_agree": 0.9, "mask_l1": 9.0 - e,
             "nodes_alive": 12 - e, "masks": {"0": {"1": 0.5}}} for e in (1, 2)]
    (run / "prune_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = load_runs([run])
    assert default_metrics(runs) == ["critic_loss", "data_loss", "mask_l1", "nodes_alive"]
    out = plot_runs(runs, tmp_path / "gal.svg")
    root = ET.fromstring(out.read_bytes())
    texts = ["".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "mask_l1" in " ".join(texts) and "nodes_alive" in " ".join(texts)
    assert not {"1.2", "1.4", "1.5", "1.6", "1.8"} & set(texts)
