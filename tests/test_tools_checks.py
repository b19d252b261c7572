"""Checks before any kernel: a run folder of its own, an --out that can be written, notebooks that parse."""
from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import pytest

from course.tools import batch, checks
from course.tools.checks import CheckError, check_notebook, new_run_dir, prepare_out_dir
from course.tools.cli import main
from notebook_factory import write_notebook

WRITE_METRICS = """\
import json, pathlib
pathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps({'ran': True}))
"""


def make_notebook(folder: Path, stem: str) -> Path:
    return write_notebook(folder, stem, "output_dir = ''\n", WRITE_METRICS.replace("NAME", stem))


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every run starts in the same second."""
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2030, 1, 2, 3, 4, 5)

    monkeypatch.setattr(checks, "datetime", Frozen)


def test_runs_in_the_same_second_get_folders_of_their_own(tmp_path, frozen_clock):
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(new_run_dir(tmp_path / "runs"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(folders)) == 8
    assert sorted(f.name for f in folders) == sorted(["20300102-030405"] + [f"20300102-030405-{n}" for n in range(2, 9)])


def test_two_runs_without_out_keep_both_summaries(tmp_path, monkeypatch, frozen_clock, capsys):
    make_notebook(tmp_path, "01_first")
    make_notebook(tmp_path, "02_second")
    monkeypatch.setattr(batch, "repo_root", lambda: tmp_path)
    assert main(["run", "--notebook-dir", str(tmp_path), "--device", "cpu", "--notebooks", "1"]) == 0
    assert main(["run", "--notebook-dir", str(tmp_path), "--device", "cpu", "--notebooks", "2"]) == 0
    first, second = tmp_path / "runs" / "20300102-030405", tmp_path / "runs" / "20300102-030405-2"
    assert [e["notebook"] for e in json.loads((first / "summary.json").read_text())["notebooks"]] == ["01_first"]
    assert [e["notebook"] for e in json.loads((second / "summary.json").read_text())["notebooks"]] == ["02_second"]
    assert f"{second}/summary.md" in capsys.readouterr().out


def test_out_may_be_new_or_an_existing_folder(tmp_path):
    assert prepare_out_dir(tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    assert prepare_out_dir(tmp_path) == tmp_path.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # the probe file is gone


@pytest.mark.parametrize("where, message", [
    ("file", "is a file, not a folder"),
    ("file/sub/dir", "file is a file, not a folder"),
])
def test_out_that_is_or_lies_under_a_file_is_refused(tmp_path, where, message):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CheckError, match=message):
        prepare_out_dir(tmp_path / where)


def test_out_that_cannot_be_written_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(CheckError, match=r"--out .*new/deeper: cannot write there \(Permission denied\)"):
        prepare_out_dir(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CheckError, match="cannot write there"):
            prepare_out_dir(tmp_path / "out")
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize("out", ["file", "file/under"])
def test_command_line_refuses_a_bad_out_before_any_notebook(tmp_path, capsys, out):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "01_first")
    (tmp_path / "file").write_text("not a folder")
    assert main(["run", "--notebook-dir", str(folder), "--out", str(tmp_path / out), "--device", "cpu"]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: --out {tmp_path / out}: ") and "running" not in printed.out
    assert "Traceback" not in printed.err


def test_a_notebook_that_is_not_json_is_named_before_any_runs(tmp_path, capsys):
    make_notebook(tmp_path, "01_first")
    broken = tmp_path / "02_broken.ipynb"
    broken.write_text('{"cells": [\n')
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(tmp_path), "--out", str(out), "--device", "cpu"]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: notebook {broken}: is not valid JSON (") and "running" not in printed.out
    assert not out.exists()


def test_json_that_is_not_a_notebook_is_named(tmp_path):
    path = tmp_path / "01_list.ipynb"
    path.write_text("[1, 2]")
    with pytest.raises(CheckError, match=f"notebook {path}: is JSON but not a notebook"):
        check_notebook(path)
