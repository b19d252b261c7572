"""The model cache's key: the code of hooks and models and the content of the data decide it, never an address."""
from __future__ import annotations

import linecache
import re
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

from course import models as course_models
from course.checkpoints import cache_key, run_config, train_or_load
from course.config import repo_root
from course.data import DigitData, Split
from course.models import Autoencoder, ShallowAutoencoder
from course.training import GaussianNoise, L1Penalty, NegativeELBO, Reconstruction

from test_checkpoints import SETTINGS, small, train  # noqa: F401 (small is a fixture): one training setup for both


def key(data, **hooks):
    return cache_key(run_config("shallow", {"hidden_dim": 8}, data, 1, 1e-2, 64, 0, **hooks))


def make_penalty(weight):
    return lambda z: weight * z.abs().mean()


# --- 1. functions and lambdas as hooks ------------------------------------------------------------

def test_lambda_penalties_with_other_weights_are_other_models(small):
    """Each lambda is freed after its call, so its address is reused: the key must not depend on it."""
    weights = (0.0, 0.001, 0.01, 0.1, 1.0, 10.0)
    trained = [train(small, penalty=make_penalty(w)) for w in weights]
    assert [t.from_cache for t in trained] == [False] * len(weights)
    assert len({t.path for t in trained}) == len(weights)
    assert train(small, penalty=make_penalty(0.1)).from_cache  # the same code and weight: the same model


SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from course.checkpoints import cache_key, run_config
    from course.data import DigitData, Split

    split = Split(torch.zeros(4, 784, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    data = DigitData(split, split, split, "mnist", "test", "four blank images", "none")
    weight = 0.1
    mode = "abs"

    def penalty(z):
        if mode in {"abs", "l1", "mean-abs"}:  # a frozenset constant: its order changes with the hash seed
            return weight * z.abs().mean()
        return weight * z.pow(2).mean()

    def closing(weight):
        def penalty(z):
            return weight * z.abs().mean()
        return penalty

    keys = [cache_key(run_config("shallow", {"hidden_dim": 4}, data, 1, 1e-3, 64, 0, penalty=p))
            for p in (penalty, closing(0.1), closing(0.2))]
    weight = 0.2
    keys.append(cache_key(run_config("shallow", {"hidden_dim": 4}, data, 1, 1e-3, 64, 0, penalty=penalty)))
    # the course's own hooks and models: dataclass-generated methods and class sources, stable too
    from course.training import GaussianNoise, L1Penalty, NegativeELBO
    keys += [cache_key(run_config("shallow", {"hidden_dim": 4}, data, 1, 1e-3, 64, 0, GaussianNoise(0.5),
                                  L1Penalty(0.1))),
             cache_key(run_config("vae", {"latent_dim": 2}, data, 1, 1e-3, 64, 0, objective=NegativeELBO(1.0))),
             cache_key(run_config("conv-unpool", {}, data, 1, 1e-3, 64, 0))]
    print(" ".join(keys))
""")


def test_def_penalty_has_the_same_key_in_every_process():
    processes = [subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=repo_root(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={"PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
                 for seed in ("1", "2")]  # other hash seeds, other addresses; run side by side
    runs = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        runs.append(out.split())
    assert runs[0] == runs[1]
    global_01, closure_01, closure_02, global_02 = runs[0][:4]
    assert closure_01 != closure_02  # the closed-over weight is part of the key
    assert global_01 != global_02  # and so is the global the function reads


def test_function_key_follows_code_defaults_and_globals(small):
    def abs_penalty(z, weight=0.1):
        return weight * z.abs().mean()

    def square_penalty(z, weight=0.1):
        return weight * z.pow(2).mean()

    def abs_penalty_heavier(z, weight=0.5):
        return weight * z.abs().mean()

    keys = {key(small, penalty=p) for p in (abs_penalty, square_penalty, abs_penalty_heavier)}
    assert len(keys) == 3
    assert key(small, penalty=abs_penalty) == key(small, penalty=abs_penalty)


def test_lambda_over_a_tensor_cannot_be_keyed_and_says_the_way_out(small):
    weight = torch.tensor(0.1)
    with pytest.raises(ValueError, match="L1Penalty") as info:
        key(small, penalty=lambda z: weight * z.abs().mean())
    assert "weight" in str(info.value) and "Tensor" in str(info.value)


def test_a_correct_penalty_over_a_global_tensor_trains_uncached_with_one_line(small, capsys, tmp_path):
    """Issue 17: training stopped with "cannot be part of the model cache key"; the notebook must go on."""
    weight = torch.tensor(1e-3)

    def l1_penalty(z):
        return weight * z.abs().mean()

    trained = train(small, penalty=l1_penalty)
    assert not trained.from_cache and trained.path is None and trained.history.epochs == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "cache" in line]
    assert len(lines) == 1 and lines[0].startswith("not cached") and "L1Penalty" in lines[0], lines
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    assert not train(small, penalty=l1_penalty).from_cache  # trained again, never a stale file


def test_lambda_over_a_module_is_refused(small):
    scale = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="cannot be part of the model cache key"):
        key(small, corruption=lambda x, generator=None: scale(x))


@pytest.mark.parametrize("hook", [
    {"corruption": GaussianNoise(0.5)}, {"penalty": L1Penalty(1e-3)},
    {"objective": Reconstruction(L1Penalty(1e-3))}, {"objective": NegativeELBO(0.5)},
], ids=lambda h: type(next(iter(h.values()))).__name__)
def test_dataclass_hooks_are_keyed_by_their_fields(small, hook):
    (name, value), = hook.items()
    other = {"GaussianNoise": GaussianNoise(0.3), "L1Penalty": L1Penalty(1e-2),
             "Reconstruction": Reconstruction(L1Penalty(1e-2)), "NegativeELBO": NegativeELBO(1.0)}[type(value).__name__]
    assert key(small, **hook) == key(small, **{name: type(value)(*vars(value).values())})
    assert key(small, **hook) != key(small, **{name: other})
    assert key(small, **hook) != key(small)


def test_penalty_alone_and_inside_reconstruction_are_the_same_training(small):
    assert key(small, penalty=L1Penalty(1e-3)) == key(small, objective=Reconstruction(L1Penalty(1e-3)))
    with pytest.raises(ValueError, match="not both"):
        key(small, penalty=L1Penalty(1e-3), objective=Reconstruction())


def test_a_hook_class_with_other_code_is_another_key(small):
    def define(body):
        """A dataclass hook, as a student would write it in a cell."""
        namespace = {}
        exec(compile(textwrap.dedent(f"""
            from dataclasses import dataclass
            @dataclass(frozen=True)
            class Scaled:
                weight: float
                def __call__(self, z):
                    return {body}
        """), "<hook-cell>", "exec"), namespace)
        return namespace["Scaled"]

    absolute, squared = define("self.weight * z.abs().mean()"), define("self.weight * z.pow(2).mean()")
    assert key(small, penalty=absolute(0.1)) != key(small, penalty=squared(0.1))
    assert key(small, penalty=absolute(0.1)) == key(small, penalty=define("self.weight * z.abs().mean()")(0.1))


# --- 2. the model's code ---------------------------------------------------------------------------

class TanhShallow(ShallowAutoencoder):
    """ShallowAutoencoder after someone edits ReLU into Tanh."""

    def __init__(self, hidden_dim: int = 128, input_dim: int = 784):
        super().__init__(hidden_dim, input_dim)
        self.encoder[1] = nn.Tanh()


def test_editing_a_registry_models_class_retrains_it(small, monkeypatch):
    first = train(small)
    monkeypatch.setitem(course_models.MODELS, "shallow", TanhShallow)
    edited = train(small)
    assert not edited.from_cache and edited.path != first.path
    assert isinstance(edited.model.encoder[1], nn.Tanh)


def _cell(source: str, number: int) -> dict:
    """Run `source` as a notebook cell would: module __main__, its text only in linecache."""
    filename = f"<ipython-input-{number}-cache-test>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


CELL = """
import torch
from torch import nn
from course.models import Autoencoder


class ShallowAutoencoder(Autoencoder):
    def __init__(self, hidden_dim=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, hidden_dim), nn.{activation}())
        self.decoder = nn.Sequential(nn.Linear(hidden_dim, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)
"""


def test_a_students_class_is_trained_then_loaded_and_retrained_when_edited(small, same_weights):
    relu = _cell(CELL.format(activation="ReLU"), 1)["ShallowAutoencoder"]
    first = train_or_load(relu, small, epochs=1, model_args={"hidden_dim": 8}, device="cpu", progress=False)
    assert not first.from_cache and type(first.model) is relu
    again = train_or_load(relu, small, epochs=1, model_args={"hidden_dim": 8}, device="cpu", progress=False)
    assert again.from_cache and type(again.model) is relu and same_weights(first.model, again.model)
    tanh = _cell(CELL.format(activation="Tanh"), 2)["ShallowAutoencoder"]
    edited = train_or_load(tanh, small, epochs=1, model_args={"hidden_dim": 8}, device="cpu", progress=False)
    assert not edited.from_cache and edited.path != first.path
    assert type(edited.model) is tanh


def test_a_class_defined_in_a_test_is_keyed_by_its_code(small):
    class Net(Autoencoder):
        def __init__(self, hidden_dim=8):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(784, hidden_dim), nn.ReLU())
            self.decoder = nn.Sequential(nn.Linear(hidden_dim, 784), nn.Sigmoid())

        def encode(self, x):
            return self.encoder(x)

        def decode(self, z):
            return self.decoder(z)

    assert not train(small, model=Net, model_args={}).from_cache
    assert train(small, model=Net, model_args={}).from_cache

    class Net(Net):  # noqa: F811 - the same name, edited: ReLU becomes Tanh
        def __init__(self, hidden_dim=8):
            super().__init__(hidden_dim)
            self.encoder[1] = nn.Tanh()

    assert not train(small, model=Net, model_args={}).from_cache


def test_the_same_layers_with_another_forward_are_another_key(small):
    """Only the code tells these apart: the module trees print the same."""
    source = """
import torch
from torch import nn
from course.models import Autoencoder

class Coder(Autoencoder):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = nn.Linear(784, 8), nn.Linear(8, 784)

    def encode(self, x):
        return torch.{activation}(self.encoder(x))

    def decode(self, z):
        return torch.sigmoid(self.decoder(z))
"""
    relu = _cell(source.format(activation="relu"), 3)["Coder"]
    tanh = _cell(source.format(activation="tanh"), 4)["Coder"]
    assert repr(relu()) == repr(tanh())
    keys = [cache_key(run_config(m, {}, small, 1, 1e-3, 64, 0)) for m in (relu, tanh)]
    assert keys[0] != keys[1]


def test_a_factory_is_built_with_model_args(small):
    def factory(width=4):
        return ShallowAutoencoder(hidden_dim=width)

    trained = train(small, model=factory, model_args={"width": 5})
    assert trained.model.hidden_dim == 5 and not trained.from_cache
    assert train(small, model=factory, model_args={"width": 5}).from_cache
    assert not train(small, model=factory, model_args={"width": 6}).from_cache


def test_a_factory_that_returns_no_module_is_refused(small):
    with pytest.raises(TypeError, match="nn.Module"):
        train(small, model=lambda: "not a model", model_args={})


def test_an_unknown_model_name_is_an_error_naming_the_choices(small):
    with pytest.raises(ValueError, match="shallow"):
        train(small, model="shalow")


# --- 3. the data's content -------------------------------------------------------------------------

def test_other_data_of_the_same_sizes_is_another_model(small):
    first = train(small)
    inverted = DigitData(*(Split(1.0 - s.x, s.y) for s in (small.train, small.val, small.test)),
                         small.dataset, small.source, small.description, small.split_note, small.classes)
    assert (len(inverted.train), len(inverted.val), len(inverted.test)) == (128, 32, 32)
    other = train(inverted)
    assert not other.from_cache and other.path != first.path
    assert run_config("shallow", {}, small, 1, 1e-3, 64, 0)["data"]["fingerprint"] == small.fingerprint


# --- 6. readable names -----------------------------------------------------------------------------

def test_cache_file_names_say_what_they_hold(small):
    plain = train(small).path.name
    assert re.fullmatch(r"shallow-h8-[0-9a-f]{16,20}\.pt", plain), plain
    sparse = train(small, penalty=L1Penalty(1e-3)).path.name
    assert sparse.startswith("shallow-h8-l1-0.001-"), sparse
    noisy = train(small, corruption=GaussianNoise(0.5)).path.name
    assert noisy.startswith("shallow-h8-noise-0.5-"), noisy


def test_cache_file_names_are_short_and_safe_for_any_hook(small):
    def student_factory(width=4):
        return ShallowAutoencoder(hidden_dim=width)

    names = [train(small, penalty=make_penalty(0.2)).path.name,
             train(small, model=student_factory, model_args={"width": 3}).path.name,
             train(small, model="mlp", model_args={"hidden_dims": [16, 8], "latent_dim": 4}).path.name]
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._+-]+\.pt", name) and len(name) <= 100, name
    assert names[1].startswith("student_factory-")
    assert names[2].startswith("mlp-")


def test_stored_config_is_plain_json_data(small):
    import json

    trained = train(small, penalty=make_penalty(0.3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = torch.load(trained.path, weights_only=True)["config"]
    assert json.loads(json.dumps(config)) == config


def test_a_notebook_cells_class_is_keyed_by_its_source(small):
    """Python finds no source for a class of a notebook cell; its methods' code points to the cell's text."""
    from course.cachekeys import class_source as _class_source

    source = """
import torch
from torch import nn
from course.models import Autoencoder

class Scaled(Autoencoder):
    scale = torch.tensor({scale})  # neither the bytecode nor the module tree shows this value

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = nn.Linear(784, 8), nn.Linear(8, 784)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return torch.sigmoid(self.scale * self.decoder(z))
"""
    two, three = (_cell(source.format(scale=s), 10 + i)["Scaled"] for i, s in enumerate(("2.0", "3.0")))
    assert "torch.tensor(3.0)" in _class_source(three)
    keys = [cache_key(run_config(m, {}, small, 1, 1e-3, 64, 0)) for m in (two, three)]
    assert keys[0] != keys[1]


def test_a_factory_over_a_tensor_is_refused_naming_model_args(small):
    weights = torch.zeros(8, 784)

    def factory():
        model = ShallowAutoencoder(hidden_dim=8)
        model.encoder[0].weight.data.copy_(weights)
        return model

    with pytest.raises(ValueError, match="model=factory uses `weights`.*model_args"):
        run_config(factory, {}, small, 1, 1e-3, 64, 0)
    assert train(small, model=factory, model_args={}).path is None  # trained, not cached

    def sized(width):
        return ShallowAutoencoder(hidden_dim=int(width))

    with pytest.raises(ValueError, match=r"model_args\['width'\] is a Tensor"):
        run_config(sized, {"width": torch.tensor(8)}, small, 1, 1e-3, 64, 0)
