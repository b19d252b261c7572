"""`python -m course report DIR ... --out DIR`: one report from several run folders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from course.tools.cli import main
from course.tools.merge import merge_runs
from notebook_factory import write_notebook

WRITE_METRICS = """\
import json, pathlib
record = {'dataset': 'mnist', 'data_source': 'throwaway', 'device': device, 'tag': tag}
pathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps(record))
"""


def make_notebook(folder: Path, stem: str) -> Path:
    return write_notebook(folder, stem, "device = 'auto'\noutput_dir = ''\ntag = ''\n", WRITE_METRICS.replace("NAME", stem))


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_merging_two_runs_copies_their_files_and_keeps_the_later_duplicate(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem in ("01_first", "02_second"):
        make_notebook(folder, stem)
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    common = ["run", "--notebook-dir", str(folder), "--device", "cpu"]
    assert main(common + ["--out", str(a), "-p", "tag", "first run"]) == 0
    assert main(common + ["--out", str(b), "-p", "tag", "second run", "--notebooks", "2"]) == 0
    capsys.readouterr()
    assert main(["report", str(a), str(b), "--out", str(merged)]) == 0
    printed = capsys.readouterr().out.splitlines()
    started_b = summary(b)["notebooks"][0]["started"]
    assert [line for line in printed if "kept" in line] == [
        f"02_second: kept the run started {started_b} in {b}, not the one started "
        f"{summary(a)['notebooks'][1]['started']} in {a}"]
    result = summary(merged)
    first, second = result["notebooks"]
    assert (first["notebook"], first["metrics"]["tag"]) == ("01_first", "first run")
    assert (second["notebook"], second["metrics"]["tag"]) == ("02_second", "second run")
    for stem in ("01_first", "02_second"):
        for suffix in (".ipynb", ".html", ".metrics.json"):
            assert (merged / f"{stem}{suffix}").is_file()
    assert json.loads((merged / "02_second.metrics.json").read_text())["tag"] == "second run"
    assert result["merged_from"] == [str(a), str(b)] and result["devices"] == ["cpu"]
    assert result["notebook_seconds"] == pytest.approx(first["wall_seconds"] + second["wall_seconds"], abs=0.02)
    assert result["span_seconds"] >= summary(b)["wall_seconds"]
    report = (merged / "summary.md").read_text()
    assert f"Merged from 2 runs ({a}, {b})" in report and "devices: cpu" in report
    assert "| 01_first | ok |" in report and "| 02_second | ok |" in report


def fake_run(folder: Path, started: str, wall: float, device: str, notebooks: dict[str, tuple[str, str]]) -> Path:
    """A run folder written by hand: {stem: (status, started)}, each with a metrics file naming the run."""
    folder.mkdir()
    records = []
    for stem, (status, when) in notebooks.items():
        (folder / f"{stem}.metrics.json").write_text(json.dumps({"run": folder.name, "device": device}))
        records.append({"notebook": stem, "status": status, "started": when, "wall_seconds": 10.0,
                        "device": device, "output": None, "html": None, "metrics_file": f"{stem}.metrics.json",
                        "metrics": {"run": folder.name, "device": device}, "error": None})
    (folder / "summary.json").write_text(json.dumps({
        "started": started, "device": device, "requested_device": device, "smoke": False, "wall_seconds": wall,
        "parameters": {"epochs": 2, "seed": int(folder.name[-1])}, "notebooks": records}))
    return folder


def test_later_start_wins_whatever_the_order_and_times_are_honest(tmp_path):
    late = fake_run(tmp_path / "run1", "2030-01-01T10:00:00", 100.0, "cuda",
                    {"01_a": ("ok", "2030-01-01T10:00:00"), "02_b": ("ok", "2030-01-01T10:00:30")})
    early = fake_run(tmp_path / "run2", "2030-01-01T09:00:00", 50.0, "cpu",
                     {"02_b": ("ok", "2030-01-01T09:00:00"), "03_c": ("skipped", None)})
    lines = []
    result = merge_runs([late, early], tmp_path / "merged", progress=lines.append)
    assert [(e["notebook"], e["metrics"]["run"]) for e in result["notebooks"]] == [
        ("01_a", "run1"), ("02_b", "run1"), ("03_c", "run2")]
    assert lines == [f"02_b: kept the run started 2030-01-01T10:00:30 in {late}, not the one started "
                     f"2030-01-01T09:00:00 in {early}"]
    assert result["devices"] == ["cuda", "cpu"] and result["skipped"] == ["03_c"]
    assert result["notebook_seconds"] == 30.0  # three notebooks of 10 s
    assert result["span_seconds"] == 3600 + 100  # 09:00 to 10:01:40
    assert result["parameters"] == {"epochs": 2}  # seed differs between the runs


def test_a_folder_without_summary_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run1", "2030-01-01T10:00:00", 1.0, "cpu", {"01_a": ("ok", "2030-01-01T10:00:00")})
    stray = tmp_path / "stray"
    stray.mkdir()
    assert main(["report", str(run), str(stray), "--out", str(tmp_path / "merged")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {stray}: no summary.json there")
    assert not (tmp_path / "merged").exists()


def test_out_may_not_be_one_of_the_runs(tmp_path, capsys):
    run = fake_run(tmp_path / "run1", "2030-01-01T10:00:00", 1.0, "cpu", {"01_a": ("ok", "2030-01-01T10:00:00")})
    assert main(["report", str(run), "--out", str(run)]) == 2
    assert "is one of the folders being merged" in capsys.readouterr().err
