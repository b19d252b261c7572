"""`python -m course solutions` and `run --solved`, with a stand-in for course.exercises."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course.tools.cli import main
from course.tools.solutions import BEGIN, END

STUB = "def l1_penalty(h):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
SOLUTIONS = {"01.l1_penalty": "def l1_penalty(h):\n    return sum(abs(v) for v in h)"}
USE_IT = """\
import json, pathlib
pathlib.Path(output_dir, '01_sparse.metrics.json').write_text(json.dumps({'penalty': l1_penalty([1, -2, 3])}))
"""


def make_notebook(folder: Path, stem: str, exercise: str | None = "01.l1_penalty") -> Path:
    """Parameters, an exercise stub (unless exercise is None), and a cell that uses the exercise's answer."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("output_dir = ''\n")
    params.metadata["tags"] = ["parameters"]
    stub = nbformat.v4.new_code_cell(STUB)
    stub.metadata.update({"exercise": exercise, "tags": ["exercise"]})
    stub.outputs = [nbformat.v4.new_output("stream", name="stdout", text="left over\n")]
    stub.execution_count = 4
    nb.cells = [params, nbformat.v4.new_markdown_cell("Write `l1_penalty`."), stub, nbformat.v4.new_code_cell(USE_IT)]
    if exercise is None:
        del nb.cells[2]
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def exercises(monkeypatch):
    """course.exercises as the command will import it: solution_source(name), here from SOLUTIONS."""
    module = types.ModuleType("course.exercises")
    module.asked = []

    def solution_source(name: str) -> str:
        module.asked.append(name)
        return SOLUTIONS[name]  # KeyError for an unknown exercise

    module.solution_source = solution_source
    monkeypatch.setitem(sys.modules, "course.exercises", module)
    return module


def test_solutions_replace_each_stub_with_its_marked_solution(tmp_path, exercises, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    original = nbformat.read(make_notebook(folder, "01_sparse"), as_version=4)
    make_notebook(folder, "02_plain", exercise=None)
    out = tmp_path / "solved"
    assert main(["solutions", "--notebook-dir", str(folder), "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{out / '01_sparse.ipynb'}: 1 exercise cell(s) solved",
                                                    f"{out / '02_plain.ipynb'}: 0 exercise cell(s) solved"]
    solved = nbformat.read(out / "01_sparse.ipynb", as_version=4)
    stub = solved.cells[2]
    assert stub.source == "### BEGIN SOLUTION\n" + SOLUTIONS["01.l1_penalty"] + "\n### END SOLUTION"
    assert stub.source == BEGIN + SOLUTIONS["01.l1_penalty"] + END
    assert stub.outputs == [] and stub.execution_count is None and stub.metadata["exercise"] == "01.l1_penalty"
    assert [c.source for i, c in enumerate(solved.cells) if i != 2] == [
        c.source for i, c in enumerate(original.cells) if i != 2]
    assert exercises.asked == ["01.l1_penalty"]


def test_an_unknown_exercise_names_notebook_and_cell_and_nothing_is_written(tmp_path, exercises, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "01_sparse")
    make_notebook(folder, "02_other", exercise="02.not_written_yet")
    out = tmp_path / "solved"
    assert main(["solutions", "--notebook-dir", str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(
        "error: 02_other.ipynb, cell 2: no solution for exercise '02.not_written_yet'")
    assert not out.exists()


def test_run_solved_executes_solved_copies(tmp_path, exercises, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "01_sparse")
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(folder), "--out", str(out), "--device", "cpu", "--solved"]) == 0
    assert json.loads((out / "01_sparse.metrics.json").read_text()) == {"penalty": 6}
    assert (out / "solved-notebooks" / "01_sparse.ipynb").is_file()
    executed = nbformat.read(out / "01_sparse.ipynb", as_version=4)
    assert any(BEGIN in cell.source for cell in executed.cells)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] and summary["notebooks"][0]["status"] == "ok"
    assert "solved copies" in (out / "summary.md").read_text()


def test_run_without_solved_runs_the_stubs_and_never_asks_for_solutions(tmp_path, exercises):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "01_sparse")
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(folder), "--out", str(out), "--device", "cpu"]) == 1
    record = json.loads((out / "summary.json").read_text())["notebooks"][0]
    assert record["error"]["ename"] == "NotImplementedError" and exercises.asked == []
    assert not (out / "solved-notebooks").exists()


def test_every_exercise_in_the_course_notebooks_has_a_solution(tmp_path, capsys):
    assert main(["solutions", "--out", str(tmp_path / "solved")]) == 0, capsys.readouterr().err
    for line in capsys.readouterr().out.splitlines():
        copy = Path(line.split(": ")[0])
        solved = nbformat.read(copy, as_version=4)
        stubs = [cell for cell in solved.cells if "exercise" in cell.metadata]
        assert all(cell.source.startswith(BEGIN) and "NotImplementedError" not in cell.source for cell in stubs)
