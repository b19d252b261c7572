"""The environments agree: pyproject.toml, environment.yml and binder/ list the same packages; set-up files hold."""
from __future__ import annotations

import os
import re

import pytest
import yaml

from course.config import repo_root

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = repo_root()
CONDA_FILES = ("environment.yml", "binder/environment.yml")
# conda-forge names that differ from PyPI's, and conda entries that are not packages of the project.
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip", "pytorch-cpu"}


def name_of(requirement: str) -> str:
    """The normalised package name of a requirement such as 'scikit-learn>=1.3' or 'pytorch=2.5'."""
    name = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name_of(req) for req in project["dependencies"]}


def conda_environment(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def conda_packages(env: dict) -> set[str]:
    names = {name_of(dep) for dep in env["dependencies"] if isinstance(dep, str)}
    return {CONDA_TO_PYPI.get(name, name) for name in names - NOT_PACKAGES}


def pip_section(env: dict) -> list[str]:
    return next((dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep), [])


@pytest.mark.parametrize("path", CONDA_FILES)
def test_conda_files_list_the_pyproject_packages(path):
    assert conda_packages(conda_environment(path)) == pyproject_packages()


@pytest.mark.parametrize("path", CONDA_FILES)
def test_conda_files_ask_for_cpu_pytorch_from_conda_forge(path):
    env = conda_environment(path)
    assert "pytorch-cpu" in {name_of(dep) for dep in env["dependencies"] if isinstance(dep, str)}
    assert env["channels"] == ["conda-forge"]


def test_top_level_environment_installs_the_course_in_place():
    assert any(re.fullmatch(r"-e \.(\[[a-z,]+\])?", line) for line in pip_section(conda_environment("environment.yml")))


def test_binder_environment_leaves_the_course_package_to_postbuild():
    # pip in environment.yml could pull a CUDA torch from PyPI; postBuild installs with --no-deps instead.
    assert pip_section(conda_environment("binder/environment.yml")) == []


def test_postbuild_is_executable_and_stops_on_errors():
    postbuild = ROOT / "binder" / "postBuild"
    assert os.access(postbuild, os.X_OK), "binder/postBuild must be executable (chmod +x)"
    text = postbuild.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -[a-z]*e", text, re.MULTILINE), "postBuild needs set -e (or -euo pipefail)"


def test_postbuild_installs_the_course_and_requires_full_mnist():
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in text
    assert 'load_data("mnist"' in text and "70_000" in text and "SystemExit" in text


def test_ci_runs_the_readme_test_command():
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_readme_shows_the_two_commands_and_the_binder_badge():
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme
    assert "mybinder.org/v2/gh/" in readme and "urlpath=lab/tree/notebooks/01_pca_vs_autoencoder.ipynb" in readme
    assert "## Results" in readme


def _results_table() -> dict[str, str]:
    """The README's results table: {measure: its reference column}."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Results", 1)[1]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| 0")]
    return {row[2].strip(): row[5].strip() for row in rows}


def test_readme_results_quote_the_reference_numbers_from_course_references():
    """The README's reference column says what course.references says (one home for each number)."""
    from course import references as ref

    table = _results_table()
    assert len(table) >= 9, "the results table lost rows"

    def quoted(measure_start: str, *values: float) -> None:
        row = next((text for measure, text in table.items() if measure.startswith(measure_start)), None)
        assert row is not None, f"no results row starting {measure_start!r}"
        for value in values:
            assert f"{value:g}" in row, f"{measure_start}: the README should quote {value:g}, has {row!r}"

    quoted("PCA, 30", ref.PCA_30["original"].value, ref.PCA_30["hinton_2006"].value)
    quoted("deep autoencoder", ref.AUTOENCODER_30["original"].value, ref.AUTOENCODER_30["hinton_2006"].value)
    quoted("shallow", *ref.SHALLOW_VALIDATION_MSE.values())
    quoted("sparse", *(mse for _, _, mse in ref.SPARSE_ORIGINAL[:3]), ref.sparse_weight_from_original(1e-5))
    quoted("784-64-8-64-784", ref.MANIFOLD_VALIDATION_MSE.value)
    quoted("convolutional", ref.CONV_UNPOOL["validation"].value)
    quoted("VAE", *ref.VAE_NEG_ELBO_NATS)
