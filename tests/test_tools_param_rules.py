"""`course run -p`: each value checked against its parameter's rule before any notebook runs (one table)."""
from __future__ import annotations

import pytest

from course.tools import batch
from course.tools.cli import main
from course.tools.params import ParameterError, check_rules


@pytest.mark.parametrize("name, text, named", [
    ("seed", "99999999999999999999999", "below 2**64"),
    ("seed", "-1", "at least 0"),
    ("hidden_sizes", "[]", "a non-empty list of widths"),
    ("hidden_sizes", "[64, 0]", "each at least 1"),
    ("penalty_weights", "[]", "a non-empty list of weights"),
    ("image_index", "100000", "from 0 to 992"),
    ("image_index", "-3", "from 0 to 992"),
    ("data_root", "5", "a folder path (text)"),
    ("batch_size", "0", "at least 1"),
        ("lr", "0", "above 0"),
])
def test_a_value_outside_its_rule_stops_the_run_before_any_kernel(tmp_path, capsys, monkeypatch, name, text, named):
    started = []
    monkeypatch.setattr(batch, "execute", lambda task: started.append(task))
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "-p", name, text]) == 2
    err = capsys.readouterr().err
    assert f"-p {name}: {text!r} is out of range" in err and named in err
    assert not started and not out.exists()


def test_a_smoke_run_has_a_smaller_test_split():
    check_rules({"image_index": "900"}, smoke=False)
    with pytest.raises(ParameterError, match="from 0 to 492 .*in a smoke run"):
        check_rules({"image_index": "900"}, smoke=True)


@pytest.mark.parametrize("name, text", [("seed", "99999"), ("hidden_sizes", "[32, 64]"), ("image_index", "992"),
                                        ("data_root", "/usr/share/datasets/fashion-mnist"), ("data_root", "None"),
                                        ("lr", "3e-4"), ("penalty_weights", "[0, 0.1]")])
def test_values_within_their_rule_pass(name, text):
    check_rules({name: text})
