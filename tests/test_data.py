"""nasgal.data: readers of the real formats, lookup, splits, augmentation and the device loader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nasgal.data import (
    DATASETS,
    Augment,
    DataError,
    DatasetInfo,
    DeviceLoader,
    check_compatible,
    default_augment,
    load_dataset,
    resolve_name,
)
from nasgal.data import locate
from nasgal.data.augment import crop_flip, cutout
from nasgal.data.sources import Download
from nasgal.errors import NasgalError

from datafiles import (
    idx_bytes,
    offline,
    write_cifar10,
    write_cifar100,
    write_idx,
    write_image_folder,
    write_mnist_like,
)


def _no_fetch(source):
    raise AssertionError("a test tried to download")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No downloads, no real system or user folders: every test sees only its tmp files."""
    offline(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "system")
    monkeypatch.setattr(locate, "fetch", _no_fetch)


def _info(channels=1, size=(28, 28), classes=10, name="toy") -> DatasetInfo:
    return DatasetInfo(
        name=name, channels=channels, size=size, classes=classes,
        class_names=tuple(str(i) for i in range(classes)), mean=(0.5,) * channels, std=(0.25,) * channels,
    )


def _toy(n=100, classes=10, channels=1, size=8, split="train", seed=0):
    from nasgal.data import Dataset

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return Dataset(images, labels, _info(channels, (size, size), classes), split)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, canonical",
    [("fashion_mnist", "fashion_mnist"), ("FashionMNIST", "fashion_mnist"), ("fashion-mnist", "fashion_mnist"),
     ("fmnist", "fashion_mnist"), ("MNIST", "mnist"), ("CIFAR-10", "cifar10"), ("cifar_100", "cifar100"),
     ("ImageFolder:/x", "image_folder")],
)
def test_names_and_aliases_resolve(name, canonical):
    assert resolve_name(name)[0].name == canonical


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*fashion_mnist.*cifar100.*image_folder:<path>"):
        load_dataset("imagenet", download=False)


def test_registry_and_defaults():
    assert set(DATASETS) == {"fashion_mnist", "mnist", "cifar10", "cifar100", "image_folder", "voice"}
    assert not default_augment("FashionMNIST").hflip and not default_augment("mnist").hflip
    assert not default_augment("voice").enabled  # a flipped or shifted spectrogram is another sound
    assert default_augment("cifar10") == Augment(random_crop_padding=4, hflip=True)
    assert issubclass(DataError, NasgalError)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arrays = write_mnist_like(tmp_path / "d", n_train=30, n_test=20, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset("fashion_mnist", data_dir=tmp_path / "d", split=split, download=False)
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(arrays[f"{split}_labels"]), 1, 28, 28)
        assert np.array_equal(ds.images[:, 0].numpy(), arrays[f"{split}_images"])
        assert np.array_equal(ds.labels.numpy(), arrays[f"{split}_labels"])
        assert ds.labels.dtype == torch.int64 and ds.split == split
    assert ds.info.name == "fashion_mnist" and ds.info.class_names[9] == "Ankle boot"
    assert ds.info.shape == (1, 28, 28) and ds.info.classes == 10


def test_idx_dotted_names_and_mnist(tmp_path):
    arrays = write_mnist_like(tmp_path, gz=False, dotted=True)
    ds = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["train_images"])
    assert ds.info.mean == (0.1307,)


def test_idx_gzip_detected_by_content(tmp_path):
    """A gzipped file without the .gz suffix is still read."""
    arrays = write_mnist_like(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    ds = load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["train_images"])


def _corrupt(tmp_path, filename, data: bytes) -> Path:
    write_mnist_like(tmp_path, gz=False)
    path = tmp_path / filename
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "filename, make, message",
    [
        ("train-images-idx3-ubyte", lambda b: b"\x12\x34" + b[2:], "not an IDX file: magic number"),
        ("train-images-idx3-ubyte", lambda b: b[:-5], "is truncated"),
        ("train-images-idx3-ubyte", lambda b: b[:10], "is truncated"),
        ("train-images-idx3-ubyte", lambda b: b + b"xx", "bytes after"),
        ("train-images-idx3-ubyte", lambda b: b[:2] + b"\x0d" + b[3:], "float values"),
        ("train-labels-idx1-ubyte", lambda b: idx_bytes(np.zeros(7, np.uint8)), "holds 40 images but .* 7 labels"),
        ("train-labels-idx1-ubyte", lambda b: idx_bytes(np.full(40, 12, np.uint8)), "has label 12"),
        ("train-labels-idx1-ubyte", lambda b: idx_bytes(np.zeros((40, 2), np.uint8)), "expected labels"),
    ],
)
def test_corrupt_idx_names_the_file(tmp_path, filename, make, message):
    original = (write_mnist_like(tmp_path, gz=False), (tmp_path / filename).read_bytes())[1]
    path = tmp_path / filename
    path.write_bytes(make(original))
    with pytest.raises(DataError, match=message) as err:
        load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
    assert str(path) in str(err.value)


def test_truncated_gzip_names_the_file(tmp_path):
    write_mnist_like(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="damaged gzip") as err:
        load_dataset("fashion_mnist", data_dir=tmp_path, split="test", download=False)
    assert str(path) in str(err.value) and err.value.hint


# ---------------------------------------------------------------- CIFAR


def test_cifar10_round_trip(tmp_path):
    arrays = write_cifar10(tmp_path, per_batch=10, n_test=20)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.images.shape == (50, 3, 32, 32) and ds.info.shape == (3, 32, 32)
    # pixel (c, h, w) of image i is byte c*1024 + h*32 + w of its row
    assert np.array_equal(ds.images.reshape(50, -1).numpy(), arrays["train_data"])
    assert ds.images[7, 2, 5, 9].item() == arrays["train_data"][7, 2 * 1024 + 5 * 32 + 9]
    assert np.array_equal(ds.labels.numpy(), arrays["train_labels"])
    assert ds.info.class_names[0] == "airplane"
    test = load_dataset("CIFAR-10", data_dir=tmp_path / "cifar-10-batches-py", split="test", download=False)
    assert np.array_equal(test.images.reshape(20, -1).numpy(), arrays["test_data"])
    assert np.array_equal(test.labels.numpy(), arrays["test_labels"])


def test_cifar100_round_trip_uses_fine_labels_and_meta(tmp_path):
    arrays = write_cifar100(tmp_path / "cifar100")
    ds = load_dataset("cifar100", data_dir=tmp_path, split="test", download=False)
    assert ds.images.shape == (100, 3, 32, 32) and ds.info.classes == 100
    assert np.array_equal(ds.images.reshape(100, -1).numpy(), arrays["test_data"])
    assert np.array_equal(ds.labels.numpy(), arrays["test_labels"])
    assert ds.info.class_names[3] == "class03"


def test_cifar_truncated_pickle_names_the_file(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="not a readable CIFAR batch file") as err:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(path) in str(err.value)


def test_cifar_pickle_with_foreign_code_is_refused(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))  # a global that is not numpy
    with pytest.raises(DataError, match="refusing to load") as err:
        load_dataset("cifar10", data_dir=tmp_path, split="test", download=False)
    assert str(path) in str(err.value)


def test_cifar_wrong_content(tmp_path):
    write_cifar10(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    with open(base / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, f, protocol=2)
    with pytest.raises(DataError, match=r"expected uint8 \[N, 3072\]"):
        load_dataset("cifar10", data_dir=tmp_path, split="test", download=False)
    with open(base / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 3072), np.uint8)}, f, protocol=2)
    with pytest.raises(DataError, match="no b'labels' entry"):
        load_dataset("cifar10", data_dir=tmp_path, split="test", download=False)


# ---------------------------------------------------------------- image folders


def test_image_folder_split_is_stratified_seeded_and_exact(tmp_path):
    pixels = write_image_folder(tmp_path / "pets", {"dog": 10, "cat": 5}, size=(32, 32))
    name = f"image_folder:{tmp_path / 'pets'}"
    train = load_dataset(name, split="train", image_size=28)
    test = load_dataset(name, split="test", image_size=28)
    assert train.info.class_names == ("cat", "dog")  # sorted
    assert train.info.shape == (3, 28, 28) and train.info.classes == 2
    assert len(train) + len(test) == 15 and len(test) == 3
    assert test.class_counts().tolist() == [1, 2]  # 20% of each class
    # every image appears exactly once; 32x32 is already 28*256/224 = 32 short side, so a pure centre crop
    crops = {tuple(img.flatten()) for ds in (train, test) for img in ds.images.permute(0, 2, 3, 1).numpy()}
    expected = {tuple(p[2:30, 2:30].flatten()) for ps in pixels.values() for p in ps}
    assert crops == expected
    again = load_dataset(name, split="test", image_size=28)
    assert torch.equal(again.images, test.images)
    other_seed = load_dataset(name, split="test", image_size=28, split_seed=1)
    assert not torch.equal(other_seed.images, test.images)


def test_image_folder_explicit_split_grey_and_resize(tmp_path):
    write_image_folder(tmp_path / "train", {"a": 3, "b": 2}, size=(60, 40))
    write_image_folder(tmp_path / "test", {"b": 2}, size=(40, 50), seed=1)
    test = load_dataset("image_folder", data_dir=tmp_path, split="test", image_size=16, channels=1)
    assert test.images.shape == (2, 1, 16, 16) and test.labels.tolist() == [1, 1]
    assert test.info.class_names == ("a", "b") and test.info.channels == 1
    train = load_dataset(f"folder:{tmp_path}", split="train")
    assert train.images.shape == (5, 3, 224, 224)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"image_folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(f"image_folder:{tmp_path / 'empty'}")
    write_image_folder(tmp_path / "bad", {"a": 5, "b": 5})
    broken = tmp_path / "bad" / "a" / "001.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image") as err:
        for split in ("train", "test"):
            load_dataset(f"image_folder:{tmp_path / 'bad'}", split=split)
    assert str(broken) in str(err.value)
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("image_folder")


# ---------------------------------------------------------------- lookup


def test_lookup_order(tmp_path, monkeypatch):
    """data_dir, then $NASGAL_DATA_DIR, then the system location, then the user cache."""
    places = {
        "arg": tmp_path / "arg",
        "env": tmp_path / "env" / "fashion_mnist",  # <dir>/<name> layout
        "system": tmp_path / "system" / "fashion-mnist",  # Debian's folder name
        "cache": tmp_path / "xdg-cache" / "nasgal" / "datasets" / "fashion_mnist",
    }
    for i, folder in enumerate(places.values()):
        write_mnist_like(folder, n_train=10 * (i + 1), n_test=10)
    monkeypatch.setenv("NASGAL_DATA_DIR", str(tmp_path / "env"))
    assert len(load_dataset("fashion_mnist", data_dir=places["arg"], download=False)) == 10
    assert len(load_dataset("fashion_mnist", download=False)) == 20
    monkeypatch.delenv("NASGAL_DATA_DIR")
    assert len(load_dataset("fashion_mnist", download=False)) == 30
    for f in places["system"].iterdir():
        f.unlink()
    assert len(load_dataset("fashion_mnist", download=False)) == 40


def test_lookup_torchvision_style_layout(tmp_path):
    write_mnist_like(tmp_path / "FashionMNIST" / "raw", n_train=12)
    assert len(load_dataset("fashion_mnist", data_dir=tmp_path, download=False)) == 12


def test_missing_files_error_lists_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("NASGAL_DATA_DIR", str(tmp_path / "env"))
    write_idx(tmp_path / "given" / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset("fashion_mnist", data_dir=tmp_path / "given", download=True)  # NASGAL_NO_DOWNLOAD wins
    text = str(err.value)
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in text
    for where in (tmp_path / "given", tmp_path / "env", tmp_path / "system", tmp_path / "xdg-cache"):
        assert str(where) in text
    assert "lacks train-labels-idx1-ubyte" in text
    assert "$NASGAL_NO_DOWNLOAD is set" in text
    assert "apt install dataset-fashion-mnist" in err.value.hint
    assert str(tmp_path / "xdg-cache" / "nasgal" / "datasets" / "fashion_mnist") in err.value.hint


def test_download_false_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("NASGAL_NO_DOWNLOAD")
    with pytest.raises(DataError, match="not downloaded: download=False"):
        load_dataset("cifar100", download=False)


def test_download_runs_when_allowed_then_files_are_found(tmp_path, monkeypatch):
    """With downloads allowed, a missing dataset is fetched into the user cache and then read."""
    monkeypatch.delenv("NASGAL_NO_DOWNLOAD")
    calls = []

    def fake_fetch(source):
        calls.append(source.name)
        write_mnist_like(locate.cache_root() / source.name, n_train=11)

    monkeypatch.setattr(locate, "fetch", fake_fetch)
    assert len(load_dataset("mnist")) == 11 and calls == ["mnist"]


def _file_download(path: Path, data: bytes, md5: str | None = None, extract=False) -> Download:
    path.write_bytes(data)
    return Download(path.as_uri(), md5 or hashlib.md5(data).hexdigest(), extract)


def test_fetch_one_checks_md5_and_unpacks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    locate._fetch_one(_file_download(src / "a.gz", b"payload"), dest)
    assert (dest / "a.gz").read_bytes() == b"payload"
    with pytest.raises(DataError, match="has MD5 .* expected 0123"):
        locate._fetch_one(_file_download(src / "b.gz", b"payload", md5="0123"), dest)
    assert not (dest / "b.gz").exists() and not (dest / "b.gz.part").exists()
    write_cifar10(tmp_path / "tree")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "tree" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    locate._fetch_one(_file_download(src / "cifar-10-python.tar.gz", buf.getvalue(), extract=True), dest)
    assert len(load_dataset("cifar10", data_dir=dest, split="test", download=False)) == 20


def test_network_probe_fails_fast_on_unreachable_host():
    assert not locate.network_reachable("http://127.0.0.1:9/x", timeout=0.5)


# ---------------------------------------------------------------- subsets and splits


def test_subset_is_stratified_and_seeded():
    ds = _toy(n=200, classes=10)
    sub = ds.subset(50, seed=3)
    assert len(sub) == 50 and sub.class_counts().tolist() == [5] * 10
    assert torch.equal(sub.images, ds.subset(50, seed=3).images)
    assert not torch.equal(sub.images, ds.subset(50, seed=4).images)
    assert len(ds.subset(0.25)) == 50


def test_subset_keeps_uneven_proportions():
    from nasgal.data import Dataset

    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    ds = Dataset(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), labels, _info(size=(4, 4), classes=3), "train")
    assert ds.subset(20).class_counts().tolist() == [12, 6, 2]
    assert ds.subset(7).class_counts().tolist() == [4, 2, 1]


def test_split_validation_disjoint_balanced_deterministic():
    ds = _toy(n=300, classes=10)
    ds.images[:, 0, 0, :2] = torch.stack([torch.arange(300) // 256, torch.arange(300) % 256], 1).to(torch.uint8)
    ident = lambda d: set((d.images[:, 0, 0, 0].long() * 256 + d.images[:, 0, 0, 1].long()).tolist())  # noqa: E731
    train, val = ds.split_validation(0.1, seed=0)
    assert (train.split, val.split) == ("train", "val")
    assert len(val) == 30 and val.class_counts().tolist() == [3] * 10
    assert ident(train).isdisjoint(ident(val)) and ident(train) | ident(val) == set(range(300))
    train2, val2 = ds.split_validation(30, seed=0)
    assert torch.equal(val.images, val2.images) and torch.equal(train.labels, train2.labels)
    assert train.split_validation(10)[1].split == "val"  # a train part can be split again


def test_split_validation_refuses_test_split_and_bad_sizes():
    with pytest.raises(DataError, match="training split, but this is the test split"):
        _toy(split="test").split_validation(0.1)
    with pytest.raises(DataError, match="impossible"):
        _toy(n=10).split_validation(10)
    with pytest.raises(DataError, match="strictly between"):
        _toy().subset(1.5)


def test_channels_and_image_size_conversions(tmp_path):
    write_mnist_like(tmp_path, n_train=10)
    ds = load_dataset("fashion_mnist", data_dir=tmp_path, download=False, channels=3, image_size=32)
    assert ds.images.shape == (10, 3, 32, 32) and ds.info.shape == (3, 32, 32) and ds.info.std == (0.353,) * 3
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    write_cifar10(tmp_path)
    with pytest.raises(DataError, match="has 3 channels"):
        load_dataset("cifar10", data_dir=tmp_path, channels=1, download=False)


# ---------------------------------------------------------------- augmentation


def test_crop_with_padding_is_a_shifted_window():
    x = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = crop_flip(x, 2, False, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(16):  # test-side check only: each output is one window of the padded input
        windows = [padded[b, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    again = crop_flip(x, 2, False, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_hflip_flips_about_half():
    x = torch.randint(0, 256, (64, 1, 5, 5), dtype=torch.uint8)
    out = crop_flip(x, 0, True, torch.Generator().manual_seed(1))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_cutout_zeroes_a_square_patch():
    x = torch.ones(32, 2, 12, 12)
    out = cutout(x, 4, torch.Generator().manual_seed(0))
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # the same patch in every channel
    counts = zero[:, 0].flatten(1).sum(1)
    assert bool((counts >= 4).all()) and bool((counts <= 16).all())
    for b in range(32):
        rows, cols = zero[b, 0].any(1), zero[b, 0].any(0)
        assert int(zero[b, 0].sum()) == int(rows.sum()) * int(cols.sum())  # a rectangle


# ---------------------------------------------------------------- loader


def test_loader_shapes_dtypes_and_count():
    ds = _toy(n=100)
    loader = DeviceLoader(ds, batch_size=32, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    x, y = batches[0]
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64 and y.shape == (32,)
    loose = DeviceLoader(ds, batch_size=32, drop_last=False, shuffle=True)
    labels = torch.cat([y for _, y in loose])
    assert len(loose) == 4 and labels.shape == (100,)
    assert torch.equal(labels.sort().values, ds.labels.sort().values)  # a permutation: each image once


def test_loader_normalizes_in_order_without_shuffle():
    ds = _toy(n=20)
    x, y = next(iter(DeviceLoader(ds, batch_size=20, shuffle=False)))
    assert torch.allclose(x, (ds.images.float() / 255 - 0.5) / 0.25, atol=1e-5) and torch.equal(y, ds.labels)
    raw, _ = next(iter(DeviceLoader(ds, batch_size=20, shuffle=False, normalize=False)))
    assert torch.allclose(raw, ds.images.float() / 255)


def test_loader_is_deterministic_per_seed_and_epoch():
    ds = _toy(n=64, channels=3)
    aug = Augment(random_crop_padding=2, hflip=True, cutout=4)
    a = DeviceLoader(ds, batch_size=16, augment=aug, seed=5)
    b = DeviceLoader(ds, batch_size=16, augment=aug, seed=5)
    ea, eb = list(a), list(b)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(ea, eb))
    second = list(a)
    assert not torch.equal(second[0][0], ea[0][0])
    b.set_epoch(1)
    assert torch.equal(next(iter(b))[0], second[0][0])
    c = DeviceLoader(ds, batch_size=16, augment=aug, seed=6)
    assert not torch.equal(next(iter(c))[0], ea[0][0])


def test_loader_options_and_errors():
    ds = _toy(n=40, channels=3)
    x, _ = next(iter(DeviceLoader(ds, batch_size=8, channels_last=True, dtype=torch.bfloat16)))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(DataError, match="fewer than one batch"):
        DeviceLoader(ds, batch_size=64)
    assert len(DeviceLoader(ds, batch_size=64, drop_last=False)) == 1


# ---------------------------------------------------------------- compatibility


def test_check_compatible_message():
    info = _info(name="fashion_mnist")
    check_compatible(info, 1, 28, 10)
    check_compatible(info, 1, (28, 28), 10)
    with pytest.raises(DataError) as err:
        check_compatible(info, 3, 32, 10)
    assert str(err.value) == (
        "dataset fashion_mnist gives 1×28×28 images in 10 classes, "
        "but the network expects 3×32×32 inputs and 10 classes"
    )
    # the hint names the options a user has: nasgal stack's
    assert err.value.hint == "stack the network for this dataset: nasgal stack GENOTYPE --in-channels 1 --input-size 28 ..."
    with pytest.raises(DataError, match="100 classes"):
        check_compatible(info, 1, 28, 100)


# ---------------------------------------------------------------- real data


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_ROOT", REAL_FASHION.parent)  # the real system lookup
    train = load_dataset("FashionMNIST", split="train", download=False)
    test = load_dataset("fashion_mnist", split="test", download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    x = train.images.float() / 255
    assert abs(x.mean().item() - train.info.mean[0]) < 1e-3 and abs(x.std().item() - train.info.std[0]) < 1e-3
    check_compatible(train.info, 1, 28, 10)
    loader = DeviceLoader(train, batch_size=128)
    assert len(loader) == 468
