"""The model cache's files: an unwritable folder is found before training, files follow the umask."""
from __future__ import annotations

import os
import stat
import tempfile
import warnings

import pytest

from course import checkpoints
from course.checkpoints import save_checkpoint, train_or_load
from course.models import ShallowAutoencoder
from course.training import History

SETTINGS = dict(model="shallow", epochs=1, model_args={"hidden_dim": 8}, lr=1e-2, batch_size=64, seed=0,
                device="cpu", progress=False)


@pytest.fixture
def small(tiny, make_subset):
    return make_subset(tiny, 128, 32, 32)


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget which folders this process has already warned about."""
    monkeypatch.setattr(checkpoints, "_WARNED_FOLDERS", set(), raising=False)


def _cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "COURSE_CACHE" in str(w.message)]


def _spy_fit(monkeypatch, record) -> list[int]:
    """Record, for each training, how many cache warnings had been given when it started."""
    calls = []
    real_fit = checkpoints.fit

    def fit(*args, **kwargs):
        calls.append(len(_cache_warnings(record)))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "fit", fit)
    return calls


@pytest.mark.parametrize("where", ["file", "folder-under-a-file"])
def test_unwritable_cache_trains_warns_once_and_saves_nothing(small, tmp_path, monkeypatch, fresh_warnings, where):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    folder = blocker if where == "file" else blocker / "models"
    monkeypatch.setenv("COURSE_CACHE", str(folder))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        calls = _spy_fit(monkeypatch, record)
        first = train_or_load(data=small, **SETTINGS)
        second = train_or_load(data=small, **SETTINGS)
    assert not first.from_cache and not second.from_cache  # nothing could be saved, so nothing loads
    messages = _cache_warnings(record)
    assert len(messages) == 1, messages  # once per process and folder, not once per model
    assert str(folder) in messages[0] and "not writable" in messages[0]
    assert calls == [1, 1]  # the folder was checked before the first training began
    assert first.path is None and blocker.read_text() == "a regular file"


def test_read_only_cache_is_found_before_training(small, tmp_path, monkeypatch, fresh_warnings):
    """Simulated read-only folder (root ignores chmod): creating the probe file is refused."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    monkeypatch.setenv("COURSE_CACHE", str(folder))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied (simulated)", str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        calls = _spy_fit(monkeypatch, record)
        trained = train_or_load(data=small, **SETTINGS)
    assert calls == [1]  # warned before training, not after it
    assert trained.model is not None and not trained.from_cache and trained.path is None
    assert list(folder.iterdir()) == []


def test_each_unwritable_folder_is_named_once(small, tmp_path, monkeypatch, fresh_warnings):
    files = []
    for name in ("one", "two"):
        blocker = tmp_path / name
        blocker.write_text("x")
        files.append(blocker)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for blocker in files + files:
            train_or_load(data=small, cache=blocker, **SETTINGS)
    messages = _cache_warnings(record)
    assert len(messages) == 2 and str(files[0]) in messages[0] and str(files[1]) in messages[1]


def test_a_failed_save_after_training_keeps_the_model_and_warns(small, monkeypatch, fresh_warnings):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(checkpoints, "save_checkpoint", full_disk)
    with pytest.warns(UserWarning, match="No space left"):
        trained = train_or_load(data=small, **SETTINGS)
    assert isinstance(trained.model, ShallowAutoencoder) and trained.path is None


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoint_files_follow_the_umask(small, tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "shared" / "model.pt"
    save_checkpoint(path, ShallowAutoencoder(hidden_dim=2), {"format": 0}, History())
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_trained_cache_file_is_readable_by_others_with_umask_022(small, umask):
    umask(0o022)
    trained = train_or_load(data=small, **SETTINGS)
    assert stat.S_IMODE(trained.path.stat().st_mode) == 0o644
