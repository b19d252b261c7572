"""The committed notebooks: clean, parameterised for papermill, and free of model code."""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = [
    "01_pca_vs_autoencoder",
    "02_standard_autoencoder",
    "03_sparse_autoencoder",
    "04_denoising_autoencoder",
    "05_manifold_learning",
    "06_convolutional_autoencoder",
    "07_variational_autoencoder",
]
REQUIRED_PARAMETERS = {"device", "dataset", "data_root", "seed", "output_dir"}


def _load(stem: str) -> dict:
    return json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_seven_notebooks_exist_in_order():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("stem", EXPECTED)
def test_committed_without_outputs(stem):
    for cell in _load(stem)["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{stem}: a code cell has outputs"
            assert cell.get("execution_count") is None, f"{stem}: a code cell has an execution count"


@pytest.mark.parametrize("stem", EXPECTED)
def test_opens_with_narrative_then_parameters(stem):
    cells = _load(stem)["cells"]
    assert cells[0]["cell_type"] == "markdown"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{stem}: exactly one cell must be tagged 'parameters'"
    source = "".join(cells[tagged[0]]["source"])
    names = set(re.findall(r"^(\w+)\s*=", source, flags=re.M))
    assert REQUIRED_PARAMETERS <= names, f"{stem}: parameters cell lacks {REQUIRED_PARAMETERS - names}"
    assert re.search(r"^device\s*=\s*[\"']auto[\"']", source, flags=re.M)
    assert re.search(r"^dataset\s*=\s*[\"']mnist[\"']", source, flags=re.M)
    # Derived values belong after the parameters cell, so papermill's overrides take effect:
    # the cell holds plain assignments of literals only.
    for statement in ast.parse(source).body:
        assert isinstance(statement, ast.Assign), f"{stem}: parameters cell has {ast.dump(statement)[:60]}"
        ast.literal_eval(statement.value)


@pytest.mark.parametrize("stem", EXPECTED)
def test_no_star_imports(stem):
    assert "import *" not in "\n".join(_code(_load(stem)))


@pytest.mark.parametrize("stem", EXPECTED)
def test_never_slices_a_whole_split_converted_to_float(stem):
    """`data.test.x[:n]` converts the whole split (31 MB for 10,000 images) and the slice, a view, keeps it
    alive as long as the few images are kept: a few such lines took 07 past its memory target. `take` converts
    only the rows it is given."""
    slices = re.findall(r"\bdata\.(?:train|val|test)\.(?:x|images)\[[^\]]*\]", "\n".join(_code(_load(stem))))
    assert not slices, f"use Split.take(...) instead of {slices}"


HIDE_INPUT = "hide-input"  # a bookkeeping cell: its sentence or record shows, its code folded away


@pytest.mark.parametrize("stem", EXPECTED)
def test_folded_cells_only_keep_the_books(stem):
    """Cells whose code is folded (JupyterLab's source_hidden, Colab's form view, the tag the HTML exports and the
    site read) only compute findings or the record: teaching code and exercises always show."""
    folded = [c for c in _load(stem)["cells"] if HIDE_INPUT in c.get("metadata", {}).get("tags", [])]
    assert folded, f"{stem}: the findings and the record are folded away"
    for cell in folded:
        source, meta = "".join(cell["source"]), cell["metadata"]
        assert cell["cell_type"] == "code" and meta.get("jupyter", {}).get("source_hidden") is True
        assert meta.get("cellView") == "form", "Colab folds a cell's code in its form view"
        assert "finding(" in source or "run.finish(" in source or "lessons" in source, source
        tree = ast.parse(source)
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))], source
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & {"check", "use", "train_or_load"}, source
        assert "plt." not in source and "show_table(" not in source, "a figure or a table is taught: it shows"


@pytest.mark.parametrize("stem", EXPECTED)
def test_writes_its_metrics(stem):
    """The record is written by one call (run.finish, or write_metrics), naming the notebook."""
    code = "\n".join(_code(_load(stem)))
    assert ("run.finish(" in code or "write_metrics(" in code) and f'"{stem}"' in code


def test_cuda_request_stops_at_once_without_cuda(tmp_path):
    """papermill -p device cuda on a CPU machine fails in the first code cell with a clear message."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    import papermill as pm

    env = {"COURSE_SMOKE": "1", "COURSE_OFFLINE": "1", "COURSE_CACHE": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(NOTEBOOKS / "05_manifold_learning.ipynb"), str(tmp_path / "out.ipynb"),
                                parameters={"device": "cuda", "output_dir": str(tmp_path)},
                                cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert "CUDA is not available" in str(err.value)
    assert not list(tmp_path.glob("*.metrics.json")), "nothing may be written after the device error"


# --- Colab and Kaggle: a badge and an install cell in every notebook ----------------------------

def _install_cell(stem: str) -> str:
    return _code(_load(stem))[0]


@pytest.mark.parametrize("stem", EXPECTED)
def test_opens_with_a_colab_badge_and_the_same_install_cell(stem):
    assert f"colab.research.google.com/github/autoencoder-course/autoencoder-course/blob/main/notebooks/{stem}.ipynb" \
        in "".join(_load(stem)["cells"][0]["source"])
    assert _install_cell(stem) == _install_cell(EXPECTED[0]), f"{stem}: its install cell differs from 01's"


def _run_install_cell(monkeypatch, capsys, present: set[str], cuda: bool) -> list:
    """Execute the install cell with `present` importable and pip faked; return the commands it ran."""
    import importlib.util
    import subprocess

    import torch

    real_find_spec = importlib.util.find_spec
    calls = []
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in present else (None if name in ("course", "google.colab")
                                                                            else real_find_spec(name, *a)))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    exec(compile(_install_cell(EXPECTED[0]), "install-cell", "exec"), {})
    return calls


def test_install_cell_does_nothing_where_the_course_is_installed(monkeypatch, capsys):
    assert _run_install_cell(monkeypatch, capsys, present={"course"}, cuda=False) == []
    assert capsys.readouterr().out == ""


def test_install_cell_on_colab_without_gpu_installs_quietly_and_says_how_to_get_one(monkeypatch, capsys):
    calls = _run_install_cell(monkeypatch, capsys, present={"google.colab"}, cuda=False)
    assert len(calls) == 1
    command, options = calls[0]
    assert command[1:4] == ["-m", "pip", "install"] and "--quiet" in command
    assert command[-1] == "git+https://github.com/autoencoder-course/autoencoder-course.git"
    assert options.get("check") is True
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Runtime > Change runtime type" in out


def test_install_cell_on_colab_with_gpu_or_on_kaggle_prints_nothing(monkeypatch, capsys):
    assert len(_run_install_cell(monkeypatch, capsys, present={"google.colab"}, cuda=True)) == 1
    assert len(_run_install_cell(monkeypatch, capsys, present=set(), cuda=False)) == 1  # Kaggle: no google.colab
    assert capsys.readouterr().out == ""


# --- A garment run says "garment": no "digit" in what a Fashion-MNIST run prints or draws --------

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# Inserted after the install cell: records every text matplotlib draws (titles, labels, legends).
RECORD_TEXT = """\
import matplotlib.text as _text
_drawn_texts = []
_set_text = _text.Text.set_text
def _recording_set_text(self, s):
    _drawn_texts.append(str(s))
    return _set_text(self, s)
_text.Text.set_text = _recording_set_text
"""
# Appended: writes those texts and every live widget's label and HTML text next to the notebook.
DUMP_TEXT = """\
import json as _json
import ipywidgets as _widgets
_labels = [str(getattr(w, name)) for w in list(_widgets.widgets.widget._instances.values())
           for name in ("description", "value", "tooltip") if isinstance(getattr(w, name, None), str)]
open({path!r}, "w").write(_json.dumps({{"drawn": _drawn_texts, "widgets": _labels}}))
"""
DIGIT = re.compile(r"\bdigits?\b", re.IGNORECASE)


def _output_texts(nb: dict) -> list[str]:
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                texts.append("".join(output.get("data", {}).get(mime, "")))
            texts.append(str(output.get("evalue", "")))
    return texts


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("stem", EXPECTED)
def test_a_fashion_mnist_run_never_says_digit(stem, tmp_path, monkeypatch):
    """Printed output, figure texts and widget labels use the data's own noun (markdown is shared by both)."""
    import nbformat
    import papermill as pm

    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    dump = tmp_path / "texts.json"
    nb.cells.insert(2, nbformat.v4.new_code_cell(RECORD_TEXT))
    nb.cells.append(nbformat.v4.new_code_cell(DUMP_TEXT.format(path=str(dump))))
    source = tmp_path / f"{stem}.ipynb"
    nbformat.write(nb, source)
    executed = pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"dataset": "fashion-mnist", "output_dir": str(tmp_path)},
                                   cwd=str(tmp_path), progress_bar=False)
    recorded = json.loads(dump.read_text())
    found = {where: sorted({m.group(0) + ": " + text.strip()[:120] for text in texts for m in DIGIT.finditer(text)})
             for where, texts in (("printed", _output_texts(executed)), ("drawn", recorded["drawn"]),
                                  ("widgets", recorded["widgets"]))}
    assert recorded["drawn"], "no figure text was recorded: the recorder is broken"
    assert not any(found.values()), f"{stem} says 'digit' in a Fashion-MNIST run: {found}"


@pytest.mark.parametrize("stem", EXPECTED)
def test_an_explorer_is_the_last_expression_of_its_cell(stem):
    # Jupyter displays only a cell's last expression: an explorer built earlier in the cell is never shown.
    for source in _code(_load(stem)):
        if "_explorer(" not in source:
            continue
        tree = ast.parse(re.sub(r"(?m)^[%!].*$", "", source))  # IPython magics are not Python
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id.endswith("_explorer")]
        if calls:
            last = tree.body[-1]
            assert isinstance(last, ast.Expr) and last.value in calls, \
                f"{stem}: the explorer must be the cell's last line, or it is never displayed:\n{source}"
