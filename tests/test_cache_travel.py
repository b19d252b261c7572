"""Keys that travel: other Python versions (pyenv's, without torch) compute the same keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course.cachekeys import cache_key, fold
from course.checkpoints import run_config_tree
from course.config import repo_root
from course.data import DigitData, Split
from course.training import GaussianNoise, L1Penalty, NegativeELBO

OTHER_PYTHONS = [p for p in (Path(f"/root/.pyenv/versions/{v}/bin/python") for v in ("3.10.13", "3.12.1", "3.13.0"))
                 if p.is_file()]
# The models and hooks the notebooks train (their registry names, arguments and hooks).
NOTEBOOK_MODELS = [
    ("01", "deep", {"latent_dim": 2}, {}),
    ("02", "shallow", {"hidden_dim": 64}, {}),
    ("03", "shallow", {"hidden_dim": 1024}, {"penalty": L1Penalty(1e-3)}),
    ("04", "shallow", {"hidden_dim": 256}, {"corruption": GaussianNoise(0.5)}),
    ("05", "small", {"latent_dim": 2, "hidden_dim": 64}, {}),
    ("06", "conv-unpool", {}, {}),
    ("06", "conv-code", {}, {}),
    ("07", "vae", {"latent_dim": 2}, {"objective": NegativeELBO(1.0)}),
]
STUDENT_MODULE = textwrap.dedent('''
    from dataclasses import dataclass

    SCALE = 2.5
    NAMES = {"a": 1, "b": [1, 2]}


    def squash(x, low=-1.0):
        return [max(low, v) for v in x]  # a comprehension: inlined since Python 3.12


    @dataclass(frozen=True)
    class Penalty:
        weight: float

        def __call__(self, z):
            return f"{self.weight!r:>8} {SCALE * 2}" + squash(z)[0]


    class Net:
        size = SCALE * 4

        def __init__(self, width=8):
            self.width = width
            self.penalty = Penalty(0.1)

        def forward(self, x):
            return squash([SCALE * v for v in x]), NAMES


    def closing(weight):
        return lambda z: weight * z
''')
SCRIPT = textwrap.dedent('''
    import json, sys
    from course.cachekeys import Keyer, cache_key, fold
    import student_module as m
    keys = {name: fold(Keyer().value(getattr(m, name), name)) for name in ("squash", "Penalty", "Net")}
    keys["hook"] = fold(Keyer().value(m.Penalty(0.3), "hook"))
    keys["closure"] = fold(Keyer().value(m.closing(0.5), "closure"))
    trees = json.load(open(sys.argv[1]))
    keys["notebooks"] = [cache_key(fold(tree)) for tree in trees]
    print(json.dumps(keys, sort_keys=True))
''')


def _keys(python: str, tmp_path: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(repo_root()), str(tmp_path)]),
           "PYTHONHASHSEED": "7"}
    result = subprocess.run([python, "-c", SCRIPT, str(tmp_path / "trees.json")], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not OTHER_PYTHONS, reason="no other Python under /root/.pyenv")
def test_other_python_versions_compute_the_same_keys(tmp_path):
    (tmp_path / "student_module.py").write_text(STUDENT_MODULE)
    split = Split(torch.zeros(4, 784, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    data = DigitData(split, split, split, "mnist", "test", "four blank images", "none")
    trees = [run_config_tree(model, args, data, 15, 1e-3, 64, 0, **hooks) for _, model, args, hooks in NOTEBOOK_MODELS]
    (tmp_path / "trees.json").write_text(json.dumps(trees))
    here = _keys(sys.executable, tmp_path)
    assert here["notebooks"] == [cache_key(fold(tree)) for tree in trees]
    assert len(set(here["notebooks"])) == len(NOTEBOOK_MODELS)
    for python in OTHER_PYTHONS:
        assert _keys(str(python), tmp_path) == here, python


def test_comments_blank_lines_and_indent_width_are_not_part_of_a_key():
    from course.cachekeys import source_digest

    plain = "def f(x):\n    return x + 1\n"
    assert source_digest(plain) == source_digest("def f(x):  # one more\n\n  return x + 1\n")
    assert source_digest(plain) != source_digest("def f(x):\n    return x + 2\n")
    assert source_digest('s = f"{a!r} {b}"\n') != source_digest('s = f"{a!r} {c}"\n')
