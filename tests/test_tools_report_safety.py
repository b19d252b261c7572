"""`course report` on crafted summaries: paths stay inside their folder, fields are checked, nothing half-written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from course.tools import merge
from course.tools.cli import main


def fake_run(folder: Path, **entry) -> Path:
    """A run folder with one notebook record (its HTML file present) and `entry`'s fields over it."""
    folder.mkdir(parents=True)
    (folder / "01_pca_vs_autoencoder.html").write_text("<p>run</p>")
    record = {"notebook": "01_pca_vs_autoencoder", "status": "ok", "started": "2026-12-03T08:00:00",
              "wall_seconds": 1.0, "html": "01_pca_vs_autoencoder.html", "output": None, "metrics_file": None,
              "kernel_log": None, "metrics": None, "error": None, "device": "cpu", "parameters": {}}
    record.update(entry)
    (folder / "summary.json").write_text(json.dumps({"started": "2026-12-03T08:00:00", "wall_seconds": 1.0,
                                                      "notebooks": [record]}))
    return folder


def test_a_plain_run_folder_still_merges(tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(fake_run(tmp_path / "a")), "--out", str(out)]) == 0
    assert (out / "01_pca_vs_autoencoder.html").read_text() == "<p>run</p>"


@pytest.mark.parametrize("name", ["../secret.txt", "/etc/hostname", "sub/../../secret.txt", ".."])
def test_a_file_name_leading_outside_the_run_folder_is_refused(tmp_path, capsys, name):
    (tmp_path / "secret.txt").write_text("secret")
    out = tmp_path / "out"
    assert main(["report", str(fake_run(tmp_path / "a", html=name)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'html'" in err and "plain file name" in err
    assert not out.exists()


def test_a_link_leading_outside_the_run_folder_is_refused(tmp_path, capsys):
    (tmp_path / "secret.txt").write_text("secret")
    run = fake_run(tmp_path / "a", html="page.html")
    (run / "page.html").symlink_to(tmp_path / "secret.txt")
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "leads outside the run folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("entry, field", [({"status": None}, "status"), ({"started": 123}, "started"),
                                          ({"notebook": None}, "notebook"), ({"wall_seconds": "fast"}, "wall_seconds")])
def test_bad_fields_are_named(tmp_path, capsys, entry, field):
    assert main(["report", str(fake_run(tmp_path / "a", **entry)), "--out", str(tmp_path / "out")]) == 2
    assert f"'{field}'" in capsys.readouterr().err


def test_an_empty_record_is_named_not_a_key_error(tmp_path, capsys):
    run = fake_run(tmp_path / "a")
    (run / "summary.json").write_text(json.dumps({"notebooks": [{}]}))
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "'notebook'" in capsys.readouterr().err


def test_the_same_folder_twice_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "a")
    assert main(["report", str(run), str(tmp_path / "a" / "."), "--out", str(tmp_path / "out")]) == 2
    assert "more than once" in capsys.readouterr().err


def test_a_failure_part_way_leaves_nothing_half_written(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = shutil.copy2

    def copy_then_fail(src, dst, **kwargs):
        real(src, dst, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(merge.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        merge.merge_runs([fake_run(tmp_path / "a")], out, progress=lambda line: None)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no staging folder left beside it
