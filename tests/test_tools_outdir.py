"""safe_out_dir: no command writes into, inside or around the notebooks it reads, nor over notebooks without --force."""
from __future__ import annotations

import sys
import types

import nbformat
import pytest

from course.tools.checks import CheckError, UnsafeOutDir, safe_out_dir
from course.tools.cli import main
from notebook_factory import write_notebook

METRICS = "import json, pathlib\npathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps({'ran': 1}))\n"


@pytest.fixture
def notebooks(tmp_path):
    """A notebooks/ folder with one course-named notebook; returns the folder."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder, "01_first", "output_dir = ''\n", METRICS.replace("NAME", "01_first"))
    return folder


@pytest.mark.parametrize("where, says", [
    ("notebooks", "is .*the folder of notebooks being read"),
    ("notebooks/out", "lies inside .*the folder of notebooks being read"),
    (".", "contains .*the folder of notebooks being read"),
])
def test_out_that_is_inside_or_around_the_notebooks_is_refused(notebooks, where, says):
    with pytest.raises(UnsafeOutDir, match="--out .*: " + says):
        safe_out_dir(notebooks.parent / where, [notebooks])
    with pytest.raises(UnsafeOutDir):  # --force never allows it
        safe_out_dir(notebooks.parent / where, [notebooks], force=True)


def test_a_symlink_to_the_notebooks_is_seen_through(notebooks, tmp_path):
    (tmp_path / "alias").symlink_to(notebooks, target_is_directory=True)
    with pytest.raises(UnsafeOutDir, match="is .*notebooks, the folder"):
        safe_out_dir(tmp_path / "alias", [notebooks])
    with pytest.raises(UnsafeOutDir, match="is .*notebooks, the folder"):
        safe_out_dir(notebooks, [tmp_path / "alias"])


def test_a_file_read_stands_for_its_folder(notebooks):
    with pytest.raises(UnsafeOutDir, match="is .*notebooks"):
        safe_out_dir(notebooks, [notebooks / "01_first.ipynb"])


def test_notebooks_already_there_need_force(notebooks, tmp_path):
    out = tmp_path / "out"
    (out / "solved-notebooks").mkdir(parents=True)
    (out / "solved-notebooks" / "01_first.ipynb").write_text("{}")
    with pytest.raises(UnsafeOutDir, match=r"--out .*out: already holds 1 notebook\(s\) \(solved-notebooks/01_first"
                                           r".ipynb\).*give --force"):
        safe_out_dir(out, [notebooks])
    assert safe_out_dir(out, [notebooks], force=True) == out.resolve()


def test_new_empty_or_notebook_free_folders_are_fine(notebooks, tmp_path):
    assert safe_out_dir(tmp_path / "new" / "deeper", [notebooks]) == (tmp_path / "new" / "deeper").resolve()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    assert safe_out_dir(tmp_path / "other", [notebooks], what="--output") == (tmp_path / "other").resolve()
    assert issubclass(UnsafeOutDir, CheckError) and issubclass(UnsafeOutDir, ValueError)


def test_run_into_the_notebooks_folder_keeps_the_source(notebooks, capsys):
    """Issue 17.1: `run --out notebooks` deleted notebooks/01_first.ipynb before running it."""
    source = notebooks / "01_first.ipynb"
    before = source.read_bytes()
    assert main(["run", "--smoke", "--notebooks", "1", "--notebook-dir", str(notebooks), "--out", str(notebooks),
                 "--device", "cpu"]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: --out {notebooks}: is ") and "being read" in printed.err
    assert len(printed.err.strip().splitlines()) == 1 and "running" not in printed.out
    assert source.read_bytes() == before
    assert sorted(p.name for p in notebooks.iterdir()) == ["01_first.ipynb"]


def test_solutions_into_the_notebooks_folder_are_refused(notebooks, monkeypatch, capsys):
    """Issue 17.2: `solutions --out notebooks` overwrote the student's notebook with the solved copy."""
    nb = nbformat.read(notebooks / "01_first.ipynb", as_version=4)
    stub = nbformat.v4.new_code_cell("raise NotImplementedError()")
    stub.metadata.update({"exercise": "01.x", "tags": ["exercise"]})
    nb.cells.append(stub)
    nbformat.write(nb, notebooks / "01_first.ipynb")
    before = (notebooks / "01_first.ipynb").read_bytes()
    exercises = types.ModuleType("course.exercises")
    exercises.solution_source = lambda name: "x = 1"
    monkeypatch.setitem(sys.modules, "course.exercises", exercises)
    assert main(["solutions", "--out", str(notebooks), "--notebook-dir", str(notebooks), "--notebooks", "1"]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: --out {notebooks}: is ") and printed.out == ""
    assert (notebooks / "01_first.ipynb").read_bytes() == before


def test_solutions_over_earlier_solutions_need_force(notebooks, tmp_path, monkeypatch, capsys):
    exercises = types.ModuleType("course.exercises")
    exercises.solution_source = lambda name: "x = 1"
    monkeypatch.setitem(sys.modules, "course.exercises", exercises)
    out = tmp_path / "solved"
    assert main(["solutions", "--out", str(out), "--notebook-dir", str(notebooks)]) == 0
    assert main(["solutions", "--out", str(out), "--notebook-dir", str(notebooks)]) == 2
    assert "give --force" in capsys.readouterr().err
    assert main(["solutions", "--out", str(out), "--notebook-dir", str(notebooks), "--force"]) == 0


def test_a_second_run_into_the_same_out_needs_force(notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--notebook-dir", str(notebooks), "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds 1 notebook(s) (01_first.ipynb)" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
