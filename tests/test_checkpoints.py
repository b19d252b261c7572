"""course.checkpoints: train once, load after; corrupt or foreign files are retrained, never fatal."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from course.checkpoints import cache_key, load_checkpoint, run_config, save_checkpoint, train_or_load
from course.models import ShallowAutoencoder
from course.training import GaussianNoise, History, L1Penalty

SETTINGS = dict(model="shallow", epochs=1, model_args={"hidden_dim": 8}, lr=1e-2, batch_size=64, seed=0,
                device="cpu", progress=False)


@pytest.fixture
def small(tiny, make_subset):
    return make_subset(tiny, 128, 32, 32)


def train(data, **changes):
    return train_or_load(data=data, **{**SETTINGS, **changes})


def test_round_trip_second_call_loads_the_same_weights(small, same_weights, tmp_path):
    first = train(small)
    assert not first.from_cache and first.path.is_file()
    assert first.path.parent == tmp_path / "cache"  # COURSE_CACHE decides the folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        second = train(small)
    assert second.from_cache and second.path == first.path
    assert same_weights(first.model, second.model)
    assert second.history == first.history
    assert isinstance(second.model, ShallowAutoencoder) and not second.model.training
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no temporary files left
    took = f"{first.history.total_seconds:.0f} s"
    assert first.describe() == f"trained now in {took}"
    assert second.describe().startswith(f"loaded from the model cache (its training took {took}")


def test_retrain_forces_training(small):
    train(small)
    assert not train(small, retrain=True).from_cache


def test_cache_argument_beats_environment(small, tmp_path):
    trained = train(small, cache=tmp_path / "elsewhere")
    assert trained.path.parent == tmp_path / "elsewhere"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("change", [
    {"epochs": 2}, {"lr": 1e-3}, {"seed": 1}, {"batch_size": 32}, {"model_args": {"hidden_dim": 9}},
    {"corruption": GaussianNoise(0.5)}, {"penalty": L1Penalty(1e-3)},
], ids=lambda c: next(iter(c)))
def test_every_setting_is_part_of_the_key(small, change):
    base = train(small)
    other = train(small, **change)
    assert not other.from_cache and other.path != base.path


def test_data_is_part_of_the_key(small, tiny, make_subset):
    base = train(small)
    other = train(make_subset(tiny, 96, 32, 32))
    assert not other.from_cache and other.path != base.path


def test_device_is_not_part_of_the_key(small):
    train(small)
    assert train(small, device="auto").from_cache


def test_sequence_arguments_hit_the_cache_as_list_or_tuple(small, same_weights):
    first = train(small, model="mlp", model_args={"hidden_dims": (16,), "latent_dim": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = train(small, model="mlp", model_args={"hidden_dims": [16], "latent_dim": 4})
    assert second.from_cache and same_weights(first.model, second.model)


def test_corrupt_file_is_retrained_with_a_warning(small):
    first = train(small)
    first.path.write_bytes(b"this is not a checkpoint \x00\xff" * 10)
    with pytest.warns(UserWarning, match="retraining"):
        again = train(small)
    assert not again.from_cache
    assert train(small).from_cache  # the replaced file is good again


def test_truncated_file_is_retrained_with_a_warning(small):
    first = train(small)
    content = first.path.read_bytes()
    first.path.write_bytes(content[: len(content) // 2])
    with pytest.warns(UserWarning, match="could not be used"):
        assert not train(small).from_cache


def test_file_with_other_settings_is_retrained(small, tiny):
    first = train(small)
    config = run_config("shallow", {"hidden_dim": 8}, tiny, 5, 1e-3, 64, 0)
    save_checkpoint(first.path, first.model, config, first.history)  # a foreign file under this name
    with pytest.warns(UserWarning, match="settings differ"):
        again = train(small)
    assert not again.from_cache
    assert torch.load(again.path, weights_only=True)["config"]["training"]["epochs"] == 1


def test_file_with_wrong_weights_is_retrained(small):
    first = train(small)
    record = torch.load(first.path, weights_only=True)
    save_checkpoint(first.path, ShallowAutoencoder(hidden_dim=3), record["config"], first.history)
    with pytest.warns(UserWarning, match="retraining"):
        assert not train(small).from_cache


def test_config_is_plain_and_key_is_stable(small):
    config = run_config("shallow", {"hidden_dim": 8}, small, 1, 1e-2, 64, 0, GaussianNoise(0.5), L1Penalty(1e-3))
    corruption, objective = config["training"]["corruption"], config["training"]["objective"]
    assert corruption["kind"] == "GaussianNoise" and corruption["fields"] == {"noise_std": 0.5}
    assert objective["kind"] == "Reconstruction"  # the penalty is keyed as the objective fit minimises
    assert objective["fields"]["penalty"]["kind"] == "L1Penalty"
    assert objective["fields"]["penalty"]["fields"] == {"weight": 1e-3}
    assert len({corruption["code"], objective["code"], objective["fields"]["penalty"]["code"]}) == 3
    assert config["data"]["train_size"] == 128 and config["data"]["fingerprint"] == small.fingerprint
    assert "ShallowAutoencoder" in config["layers"] and config["registry"] is True
    assert json.loads(json.dumps(config)) == config
    again = run_config("shallow", {"hidden_dim": 8}, small, 1, 1e-2, 64, 0, GaussianNoise(0.5), L1Penalty(1e-3))
    assert cache_key(config) == cache_key(again)
    assert cache_key(config) != cache_key(run_config("shallow", {"hidden_dim": 8}, small, 1, 1e-2, 64, 0))


def test_run_config_leaves_the_random_state_alone(small):
    state = torch.random.get_rng_state()
    run_config("deep", {}, small, 1, 1e-3, 64, 0)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_save_and_load_checkpoint_directly(tmp_path, small, same_weights):
    model = ShallowAutoencoder(hidden_dim=5)
    config = run_config("shallow", {"hidden_dim": 5}, small, 1, 1e-3, 64, 0)
    history = History(train_loss=[0.1], val_loss=[0.2], val_mse=[0.2], seconds=[1.0], best_epoch=1)
    path = tmp_path / "deep" / "folder" / "model.pt"
    save_checkpoint(path, model, config, history)
    loaded, loaded_history = load_checkpoint(path, config)
    assert same_weights(model, loaded) and loaded_history == history
    with pytest.raises(ValueError, match="settings differ"):
        load_checkpoint(path, {**config, "model_args": {"hidden_dim": 6}})


def test_a_class_checkpoint_loads_into_a_model_built_by_the_caller(tmp_path, small, same_weights):
    model = ShallowAutoencoder(hidden_dim=5)
    config = run_config(ShallowAutoencoder, {"hidden_dim": 5}, small, 1, 1e-3, 64, 0, net=model)
    assert config["registry"] is False and config["model"] == "ShallowAutoencoder"
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config, History())
    with pytest.raises(ValueError, match="pass model="):
        load_checkpoint(path, config)
    loaded, _ = load_checkpoint(path, config, ShallowAutoencoder(hidden_dim=5))
    assert same_weights(model, loaded)


def test_failed_save_leaves_no_file(tmp_path, small, monkeypatch):
    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    path = tmp_path / "models" / "m.pt"
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, ShallowAutoencoder(hidden_dim=2),
                        run_config("shallow", {"hidden_dim": 2}, small, 1, 1e-3, 64, 0), History())
    assert list(path.parent.iterdir()) == []


def test_bad_device_fails_before_training(small, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        train(small, device="cuda")


def test_the_objective_is_resolved_in_one_place(small):
    from course.training import Reconstruction, resolve_objective

    assert resolve_objective() == Reconstruction()
    assert resolve_objective(L1Penalty(1e-3)) == Reconstruction(L1Penalty(1e-3))
    assert resolve_objective(objective=Reconstruction()) == Reconstruction()
    with pytest.raises(ValueError, match="not both"):
        resolve_objective(L1Penalty(1e-3), Reconstruction())
    with pytest.raises(ValueError, match="not both"):  # train_or_load refuses before building or training
        train(small, penalty=L1Penalty(1e-3), objective=Reconstruction())
