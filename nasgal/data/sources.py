"""The built-in datasets: where their files live, how to read them, what they give.

``DATASETS`` maps each canonical name to a :class:`DatasetSource`. Image folders are
addressed as ``image_folder:<path>`` and read by :mod:`nasgal.data.image_folder`; prepared
speech (``voice``, optionally ``voice:<path>``) is read by :mod:`nasgal.data.voice`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .augment import Augment
from .cifar import read_cifar_batch, read_label_names
from .errors import DataError
from .idx import read_idx_pair
from .info import DatasetInfo

SPLITS = ("train", "test")

# Reader: (files found for the split, split) -> images uint8 [N,C,H,W], labels int64 [N], class names or None.
Reader = Callable[[Mapping[str, Path], str], tuple[np.ndarray, np.ndarray, "tuple[str, ...] | None"]]


@dataclass(frozen=True)
class Download:
    """One official file: where to fetch it and its published MD5."""

    url: str
    md5: str
    extract: bool = False  # a .tar.gz archive to unpack into the cache folder

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    """How to find, fetch and read one built-in dataset."""

    name: str  # canonical name
    title: str  # as its authors write it
    aliases: tuple[str, ...]  # other spellings accepted by load_dataset (compared without case, '-', '_')
    info: DatasetInfo  # native shape, classes and pixel statistics
    files: Mapping[str, tuple[str, ...]]  # split -> file names needed (IDX: without .gz)
    read: Reader | None  # None for image folders, which have their own loader
    dir_names: tuple[str, ...] = ()  # folder names tried under each search root
    subdirs: tuple[str, ...] = ("",)  # folders tried inside each of those (archive layouts)
    downloads: tuple[Download, ...] = ()
    homepage: str = ""
    debian_package: str | None = None
    default_augment: Augment = field(default_factory=Augment)
    idx_names: bool = False  # files may also be gzipped (.gz) or spelled train-images.idx3-ubyte

    def file_candidates(self, filename: str) -> tuple[str, ...]:
        """Names under which ``filename`` may exist on disk, most usual first."""
        if not self.idx_names:
            return (filename,)
        dotted = re.sub(r"-(idx\d-ubyte)$", r".\1", filename)  # train-images.idx3-ubyte (common unzip name)
        return (f"{filename}.gz", filename, f"{dotted}.gz", dotted)


def _read_idx(files: Mapping[str, Path], split: str) -> tuple[np.ndarray, np.ndarray, None]:
    prefix = "train" if split == "train" else "t10k"
    images, labels = read_idx_pair(files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"], 10)
    return images, labels, None


def _cifar_reader(label_key: bytes, classes: int, meta_file: str, names_key: bytes) -> Reader:
    def read(files: Mapping[str, Path], split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
        parts = [read_cifar_batch(path, label_key, classes) for path in files.values()]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        folder = next(iter(files.values())).parent
        names = read_label_names(folder / meta_file, names_key)
        if names is not None and len(names) != classes:
            raise DataError(f"{folder / meta_file} lists {len(names)} class names, expected {classes}")
        return images, labels, names

    return read


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
    tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()
)

_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # official, per zalandoresearch/fashion-mnist
_MNIST_URL = "http://yann.lecun.com/exdb/mnist/"  # official; often refuses robots, then put the files in place by hand
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

FASHION_MNIST = DatasetSource(
    name="fashion_mnist",
    title="Fashion-MNIST",
    aliases=("fashionmnist", "fmnist", "fashion"),
    info=DatasetInfo(
        name="fashion_mnist", channels=1, size=(28, 28), classes=10, class_names=FASHION_MNIST_CLASSES,
        mean=(0.2860,), std=(0.3530,),  # training set, 0..1 scale
    ),
    files=_IDX_FILES,
    read=_read_idx,
    dir_names=("fashion-mnist", "fashion_mnist", "FashionMNIST"),
    subdirs=("", "raw"),
    idx_names=True,
    downloads=(
        Download(_FASHION_URL + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        Download(_FASHION_URL + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        Download(_FASHION_URL + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        Download(_FASHION_URL + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    debian_package="dataset-fashion-mnist",
    default_augment=Augment(),  # the 10-epoch anchor in docs/design.md trains without augmentation; never flip
)

MNIST = DatasetSource(
    name="mnist",
    title="MNIST",
    aliases=("mnist",),
    info=DatasetInfo(
        name="mnist", channels=1, size=(28, 28), classes=10, class_names=tuple(str(d) for d in range(10)),
        mean=(0.1307,), std=(0.3081,),
    ),
    files=_IDX_FILES,
    read=_read_idx,
    dir_names=("mnist", "MNIST"),
    subdirs=("", "raw"),
    idx_names=True,
    downloads=(
        Download(_MNIST_URL + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Download(_MNIST_URL + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        Download(_MNIST_URL + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        Download(_MNIST_URL + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    homepage="http://yann.lecun.com/exdb/mnist/",
    default_augment=Augment(),  # digits must not be flipped
)

CIFAR10 = DatasetSource(
    name="cifar10",
    title="CIFAR-10",
    aliases=("cifar10",),
    info=DatasetInfo(
        name="cifar10", channels=3, size=(32, 32), classes=10, class_names=CIFAR10_CLASSES,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),  # as in the DARTS reference code
    ),
    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    read=_cifar_reader(b"labels", 10, "batches.meta", b"label_names"),
    dir_names=("cifar10", "cifar-10", "CIFAR10"),
    subdirs=("", "cifar-10-batches-py"),
    downloads=(Download(_CIFAR_URL + "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", extract=True),),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    default_augment=Augment(random_crop_padding=4, hflip=True),
)

CIFAR100 = DatasetSource(
    name="cifar100",
    title="CIFAR-100",
    aliases=("cifar100",),
    info=DatasetInfo(
        name="cifar100", channels=3, size=(32, 32), classes=100, class_names=CIFAR100_CLASSES,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    ),
    files={"train": ("train",), "test": ("test",)},
    read=_cifar_reader(b"fine_labels", 100, "meta", b"fine_label_names"),
    dir_names=("cifar100", "cifar-100", "CIFAR100"),
    subdirs=("", "cifar-100-python"),
    downloads=(Download(_CIFAR_URL + "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", extract=True),),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    default_augment=Augment(random_crop_padding=4, hflip=True),
)

IMAGE_FOLDER = DatasetSource(
    name="image_folder",
    title="image folder",
    aliases=("imagefolder", "folder"),
    # Placeholder: the real info (classes, channels, size) comes from the folder when it is read.
    info=DatasetInfo(
        name="image_folder", channels=3, size=(224, 224), classes=1, class_names=("?",),
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    ),
    files={},
    read=None,
)

VOICE = DatasetSource(
    name="voice",
    title="voice",
    aliases=("voiceprint", "speakers", "voxceleb", "voxceleb1"),
    # Placeholder: the real info (speakers, image size, statistics) comes from the prepared cache.
    info=DatasetInfo(
        name="voice", channels=1, size=(360, 360), classes=1, class_names=("?",), mean=(0.5,), std=(0.25,),
    ),
    files={},
    read=None,
    default_augment=Augment(),  # a flipped spectrogram runs time backwards; a crop shifts frequencies
)

#: Sources whose name may carry a folder after ':' (``image_folder:<path>``, ``voice:<path>``).
WITH_PATH = ("image_folder", "voice")

DATASETS: Mapping[str, DatasetSource] = MappingProxyType(
    {s.name: s for s in (FASHION_MNIST, MNIST, CIFAR10, CIFAR100, IMAGE_FOLDER, VOICE)}
)


def _key(name: str) -> str:
    return re.sub(r"[-_ .]", "", name.strip().lower())


_ALIASES = {_key(alias): s for s in DATASETS.values() for alias in (s.name, s.title, *s.aliases)}


def resolve_name(name: str) -> tuple[DatasetSource, str | None]:
    """The source a dataset name refers to, and the path given after ``image_folder:`` if any."""
    prefix, sep, path = name.partition(":")
    source = _ALIASES.get(_key(prefix if sep else name))
    if source is None:
        known = ", ".join(n if n != "image_folder" else "image_folder:<path>" for n in DATASETS)
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}")
    if sep and source.name not in WITH_PATH:
        raise DataError(f"dataset {source.name} takes no path after ':' (got {name!r}); use data_dir / --data-dir")
    return source, (path if sep else None)


def default_augment(name: str) -> Augment:
    """The training augmentation that suits a dataset: crop+flip for CIFAR, none for digits/clothes/folders."""
    return resolve_name(name)[0].default_augment
