"""Solved copies of the notebooks for instructors: every exercise stub replaced by its solution."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

# nbgrader's markers, so the solved copies can go back through nbgrader's tools.
BEGIN, END = "### BEGIN SOLUTION\n", "\n### END SOLUTION"
# Where `course run --solved` writes the copies it executes, inside its output folder.
SOLVED_DIR = "solved-notebooks"


class SolutionError(ValueError):
    """An exercise cell whose solution cannot be found."""


def solve(path: Path, solution_source: Callable[[str], str] | None = None) -> tuple:
    """The notebook at `path` with each stub cell (metadata "exercise": name) holding its solution, outputs
    empty; and how many cells were solved.

    solution_source defaults to course.exercises.solution_source, imported only here: it may import torch.
    """
    import nbformat

    if solution_source is None:
        try:
            from course.exercises import solution_source
        except ImportError as err:
            raise SolutionError(f"the solutions come from course.exercises, which cannot be imported ({err})") from None
    nb = nbformat.read(path, as_version=4)
    solved = 0
    for index, cell in enumerate(nb.cells):
        name = cell.metadata.get("exercise")
        if name is None:
            if "exercise" in cell.metadata.get("tags", []):
                raise SolutionError(f"{path.name}, cell {index}: tagged 'exercise' but has no exercise name "
                                    "in its metadata")
            continue
        try:
            source = solution_source(name)
        except (LookupError, ValueError) as err:
            raise SolutionError(f"{path.name}, cell {index}: no solution for exercise {name!r} ({err})") from None
        cell.source = BEGIN + source + END
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        solved += 1
    return nb, solved


def solve_all(paths: list[Path], solution_source: Callable[[str], str] | None = None) -> dict[Path, tuple]:
    """{path: (solved notebook, cells solved)} for each notebook; SolutionError before anything is written."""
    return {path: solve(path, solution_source) for path in paths}


def write_solved(solved: dict[Path, tuple], out: Path) -> dict[Path, int]:
    """Write solve_all's notebooks into `out` under their own file names; return {copy: cells solved}."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    for path, (nb, _) in solved.items():
        nbformat.write(nb, out / path.name)
    return {out / path.name: count for path, (_, count) in solved.items()}
