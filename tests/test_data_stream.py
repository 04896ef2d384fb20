"""Image folders larger than the memory budget: the disk cache and the loader's host-gathered batches."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasgal.data import Augment, DataError, DeviceLoader, load_dataset
from nasgal.data import image_cache, locate
from nasgal.data.image_folder import folder_split

from datafiles import offline, write_image_folder

AUG = Augment(random_crop_padding=2, hflip=True, cutout=4)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No downloads, no user cache, no budget or cache folder from the environment."""
    offline(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "system")
    monkeypatch.delenv(image_cache.ENV_DATA_MEMORY, raising=False)
    monkeypatch.delenv(image_cache.ENV_DATA_CACHE, raising=False)


@pytest.fixture
def pets(tmp_path) -> str:
    """A flat folder of 36 small RGB images in three classes (80/20 split drawn by the loader)."""
    write_image_folder(tmp_path / "pets", {"cat": 14, "dog": 12, "owl": 10}, size=(24, 20))
    return f"image_folder:{tmp_path / 'pets'}"


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """How many images each cache build decoded (the real decoder runs; the calls are only counted)."""
    calls: list[int] = []
    real = image_cache.decode_chunks

    def counted(paths, *args, **kwargs):
        calls.append(len(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(image_cache, "decode_chunks", counted)
    return calls


def _cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _same_batches(a: DeviceLoader, b: DeviceLoader, epochs: int = 2) -> None:
    for _ in range(epochs):
        batches_a, batches_b = list(a), list(b)
        assert len(batches_a) == len(batches_b) == len(a)
        for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ---------------------------------------------------------------- which path


def test_over_budget_goes_to_disk_with_the_same_pixels(pets, tmp_path, caplog):
    memory = load_dataset(pets, image_size=16)
    assert memory.storage == "memory" and memory.cache_path is None
    with caplog.at_level(logging.WARNING, logger="nasgal.data"):  # shown by the command line without -v
        disk = load_dataset(pets, image_size=16, memory_budget=1000)  # 29 images × 768 bytes > 1000
    assert disk.storage == "disk-cache"
    assert disk.cache_path.parent == tmp_path / "xdg-cache" / "nasgal" / "image-cache"  # the default folder
    assert disk.cache_path.name.startswith("pets-train-3x16x16-") and disk.cache_path.suffix == ".npy"
    assert "exceed the memory budget 1000 B (memory_budget)" in caplog.text and str(disk.cache_path) in caplog.text
    assert str(disk.cache_path) in repr(disk)
    assert isinstance(np.load(disk.cache_path, mmap_mode="r"), np.memmap)
    assert torch.equal(disk.images, memory.images) and torch.equal(disk.labels, memory.labels)
    assert disk.info == memory.info and len(disk) == len(memory) == 29
    assert disk.to("cpu") is disk
    disk.images[0] = 0  # copy-on-write: the file keeps its pixels
    assert torch.equal(load_dataset(pets, image_size=16, memory_budget=0).images, memory.images)


def test_budget_from_the_environment_and_the_default_share(pets, monkeypatch, tmp_path):
    within = load_dataset(pets, split="test", image_size=16, memory_budget="1M")
    assert within.storage == "memory"
    monkeypatch.setenv("NASGAL_DATA_MEMORY", "2k")  # 7 test images × 768 bytes = 5376 > 2048
    monkeypatch.setenv("NASGAL_DATA_CACHE", str(tmp_path / "elsewhere"))
    disk = load_dataset(pets, split="test", image_size=16)
    assert disk.storage == "disk-cache" and disk.cache_path.parent == tmp_path / "elsewhere"
    assert load_dataset(pets, split="test", image_size=16, memory_budget="8k").storage == "memory"  # the argument wins
    monkeypatch.delenv("NASGAL_DATA_MEMORY")
    monkeypatch.setattr(image_cache, "available_memory", lambda: 8000)  # default: half of it, 4000 < 5376
    assert load_dataset(pets, split="test", image_size=16).storage == "disk-cache"
    monkeypatch.setattr(image_cache, "available_memory", lambda: None)  # unknown: no limit
    assert load_dataset(pets, split="test", image_size=16).storage == "memory"


@pytest.mark.parametrize(
    "text, expected",
    [("0", 0), ("1000", 1000), ("4G", 4 << 30), ("512MiB", 512 << 20), ("1.5k", 1536), ("2 gb", 2 << 30), ("25%", 2500)],
)
def test_budget_spellings(monkeypatch, text, expected):
    monkeypatch.setattr(image_cache, "available_memory", lambda: 10_000)
    assert image_cache.parse_budget(text, "$NASGAL_DATA_MEMORY") == expected


def test_bad_budgets_are_named(pets, monkeypatch):
    monkeypatch.setenv("NASGAL_DATA_MEMORY", "lots")
    with pytest.raises(DataError, match=r"\$NASGAL_DATA_MEMORY is 'lots', which is not a memory budget") as err:
        load_dataset(pets)
    assert "4G" in err.value.hint and "25%" in err.value.hint
    with pytest.raises(DataError, match="memory_budget must not be negative, got -5"):
        load_dataset(pets, memory_budget=-5)
    with pytest.raises(DataError, match="memory_budget must be a byte count"):
        load_dataset(pets, memory_budget=True)
    with pytest.raises(DataError, match="memory_budget is '3 apples'"):
        load_dataset(pets, memory_budget="3 apples")


# ---------------------------------------------------------------- identical batches


@pytest.mark.parametrize("channels", [3, 1])
def test_disk_and_memory_give_identical_batches(pets, channels, monkeypatch):
    monkeypatch.setattr(image_cache, "CHUNK_BYTES", 5 * 16 * 16 * 3)  # the cache is written in several chunks
    memory = load_dataset(pets, image_size=16, channels=channels)
    disk = load_dataset(pets, image_size=16, channels=channels, memory_budget=0)
    assert disk.storage == "disk-cache" and memory.storage == "memory"
    train = dict(batch_size=8, shuffle=True, drop_last=True, augment=AUG, seed=7)
    loader = DeviceLoader(disk, **train)
    assert loader.streamed and loader.dataset is disk  # not copied anywhere whole
    _same_batches(DeviceLoader(memory, **train), loader)
    evaluation = dict(batch_size=8, shuffle=False, drop_last=False)
    _same_batches(DeviceLoader(memory, **evaluation), DeviceLoader(disk, **evaluation), epochs=1)
    resumed_m, resumed_d = DeviceLoader(memory, **train), DeviceLoader(disk, **train)
    resumed_m.set_epoch(3)
    resumed_d.set_epoch(3)
    _same_batches(resumed_m, resumed_d, epochs=1)


def test_subsets_and_validation_splits_of_a_disk_set(pets):
    memory = load_dataset(pets, image_size=16)
    disk = load_dataset(pets, image_size=16, memory_budget=0)
    train_m, val_m = memory.split_validation(0.25, seed=2)
    train_d, val_d = disk.split_validation(0.25, seed=2)
    for m, d in ((train_m, train_d), (val_m, val_d)):
        assert d.storage == "disk-cache" and d.cache_path == disk.cache_path and d.split == m.split
        assert torch.equal(d.images, m.images) and torch.equal(d.labels, m.labels)
    sub_m, sub_d = train_m.subset(12, seed=1), train_d.subset(12, seed=1)  # rows of rows
    assert torch.equal(sub_d.images, sub_m.images) and torch.equal(sub_d.class_counts(), sub_m.class_counts())
    picks = torch.tensor([5, 0, 3])
    assert torch.equal(sub_d.gather(picks), sub_m.images[picks])
    half_m, half_d = sub_m.split_validation(0.5, seed=0), sub_d.split_validation(0.5, seed=0)  # as search does
    settings = dict(batch_size=3, shuffle=True, drop_last=True, augment=AUG, seed=1)
    _same_batches(DeviceLoader(half_m[0], **settings), DeviceLoader(half_d[0], **settings))
    with pytest.raises(DataError, match="training split, but this is the test split"):
        load_dataset(pets, split="test", memory_budget=0).split_validation(0.1)


def test_explicit_train_test_layout_on_disk(tmp_path):
    write_image_folder(tmp_path / "set" / "train", {"a": 6, "b": 5}, size=(30, 20))
    write_image_folder(tmp_path / "set" / "val", {"b": 3}, size=(20, 30), seed=1)
    for split in ("train", "test"):
        memory = load_dataset("image_folder", data_dir=tmp_path / "set", split=split, image_size=12)
        disk = load_dataset("image_folder", data_dir=tmp_path / "set", split=split, image_size=12, memory_budget=0)
        assert disk.storage == "disk-cache" and f"-{split}-3x12x12-" in disk.cache_path.name
        assert torch.equal(disk.images, memory.images) and torch.equal(disk.labels, memory.labels)
    assert disk.labels.tolist() == [1, 1, 1]


# ---------------------------------------------------------------- the cache file


def test_cache_is_reused_and_rebuilt_when_the_folder_changes(pets, tmp_path, decodes):
    first = load_dataset(pets, image_size=16, memory_budget=0)
    stamp = first.cache_path.stat().st_mtime_ns
    inode = first.cache_path.stat().st_ino
    again = load_dataset(pets, image_size=16, memory_budget=0)
    assert again.cache_path == first.cache_path and again.cache_path.stat().st_ino == inode  # not rewritten
    assert decodes == [29]  # the second load decoded nothing
    assert torch.equal(again.images, first.images)

    other_size = load_dataset(pets, image_size=12, memory_budget=0)
    grey = load_dataset(pets, image_size=16, channels=1, memory_budget=0)
    assert len({first.cache_path, other_size.cache_path, grey.cache_path}) == 3 and decodes == [29, 29, 29]

    # one training image gets new pixels: a new cache file with them, the old one left alone
    index = 5
    changed = folder_split(tmp_path / "pets", "train")[0][index]
    assert int(first.images[index].sum()) > 0
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(stamp + 10**9, stamp + 10**9))
    rebuilt = load_dataset(pets, image_size=16, memory_budget=0)
    assert rebuilt.cache_path != first.cache_path and decodes[-1] == 29 and first.cache_path.is_file()
    assert int(rebuilt.images[index].sum()) == 0 and torch.equal(rebuilt.images, load_dataset(pets, image_size=16).images)

    # one more image: a new file again, holding one more image of the 80 % part
    Image.fromarray(np.full((20, 24, 3), 9, np.uint8)).save(tmp_path / "pets" / "owl" / "new.png")
    grown = load_dataset(pets, image_size=16, memory_budget=0)
    assert grown.cache_path not in (first.cache_path, rebuilt.cache_path)
    assert torch.equal(grown.images, load_dataset(pets, image_size=16).images)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:40],  # only part of the header
        lambda data: b"",  # empty
        lambda data: b"garbage" * 100,  # not a .npy file
        lambda data: data + b"\0" * 10,  # bytes after the pixels
    ],
    ids=["truncated", "header-only", "empty", "garbage", "too-long"],
)
def test_damaged_cache_is_decoded_again(pets, damage, caplog, decodes):
    good = load_dataset(pets, image_size=16, memory_budget=0)
    path = good.cache_path
    expected = good.images.clone()
    del good
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="nasgal.data"):
        again = load_dataset(pets, image_size=16, memory_budget=0)
    assert f"image cache {path}" in caplog.text and "decoding the images again" in caplog.text
    assert again.cache_path == path and decodes == [29, 29]
    assert torch.equal(again.images, expected)


def test_cache_of_another_shape_is_decoded_again(pets, decodes):
    good = load_dataset(pets, image_size=16, memory_budget=0)
    path = good.cache_path
    np.save(path, np.zeros((29, 3, 16, 15), np.uint8))  # a valid .npy, but not these images
    again = load_dataset(pets, image_size=16, memory_budget=0)
    assert decodes == [29, 29] and torch.equal(again.images, load_dataset(pets, image_size=16).images)


def test_a_failed_decode_leaves_no_file(tmp_path, monkeypatch, decodes):
    write_image_folder(tmp_path / "bad", {"a": 20, "b": 5})
    train = folder_split(tmp_path / "bad", "train")[0]
    broken = train[15]  # the 16th image of the split: 15 chunks are already in the temporary file
    broken.write_bytes(b"not a png")
    monkeypatch.setattr(image_cache, "CHUNK_BYTES", 1)  # one image per chunk
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="cannot read image") as err:
        load_dataset(f"image_folder:{tmp_path / 'bad'}", image_size=8, memory_budget=0, cache_dir=cache)
    assert str(broken) in str(err.value) and decodes == [20]
    assert _cache_files(cache) == []  # no .npy, no temporary file


def test_rows_belong_to_disk_cache_datasets():
    from nasgal.data import Dataset, DatasetInfo

    info = DatasetInfo(name="toy", channels=1, size=(2, 2), classes=1, class_names=("x",), mean=(0.5,), std=(0.5,))
    with pytest.raises(DataError, match="rows select items of a disk-cache dataset only"):
        Dataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), info, "train",
                rows=torch.tensor([0, 1]))


def test_cache_writes_go_through_a_temporary_file(pets, tmp_path, monkeypatch):
    """The final name appears only by the rename, after every image is written."""
    seen: list[tuple[str, list[str]]] = []
    real = os.replace

    def watching(src, dst):
        seen.append((Path(dst).name, _cache_files(Path(dst).parent)))
        real(src, dst)

    monkeypatch.setattr(image_cache.os, "replace", watching)
    disk = load_dataset(pets, image_size=16, memory_budget=0, cache_dir=tmp_path / "c")
    [(final, before)] = seen
    assert final == disk.cache_path.name and final not in before
    assert len(before) == 1 and before[0].endswith(".tmp")
    assert _cache_files(tmp_path / "c") == [final]


def test_cache_command_lists_and_clears_only_the_cache_files(pets, tmp_path, decodes):
    """``nasgal datasets cache``: lists complete and unfinished cache files, least recently used
    first; ``--older-than`` picks the stale ones; ``--clear`` deletes them and nothing else."""
    from typer.testing import CliRunner

    from nasgal.cli.main import app

    folder = tmp_path / "c"
    train = load_dataset(pets, split="train", image_size=16, memory_budget=0, cache_dir=folder).cache_path
    test = load_dataset(pets, split="test", image_size=16, memory_budget=0, cache_dir=folder).cache_path
    left = folder / f".{train.stem}.k1ll3d.tmp"  # what a killed write leaves
    left.write_bytes(b"\0" * 10)
    mine = folder / "notes.txt"  # not ours: never listed, never removed
    mine.write_text("keep")
    old = 1_000_000_000.0  # 2001: long unused
    os.utime(train, (old, old))
    run = CliRunner().invoke
    listed = run(app, ["datasets", "cache", "--dir", str(folder)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    order = [next(i for i, line in enumerate(lines) if f.name in line) for f in (train, test, left)]
    assert order[0] < min(order[1:]) and "unfinished" in lines[order[2]] and "notes.txt" not in listed.output
    assert f"3 file(s), {image_cache.format_bytes(sum(f.stat().st_size for f in (train, test, left)))}" in listed.output

    stale = run(app, ["datasets", "cache", "--dir", str(folder), "--older-than", "30", "--clear"])
    assert stale.exit_code == 0 and "removed 1 file(s) unused for more than 30 days" in stale.output
    assert not train.exists() and test.exists() and left.exists()
    everything = run(app, ["datasets", "cache", "--dir", str(folder), "--clear"])
    assert everything.exit_code == 0 and "removed 2 file(s)" in everything.output
    assert _cache_files(folder) == ["notes.txt"]
    assert "0 file(s), 0 B" in run(app, ["datasets", "cache", "--dir", str(tmp_path / "none")]).output
    load_dataset(pets, split="train", image_size=16, memory_budget=0, cache_dir=folder)
    assert decodes == [29, 7, 29]  # a cleared cache is decoded again


def test_a_reused_cache_file_is_marked_as_used(pets, tmp_path):
    first = load_dataset(pets, image_size=16, memory_budget=0).cache_path
    os.utime(first, (1_000_000_000.0, 1_000_000_000.0))
    load_dataset(pets, image_size=16, memory_budget=0)
    [entry] = image_cache.cache_files(first.parent)
    assert entry.path == first and entry.last_used > 1_000_000_000.0 + 86400 and not entry.partial


def test_unusable_cache_folder_is_a_clear_error(pets, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=f"cannot use the image cache folder {blocker}") as err:
        load_dataset(pets, image_size=16, memory_budget=0, cache_dir=blocker)
    assert "NASGAL_DATA_CACHE" in err.value.hint



def test_read_only_cache_folder_is_a_clear_error(pets, tmp_path, monkeypatch):
    """What a user (not root) meets in a folder without write permission: the temporary file is refused."""

    def refused(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", str(Path(dir) / f"{prefix}x{suffix}"))

    monkeypatch.setattr(image_cache.tempfile, "mkstemp", refused)
    with pytest.raises(DataError, match=f"cannot use the image cache folder {tmp_path / 'ro'}: .*Permission denied"):
        load_dataset(pets, image_size=16, memory_budget=0, cache_dir=tmp_path / "ro")
    assert _cache_files(tmp_path / "ro") == []


def test_not_enough_disk_space_is_a_clear_error(pets, tmp_path, monkeypatch):
    class Usage:
        free = 100

    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda folder: Usage())
    with pytest.raises(DataError, match=r"the image cache needs 21\.8 KiB in .*, but only 100 B is free") as err:
        load_dataset(pets, image_size=16, memory_budget=0, cache_dir=tmp_path / "c")
    assert "NASGAL_DATA_MEMORY" in err.value.hint
    assert _cache_files(tmp_path / "c") == []
