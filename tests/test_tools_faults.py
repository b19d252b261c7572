"""`course run` under faults: a worker error ends its notebook as failed and the batch goes on; copies never run."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from course.tools import batch
from course.tools.cli import main
from test_cli import make_notebook, notebook_dir, read_summary  # noqa: F401  (the fixture)


def _run_in_thread(args: list[str], timeout: float = 120) -> int:
    """main(args) in a thread; fails the test instead of hanging when the batch never returns."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("code", main(args)), daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"course run did not return within {timeout} s"
    return box["code"]


def test_a_metrics_path_that_is_a_folder_fails_that_notebook_and_the_batch_returns(notebook_dir, tmp_path):
    out = tmp_path / "out"
    (out / "02_standard_autoencoder.metrics.json").mkdir(parents=True)
    code = _run_in_thread(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu"])
    assert code == 1
    first, second = read_summary(out)["notebooks"]
    assert first["status"] == "failed" and "is a folder" in first["error"]["evalue"]
    assert "02_standard_autoencoder.metrics.json" in first["error"]["evalue"]
    assert second["status"] == "ok"


def test_an_unreadable_metrics_file_fails_that_notebook_with_its_reason(notebook_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = batch.execute

    def spoil_then_execute(task):
        record = real(task)
        (task.out / f"{task.stem}.metrics.json").write_text("{not json")
        return batch._record(task, record["status"], record["wall_seconds"], record["error"], record["started"])

    monkeypatch.setattr(batch, "execute", spoil_then_execute)
    code = _run_in_thread(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu",
                           "--notebooks", "2"])
    assert code == 1
    (record,) = read_summary(out)["notebooks"]
    assert record["status"] == "failed" and "unreadable" in record["error"]["evalue"]


def test_a_worker_that_cannot_even_record_still_reports(notebook_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(batch, "execute", broken)
    monkeypatch.setattr(batch, "_record", broken)
    code = _run_in_thread(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu"])
    assert code == 1
    assert [r["status"] for r in read_summary(out)["notebooks"]] == ["failed", "failed"]
    assert "disk on fire" in json.dumps(read_summary(out))


def test_jupyter_copies_are_never_run(notebook_dir, tmp_path):
    copy = notebook_dir / "02_standard_autoencoder-Copy1.ipynb"
    copy.write_bytes((notebook_dir / "02_standard_autoencoder.ipynb").read_bytes())
    (notebook_dir / "02_standard_autoencoder (copy).ipynb").write_bytes(copy.read_bytes())
    found = [p.name for p in batch.find_notebooks(notebook_dir)]
    assert found == ["02_standard_autoencoder.ipynb", "04_denoising_autoencoder.ipynb"]
    assert [p.name for p in batch.select_notebooks(batch.find_notebooks(notebook_dir), ["2"])] == \
        ["02_standard_autoencoder.ipynb"]
    out = tmp_path / "out"
    assert _run_in_thread(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu",
                           "--notebooks", "2"]) == 0
    assert [r["notebook"] for r in read_summary(out)["notebooks"]] == ["02_standard_autoencoder"]


def test_a_second_run_into_a_folder_in_use_is_refused(notebook_dir, tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / batch.LOCK_NAME).write_text(str(holder.pid))  # as a live run holds it
        assert main(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu"]) == 2
        assert f"another `course run` (pid {holder.pid}) is writing there" in capsys.readouterr().err
        assert not (out / "summary.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is taken over with a line, and released at the end
    assert _run_in_thread(["run", "--notebook-dir", str(notebook_dir), "--out", str(out), "--device", "cpu"]) == 0
    assert "taking over the lock of a run that is gone" in capsys.readouterr().out
    assert not (out / batch.LOCK_NAME).exists()
