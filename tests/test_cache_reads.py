"""The cache keys what a model's code reads: the helpers it calls, module constants, the classes it builds."""
from __future__ import annotations

import importlib.util
import linecache
import sys
import textwrap

import pytest

from course.checkpoints import cache_key, run_config, train_or_load

from test_checkpoints import small  # noqa: F401 (a fixture)

MODULE = textwrap.dedent("""
    import torch
    from torch import nn
    from course.models import Autoencoder

    SCALE = {scale}


    def squash(x):
        return {squash}


    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = nn.Linear(784, width)

        def forward(self, x):
            return {block}


    class Net(Autoencoder):
        def __init__(self, hidden_dim=8):
            super().__init__()
            self.encoder = Block(hidden_dim)
            self.decoder = nn.Linear(hidden_dim, 784)

        def encode(self, x):
            return squash(self.encoder(x))

        def decode(self, z):
            return torch.sigmoid(SCALE * self.decoder(z))
""")
BASE = {"scale": "1.0", "squash": "torch.tanh(x)", "block": "self.linear(x)"}
EDITS = {"scale": "2.0", "squash": "torch.relu(x)", "block": "self.linear(x) * 0.5"}


def _as_module(folder, name: str, **changes):
    """MODULE with `changes`, written to <folder>/<name>.py and imported as a module of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(MODULE.format(**{**BASE, **changes}))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Net


def _as_cell(number: int, **changes):
    """MODULE with `changes`, run as a notebook cell: module __main__, its text only in linecache."""
    source = MODULE.format(**{**BASE, **changes})
    filename = f"<ipython-input-{number}-reads-test>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["Net"]


def key(model, data):
    return cache_key(run_config(model, {}, data, 1, 1e-3, 64, 0))


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_editing_what_a_modules_class_reads_is_another_key(small, tmp_path, edit):
    name = f"student_helpers_{edit}"  # one module name, three files: as when a student edits and reruns
    base = key(_as_module(tmp_path / "base", name), small)
    assert key(_as_module(tmp_path / "same", name), small) == base
    assert key(_as_module(tmp_path / "edited", name, **{edit: EDITS[edit]}), small) != base


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_editing_what_a_cells_class_reads_is_another_key(small, edit):
    number = 100 + 10 * sorted(EDITS).index(edit)
    base = key(_as_cell(number), small)
    assert key(_as_cell(number + 1), small) == base
    assert key(_as_cell(number + 2, **{edit: EDITS[edit]}), small) != base


def test_an_edited_helper_retrains_instead_of_loading_old_weights(small):
    first = train_or_load(_as_cell(200), small, epochs=1, device="cpu", progress=False)
    assert train_or_load(_as_cell(201), small, epochs=1, device="cpu", progress=False).from_cache
    edited = train_or_load(_as_cell(202, squash="torch.relu(x)"), small, epochs=1, device="cpu", progress=False)
    assert not edited.from_cache and edited.path != first.path


def test_comments_and_blank_lines_do_not_change_the_key(small):
    base = key(_as_cell(300), small)
    commented = key(_as_cell(301, squash="torch.tanh(x)  # squashed into (-1, 1)\n\n"), small)
    assert commented == base


def test_a_penalty_reading_a_helper_and_a_constant_is_keyed_by_both(small):
    def define(number: int, weight: str, body: str):
        source = f"WEIGHT = {weight}\n\ndef size(z):\n    return {body}\n\ndef penalty(z):\n    return WEIGHT * size(z)\n"
        filename = f"<ipython-input-{number}-penalty-test>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {"__name__": "__main__"}
        exec(compile(source, filename, "exec"), namespace)
        return namespace["penalty"]

    def penalty_key(p):
        return cache_key(run_config("shallow", {"hidden_dim": 8}, small, 1, 1e-3, 64, 0, penalty=p))

    base = penalty_key(define(400, "0.1", "z.abs().mean()"))
    assert penalty_key(define(401, "0.1", "z.abs().mean()")) == base
    assert penalty_key(define(402, "0.2", "z.abs().mean()")) != base
    assert penalty_key(define(403, "0.1", "z.pow(2).mean()")) != base
