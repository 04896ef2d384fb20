"""TensorBoard event files beside the run's records, for train (losses), search (α over time)
and prune (masks over time); read back with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datafiles import fashion_mnist_root, offline

import nasgal
from nasgal.errors import NasgalError

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _net():
    return nasgal.stack(nasgal.load("darts_v2"), cells=3, channels=4, classes=10, in_channels=1, input_size=28)


def test_train_and_prune_write_their_figures_and_masks(tmp_path):
    from nasgal.prune import prune, resolve_prune_config
    from nasgal.train import load_weights, resolve_config, train

    data = fashion_mnist_root(tmp_path, n_train=96, n_test=16)
    cfg = resolve_config("paper", epochs=2, batch_size=32, device="cpu", tensorboard=True)
    res = train(_net(), dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "t", data_dir=data)
    tags = _scalars(tmp_path / "t")
    assert [s for s, _ in tags["train/train_loss"]] == [1, 2]
    assert tags["train/val_acc"][-1][1] == pytest.approx(res["final_val_accuracy"], abs=1e-6)

    pcfg = resolve_prune_config(epochs=2, batch_size=32, device="cpu", critic_steps=1, tensorboard=True)
    pruned, _ = prune(_net(), load_weights(tmp_path / "t"), dataset="fashion_mnist", config=pcfg,
                      out_dir=tmp_path / "p", data_dir=data)
    tags = _scalars(tmp_path / "p")
    mask_tags = [t for t in tags if t.startswith("prune/masks/pos")]
    assert len(mask_tags) == sum(len(c) for c in nasgal.prune.candidates(_net()))
    assert all([s for s, _ in tags[t]] == [1, 2] for t in mask_tags)
    # the tracking switch is not part of the pruned network's recorded settings
    assert "tensorboard" not in pruned.pruning.params


def test_search_writes_alpha_over_time_and_restart_removes_it(tmp_path):
    from nasgal.data import Dataset, DatasetInfo
    from nasgal.search.config import SearchConfig
    from nasgal.search.run import search
    from nasgal.search.space import default_space

    info = DatasetInfo(name="synthetic", channels=1, size=(8, 8), classes=3, class_names=("0", "1", "2"),
                       mean=(0.5,), std=(0.25,))
    g = torch.Generator().manual_seed(0)
    ds = Dataset(torch.randint(0, 256, (16, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(16) % 3, info, "train")
    space = default_space().resized(cells=2, channels=4, reductions=[1])
    cfg = SearchConfig(epochs=2, batch_size=4, device="cpu", dataset="synthetic", tensorboard=True)
    search(space, ds, cfg, tmp_path / "s")
    tags = _scalars(tmp_path / "s")
    alpha = [t for t in tags if t.startswith("search/alpha_normal/")]
    assert len(alpha) == len(space.edges()) * len(space.ops)
    edge = f"search/alpha_normal/{'->'.join(map(str, space.edges()[0]))}/"
    assert sum(tags[edge + op][-1][1] for op in space.ops) == pytest.approx(1.0, abs=1e-5)  # a softmax row
    search(space, ds, cfg.model_copy(update={"tensorboard": False}), tmp_path / "s", restart=True)
    assert not list((tmp_path / "s" / "tensorboard").glob("*"))


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    from nasgal.engine.tracking import tracker

    real = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(NasgalError, match="needs the tensorboard package") as err:
        tracker(True, tmp_path)
    assert "nasgal[tracking]" in err.value.hint
