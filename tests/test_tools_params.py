"""-p values read as the notebook's parameter types, and refused before any kernel when they do not fit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from course.tools.cli import main
from course.tools.params import ParameterError, assign, declared, parse_value
from notebook_factory import write_notebook

PARAMETERS = """\
device = "auto"
output_dir = None
data_root = None  # None: $COURSE_DATA or <repo>/data
dataset = "mnist"
epochs = 15
match_steps = True
batch_size = 64
lr = 1e-3
hidden_sizes = [64, 128, 256]
interpolation_pairs = [[1, 7], [3, 8]]
penalty_weights = [0.0, 0.01, 0.1]
"""
# Writes the value and type of every parameter the test looks at.
WRITE_TYPES = """\
import json, pathlib
names = ['match_steps', 'epochs', 'lr', 'data_root', 'hidden_sizes']
record = {n: [globals()[n], type(globals()[n]).__name__] for n in names}
pathlib.Path(output_dir, 'NAME.metrics.json').write_text(json.dumps(record))
"""


def make_notebook(folder: Path, stem: str = "01_params", parameters: str = PARAMETERS) -> Path:
    return write_notebook(folder, stem, parameters, WRITE_TYPES.replace("NAME", stem))


@pytest.fixture
def notebook(tmp_path) -> Path:
    return make_notebook(tmp_path)


def read(path: Path, **given) -> dict:
    return assign({path: declared(path)}, given)[path]


@pytest.mark.parametrize("text, value", [("false", False), ("False", False), ("no", False), ("OFF", False),
                                         ("true", True), ("Yes", True), ("on", True), ("TRUE", True)])
def test_bools_in_the_usual_spellings(notebook, text, value):
    assert read(notebook, match_steps=text)["match_steps"] is value


@pytest.mark.parametrize("name, text, value", [
    ("epochs", "5", 5),
    ("lr", "1", 1.0),  # a float parameter takes an int
    ("lr", "3e-4", 3e-4),
    ("hidden_sizes", "[32, 64]", [32, 64]),
    ("hidden_sizes", "[]", []),
    ("penalty_weights", "[0, 0.5]", [0, 0.5]),  # ints among floats
    ("interpolation_pairs", "[[0, 1]]", [[0, 1]]),
    ("data_root", "/srv/data", "/srv/data"),  # default None: text
    ("data_root", "None", None),
    ("dataset", "5", "5"),  # a text parameter keeps the text
])
def test_values_take_the_type_of_the_default(notebook, name, text, value):
    got = read(notebook, **{name: text})[name]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("name, text, kind", [
    ("epochs", "abc", "an int"),
    ("epochs", "2.5", "an int"),
    ("match_steps", "maybe", "a bool (true/false, yes/no, on/off)"),
    ("lr", "fast", "a number"),
    ("hidden_sizes", "[64, 128", "a list like [64, 128, 256]"),
    ("hidden_sizes", "[64.5]", "a list like [64, 128, 256]"),
    ("hidden_sizes", "64", "a list like [64, 128, 256]"),
    ("interpolation_pairs", "[1, 7]", "a list like [[1, 7], [3, 8]]"),
])
def test_a_value_that_does_not_fit_is_refused_naming_parameter_value_and_type(notebook, name, text, kind):
    with pytest.raises(ParameterError) as error:
        read(notebook, **{name: text})
    assert str(error.value).startswith(f"-p {name}: {text!r} is not {kind} (the default in 01_params is ")


def test_values_from_python_must_already_fit(notebook):
    assert read(notebook, lr=1, epochs=3) == {"lr": 1, "epochs": 3}
    with pytest.raises(ParameterError, match="-p epochs: 2.5 is not an int"):
        read(notebook, epochs=2.5)
    with pytest.raises(ParameterError, match="-p match_steps: 1 is not a bool"):
        read(notebook, match_steps=1)


def test_an_annotation_gives_the_type(tmp_path):
    path = make_notebook(tmp_path, parameters="output_dir = None\nepochs: int = None\nscale: float = 2\n")
    assert read(path, epochs="4", scale="3") == {"epochs": 4, "scale": 3.0}
    with pytest.raises(ParameterError, match="'x' is not an int"):
        read(path, epochs="x")


def test_without_a_type_values_are_read_like_papermill():
    values = ("5", "1e-3", "True", "None", "cpu", "[64, 128]", "[oops")
    assert [parse_value(v) for v in values] == [5, 1e-3, True, None, "cpu", [64, 128], "[oops"]


@pytest.mark.parametrize("args, message", [
    (["-p", "epochs", "abc"], "error: -p epochs: 'abc' is not an int"),
    (["-p", "hidden_sizes", "[64, 128"], "error: -p hidden_sizes: '[64, 128' is not a list like [64, 128, 256]"),
    (["-p", "batch_size", "0"], "error: -p batch_size: '0' is out of range; batch_size must be at least 1"),
    (["-p", "epochs", "0"], "error: -p epochs: '0' is out of range; epochs must be at least 1"),
    (["-p", "lr", "0"], "error: -p lr: '0' is out of range; lr must be above 0"),
    (["-p", "lr", "-0.001"], "error: -p lr: '-0.001' is out of range; lr must be above 0"),
])
def test_command_line_refuses_bad_values_before_any_kernel(notebook, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["run", "--notebook-dir", str(notebook.parent), "--out", str(out), "--device", "cpu"] + args) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(message) and "running" not in printed.out
    assert not out.exists()


def test_the_kernel_gets_the_values_as_read(notebook, tmp_path, capsys):
    out = tmp_path.parent / f"{tmp_path.name}-out"  # --out may not lie in the folder of notebooks read
    code = main(["run", "--notebook-dir", str(notebook.parent), "--out", str(out), "--device", "cpu",
                 "-p", "match_steps", "false", "-p", "epochs", "2", "-p", "lr", "1", "-p", "data_root", "/srv/x",
                 "-p", "hidden_sizes", "[32]"])
    assert code == 0, capsys.readouterr()
    seen = json.loads((out / "01_params.metrics.json").read_text())
    assert seen == {"match_steps": [False, "bool"], "epochs": [2, "int"], "lr": [1.0, "float"],
                    "data_root": ["/srv/x", "str"], "hidden_sizes": [[32], "list"]}
