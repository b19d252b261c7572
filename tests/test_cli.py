"""`python -m course run`: batches of throwaway notebooks, the failure path, argument errors, the report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course.tools.cli import build_parser, main
from course.tools.batch import select_notebooks
from course.config import repo_root
from course.tools.batch import available_cores, kernel_threads
from course.tools.report import summary_markdown
from notebook_factory import write_notebook

PARAMETERS = "device = 'auto'\noutput_dir = ''\nseed = 0\n"
# Writes a small metrics file the way course.notebook.write_metrics does, plus what the test checks.
WRITE_METRICS = """\
import json, os, pathlib
if globals().get('fail'):
    raise ValueError('asked to fail')
record = {{'dataset': 'mnist', 'data_source': 'throwaway', 'device': device, 'train_size': 10,
           'test_size': 5, 'wall_seconds': 0.1, 'seed': seed, 'seed_type': type(seed).__name__,
           'cwd': os.getcwd(), 'smoke_env': os.environ.get('COURSE_SMOKE'),
           'threads_env': os.environ.get('OMP_NUM_THREADS'), {results}}}
pathlib.Path(output_dir, '{stem}.metrics.json').write_text(json.dumps(record))
"""


def make_notebook(folder: Path, stem: str, results: str, extra_parameters: str = "") -> Path:
    """A notebook with a `parameters` cell and a cell that writes <output_dir>/<stem>.metrics.json."""
    return write_notebook(folder, stem, PARAMETERS + extra_parameters, WRITE_METRICS.format(stem=stem, results=results))


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    """Two throwaway notebooks named like the course's 02 and 04 (04 depends on 02)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "02_standard_autoencoder", "'hidden_sizes': [{'hidden_dim': 64, 'test_mse': 0.005}]")
    make_notebook(folder, "04_denoising_autoencoder",
                  "'denoising': [{'model': 'denoising', 'noise_std': 0.5, 'test_mse': 0.02}]",
                  extra_parameters="fail = False\nnoise = 0.5")
    return folder


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_batch_of_two_writes_notebooks_html_metrics_and_report(notebook_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu",
                 "-p", "seed", "3", "--smoke", "--jobs", "2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for stem in ("02_standard_autoencoder", "04_denoising_autoencoder"):
        for suffix in (".ipynb", ".html", ".metrics.json"):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"
        metrics = json.loads((out / f"{stem}.metrics.json").read_text())
        assert metrics["device"] == "cpu" and metrics["seed"] == 3 and metrics["seed_type"] == "int"
        assert Path(metrics["cwd"]) == notebook_dir and metrics["smoke_env"] == "1"
        # two kernels at once share the cores instead of each taking all of them
        assert metrics["threads_env"] == str(max(1, available_cores() // 2))
    assert printed.index("02_standard_autoencoder: ok") < printed.index("04_denoising_autoencoder: running")
    summary = read_summary(out)
    assert [e["status"] for e in summary["notebooks"]] == ["ok", "ok"] and summary["device"] == "cpu"
    report = (out / "summary.md").read_text()
    assert "| 64 | 0.005 | 0.0048 |" in report  # this run beside the original's validation MSE
    assert "throwaway" in report and f"{out}/summary.md" in printed
    assert "COURSE_SMOKE" not in os.environ and "OMP_NUM_THREADS" not in os.environ
    assert summary["threads_per_kernel"] == max(1, available_cores() // 2)
    assert "Up to 2 notebooks at once" in report


def test_failing_notebook_is_reported_and_the_other_still_runs(notebook_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu",
                 "-p", "noise", "0.8", "--notebooks", "04", "02", "-p", "fail", "True"])
    assert code == 1
    first, second = read_summary(out)["notebooks"]
    assert first["status"] == "ok" and second["status"] == "failed"
    assert second["error"]["ename"] == "ValueError" and "asked to fail" in second["error"]["evalue"]
    assert second["error"]["cell"] is not None and (out / "04_denoising_autoencoder.html").is_file()
    assert "**Failed** at cell [" in (out / "summary.md").read_text()
    assert "asked to fail" in capsys.readouterr().out


def test_fail_fast_skips_the_rest(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "01_first", "'x': 1", extra_parameters="fail = False")
    make_notebook(folder, "02_second", "'x': 2")
    out = tmp_path / "out"
    code = main(["run", "--notebook-dir", str(folder), "--out", str(out), "--device", "cpu",
                 "-p", "fail", "True", "--fail-fast"])
    assert code == 1
    assert [e["status"] for e in read_summary(out)["notebooks"]] == ["failed", "skipped"]


@pytest.mark.parametrize("args, named", [
    (["-p", "epochs", "5"], "epochs"),
    (["--notebooks", "7"], "'7'"),
    (["--notebooks", "sparse"], "'sparse'"),
    (["-p", "device", "cpu"], "--device"),
    (["--jobs", "0"], "--jobs"),
])
def test_argument_errors_name_the_culprit_before_any_kernel(notebook_dir, tmp_path, capsys, args, named):
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out)] + args) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_unknown_device_is_refused(notebook_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--notebook-dir", str(notebook_dir), "--device", "tpu"])
    assert exit_info.value.code != 0 and "tpu" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_at_once(notebook_dir, tmp_path, capsys):
    assert main(["run", "--notebook-dir", str(notebook_dir), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "solutions --out x"])
def test_repeated_notebooks_options_add_up(command):
    args = build_parser().parse_args(command.split() + ["--notebooks", "1", "--notebooks", "5", "6"])
    assert args.notebooks == ["1", "5", "6"]


def test_notebooks_are_selected_by_number_or_name(tmp_path):
    paths = [tmp_path / f"{stem}.ipynb" for stem in ("01_pca_vs_autoencoder", "05_manifold_learning")]
    assert select_notebooks(paths, ["5"]) == paths[1:]
    assert select_notebooks(paths, ["manifold_learning", "01"]) == paths
    assert select_notebooks(paths, None) == paths


def test_report_puts_reference_numbers_beside_results():
    summary = {"started": "now", "device": "cpu", "requested_device": "auto", "smoke": False, "parameters": {},
               "wall_seconds": 1.0, "notebooks": [{
                   "notebook": "01_pca_vs_autoencoder", "status": "ok", "wall_seconds": 1.0, "html": "x.html",
                   "error": None, "metrics": {"dataset": "mnist", "data_source": "torchvision", "device": "cpu",
                                              "train_size": 50000, "test_size": 10000,
                                              "pca_test_mse": 0.0171, "autoencoder_test_mse": 0.0042}}]}
    report = summary_markdown(summary)
    assert "| pca_test_mse | 0.0171 | 0.0185 | 0.0177 |" in report
    assert "| autoencoder_test_mse | 0.0042 | 0.0106 | 0.0038 |" in report


REAL = [repo_root() / "notebooks" / f"{stem}.ipynb" for stem in ("01_pca_vs_autoencoder", "05_manifold_learning")]


@pytest.mark.skipif(not all(path.exists() for path in REAL), reason="notebooks 01 and 05 are not written yet")
def test_real_notebooks_01_and_05_smoke(tmp_path):
    env = {**os.environ, "COURSE_OFFLINE": "1", "COURSE_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "course", "run", "--smoke", "--device", "cpu",
                           "--notebooks", "1", "5", "--out", str(out)],
                          cwd=repo_root(), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = read_summary(out)
    assert [e["status"] for e in summary["notebooks"]] == ["ok", "ok"]
    assert "autoencoder_test_mse" in json.dumps(summary["notebooks"][0]["metrics"])
    assert "manifold_test_mse" in json.dumps(summary["notebooks"][1]["metrics"])


@pytest.mark.parametrize("running, cores, expected", [(1, 16, None), (7, 16, 2), (2, 2, 1), (4, 2, 1), (3, 8, 2)])
def test_notebooks_at_once_share_the_cores(monkeypatch, running, cores, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert kernel_threads(running, cores) == expected


def test_a_thread_count_set_by_the_caller_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert kernel_threads(4, 16) is None


def test_every_dependency_names_a_course_notebook():
    from course.tools.batch import DEPENDS_ON, default_notebook_dir, find_notebooks

    stems = {path.stem for path in find_notebooks(default_notebook_dir())}
    for stem, needs in DEPENDS_ON.items():
        assert {stem, *needs} <= stems, f"DEPENDS_ON names a notebook that does not exist: {stem} -> {needs}"


@pytest.mark.parametrize("value, smoke, kernel_sees", [("yes", True, "1"), ("On", True, "1"), ("off", False, "0")])
def test_the_summary_and_the_kernels_read_the_smoke_switch_alike(notebook_dir, tmp_path, monkeypatch, value, smoke,
                                                                kernel_sees):
    """Issue 17.5: COURSE_SMOKE=yes ran the notebooks in smoke mode while summary.json said smoke: False."""
    monkeypatch.setenv("COURSE_SMOKE", value)
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu",
                 "--notebooks", "2"]) == 0
    assert read_summary(out)["smoke"] is smoke
    assert f"smoke: {smoke}" in (out / "summary.md").read_text()
    assert json.loads((out / "02_standard_autoencoder.metrics.json").read_text())["smoke_env"] == kernel_sees


@pytest.mark.parametrize("variable", ["COURSE_SMOKE", "COURSE_OFFLINE"])
@pytest.mark.parametrize("value", ["2", "y"])
def test_an_unknown_switch_value_stops_the_batch_before_it_starts(notebook_dir, tmp_path, monkeypatch, capsys,
                                                                  variable, value):
    monkeypatch.setenv(variable, value)
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu", "--smoke"]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: {variable}='{value}' is not a switch value; use 1/0, true/false, yes/no")
    assert "running" not in printed.out and not out.exists()
