"""The report's memory figures: MB after imports, peak MB and peak above imports, per notebook."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from course.tools.cli import main
from course.tools.report import memory_of, summary_markdown
from notebook_factory import write_notebook

# A metrics file with or without the "memory" record course.notebook.write_metrics adds.
WRITE_METRICS = """\
import json, pathlib
record = {'dataset': 'mnist', 'data_source': 'throwaway', 'device': 'cpu', 'x': 1, MEMORY}
pathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps(record))
"""


def make_notebook(folder: Path, stem: str, memory: str) -> Path:
    return write_notebook(folder, stem, "output_dir = ''\n", WRITE_METRICS.replace("NAME", stem).replace("MEMORY", memory))


def test_summary_shows_memory_per_notebook_and_blanks_what_is_missing(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"  # --out may not lie in the folder of notebooks read
    notebooks.mkdir()
    make_notebook(notebooks, "01_measured", "'memory': {'rss_after_imports_mb': 412.5, 'rss_peak_mb': 1180.25}")
    make_notebook(notebooks, "02_unmeasured", "'seed': 0")
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(notebooks), "--out", str(out), "--device", "cpu", "--jobs", "2"]) == 0
    measured, unmeasured = json.loads((out / "summary.json").read_text())["notebooks"]
    assert measured["memory"] == {"after_imports_mb": 412.5, "peak_mb": 1180.2, "peak_above_imports_mb": 767.8}
    assert unmeasured["memory"] == {"after_imports_mb": None, "peak_mb": None, "peak_above_imports_mb": None}
    report = (out / "summary.md").read_text()
    assert ("| notebook | status | data source | device | wall s | MB after imports | peak MB | "
            "peak above imports MB | report |") in report
    row = next(line for line in report.splitlines() if line.startswith("| 01_measured |"))
    assert row.split(" | ")[5:8] == ["412", "1180", "768"]
    row = next(line for line in report.splitlines() if line.startswith("| 02_unmeasured |"))
    assert row.split(" | ")[5:8] == ["", "", ""]
    assert "rss_peak_mb" not in report  # a run figure, not a result of the notebook


@pytest.mark.parametrize("memory, expected", [
    ({"rss_after_imports_mb": 100.0, "rss_peak_mb": 250.5}, (100.0, 250.5, 150.5)),
    ({"rss_peak_mb": 250}, (None, 250.0, None)),
    ({"rss_after_imports_mb": "lots", "rss_peak_mb": True}, (None, None, None)),
    (None, (None, None, None)),
])
def test_memory_figures_are_numbers_or_none(memory, expected):
    assert tuple(memory_of({"memory": memory} if memory else {}).values()) == expected


def test_a_summary_without_memory_records_still_renders():
    summary = {"started": "now", "device": "cpu", "requested_device": "auto", "smoke": False, "parameters": {},
               "wall_seconds": 1.0, "notebooks": [{
                   "notebook": "05_manifold_learning", "status": "ok", "wall_seconds": 1.0, "html": "x.html",
                   "error": None, "metrics": {"data_source": "sample", "device": "cpu",
                                              "memory": {"rss_after_imports_mb": 300, "rss_peak_mb": 900}}}]}
    assert "| 05_manifold_learning | ok | sample | cpu | 1 | 300 | 900 | 600 | x.html |" in summary_markdown(summary)


def test_the_html_copy_folds_the_code_of_bookkeeping_cells_and_keeps_their_output(tmp_path):
    import nbformat

    from course.tools.batch import export_html

    nb = nbformat.v4.new_notebook()
    taught = nbformat.v4.new_code_cell("shown_code_line = 1")
    books = nbformat.v4.new_code_cell("folded_code_line = 2", metadata={"tags": ["hide-input"]})
    books.outputs = [nbformat.v4.new_output("stream", name="stdout", text="the finding it printed\n")]
    nb.cells = [taught, books]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    html = export_html(path).read_text()
    assert "shown_code_line" in html and "the finding it printed" in html
    assert "folded_code_line" not in html
