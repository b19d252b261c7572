"""Run the course notebooks headless with papermill and write the batch report."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from course.config import is_offline, is_smoke, repo_root
from course.tools.checks import check_notebook, new_run_dir, prepare_out_dir, resolve_device_name, safe_out_dir
from course.tools.kernels import RUNNING, client_options
from course.tools.params import assign, declared
from course.tools.report import error_text, memory_of, references, write_summary
from course.tools.solutions import SOLVED_DIR, solve_all, write_solved

# The kernel named "python3" runs on the interpreter that runs this command (jupyter_client's rule).
KERNEL_NAME = "python3"
# A notebook that reuses another's cached models starts after it when both are selected.
DEPENDS_ON = {"04_denoising_autoencoder": ("02_standard_autoencoder",),
              "07_variational_autoencoder": ("05_manifold_learning",)}
# After Ctrl-C: how long interrupted kernels get to stop on their own, then how long killed ones get to go.
INTERRUPT_GRACE_SECONDS = 3.0
KILL_WAIT_SECONDS = 10.0
# Read by torch (and OpenMP) at start-up for the number of threads of CPU work.
THREADS_VARIABLE = "OMP_NUM_THREADS"


class BatchError(ValueError):
    """A bad request (unknown notebook, bad --jobs), found before any kernel starts."""


@dataclass(frozen=True)
class Task:
    """One notebook to execute: the file run, its course name, where outputs go, its parameters, kernel cwd
    and the device the batch runs on."""

    path: Path
    stem: str
    out: Path
    parameters: dict
    cwd: Path
    device: str = "cpu"


def default_notebook_dir() -> Path:
    """<repo>/notebooks."""
    return repo_root() / "notebooks"


# A course notebook's file name: two digits, an underscore, a lower-case name. Jupyter's copies
# ("02_standard_autoencoder-Copy1.ipynb") and other files in the folder are never run.
NOTEBOOK_NAME = re.compile(r"[0-9]{2}_[a-z0-9_]+\.ipynb")


def find_notebooks(notebook_dir: Path) -> list[Path]:
    """The course notebooks (NN_name.ipynb) in `notebook_dir`, in order; copies such as NN_name-Copy1 are left out."""
    found = sorted(p for p in notebook_dir.glob("[0-9]*.ipynb") if NOTEBOOK_NAME.fullmatch(p.name))
    if not found:
        raise BatchError(f"--notebook-dir {notebook_dir}: no notebooks named NN_name.ipynb there")
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
            raise BatchError(f"--notebooks: unknown notebook {item!r}; choose a number or a name among: {names}")
        chosen.update(matches)
    return [path for path in available if path in chosen]


def export_html(notebook: Path) -> Path:
    """Write <notebook>.html next to it with nbconvert's HTMLExporter; return its path."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter()  # bookkeeping cells tagged hide-input show their output, as they do in JupyterLab
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"hide-input"}), enabled=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _files(task: Task) -> dict[str, Path]:
    executed = task.out / f"{task.stem}.ipynb"
    return {"output": executed, "html": executed.with_suffix(".html"),
            "metrics_file": task.out / f"{task.stem}.metrics.json",
            "kernel_log": task.out / f"{task.stem}.kernel.log"}


def _record(task: Task, status: str, wall: float = 0.0, error: dict | None = None,
            started: str | None = None, note: str | None = None) -> dict:
    """What summary.json says of one notebook: status, times, files written, metrics, memory, error, references."""
    files = _files(task)
    found = {key: path.name if status != "skipped" and path.is_file() else None for key, path in files.items()}
    metrics = None
    if found["metrics_file"]:
        try:
            metrics = json.loads(files["metrics_file"].read_text())
        except (OSError, ValueError) as err:  # an unreadable record fails the notebook, never the batch
            found["metrics_file"] = None
            reason = f"its metrics file {files['metrics_file'].name} is unreadable ({type(err).__name__}: {err})"
            note = f"{note}; {reason}" if note else reason
            if status == "ok":
                status, error = "failed", {"cell": None, "cell_index": None, "ename": type(err).__name__,
                                           "evalue": reason}
    return {"notebook": task.stem, "status": status, "started": started, "wall_seconds": round(wall, 2),
            "device": task.device, "parameters": task.parameters, **found, "metrics": metrics,
            "memory": memory_of(metrics), "error": error, "note": note, "references": references(task.stem)}


def _bare_record(task: Task, error: dict) -> dict:
    """A failed notebook's record that reads no file (when even looking at its files fails)."""
    return {"notebook": task.stem, "status": "failed", "started": None, "wall_seconds": 0.0, "device": task.device,
            "parameters": task.parameters, **{key: None for key in _files(task)}, "metrics": None, "memory": None,
            "error": error, "note": None, "references": references(task.stem)}


def execute(task: Task) -> dict:
    """Execute one notebook, export it to HTML and read its metrics; failures are recorded, not raised."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    files = _files(task)
    for path in files.values():
        if path.is_dir() and not path.is_symlink():
            raise BatchError(f"{path} is a folder where this run writes a file; move it away")
        path.unlink(missing_ok=True)  # never report what a previous run left in the same folder
    error = None
    started, start = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
    key = str(files["output"])
    try:
        papermill.execute_notebook(task.path, files["output"], parameters=task.parameters, kernel_name=KERNEL_NAME,
                                   progress_bar=False, **client_options(key, str(files["kernel_log"]), str(task.cwd)))
    except PapermillExecutionError as err:
        error = {"cell": err.exec_count, "cell_index": err.cell_index, "ename": err.ename, "evalue": err.evalue}
    except Exception as err:  # kernel death, unreadable notebook...: recorded, the batch goes on
        error = {"cell": None, "cell_index": None, "ename": type(err).__name__, "evalue": str(err)}
    finally:
        RUNNING.remove(key)
    wall = time.perf_counter() - start
    if files["kernel_log"].exists() and files["kernel_log"].stat().st_size == 0:
        files["kernel_log"].unlink()  # kept only when the kernel had something to say
    # After Ctrl-C an interrupted notebook is not exported: the user is waiting for the prompt.
    note = None
    if files["output"].exists() and not (error and RUNNING.stopping):
        try:
            export_html(files["output"])
        except Exception as err:  # the notebook ran: a missing nbconvert template costs the HTML, not the run
            note = f"no HTML ({type(err).__name__}: {str(err).splitlines()[0]}); the executed notebook is complete"
    return _record(task, "failed" if error else "ok", wall, error, started, note)


def _progress_line(index: int, total: int, record: dict) -> str:
    line = f"[{index}/{total}] {record['notebook']}: {record['status']} in {record['wall_seconds']:.1f} s"
    if record["error"]:
        line += f" ({error_text(record['error'])})"
        if record["kernel_log"]:
            line += f"; kernel log: {record['kernel_log']}"
    elif record.get("note"):
        line += f" ({record['note']})"
    return line


class CtrlC:
    """While installed, counts SIGINTs instead of raising KeyboardInterrupt at whatever line runs.

    Installed only in the main thread and only where SIGINT is not ignored (nohup, `cmd &` in a script).
    """

    def __init__(self):
        self.presses = 0
        self._previous = None

    def __call__(self, signum, frame) -> None:
        self.presses += 1

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _start(task: Task, results: queue.Queue) -> None:
    def run() -> None:
        try:
            record = execute(task)
        except BaseException as err:  # whatever goes wrong ends this notebook as failed, with its reason
            error = {"cell": None, "cell_index": None, "ename": type(err).__name__, "evalue": str(err)}
            try:
                record = _record(task, "failed", error=error)
            except BaseException:  # even the files cannot be looked at: a record without them
                record = _bare_record(task, error)
        results.put((task.stem, record))

    # daemon: a thread stuck after its kernel was killed must not keep the command from exiting
    threading.Thread(target=run, name=f"notebook {task.stem}", daemon=True).start()


def _stop(running: set[str], results: queue.Queue, ctrl_c: CtrlC) -> dict[str, dict]:
    """Interrupt the running kernels (Jupyter's interrupt: SIGINT), kill those still running after a grace
    period or a second Ctrl-C, and return the records of the notebooks that were running."""
    records: dict[str, dict] = {}
    RUNNING.stopping = True  # a kernel starting from now on is killed at once
    RUNNING.signal_all(signal.SIGINT)
    kill_at, give_up_at = time.monotonic() + INTERRUPT_GRACE_SECONDS, None
    while running:
        if give_up_at is None and (time.monotonic() > kill_at or ctrl_c.presses > 1):
            RUNNING.signal_all(signal.SIGKILL)
            give_up_at = time.monotonic() + KILL_WAIT_SECONDS
        if give_up_at is not None and time.monotonic() > give_up_at:
            break
        try:
            stem, record = results.get(timeout=0.1)
        except queue.Empty:
            continue
        running.discard(stem)
        if record["status"] == "failed":  # one that finished in the meantime keeps its "ok"
            record["status"] = "interrupted"
        records[stem] = record
    return records


def schedule(tasks: list[Task], jobs: int, fail_fast: bool, progress: Callable[[str], None],
             ctrl_c: CtrlC | None = None) -> list[dict]:
    """Execute `tasks` at most `jobs` at a time, each after the ones it depends on; records in task order.

    Each notebook runs in a thread of this process (its kernel is a process of its own). After Ctrl-C
    the running notebooks are stopped and marked "interrupted", and those not started "skipped".
    """
    ctrl_c = ctrl_c or CtrlC()
    by_stem = {task.stem: task for task in tasks}
    number = {stem: i for i, stem in enumerate(by_stem, 1)}
    deps = {stem: [d for d in DEPENDS_ON.get(stem, ()) if d in by_stem] for stem in by_stem}
    pending, running, records = list(by_stem), set(), {}
    results: queue.Queue = queue.Queue()
    RUNNING.stopping = False
    try:
        while (pending or running) and not ctrl_c.presses:
            ready = [stem for stem in pending if all(d in records for d in deps[stem])]
            for stem in ready[:jobs - len(running)]:
                pending.remove(stem)
                running.add(stem)
                progress(f"[{number[stem]}/{len(tasks)}] {stem}: running")
                _start(by_stem[stem], results)
            try:
                stem, record = results.get(timeout=0.2)  # a short wait, so that Ctrl-C is seen at once
            except queue.Empty:
                continue
            running.discard(stem)
            records[stem] = record
            progress(_progress_line(number[stem], len(tasks), record))
            if fail_fast and record["status"] == "failed":
                records.update({s: _record(by_stem[s], "skipped") for s in pending})
                pending.clear()
        if ctrl_c.presses:
            records.update(_stop(running, results, ctrl_c))
            stuck = {"cell": None, "cell_index": None, "ename": "KeyboardInterrupt",
                     "evalue": f"still running {KILL_WAIT_SECONDS:.0f} s after its kernel was killed"}
            records.update({s: _record(by_stem[s], "interrupted", error=stuck) for s in running})
            records.update({s: _record(by_stem[s], "skipped") for s in pending})
    finally:
        RUNNING.stopping = False
    return [records[stem] for stem in by_stem]


def available_cores() -> int:
    """The cores this process may run on (taskset and container limits included), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def kernel_threads(running: int, cores: int) -> int | None:
    """Threads for each kernel when `running` notebooks run at once on `cores` cores: their share, at least 1.

    None (each kernel keeps torch's default, one thread per core) for one notebook at a time, or when
    the caller has set OMP_NUM_THREADS. Kernels that each take every core slow each other down several
    times over (measured here: two at once on 2 cores, an epoch 3 to 4 times slower than with a core each).
    """
    if running <= 1 or THREADS_VARIABLE in os.environ:
        return None
    return max(1, cores // running)


@contextlib.contextmanager
def _kernel_env(variables: dict[str, str]):
    """Set `variables` for the kernels (they inherit this process' environment) while the batch runs."""
    old = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _log_to(path: Path):
    """Send papermill's and jupyter_client's log messages to `path` while the batch runs (the file appears
    only if one comes): each repeats, out of order, what a report line says ("Kernel died ...")."""
    import logging

    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("papermill", "traitlets")]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, old in zip(loggers, propagate):
            logger.removeHandler(handler)
            logger.propagate = old
        handler.close()


def switch_env(smoke: bool) -> dict[str, str]:
    """COURSE_SMOKE (and COURSE_OFFLINE when set) for the kernels, spelled 1 or 0; ValueError for a bad spelling."""
    env = {"COURSE_SMOKE": "1" if smoke else "0"}
    if os.environ.get("COURSE_OFFLINE", "").strip():
        env["COURSE_OFFLINE"] = "1" if is_offline() else "0"
    return env


def _statuses(records: list[dict], status: str) -> list[str]:
    return [r["notebook"] for r in records if r["status"] == status]


def plan(notebooks: list[str] | None, out: str | os.PathLike | None, device: str, parameters: dict, jobs: int,
         notebook_dir: str | os.PathLike | None, solved: bool, force: bool = False) -> tuple[list[Task], dict]:
    """Check the request and create the output folder: the tasks, and what the summary says of the request.

    Every check (jobs, notebooks, parameter names and types, exercises, device, output folder) comes
    before the folder is created, so a refused request leaves nothing behind.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise BatchError(f"--jobs must be an int >= 1, got {jobs!r}")
    folder = Path(notebook_dir).resolve() if notebook_dir else default_notebook_dir()
    paths = select_notebooks(find_notebooks(folder), notebooks)
    for path in paths:
        check_notebook(path)
    declarations = {path: declared(path) for path in paths}
    given = assign(declarations, parameters)
    copies = solve_all(paths) if solved else None
    resolved = resolve_device_name(device)
    # the notebooks' folder and the files picked are never written to, --force or not
    out_dir = (prepare_out_dir(safe_out_dir(out, [folder, *paths], force)) if out
               else new_run_dir(repo_root() / "runs"))
    runs = list(write_solved(copies, out_dir / SOLVED_DIR)) if copies is not None else paths
    fixed = {"device": resolved, "output_dir": str(out_dir)}
    # like any other parameter, device and output_dir go only to the notebooks that declare them
    tasks = [Task(run, path.stem, out_dir, {**{k: v for k, v in fixed.items() if k in declarations[path]},
                                            **given[path]}, folder, resolved)
             for path, run in zip(paths, runs)]
    read = {}  # the values as the notebooks got them; where two notebooks differ, the first one's
    for path in reversed(paths):
        read.update(given[path])
    return tasks, {"output_dir": str(out_dir), "notebook_dir": str(folder), "solved": solved,
                   "requested_device": device, "device": resolved, "parameters": read, "jobs": jobs}


LOCK_NAME = ".course-run.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextlib.contextmanager
def out_dir_lock(out_dir: Path, progress: Callable[[str], None] = print):
    """Hold <out>/.course-run.lock (our pid) for a run: a second `course run` into the same folder is refused
    while the first is alive; a lock left by a process that died is taken over with a line."""
    lock = out_dir / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise BatchError(f"--out {out_dir}: another `course run` (pid {pid}) is writing there; wait for it "
                                 "or choose another folder") from None
            progress(f"--out {out_dir}: taking over the lock of a run that is gone (pid {pid or 'unknown'})")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def run_course(notebooks: list[str] | None = None, out: str | os.PathLike | None = None, device: str = "auto",
               parameters: dict | None = None, smoke: bool = False, jobs: int = 1, fail_fast: bool = False,
               notebook_dir: str | os.PathLike | None = None, solved: bool = False,
               progress: Callable[[str], None] = print, force: bool = False) -> dict:
    """Execute the selected notebooks into `out` and write summary.json and summary.md there; return the summary.

    Text parameter values are read as the type the notebook's parameters cell gives them. With `solved`,
    solved copies are written to <out>/solved-notebooks and those run. Ctrl-C stops the batch: the
    summary then says "stopped" and marks notebooks interrupted or skipped. An `out` that is, holds or
    lies in the notebooks' folder is refused; one already holding notebooks too, unless `force`.
    """
    # the switches are read once, here, with the kernels' reader: a bad spelling stops the batch before it starts,
    # and the kernels and the summary get the same value
    smoke = is_smoke() or bool(smoke)
    env = switch_env(smoke)
    tasks, request = plan(notebooks, out, device, dict(parameters or {}), jobs, notebook_dir, solved, force)
    out_dir = Path(request["output_dir"])
    with out_dir_lock(out_dir, progress):
        return _run_locked(tasks, request, out_dir, smoke, env, jobs, fail_fast, solved, progress)


def _run_locked(tasks: list[Task], request: dict, out_dir: Path, smoke: bool, env: dict, jobs: int, fail_fast: bool,
                solved: bool, progress: Callable[[str], None]) -> dict:
    """run_course's batch, with the --out folder locked."""
    source = out_dir / SOLVED_DIR if solved else request["notebook_dir"]
    threads = kernel_threads(min(jobs, len(tasks)), available_cores())
    if threads is not None:
        env[THREADS_VARIABLE] = str(threads)
    progress(f"running {len(tasks)} notebook(s) from {source} on {request['device']}, {jobs} at a time"
             f"{'' if threads is None else f' ({threads} CPU thread(s) each)'}, into {out_dir}")
    run_log = out_dir / "run.log"
    run_log.unlink(missing_ok=True)
    started, start = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
    with _kernel_env(env), _log_to(run_log), CtrlC() as ctrl_c:
        records = schedule(tasks, jobs, fail_fast, progress, ctrl_c)
        summary = {
            "started": started,
            **request,
            "smoke": smoke,
            "threads_per_kernel": threads,
            "wall_seconds": round(time.perf_counter() - start, 2),
            "stopped": bool(ctrl_c.presses),
            "run_log": run_log.name if run_log.exists() else None,
            "failed": _statuses(records, "failed"),
            "interrupted": _statuses(records, "interrupted"),
            "skipped": _statuses(records, "skipped"),
            "notebooks": records,
        }
        write_summary(summary, out_dir)  # still under CtrlC: another press must not lose the report
    return summary
