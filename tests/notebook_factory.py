"""Throwaway notebooks for the tooling's tests: a `parameters` cell, then code cells."""
from __future__ import annotations

from pathlib import Path

import nbformat


def write_notebook(folder: Path, stem: str, parameters: str, *cells: str) -> Path:
    """Write <folder>/<stem>.ipynb, run by the python3 kernel; return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(source) for source in cells]
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path
