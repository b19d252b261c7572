"""An nbgrader course directory built from the committed notebooks and the solutions in course.exercises.

Each exercise cell becomes a solution cell (the reference between nbgrader's markers), the check cell after it
an autograded test cell (`check(name, answer, strict=True)`), and every other cell read-only. nbgrader's
ClearSolutions puts one fixed stub in every solution cell; the course's stubs name the task, so the release
keeps the committed stub instead (CommittedStubs, wired in by the written nbgrader_config.py).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course.tools.checks import CheckError, prepare_out_dir, safe_out_dir
from course.tools.solutions import solve

COURSE_ID = "autoencoder-course"
KERNEL = "python3"
# Seconds one cell may run during autograde: with the shared model cache warm, the slowest cell loads or trains
# one small model (see the README's grading section); an endless loop in a student's cell stops here.
TIMEOUT = 600
POINTS = 1  # per exercise
SCHEMA_VERSION = 3  # nbgrader's cell metadata format since 0.6
# The committed stub, kept in the source notebook's solution cell until CommittedStubs puts it in the release.
STUB_KEY = "exercise_stub"
CONFIG_NAME = "nbgrader_config.py"
SOURCE_DIR = "source"

CONFIG = '''\
"""nbgrader settings of the autoencoder course, written by `python -m course nbgrader`."""
from course.tools.nbgrader import release_preprocessors

c = get_config()  # noqa: F821 (nbgrader defines it)
c.CourseDirectory.course_id = {course_id!r}
# nbgrader commands run from this folder: `nbgrader generate_assignment 03_sparse_autoencoder`, ...
c.Execute.kernel_name = {kernel!r}
# Per cell, in seconds: a student's endless loop stops here (the cell fails, grading goes on).
c.Execute.timeout = {timeout}
# The release keeps each exercise's committed stub (with its task) instead of nbgrader's generic one.
c.GenerateAssignment.preprocessors = release_preprocessors()
'''


class CommittedStubs(Preprocessor):
    """Give each released solution cell its committed stub back (nbgrader's ClearSolutions put a generic one)."""

    enabled = Bool(True)  # nbconvert's preprocessors start disabled; nbgrader's chain runs only enabled ones

    def preprocess_cell(self, cell, resources, index):
        """Replace the source of a cell that carries a stub by the stub, and drop the stub from its metadata."""
        stub = cell.metadata.pop(STUB_KEY, None)
        if stub is not None:
            if not cell.metadata.get("nbgrader", {}).get("solution"):
                raise ValueError(f"cell {index}: has a committed stub but is not an nbgrader solution cell")
            cell.source = stub
        return cell, resources


def release_preprocessors() -> list:
    """nbgrader's generate_assignment preprocessors with CommittedStubs right after ClearSolutions."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    chain = list(GenerateAssignment.class_traits()["preprocessors"].default())
    chain.insert(chain.index(ClearSolutions) + 1, CommittedStubs)
    return chain


def grade_id(name: str) -> str:
    """nbgrader's id of an exercise's solution cell ("03.l1_penalty" -> "03_l1_penalty"): letters, digits, _ and -."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def test_source(name: str) -> str:
    """The autograded test of an exercise: the course's check, which fails the cell with the hint."""
    answer = name.split(".", 1)[1]
    return (f"from course.exercises import check, solution\n"
            f"assert {answer} is not solution({name!r}), \"{name}: that is the course's reference; write your own\"\n"
            f"check({name!r}, {answer}, strict=True)")


def _nbgrader(grade_id_: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
              points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id_, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _is_check(cell, name: str) -> bool:
    """Whether `cell` is the committed notebook's check of exercise `name`: check("name", answer);."""
    pattern = rf"check\(\s*[\"']{re.escape(name)}[\"']\s*,\s*\w+\s*\)\s*;?"
    return cell.cell_type == "code" and re.fullmatch(pattern, cell.source.strip()) is not None


def source_notebook(path: Path, solution_source: Callable[[str], str] | None = None):
    """The nbgrader source version of the notebook at `path`, outputs empty; and its exercises' names."""
    import nbformat

    committed = nbformat.read(path, as_version=4)
    solved, _ = solve(path, solution_source)
    cells, names = [], []
    stem = path.stem.split("_", 1)[0]
    for index, (stub, cell) in enumerate(zip(committed.cells, solved.cells)):
        name = cell.metadata.get("exercise")
        if name is not None:
            cell.metadata["nbgrader"] = _nbgrader(grade_id(name), solution=True)
            cell.metadata[STUB_KEY] = stub.source
            cells.append(cell)
            names.append(name)
            test = nbformat.v4.new_code_cell(test_source(name))
            test["id"] = f"{grade_id(name)}-test"  # stable; the committed check's id when one follows
            test.metadata["nbgrader"] = _nbgrader(f"{grade_id(name)}_test", grade=True, locked=True, points=POINTS)
            cells.append(test)
            continue
        if cells and names and cells[-1].metadata.get("nbgrader", {}).get("grade") and _is_check(cell, names[-1]):
            cells[-1]["id"] = cell.get("id", cells[-1]["id"])  # the committed check's place, under its id
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata["nbgrader"] = _nbgrader(f"{stem}_{cell.get('id') or index}", locked=True)
        cells.append(cell)
    solved.cells = cells
    return solved, names


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, so no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def config_text(timeout: int = TIMEOUT, kernel: str = KERNEL, course_id: str = COURSE_ID) -> str:
    """The nbgrader_config.py of the course directory."""
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise ValueError(f"--timeout: {timeout!r} is not allowed; give a whole number of seconds, at least 1")
    if not kernel or not re.fullmatch(r"[\w.-]+", kernel):
        raise ValueError(f"--kernel: {kernel!r} is not a kernel name (letters, digits, '.', '_', '-')")
    return CONFIG.format(course_id=course_id, kernel=kernel, timeout=timeout)


def write_course(paths: list[Path], out: Path, *, timeout: int = TIMEOUT, kernel: str = KERNEL, force: bool = False,
                 solution_source: Callable[[str], str] | None = None) -> dict[Path, list[str]]:
    """Write nbgrader_config.py and source/<stem>/<notebook> into `out`; return {source notebook: exercises}.

    Every notebook is built before anything is written; `out` must be empty unless force is set.
    """
    import nbformat

    config = config_text(timeout, kernel)
    given = out
    out = safe_out_dir(out, paths, force=force)
    # safe_out_dir looks one folder down; the source notebooks lie two down, next to a gradebook and submissions
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CheckError(f"--out {given}: is not empty; choose a new folder, or give --force to write over the "
                         "course files there (nbgrader_config.py and source/; a gradebook and submissions stay)")
    built = {path: source_notebook(path, solution_source) for path in paths}
    out = prepare_out_dir(out)
    written = {}
    for path, (nb, names) in built.items():
        target = out / SOURCE_DIR / path.stem / path.name
        _write_atomic(target, nbformat.writes(nb, version=4) + "\n")
        written[target] = names
    _write_atomic(out / CONFIG_NAME, config)
    return written


def main(args) -> int:
    """`python -m course nbgrader`: write the course directory and say what to run next; exit 0."""
    from course.tools.batch import default_notebook_dir, find_notebooks, select_notebooks
    from course.tools.checks import check_notebook

    folder = Path(args.notebook_dir).resolve() if args.notebook_dir else default_notebook_dir()
    paths = select_notebooks(find_notebooks(folder), args.notebooks)
    for path in paths:
        check_notebook(path)
    written = write_course(paths, Path(args.out), timeout=args.timeout, force=args.force)
    for target, names in written.items():
        print(f"{target}: {len(names)} exercise(s), {len(names) * POINTS} point(s)")
    first = next(iter(written)).parent.name
    print(f"next: cd {Path(args.out).expanduser().resolve()} && nbgrader generate_assignment {first}")
    return 0
