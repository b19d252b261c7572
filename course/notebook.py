"""What every notebook does the same way: set up, check its lessons, record its metrics."""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course.config import is_smoke, repo_root, resolve_device, set_seed
from course.data import DigitData, load_data


@dataclass
class Setup:
    """The device, the data and the start time of a notebook run."""

    device: torch.device
    data: DigitData
    seed: int
    started: float

    @property
    def wall_seconds(self) -> float:
        return time.perf_counter() - self.started


def setup(device: str = "auto", dataset: str = "mnist", data_root: str | None = None, seed: int = 0) -> Setup:
    """Resolve the device (failing at once if it is absent), seed everything, load and describe the data."""
    started = time.perf_counter()
    resolved = resolve_device(device)
    set_seed(seed)
    data = load_data(dataset, data_root=data_root, seed=seed)
    print(data.describe())
    print(f"device: {resolved}" + (f" ({torch.cuda.get_device_name(resolved)})" if resolved.type == "cuda" else ""))
    if is_smoke():
        print("COURSE_SMOKE=1: tiny data and budgets; numbers are not meaningful and lesson checks are skipped.")
    return Setup(resolved, data, seed, started)


def check_lesson(condition: bool, claim: str) -> bool:
    """Assert a claim the notebook teaches; under COURSE_SMOKE=1 only report it.

    A full run that breaks a lesson fails loudly rather than teaching something false.
    """
    if condition:
        print(f"lesson holds: {claim}")
    elif is_smoke():
        print(f"(smoke run, not checked) {claim}")
    else:
        raise AssertionError(f"lesson does not hold on this run: {claim}")
    return bool(condition)


def write_metrics(output_dir: str | os.PathLike | None, notebook: str, run: Setup, **results) -> Path:
    """Write <output_dir>/<notebook>.metrics.json with the data source, device, sizes, time and results.

    output_dir None (or "") means <repo>/runs/latest.
    """
    record = {
        "notebook": notebook,
        **run.data.info(),
        "device": str(run.device),
        "seed": run.seed,
        "wall_seconds": round(run.wall_seconds, 2),
        **results,
    }
    out = Path(output_dir) if output_dir else repo_root() / "runs" / "latest"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook}.metrics.json"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)
    print(f"metrics written to {path}")
    return path
