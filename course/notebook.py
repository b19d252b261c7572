"""What every notebook does the same way: set up, check its lessons, show tables and code, record its metrics."""
from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from course.config import is_smoke, repo_root, resolve_device, set_seed
from course.data import DigitData, load_data


def _release_large_blocks(threshold: int = 1 << 20) -> None:
    """With glibc, give every allocation over `threshold` bytes its own mapping, returned to the OS when freed.

    By default glibc raises that threshold after the first large block is freed, so later temporaries
    the size of a whole split (31 MB for 10,000 float images) come from the heap, which keeps them after
    they are freed: a notebook's memory then only grows (Binder stops a kernel at 2 GB). Elsewhere a no-op.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # -3 is M_MMAP_THRESHOLD; setting it ends the adapting
    except (OSError, AttributeError):
        pass


def rss_mb() -> float:
    """This process' resident memory now, in MB (Linux; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process' peak resident memory so far, in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


@dataclass
class Setup:
    """A notebook run: its device, data, seed, smoke switch, start time and memory after the imports."""

    device: torch.device
    data: DigitData
    seed: int
    smoke: bool
    started: float
    rss_after_imports_mb: float

    @property
    def wall_seconds(self) -> float:
        return time.perf_counter() - self.started

    def check_lesson(self, condition: bool, claim: str) -> bool:
        """Assert a claim the notebook teaches; in a smoke run only report it.

        A full run that breaks a lesson fails loudly rather than teaching something false.
        """
        if condition:
            print(f"lesson holds: {claim}")
        elif self.smoke:
            print(f"(smoke run, not checked) {claim}")
        else:
            raise AssertionError(f"lesson does not hold on this run: {claim}")
        return bool(condition)


def setup(device: str = "auto", dataset: str = "mnist", data_root: str | None = None, seed: int = 0) -> Setup:
    """Resolve the device (failing at once if it is absent), seed everything, load and describe the data.

    This is where the smoke switch (COURSE_SMOKE=1) is read; everything after gets it from the Setup.
    """
    started = time.perf_counter()
    # torch's optimizers import its compiler (torch._dynamo, about 200 MB with a CUDA build) on first use:
    # import it here, so that the after-imports figure counts it and the peak above it counts data only.
    import torch._dynamo  # noqa: F401

    _release_large_blocks()
    after_imports = rss_mb()
    resolved = resolve_device(device)
    smoke = is_smoke()
    set_seed(seed)
    with warnings.catch_warnings(record=True) as caught:  # the offline fallback's note, as a plain line
        warnings.simplefilter("always")
        data = load_data(dataset, data_root=data_root, seed=seed, smoke=smoke)
    for warning in caught:
        print(f"note: {warning.message}")
    print(data.describe())
    print(f"device: {resolved}" + (f" ({torch.cuda.get_device_name(resolved)})" if resolved.type == "cuda" else ""))
    if smoke:
        print("COURSE_SMOKE=1: tiny data and budgets; numbers are not meaningful and lesson checks are skipped.")
    return Setup(resolved, data, seed, smoke, started, after_imports)


def show_table(rows: Sequence[Mapping] | Mapping[str, Sequence], index: str | None = None,
               formats: Mapping[str, str] | str | None = "{:.4f}", caption: str | None = None):
    """Display rows (a list of dicts, or a dict of columns) as a table; return the pandas DataFrame.

    `formats` is one format for every float column or {column: format}; `index` names the column
    shown as the row labels.
    """
    import pandas as pd
    from IPython.display import display

    table = pd.DataFrame(list(rows) if not isinstance(rows, Mapping) else rows)
    if index is not None:
        table = table.set_index(index)
    style = table.style
    if isinstance(formats, str):
        floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
        style = style.format(formats, subset=floats, na_rep="-")
    elif formats:
        style = style.format({k: v for k, v in formats.items() if k in table.columns}, na_rep="-")
    if caption:
        style = style.set_caption(caption)
    display(style)
    return table


def show_source(obj) -> None:
    """Display the source code of a function or class of the course, syntax-highlighted."""
    from IPython.display import Code, display

    display(Code(inspect.getsource(obj), language="python"))


def write_metrics(output_dir: str | os.PathLike | None, notebook: str, run: Setup, **results) -> Path:
    """Write <output_dir>/<notebook>.metrics.json with the data source, device, sizes, time, memory and results.

    output_dir None (or "") means <repo>/runs/latest.
    """
    from course.checkpoints import model_records

    record = {
        "notebook": notebook,
        **run.data.info(),
        "device": str(run.device),
        "seed": run.seed,
        "wall_seconds": round(run.wall_seconds, 2),
        "memory": {"rss_after_imports_mb": round(run.rss_after_imports_mb, 1),
                   "rss_peak_mb": round(peak_rss_mb(), 1)},
        "models": model_records(),  # each model's file, key and source: trained, cache or published
        **results,
    }
    out = Path(output_dir) if output_dir else repo_root() / "runs" / "latest"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook}.metrics.json"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files: others on a shared hub could not read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"metrics written to {path}")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
