"""Training: resumable run directories, recipes, clear errors, device-side metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import nasgal
from nasgal.cli.main import main
from nasgal.errors import NasgalError
from nasgal.train import RECIPES, lr_at, resolve_config, train
from nasgal.engine.rundir import load_checkpoint

from datafiles import fashion_mnist_root, offline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return fashion_mnist_root(tmp_path, n_train=160, n_test=40)


def tiny_network(auxiliary: bool = True, drop_path: float = 0.2):
    return nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=3, channels=4, classes=10,
                        in_channels=1, input_size=28, auxiliary=auxiliary, drop_path=drop_path)


def tiny_config(**kw):
    base = dict(epochs=3, batch_size=32, device="cpu", aux_weight=0.4, grad_clip=5.0, cutout=8)
    base.update(kw)
    return resolve_config("paper", **base)


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, data_dir):
    net, cfg = tiny_network(), tiny_config()
    full = train(net, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "a", data_dir=data_dir)
    part = train(net, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "b", data_dir=data_dir, stop_after=1)
    assert part == {"interrupted_after_epoch": 1}
    assert not (tmp_path / "b" / "metrics.json").exists()
    resumed = train(net, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "b", data_dir=data_dir)
    a = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full["test_accuracy"] == resumed["test_accuracy"]
    rows_a = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]


def test_run_directory_contents(tmp_path, data_dir):
    net = tiny_network(auxiliary=False, drop_path=0.0)
    out = tmp_path / "run"
    res = train(net, dataset="fashion_mnist", config=tiny_config(epochs=2), out_dir=out, data_dir=data_dir)
    for name in ("network.json", "config.json", "checkpoint.pt", "metrics.jsonl", "metrics.json", "weights.pt", "env.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == res
    # The public way back to the trained network: its spec and final weights, in eval mode.
    model = nasgal.load_run(out)
    weights = torch.load(out / "weights.pt", weights_only=True)
    assert not model.training and model.spec == net
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["params"] == nasgal.count_params(net)
    assert metrics["wall_time_s"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "lr", "epoch_time_s", "images_per_s"} <= rows[0].keys()
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epochs_done"] == 2 and ckpt["stage"] == "train"
    assert nasgal.load(out / "network.json") == net
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["epochs"] == 2 and config["network_hash"] == nasgal.spec_hash(net)
    # 144 training images after the 10% validation split; batch 32, drop_last -> 4 steps of 32
    assert json.loads((out / "metrics.json").read_text())["train_images"] == 144


def test_complete_run_is_not_trained_again_and_other_settings_are_refused(tmp_path, data_dir):
    net = tiny_network(auxiliary=False, drop_path=0.0)
    out = tmp_path / "run"
    first = train(net, dataset="fashion_mnist", config=tiny_config(epochs=1), out_dir=out, data_dir=data_dir)
    stamp = (out / "weights.pt").stat().st_mtime_ns
    assert train(net, dataset="fashion_mnist", config=tiny_config(epochs=1), out_dir=out, data_dir=data_dir) == first
    assert (out / "weights.pt").stat().st_mtime_ns == stamp
    with pytest.raises(NasgalError, match=r"other settings \(epochs: 1 -> 2\)"):
        train(net, dataset="fashion_mnist", config=tiny_config(epochs=2), out_dir=out, data_dir=data_dir)


def test_learning_signal_on_separable_data(tmp_path):
    """A tiny net must learn a trivially separable problem (class = bright quadrant)."""
    import numpy as np

    from datafiles import write_idx

    rng = np.random.default_rng(0)
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for prefix, n in (("train", 400), ("t10k", 100)):
        labels = (np.arange(n) % 4).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 2)
            images[i, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14] += 200
        write_idx(d / f"{prefix}-images-idx3-ubyte", images)
        write_idx(d / f"{prefix}-labels-idx1-ubyte", labels)
    net = nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=3, channels=4, classes=10,
                       in_channels=1, input_size=28)
    res = train(net, dataset="mnist", config=tiny_config(epochs=3, lr=0.05, cutout=0), out_dir=tmp_path / "r",
                data_dir=tmp_path / "data")
    assert res["test_accuracy"] > 0.9


def test_recipes_and_overrides():
    paper = resolve_config("paper")
    assert (paper.batch_size, paper.lr, paper.epochs, paper.momentum) == (128, 0.01, 50, 0.9)
    darts = resolve_config("darts", epochs=10)
    assert (darts.lr, darts.weight_decay, darts.grad_clip, darts.cutout, darts.drop_path, darts.aux_weight) == (
        0.025, 3e-4, 5.0, 16, 0.2, 0.4)
    assert darts.epochs == 10
    assert set(RECIPES) == {"paper", "darts"}
    with pytest.raises(NasgalError, match="unknown recipe 'fast'"):
        resolve_config("fast")
    with pytest.raises(nasgal.SpecError, match="lr"):
        resolve_config("paper", lr=-1.0)


def test_cosine_schedule_endpoints():
    cfg = resolve_config("paper", epochs=10, lr=0.1, lr_min=0.001)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 5) == pytest.approx(0.001 + 0.5 * 0.099)
    assert lr_at(cfg, 10) == pytest.approx(0.001)
    const = resolve_config("paper", schedule="constant")
    assert lr_at(const, 7) == const.lr


def _cli(capsys, *args):
    code = main(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, cap.err


def _network_file(tmp_path, **kw) -> Path:
    path = tmp_path / "net.json"
    nasgal.save(tiny_network(**kw), path)
    return path


def test_cli_train_runs_and_prints_json(tmp_path, data_dir, capsys):
    net = _network_file(tmp_path, auxiliary=False, drop_path=0.0)
    code, out, err = _cli(capsys, "train", str(net), "--dataset", "fashion_mnist", "--data-dir", str(data_dir),
                          "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "run"), "--json",
                          "--device", "cpu")
    assert code == 0, err
    res = json.loads(out)
    assert res["epochs"] == 1 and "test_accuracy" in res
    assert "train epoch 1/1" in err  # plain progress lines when not a terminal


def test_cli_train_wrong_data_dir(tmp_path, capsys):
    net = _network_file(tmp_path)
    code, _, err = _cli(capsys, "train", str(net), "--dataset", "fashion_mnist", "--data-dir",
                        str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert code == 1
    assert f"Error: data directory {tmp_path / 'nowhere'} does not exist" in err


def test_cli_train_corrupt_file(tmp_path, data_dir, capsys):
    images = next((data_dir / "fashion_mnist").glob("train-images*"))
    images.write_bytes(images.read_bytes()[:100])
    net = _network_file(tmp_path)
    code, _, err = _cli(capsys, "train", str(net), "--dataset", "fashion_mnist", "--data-dir", str(data_dir),
                        "--out", str(tmp_path / "run"))
    assert code == 1
    assert "Error:" in err and images.name in err


def test_cli_train_shape_mismatch(tmp_path, data_dir, capsys):
    net = nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=3, channels=4, classes=10,
                       in_channels=3, input_size=32)
    nasgal.save(net, tmp_path / "net.json")
    code, _, err = _cli(capsys, "train", str(tmp_path / "net.json"), "--dataset", "fashion_mnist", "--data-dir",
                        str(data_dir), "--out", str(tmp_path / "run"))
    assert code == 1
    assert "gives 1×28×28 images in 10 classes, but the network expects 3×32×32 inputs" in err


def test_cli_train_needs_a_network_and_resume_needs_a_checkpoint(tmp_path, data_dir, capsys):
    code, _, err = _cli(capsys, "train", "darts_v2", "--dataset", "fashion_mnist", "--out", str(tmp_path / "r"))
    assert code == 1 and "not a network" in err and "nasgal stack darts_v2" in err
    net = _network_file(tmp_path)
    code, _, err = _cli(capsys, "train", str(net), "--dataset", "fashion_mnist", "--data-dir", str(data_dir),
                        "--out", str(tmp_path / "r"), "--resume")
    assert code == 1 and "has no checkpoint.pt" in err


@pytest.mark.slow
def test_paper_network_learns_real_fashion_mnist(tmp_path):
    """DARTS_V2, 5 cells, C=16 on a 5,000-image subset of real FashionMNIST, one epoch."""
    if not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    net = nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=5, channels=16, classes=10,
                       in_channels=1, input_size=28)
    cfg = resolve_config("paper", epochs=1, subset=5000, device="cpu", lr=0.05, batch_size=64)
    res = train(net, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "run")
    assert res["test_accuracy"] > 0.5, res  # chance is 0.10
    assert not math.isnan(res["test_loss"])


