"""Run the course notebooks headless with papermill and write the batch report."""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from course.config import repo_root, resolve_device
from course.tools.report import error_text, references, write_summary

# The kernel named "python3" runs on the interpreter that runs this command (jupyter_client's rule).
KERNEL_NAME = "python3"
# A notebook that reuses another's cached models starts after it when both are selected.
DEPENDS_ON = {"04_denoising_autoencoder": ("02_standard_autoencoder",)}
# Parameters the command sets itself, and the option that sets each.
RESERVED = {"device": "--device", "output_dir": "--out"}


class BatchError(ValueError):
    """A bad request (unknown notebook or parameter), found before any kernel starts."""


@dataclass(frozen=True)
class Task:
    """One notebook to execute: where it is, where its outputs go, its parameters and kernel cwd."""

    path: Path
    out: Path
    parameters: dict
    cwd: Path


def default_notebook_dir() -> Path:
    """<repo>/notebooks."""
    return repo_root() / "notebooks"


def default_out_dir() -> Path:
    """<repo>/runs/<timestamp>."""
    return repo_root() / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")


def find_notebooks(notebook_dir: Path) -> list[Path]:
    """The course notebooks (NN_name.ipynb) in `notebook_dir`, in order."""
    found = sorted(notebook_dir.glob("[0-9]*.ipynb"))
    if not found:
        raise BatchError(f"no notebooks named NN_name.ipynb in {notebook_dir}")
    return found


def _matches(path: Path, item: str) -> bool:
    number, _, name = path.stem.partition("_")
    if item.isdigit():
        return number.isdigit() and int(item) == int(number)
    return item in (path.stem, path.name, name)


def select_notebooks(available: list[Path], wanted: list[str] | None) -> list[Path]:
    """Notebooks picked by number (1 or 01), stem, file name or the name after the number; default all."""
    if not wanted:
        return available
    chosen: set[Path] = set()
    for item in wanted:
        matches = [path for path in available if _matches(path, item.strip())]
        if not matches:
            names = ", ".join(path.stem for path in available)
            raise BatchError(f"unknown notebook {item!r}; choose a number or a name among: {names}")
        chosen.update(matches)
    return [path for path in available if path in chosen]


def parse_value(text: str):
    """A -p value read as papermill's CLI reads it (True, False, None, int, float, else the text), plus JSON lists."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def split_parameters(notebooks: list[Path], parameters: dict) -> dict[Path, dict]:
    """Give each notebook the parameters its `parameters` cell declares; a name none declares is an error."""
    from papermill import inspect_notebook

    declared = {path: set(inspect_notebook(str(path))) for path in notebooks}
    for name in parameters:
        if name in RESERVED:
            raise BatchError(f"-p {name}: set it with {RESERVED[name]} instead")
        if not any(name in names for names in declared.values()):
            known = ", ".join(sorted(set().union(*declared.values()) - set(RESERVED))) or "none"
            raise BatchError(f"-p {name}: no selected notebook has a parameter named {name!r} (they have: {known})")
    return {path: {k: v for k, v in parameters.items() if k in declared[path]} for path in notebooks}


def export_html(notebook: Path) -> Path:
    """Write <notebook>.html next to it with nbconvert's HTMLExporter; return its path."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _files(task: Task) -> dict[str, Path]:
    executed = task.out / task.path.name
    return {"output": executed, "html": executed.with_suffix(".html"),
            "metrics_file": task.out / f"{task.path.stem}.metrics.json"}


def _record(task: Task, status: str, wall: float = 0.0, error: dict | None = None) -> dict:
    """What summary.json says of one notebook: status, time, files written, metrics, error, references."""
    files = _files(task)
    found = {key: path.name if status != "skipped" and path.exists() else None for key, path in files.items()}
    metrics = json.loads(files["metrics_file"].read_text()) if found["metrics_file"] else None
    return {"notebook": task.path.stem, "status": status, "wall_seconds": round(wall, 2),
            "parameters": task.parameters, **found, "metrics": metrics, "error": error,
            "references": references(task.path.stem)}


def execute(task: Task) -> dict:
    """Execute one notebook, export it to HTML and read its metrics; failures are recorded, not raised."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    files = _files(task)
    for path in files.values():
        path.unlink(missing_ok=True)  # never report what a previous run left in the same folder
    error = None
    start = time.perf_counter()
    try:
        papermill.execute_notebook(task.path, files["output"], parameters=task.parameters,
                                   kernel_name=KERNEL_NAME, progress_bar=False, cwd=task.cwd)
    except PapermillExecutionError as err:
        error = {"cell": err.exec_count, "cell_index": err.cell_index, "ename": err.ename, "evalue": err.evalue}
    except Exception as err:  # kernel death, unreadable notebook...: recorded, the batch goes on
        error = {"cell": None, "cell_index": None, "ename": type(err).__name__, "evalue": str(err)}
    wall = time.perf_counter() - start
    if files["output"].exists():
        try:
            export_html(files["output"])
        except Exception as err:  # an export bug must not hide the other notebooks' results
            error = error or {"cell": None, "cell_index": None, "ename": type(err).__name__,
                              "evalue": f"HTML export failed: {err}"}
    return _record(task, "failed" if error else "ok", wall, error)


def _executor(jobs: int) -> Executor:
    # papermill changes the process' working directory while a kernel starts, so parallel
    # notebooks run in separate processes; one at a time, a worker thread suffices.
    if jobs == 1:
        return ThreadPoolExecutor(max_workers=1)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _progress_line(index: int, total: int, record: dict) -> str:
    line = f"[{index}/{total}] {record['notebook']}: {record['status']} in {record['wall_seconds']:.1f} s"
    return line + (f" ({error_text(record['error'])})" if record["error"] else "")


def schedule(tasks: list[Task], jobs: int, fail_fast: bool, progress: Callable[[str], None]) -> list[dict]:
    """Execute `tasks` at most `jobs` at a time, each after the ones it depends on; records in task order."""
    by_stem = {task.path.stem: task for task in tasks}
    number = {stem: i for i, stem in enumerate(by_stem, 1)}
    deps = {stem: [d for d in DEPENDS_ON.get(stem, ()) if d in by_stem] for stem in by_stem}
    pending, running, records = list(by_stem), {}, {}
    with _executor(jobs) as pool:
        while pending or running:
            ready = [stem for stem in pending if all(d in records for d in deps[stem])]
            for stem in ready[:jobs - len(running)]:
                pending.remove(stem)
                progress(f"[{number[stem]}/{len(tasks)}] {stem}: running")
                running[pool.submit(execute, by_stem[stem])] = stem
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                stem = running.pop(future)
                records[stem] = future.result()
                progress(_progress_line(number[stem], len(tasks), records[stem]))
                if fail_fast and records[stem]["status"] == "failed":
                    records.update({s: _record(by_stem[s], "skipped") for s in pending})
                    pending.clear()
    return [records[stem] for stem in by_stem]


@contextlib.contextmanager
def _smoke_env(smoke: bool):
    """Set COURSE_SMOKE=1 for the kernels (they inherit this process' environment) while the batch runs."""
    old = os.environ.get("COURSE_SMOKE")
    if smoke:
        os.environ["COURSE_SMOKE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COURSE_SMOKE", None)
        else:
            os.environ["COURSE_SMOKE"] = old


def run_course(notebooks: list[str] | None = None, out: str | os.PathLike | None = None, device: str = "auto",
               parameters: dict | None = None, smoke: bool = False, jobs: int = 1, fail_fast: bool = False,
               notebook_dir: str | os.PathLike | None = None,
               progress: Callable[[str], None] = print) -> dict:
    """Execute the selected notebooks into `out` and write summary.json and summary.md there; return the summary.

    Every check (device, notebook names, parameter names, jobs) happens before any kernel starts.
    """
    resolved = resolve_device(device)
    if not isinstance(jobs, int) or jobs < 1:
        raise BatchError(f"--jobs must be an int >= 1, got {jobs!r}")
    folder = Path(notebook_dir).resolve() if notebook_dir else default_notebook_dir()
    paths = select_notebooks(find_notebooks(folder), notebooks)
    given = split_parameters(paths, dict(parameters or {}))
    out_dir = (Path(out) if out else default_out_dir()).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [Task(path, out_dir, {"device": str(resolved), "output_dir": str(out_dir), **given[path]}, folder)
             for path in paths]
    started, start = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
    progress(f"running {len(tasks)} notebook(s) from {folder} on {resolved}, {jobs} at a time, into {out_dir}")
    with _smoke_env(smoke):
        records = schedule(tasks, jobs, fail_fast, progress)
    summary = {
        "started": started,
        "output_dir": str(out_dir),
        "notebook_dir": str(folder),
        "requested_device": device,
        "device": str(resolved),
        "smoke": smoke or os.environ.get("COURSE_SMOKE") == "1",
        "parameters": dict(parameters or {}),
        "jobs": jobs,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "failed": [r["notebook"] for r in records if r["status"] == "failed"],
        "skipped": [r["notebook"] for r in records if r["status"] == "skipped"],
        "notebooks": records,
    }
    write_summary(summary, out_dir)
    return summary
