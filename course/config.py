"""Settings shared by the whole course: paths, the smoke switch, seeding and the device."""
from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the batch runner reads this module without it
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
# Full MNIST: 60,000 training images split 50,000 / 10,000, so 1/6 goes to validation.
VAL_FRACTION = 1 / 6
# The syllabus trains on 50,000 images with batches of 64: 782 optimizer steps an epoch.
SYLLABUS_TRAIN_SIZE = 50_000


def repo_root() -> Path:
    """The checkout this package lives in; for a package installed without one (Colab, Kaggle), the current folder.

    Data, the model cache and reports default to folders under it.
    """
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Where datasets live: the argument, else $COURSE_DATA, else <repo>/data."""
    if path not in (None, ""):
        return Path(path).expanduser()
    env = os.environ.get("COURSE_DATA")
    return Path(env).expanduser() if env else repo_root() / "data"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where trained models are cached: the argument, else $COURSE_CACHE, else <repo>/.cache/models."""
    if path not in (None, ""):
        return Path(path).expanduser()
    env = os.environ.get("COURSE_CACHE")
    return Path(env).expanduser() if env else repo_root() / ".cache" / "models"


# How an on/off switch may be spelled in the environment (any case; unset or empty is off).
FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def env_flag(name: str) -> bool:
    """The switch $name as a bool; ValueError naming it and the allowed spellings for anything else."""
    text = os.environ.get(name, "").strip().lower()
    if text == "":
        return False
    if text not in FLAG_WORDS:
        raise ValueError(f"{name}={os.environ[name]!r} is not a switch value; use 1/0, true/false, yes/no "
                         f"or on/off (any case), or leave it empty for off")
    return FLAG_WORDS[text]


def is_smoke() -> bool:
    """True when COURSE_SMOKE is on (1, true, yes, on): tiny data and few steps, to prove the code runs."""
    return env_flag("COURSE_SMOKE")


def is_offline() -> bool:
    """True when COURSE_OFFLINE is on (1, true, yes, on): never try to download."""
    return env_flag("COURSE_OFFLINE")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a torch.Generator seeded the same way."""
    import numpy as np
    import torch

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "mps" into a torch.device, or fail before any work."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was asked for, but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use device='cpu' or device='auto'"
        )
    if kind == "mps" and not _mps_available():
        raise RuntimeError(
            f"device={device!r} was asked for, but Apple's MPS backend is not available here; "
            "use device='cpu' or device='auto'"
        )
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def scaled_epochs(epochs: int, train_size: int, batch_size: int = 64, match_steps: bool = True,
                  smoke: bool = False, max_epochs: int | None = None) -> int:
    """Epochs that give `train_size` images the optimizer steps `epochs` give the syllabus' 50,000.

    A budget counted in epochs shrinks with the data: 15 epochs are 11,730 Adam steps on
    50,000 images but only 795 on 3,333, too few to learn the lessons the course teaches.
    With match_steps=False it returns `epochs` unchanged; with smoke (a COURSE_SMOKE=1 run) at most 1.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if train_size <= 0:
        raise ValueError(f"train_size must be > 0, got {train_size}")
    if smoke:
        return min(epochs, 1)
    if not match_steps:
        return epochs
    steps_per_epoch = -(-train_size // batch_size)
    target_steps = epochs * -(-SYLLABUS_TRAIN_SIZE // batch_size)
    scaled = max(epochs, -(-target_steps // steps_per_epoch))
    return min(scaled, max_epochs) if max_epochs else scaled


def adam_steps(epochs: int, train_size: int, batch_size: int) -> int:
    """The optimizer steps of `epochs` passes over `train_size` images in batches of `batch_size` (the last one short)."""
    for name, value in (("epochs", epochs), ("train_size", train_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'epochs' else 1}, got {value!r}")
    return epochs * math.ceil(train_size / batch_size)
