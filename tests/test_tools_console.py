"""`python -m course run` as a user sees it, in a child process: its imports, its console, Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from course.config import repo_root
from notebook_factory import write_notebook

# Runs the command line in a child process, then says whether that process imported torch. SIGINT gets
# Python's handler back: a shell script's `cmd &` leaves it ignored, and children inherit that.
WRAPPER = """\
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from course.tools.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(code)
"""


def make_notebook(folder: Path, stem: str, *cells: str) -> Path:
    """A notebook with a parameters cell (output_dir, device, sleep) and the given code cells."""
    return write_notebook(folder, stem, "device = 'auto'\noutput_dir = ''\nsleep = 0\n", *cells)


@pytest.fixture
def cli():
    """Start the command line in a child process; whatever the test's outcome, none is left running."""
    started = []

    def start(*args: str) -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=repo_root(), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()  # its kernels notice their parent is gone and exit (ipykernel's parent poller)
            process.communicate()


# Writes what a C library's warning or a kernel crash message would be: straight to file descriptor 2.
FD2_NOISE = "import os\nos.write(2, b'noise on the kernel stderr\\n')"
WRITE_METRICS = ("import json, pathlib\n"
                 "pathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps({'device': device}))")


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """One run with --device auto of a notebook whose kernel writes to its stderr: (process, stdout, stderr, out)."""
    folder = tmp_path_factory.mktemp("notebooks")
    make_notebook(folder, "01_noisy", FD2_NOISE, WRITE_METRICS.replace("NAME", "01_noisy"))
    out = tmp_path_factory.mktemp("run") / "out"
    done = subprocess.run([sys.executable, "-c", WRAPPER, "run", "--notebook-dir", str(folder), "--out", str(out),
                           "--device", "auto"], cwd=repo_root(), capture_output=True, text=True, timeout=300)
    return done, done.stdout, done.stderr, out


def test_run_never_imports_torch(quiet_run):
    process, stdout, stderr, out = quiet_run
    assert process.returncode == 0, stdout + stderr
    assert "torch imported: False" in stdout
    # --device auto was still resolved, in a child process, and the kernel got the answer
    device = json.loads((out / "summary.json").read_text())["device"]
    assert device in ("cpu", "cuda", "mps")
    assert json.loads((out / "01_noisy.metrics.json").read_text())["device"] == device


def test_console_has_progress_lines_only_and_the_kernel_stderr_goes_to_its_log(quiet_run):
    process, stdout, stderr, out = quiet_run
    assert stderr == ""  # no "[IPKernelApp] WARNING | Kernel is running over TCP without encryption"
    assert "01_noisy: ok in" in stdout and "noise" not in stdout
    assert "noise on the kernel stderr" in (out / "01_noisy.kernel.log").read_text()  # kept, off the console


def test_a_dead_kernel_is_reported_with_its_log(tmp_path, cli):
    make_notebook(tmp_path, "01_dies", FD2_NOISE, "import os\nos._exit(3)")
    out = tmp_path.parent / f"{tmp_path.name}-out"  # --out may not lie in the folder of notebooks read
    process = cli("run", "--notebook-dir", str(tmp_path), "--out", str(out), "--device", "cpu")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "01_dies: failed" in stdout and "DeadKernelError" in stdout and "kernel log: 01_dies.kernel.log" in stdout
    assert "Traceback" not in stderr and "Kernel died while waiting" not in stderr  # papermill's line: run.log
    assert "Kernel died" in (out / "run.log").read_text()


# Records the kernel's pid (so the test can check it is gone), then sleeps; may ignore SIGINT first.
SLEEPER = ("import os, signal, pathlib, time\n"
           "pathlib.Path(output_dir, 'NAME.pid').write_text(str(os.getpid()))\n"
           "IGNORE\n"
           "time.sleep(sleep)")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("jobs, stems, ignores_sigint", [
    (1, ["01_first", "02_second"], False),
    (2, ["01_first", "02_second"], False),
    (1, ["01_stubborn"], True),  # a kernel deaf to SIGINT is killed
])
def test_ctrl_c_stops_the_kernels_reports_and_exits_130(tmp_path, cli, jobs, stems, ignores_sigint):
    for stem in stems:
        ignore = "signal.signal(signal.SIGINT, signal.SIG_IGN)" if ignores_sigint else ""
        make_notebook(tmp_path, stem, SLEEPER.replace("NAME", stem).replace("IGNORE", ignore))
    out = tmp_path.parent / f"{tmp_path.name}-out"  # --out may not lie in the folder of notebooks read
    process = cli("run", "--notebook-dir", str(tmp_path), "--out", str(out), "--device", "cpu",
                        "-p", "sleep", "120", "--jobs", str(jobs))
    started = stems[:jobs]
    deadline = time.monotonic() + 120
    while not all((out / f"{stem}.pid").exists() for stem in started):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    pids = [int((out / f"{stem}.pid").read_text()) for stem in started]
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - sent < 15, stdout + stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [f"interrupted (stopped: {', '.join(started)}"
                                           + (f"; not started: {stems[1]}" if jobs < len(stems) else "")
                                           + f"); report of what ran: {out}/summary.md"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] and summary["interrupted"] == started
    assert [e["status"] for e in summary["notebooks"]] == ["interrupted"] * jobs + ["skipped"] * (len(stems) - jobs)
    assert "**Stopped by Ctrl-C**" in (out / "summary.md").read_text()
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(gone(pid) for pid in pids), "a kernel outlived the command"


def test_a_failed_html_export_keeps_the_run_ok_and_says_so(tmp_path, monkeypatch):
    """nbconvert without its templates (a --target install) costs the HTML, not the notebook's result."""
    from course.tools import batch
    from course.tools.report import summary_markdown

    def no_templates(notebook):
        raise ValueError("No template sub-directory with name 'lab' found in the following paths:\n\t/x")

    monkeypatch.setattr(batch, "export_html", no_templates)
    path = make_notebook(tmp_path, "01_fine", "x = 1")
    out = tmp_path / "out"
    out.mkdir()
    record = batch.execute(batch.Task(path=path, stem="01_fine", out=out, parameters={}, cwd=tmp_path))
    assert record["status"] == "ok" and record["error"] is None and record["html"] is None
    assert record["output"] == "01_fine.ipynb"  # it ran and was written
    assert "no HTML (ValueError: No template sub-directory" in record["note"] and "\t/x" not in record["note"]
    assert "ok in" in batch._progress_line(1, 1, record) and "no HTML" in batch._progress_line(1, 1, record)
    summary = {"notebooks": [record], "started": "now", "device": "cpu", "requested_device": "cpu", "smoke": False,
               "parameters": {}, "wall_seconds": 1.0}
    assert "Note: no HTML" in summary_markdown(summary)
