"""course.config: paths and their overrides, the smoke switch, seeding, devices, step-matched epochs."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from course import config
from course.config import (cache_dir, data_root, is_offline, is_smoke, repo_root, resolve_device,
                           scaled_epochs, set_seed)


def test_repo_root_holds_the_package():
    assert (repo_root() / "course" / "config.py").is_file()


def test_data_root_argument_beats_environment_beats_default(monkeypatch, tmp_path):
    assert data_root() == repo_root() / "data"
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "from-env"))
    assert data_root() == tmp_path / "from-env"
    assert data_root(tmp_path / "from-arg") == tmp_path / "from-arg"
    assert data_root("") == tmp_path / "from-env"  # an empty argument means "not given"


def test_cache_dir_argument_beats_environment_beats_default(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache"  # conftest points COURSE_CACHE at the test's folder
    assert cache_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    monkeypatch.delenv("COURSE_CACHE")
    assert cache_dir() == repo_root() / ".cache" / "models"


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                             ("0", False), ("", False), ("no", False), ("Off", False),
                                             ("FALSE", False), ("  ", False)])
def test_flags_read_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_SMOKE", value)
    monkeypatch.setenv("COURSE_OFFLINE", value)
    assert is_smoke() is expected
    assert is_offline() is expected


@pytest.mark.parametrize("value", ["2", "y", "n", "enabled", "1.0", "-1"])
def test_an_unknown_switch_value_is_an_error_naming_the_allowed_ones(monkeypatch, value):
    """Issue 17.5: `2` and `y` were silently "off"."""
    monkeypatch.setenv("COURSE_SMOKE", value)
    monkeypatch.setenv("COURSE_OFFLINE", value)
    with pytest.raises(ValueError, match=r"COURSE_SMOKE='.*' is not a switch value; use 1/0, true/false, yes/no or on/off"):
        is_smoke()
    with pytest.raises(ValueError, match=r"COURSE_OFFLINE='.*' is not a switch value"):
        is_offline()


def test_smoke_is_off_when_unset():
    assert is_smoke() is False


def test_set_seed_makes_every_generator_repeat():
    def draw():
        generator = set_seed(7)
        return (random.random(), float(np.random.rand()), float(torch.rand(1)),
                float(torch.rand(1, generator=generator)))

    first, second = draw(), draw()
    assert first == second
    set_seed(8)
    assert float(torch.rand(1)) != first[2]


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_set_seed_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        set_seed(seed)


def test_resolve_device_cpu_and_auto(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(config, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("device", ["tpu", "gpu", "", "cuda0"])
def test_resolve_device_rejects_unknown_device(device):
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device(device)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "CUDA"])
def test_resolve_device_cuda_absent_is_an_error_that_says_so(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available") as info:
        resolve_device(device)
    assert "device=" in str(info.value)


def test_resolve_device_mps_absent_is_an_error(monkeypatch):
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS"):
        resolve_device("mps")


def test_scaled_epochs_matches_the_syllabus_optimizer_steps():
    assert scaled_epochs(15, 50_000) == 15  # the syllabus itself
    assert scaled_epochs(15, 3_333) == 222  # 53 steps an epoch; 11,730 steps / 53, rounded up
    assert scaled_epochs(20, 50_000) == 20
    assert scaled_epochs(15, 60_000) == 15  # more data never means fewer epochs
    assert scaled_epochs(15, 3_333, match_steps=False) == 15
    assert scaled_epochs(15, 3_333, max_epochs=100) == 100
    assert scaled_epochs(0, 3_333) == 0


def test_scaled_epochs_under_smoke_is_one(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert scaled_epochs(15, 3_333) == scaled_epochs(15, 3_333, smoke=False) > 1  # the switch is not read here
    assert scaled_epochs(15, 3_333, smoke=True) == 1
    assert scaled_epochs(15, 50_000, smoke=True) == 1
    assert scaled_epochs(0, 50_000, smoke=True) == 0


@pytest.mark.parametrize("kwargs, name", [({"epochs": -1, "train_size": 100}, "epochs"),
                                          ({"epochs": 5, "train_size": 0}, "train_size")])
def test_scaled_epochs_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        scaled_epochs(**kwargs)


def test_an_installed_package_without_a_checkout_keeps_its_files_in_the_current_folder(monkeypatch, tmp_path):
    import course.config as config

    site = tmp_path / "site-packages" / "course"
    site.mkdir(parents=True)
    monkeypatch.setattr(config, "__file__", str(site / "config.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COURSE_CACHE")
    assert config.repo_root() == tmp_path
    assert config.data_root() == tmp_path / "data"
    assert config.cache_dir() == tmp_path / ".cache" / "models"


def test_adam_steps_counts_the_short_last_batch():
    assert config.adam_steps(15, 50_000, 64) == 15 * 782  # the original assignment's 11,730 steps
    assert config.adam_steps(2, 64, 64) == 2 and config.adam_steps(0, 10, 3) == 0
    for bad in ({"epochs": -1}, {"train_size": 0}, {"batch_size": 2.5}):
        args = {"epochs": 1, "train_size": 10, "batch_size": 2, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            config.adam_steps(**args)
