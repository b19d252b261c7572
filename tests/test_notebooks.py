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
]
REQUIRED_PARAMETERS = {"device", "dataset", "data_root", "seed", "output_dir"}


def _load(stem: str) -> dict:
    return json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_six_notebooks_exist_in_order():
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
def test_no_model_classes_or_training_loops(stem):
    code = "\n".join(_code(_load(stem)))
    assert not re.search(r"class\s+\w+\s*\(", code), f"{stem} defines a class"
    assert ".backward(" not in code and "optimizer.step" not in code, f"{stem} has a training loop"
    assert "import *" not in code


@pytest.mark.parametrize("stem", EXPECTED)
def test_writes_its_metrics(stem):
    code = "\n".join(_code(_load(stem)))
    assert "write_metrics(" in code and f'"{stem}"' in code


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
