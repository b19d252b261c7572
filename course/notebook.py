"""What every notebook does the same way: set up, check its lessons, show tables and code, record its metrics."""
from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass, field
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
    """A notebook run: its device, data, seed, smoke switch, start time and memory after the imports.

    `notebook` and `output_dir` (given to setup()) tell finish() where the metrics record goes; `lessons`
    keeps every lesson checked so far, by key, for that record.
    """

    device: torch.device
    data: DigitData
    seed: int
    smoke: bool
    started: float
    rss_after_imports_mb: float
    notebook: str | None = None
    output_dir: str | os.PathLike | None = None
    lessons: dict = field(default_factory=dict)

    @property
    def wall_seconds(self) -> float:
        return time.perf_counter() - self.started

    def check_lesson(self, condition: bool, claim: str, key: str | None = None) -> bool:
        """Assert a claim the notebook teaches; in a smoke run only report it. With `key`, finish() records it.

        A full run that breaks a lesson fails loudly rather than teaching something false.
        """
        holds = bool(condition)
        if key is not None:
            self.lessons[_check_key(key)] = holds
        if holds:
            print(f"✓ {claim} (checked)")
        elif self.smoke:
            print(f"(smoke run, not checked) {claim}")
        else:
            raise AssertionError(f"lesson does not hold on this run: {claim}")
        return holds

    def finish(self, lessons: Mapping[str, tuple] | None = None, notebook: str | None = None,
               output_dir: str | os.PathLike | None = None, **results) -> Path:
        """The notebook's last call: check its lessons, then write its metrics record with their outcomes.

        `lessons` maps a key to (condition, claim): each is printed as check_lesson prints it, and the
        record's "lessons" holds every key's outcome (with those check_lesson(..., key=) recorded before).
        The record is written first, so that a full run whose lesson fails still leaves its numbers;
        then an AssertionError names every lesson that does not hold (a smoke run only reports them).
        `results` are the notebook's numbers: tensors, numpy values, dataclasses and paths are made plain.
        """
        notebook = notebook or self.notebook
        if not notebook:
            raise ValueError("notebook must name the notebook (e.g. \"05_manifold_learning\"): give it here or to setup()")
        failed = []
        if lessons:
            print("What this run has shown (each is checked: a full run stops with an error where one fails):")
        for key, lesson in (lessons or {}).items():
            if not isinstance(lesson, (tuple, list)) or len(lesson) != 2 or not isinstance(lesson[1], str):
                raise ValueError(f"lessons[{key!r}] must be a pair (condition, claim), got {lesson!r}")
            condition, claim = lesson
            holds = bool(condition)
            self.lessons[_check_key(key)] = holds
            if holds:
                print(f"  ✓ {claim}")
            elif self.smoke:
                print(f"  (smoke run, not checked) {claim}")
            else:
                failed.append(claim)
        if "lessons" in results:
            raise ValueError("give lessons as lessons={key: (condition, claim)}, not inside the results")
        path = write_metrics(output_dir if output_dir is not None else self.output_dir, notebook, self,
                             lessons=dict(self.lessons), **results)
        held = sum(self.lessons.values())
        print(f"{held} of {len(self.lessons)} lesson checks hold" + (" (smoke run: not enforced)" if self.smoke else "")
              + f"; this run's numbers are in {path}")
        if failed:
            raise AssertionError("lesson does not hold on this run: " + "; ".join(failed))
        return path


def _check_key(key) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a lesson's key must be a non-empty str, got {key!r}")
    return key


def plain(value):
    """A value as JSON can hold it: tensors and numpy values to numbers or lists, dataclasses and mappings to dicts."""
    import dataclasses

    import numpy as np

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.dim() == 0 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    return value


def setup(device: str = "auto", dataset: str = "mnist", data_root: str | None = None, seed: int = 0,
          notebook: str | None = None, output_dir: str | os.PathLike | None = None) -> Setup:
    """Resolve the device (failing at once if it is absent), seed everything, load and describe the data.

    This is where the smoke switch (COURSE_SMOKE=1) is read; everything after gets it from the Setup.
    `notebook` (e.g. "05_manifold_learning") and `output_dir` are kept for run.finish().
    """
    started = time.perf_counter()
    _inline_figures()
    # torch's optimizers import its compiler (torch._dynamo, about 200 MB with a CUDA build) on first use:
    # import it here, so that the after-imports figure counts it and the peak above it counts data only.
    import torch._dynamo  # noqa: F401
    import pandas  # noqa: F401  (show_table's, about 20 MB: an import too, not data)

    _release_large_blocks()
    after_imports = rss_mb()
    resolved = resolve_device(device)
    from course.exercises.core import set_device

    set_device(resolved)  # the exercises' checks run the student's code where the notebook runs
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
    return Setup(resolved, data, seed, smoke, started, after_imports, notebook, output_dir)


def _inline_figures() -> None:
    """In a Jupyter kernel, draw figures inline whatever MPLBACKEND says (the Makefile exports Agg for scripts)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")


def show_table(rows: Sequence[Mapping] | Mapping[str, Sequence], index: str | None = None,
               formats: Mapping[str, str] | str | None = "{:.4f}", caption: str | None = None,
               index_name: bool = True):
    """Display rows (a list of dicts, or a dict of columns) as a table; return the pandas DataFrame.

    `formats` is one format for every float column or {column: format}; `index` names the column
    shown as the row labels, its name shown above them unless `index_name` is False.
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
    if not index_name:
        style = style.hide(axis="index", names=True)  # no row of its own under the column names
    display(style)
    return table


def show_source(*objs) -> None:
    """Display the source code of functions, methods or classes of the course, syntax-highlighted, one after another."""
    from IPython.display import Code, display

    if not objs:
        raise ValueError("show_source needs at least one function, method or class")
    display(Code("\n".join(textwrap.dedent(inspect.getsource(obj)) for obj in objs), language="python"))


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
        **plain(results),
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
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require_one_of(name: str, value, allowed, none_ok: bool = False):
    """A notebook parameter that must be one of `allowed` (or None with none_ok): returned, else a ValueError naming it."""
    allowed = list(allowed)
    if value is None and none_ok:
        return value
    try:
        ok = any(value == a and type(value) is not bool for a in allowed)
    except (TypeError, RuntimeError):  # e.g. a tensor: never a valid parameter value here
        ok = False
    if not ok:
        options = ", ".join(map(repr, allowed)) + (", or None" if none_ok else "")
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value
