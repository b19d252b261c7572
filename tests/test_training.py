"""course.training: corruptions, penalties and the trainer (convergence, validation, determinism, errors)."""
from __future__ import annotations

import math

import pytest
import torch

from course.config import set_seed
from course.data import DigitData, Split
from course.metrics import activation_stats, mse, reconstruction_mse
from course.models import ConvAutoencoder, ConvCodeAutoencoder, ShallowAutoencoder, deep_autoencoder, small_autoencoder
from course.training import (VAL_NOISE_SEED, GaussianNoise, History, KLSparsity, L1Penalty, MaskingNoise,
                             SaltAndPepper, fit, make_corruption)

N_PIXELS = 200_000  # enough pixels that a fraction is within about 0.003 of its expectation


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- corruptions ----------------------------------------------------------------------------------

def test_gaussian_noise_has_the_asked_spread():
    x = torch.full((N_PIXELS,), 0.5)
    out = GaussianNoise(0.1)(x, gen())
    noise = out - x
    assert float(noise.std()) == pytest.approx(0.1, rel=0.02)
    assert abs(float(noise.mean())) < 0.002
    assert torch.equal(x, torch.full((N_PIXELS,), 0.5))  # the input is left alone


def test_gaussian_noise_clips_to_unit_range():
    x = torch.rand(N_PIXELS, generator=gen(1))
    out = GaussianNoise(2.0)(x, gen())
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert 0.25 < float((out == 0).float().mean()) < 0.45  # many values pushed below 0 and clipped
    black = GaussianNoise(0.8)(torch.zeros(N_PIXELS), gen())
    assert float((black == 0).float().mean()) == pytest.approx(0.5, abs=0.01)  # the negative half


def test_gaussian_noise_is_reproducible_and_zero_std_is_identity():
    x = torch.rand(1000, generator=gen(1))
    assert torch.equal(GaussianNoise(0.3)(x, gen(4)), GaussianNoise(0.3)(x, gen(4)))
    assert not torch.equal(GaussianNoise(0.3)(x, gen(4)), GaussianNoise(0.3)(x, gen(5)))
    assert torch.equal(GaussianNoise(0.0)(x, gen()), x)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.75])
def test_masking_zeroes_about_the_fraction(fraction):
    x = torch.rand(N_PIXELS, generator=gen(1)) * 0.9 + 0.1  # no zeros to start with
    out = MaskingNoise(fraction)(x, gen())
    zeroed = out == 0
    assert float(zeroed.float().mean()) == pytest.approx(fraction, abs=0.005)
    assert torch.equal(out[~zeroed], x[~zeroed])  # the rest untouched


def test_masking_extremes():
    x = torch.rand(100, 784, generator=gen(1))
    assert torch.equal(MaskingNoise(0.0)(x, gen()), x)
    assert float(MaskingNoise(1.0)(x, gen()).abs().sum()) == 0.0


def test_salt_and_pepper_sets_half_each():
    x = torch.full((N_PIXELS,), 0.5)
    out = SaltAndPepper(0.2)(x, gen())
    assert float((out == 0).float().mean()) == pytest.approx(0.1, abs=0.004)
    assert float((out == 1).float().mean()) == pytest.approx(0.1, abs=0.004)
    assert float((out == 0.5).float().mean()) == pytest.approx(0.8, abs=0.004)
    assert torch.equal(x, torch.full((N_PIXELS,), 0.5))  # not in place
    assert torch.equal(SaltAndPepper(0.0)(x, gen()), x)


def test_make_corruption_by_name():
    assert make_corruption("gaussian", 0.5) == GaussianNoise(0.5)
    assert make_corruption("masking", 0.25) == MaskingNoise(0.25)
    assert make_corruption("salt-and-pepper", 0.1) == SaltAndPepper(0.1)


@pytest.mark.parametrize("build, name", [
    (lambda: GaussianNoise(-0.1), "noise_std"),
    (lambda: GaussianNoise(float("nan")), "noise_std"),
    (lambda: make_corruption("gaussian", -0.5), "noise_std"),
    (lambda: MaskingNoise(-0.1), "fraction"),
    (lambda: MaskingNoise(1.5), "fraction"),
    (lambda: SaltAndPepper(2), "fraction"),
    (lambda: make_corruption("blur", 0.1), "corruption kind"),
])
def test_bad_corruption_names_the_parameter(build, name):
    with pytest.raises(ValueError, match=name):
        build()


# --- penalties ------------------------------------------------------------------------------------

Z = torch.tensor([[1.0, -2.0], [3.0, 0.0]])


def test_l1_penalty_value_on_a_hand_made_code():
    assert float(L1Penalty(0.5)(Z)) == pytest.approx(0.5 * (1 + 2 + 3 + 0) / 4)
    assert float(L1Penalty(0.0)(Z)) == 0.0


def test_l1_penalty_does_not_grow_with_batch_size_or_width():
    penalty = L1Penalty(0.1)
    z = torch.rand(64, 32, generator=gen())
    assert float(penalty(torch.cat([z, z]))) == pytest.approx(float(penalty(z)))  # same batch twice
    assert float(penalty(torch.cat([z, z], dim=1))) == pytest.approx(float(penalty(z)))  # twice as wide


def test_l1_penalty_gradient_pushes_every_unit_toward_zero():
    z = Z.clone().requires_grad_(True)
    L1Penalty(1.0)(z).backward()
    assert torch.equal(z.grad, torch.sign(Z) / Z.numel())


def test_kl_sparsity_is_zero_at_the_target_rate():
    z = torch.full((16, 10), 0.05)
    assert abs(float(KLSparsity(1.0, target=0.05)(z))) < 1e-6


def test_kl_sparsity_value_on_a_hand_made_code():
    z = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # both units fire at rate 0.5
    p, rate = 0.1, 0.5
    per_unit = p * math.log(p / rate) + (1 - p) * math.log((1 - p) / (1 - rate))
    penalty = KLSparsity(2.0, target=p)
    assert float(penalty(z)) == pytest.approx(2.0 * 2 * per_unit, rel=1e-5)
    assert float(penalty(torch.cat([z, z]))) == pytest.approx(float(penalty(z)), rel=1e-6)
    assert float(KLSparsity(1.0, target=p)(torch.full((4, 2), 0.3))) > float(KLSparsity(1.0, target=p)(torch.full((4, 2), 0.15)))


@pytest.mark.parametrize("build, name", [
    (lambda: L1Penalty(-1e-4), "weight"),
    (lambda: L1Penalty(float("inf")), "weight"),
    (lambda: L1Penalty("1e-3"), "weight"),
    (lambda: KLSparsity(-0.1), "weight"),
    (lambda: KLSparsity(0.1, target=0.0), "target"),
    (lambda: KLSparsity(0.1, target=1.2), "target"),
])
def test_bad_penalty_names_the_parameter(build, name):
    with pytest.raises(ValueError, match=name):
        build()


# --- the trainer ----------------------------------------------------------------------------------

def shallow(hidden_dim: int = 64, seed: int = 0) -> ShallowAutoencoder:
    set_seed(seed)
    return ShallowAutoencoder(hidden_dim=hidden_dim)


def test_training_converges_on_real_digits(tiny):
    model = shallow()
    untrained = reconstruction_mse(model, tiny.val.x)
    history = fit(model, tiny, epochs=6, lr=1e-2, batch_size=32, device="cpu", progress=False)
    mean_image = mse(tiny.train.x.mean(0).expand_as(tiny.val.x), tiny.val.x)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_mse[-1] < history.val_mse[0]
    assert min(history.val_mse) < 0.8 * mean_image < 0.5 * untrained  # learnt more than the mean digit
    assert reconstruction_mse(model, tiny.val.x) == pytest.approx(min(history.val_mse), rel=1e-4)  # best kept
    assert not model.training


def test_progress_bar_names_the_loss_and_shows_the_mse_where_a_penalty_makes_them_differ(tiny, capsys):
    fit(shallow(16), tiny, epochs=1, lr=1e-2, device="cpu", progress=True)
    plain = capsys.readouterr().out
    fit(shallow(16), tiny, epochs=1, lr=1e-2, device="cpu", progress=True, penalty=L1Penalty(0.001))
    penalised = capsys.readouterr().out
    assert "train_loss=" in plain and "val_loss=" in plain and "val_mse=" not in plain
    assert "val_mse=" in penalised  # the loss includes the penalty: the MSE alone is shown beside it


def test_history_records_every_epoch(tiny):
    history = fit(shallow(16), tiny, epochs=3, lr=1e-2, device="cpu", progress=False)
    assert isinstance(history, History) and history.epochs == 3
    for values in (history.train_loss, history.val_loss, history.val_mse, history.seconds):
        assert len(values) == 3 and all(math.isfinite(v) for v in values)
    assert all(s > 0 for s in history.seconds)
    assert history.total_seconds == pytest.approx(sum(history.seconds))
    assert history.val_loss == history.val_mse  # no penalty: the objective is the MSE
    assert history.best_epoch == 1 + min(range(3), key=history.val_loss.__getitem__)
    assert History.from_dict(history.to_dict()) == history


def test_keep_best_restores_the_epoch_with_the_lowest_validation_loss(tiny):
    # validate on inverted digits: the better the model learns digits, the worse it does on these
    inverted = DigitData(tiny.train, Split(1 - tiny.val.x, tiny.val.y), tiny.test, "mnist", "test", "inverted", "")
    model = shallow(16)
    history = fit(model, inverted, epochs=3, lr=1e-2, device="cpu", progress=False)
    assert history.val_loss[-1] > history.val_loss[0]
    assert history.best_epoch == 1
    assert reconstruction_mse(model, inverted.val.x) == pytest.approx(history.val_mse[0], rel=1e-4)


def test_keep_best_false_keeps_the_last_weights(tiny):
    model = shallow(16)
    history = fit(model, tiny, epochs=2, lr=1e-2, device="cpu", progress=False, keep_best=False)
    assert history.best_epoch is None
    assert reconstruction_mse(model, tiny.val.x) == pytest.approx(history.val_mse[-1], rel=1e-4)


def test_zero_epochs_changes_nothing(tiny, same_weights):
    model, reference = shallow(8), shallow(8)
    history = fit(model, tiny, epochs=0, device="cpu", progress=False)
    assert history.epochs == 0 and history.best_epoch is None
    assert same_weights(model, reference)


@pytest.mark.parametrize("build", [deep_autoencoder, small_autoencoder, ConvAutoencoder, ConvCodeAutoencoder],
                         ids=lambda b: b.__name__)
def test_trainer_fits_every_kind_of_model(build, tiny, make_subset):
    small = make_subset(tiny, 128, 32, 32)
    set_seed(0)
    model = build()
    before = reconstruction_mse(model, small.train.x)
    history = fit(model, small, epochs=1, lr=1e-2, batch_size=32, device="cpu", progress=False)
    assert history.epochs == 1 and math.isfinite(history.val_mse[0])
    assert reconstruction_mse(model, small.train.x) < before


def test_progress_bar_can_be_shown(tiny, make_subset, capsys):
    fit(shallow(8), make_subset(tiny, 64, 16, 16), epochs=1, device="cpu", progress=True)
    assert "ShallowAutoencoder" in capsys.readouterr().out  # a text bar on stdout: notebooks keep its last state


def _history_and_weights(data, seed, corruption=None):
    model = shallow(16)  # the same initial weights every time
    history = fit(model, data, epochs=2, lr=1e-2, device="cpu", seed=seed, corruption=corruption, progress=False)
    return history, model


@pytest.mark.parametrize("corruption", [None, GaussianNoise(0.3)], ids=["clean", "noisy"])
def test_same_seed_same_training(tiny, same_weights, corruption):
    h1, m1 = _history_and_weights(tiny, 3, corruption)
    h2, m2 = _history_and_weights(tiny, 3, corruption)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    assert same_weights(m1, m2)
    h3, m3 = _history_and_weights(tiny, 4, corruption)  # another order of batches (and other noise)
    assert h3.train_loss != h1.train_loss
    assert not same_weights(m1, m3)


def test_validation_corrupts_its_inputs_with_a_fixed_seed(tiny, same_weights):
    noise = GaussianNoise(0.5)
    model = shallow(32)
    history = fit(model, tiny, epochs=2, lr=1e-2, device="cpu", corruption=noise, keep_best=False, progress=False)
    clean = reconstruction_mse(model, tiny.val.x)
    noisy = reconstruction_mse(model, tiny.val.x, corruption=noise, seed=VAL_NOISE_SEED, batch_size=len(tiny.val))
    assert history.val_mse[-1] == pytest.approx(noisy, rel=1e-5)  # scored on noisy inputs, clean targets
    assert abs(history.val_mse[-1] - clean) > 1e-3  # not a plain reconstruction score
    # reproducible: the same run again gives the same validation numbers
    again = fit(shallow(32), tiny, epochs=2, lr=1e-2, device="cpu", corruption=noise, keep_best=False, progress=False)
    assert again.val_loss == history.val_loss


class PassThrough(torch.nn.Module):
    """Outputs its input unchanged (z = x_hat = x); one unused weight so that Adam has a parameter."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x, x + 0 * self.unused


def test_corruption_sees_inputs_but_targets_stay_clean(tiny, make_subset):
    small = make_subset(tiny, 96, 40, 8)
    calls = []

    def blank(x, generator):
        calls.append((tuple(x.shape), generator))
        return torch.zeros_like(x)

    history = fit(PassThrough(), small, epochs=1, batch_size=32, device="cpu", corruption=blank, progress=False)
    shapes = [shape for shape, _ in calls]
    assert shapes[0] == (40, 784)  # the validation set, corrupted once
    assert shapes[1:] == [(32, 784)] * 3  # then every training batch
    assert all(isinstance(g, torch.Generator) for _, g in calls)
    # the model returns the blank input, so its loss is the error of zeros against the CLEAN images
    assert history.train_loss[0] == pytest.approx(float((small.train.x ** 2).mean()), rel=1e-5)
    assert history.val_mse[0] == pytest.approx(float((small.val.x ** 2).mean()), rel=1e-5)


def test_penalty_enters_the_objective_and_sparsifies(tiny):
    free, sparse = shallow(64), shallow(64)
    h_free = fit(free, tiny, epochs=4, lr=1e-2, batch_size=32, device="cpu", progress=False)
    h_sparse = fit(sparse, tiny, epochs=4, lr=1e-2, batch_size=32, device="cpu", progress=False,
                   penalty=L1Penalty(1e-2))
    assert all(loss > m for loss, m in zip(h_sparse.val_loss, h_sparse.val_mse))
    assert h_free.val_loss == h_free.val_mse
    with torch.no_grad():
        free_stats = activation_stats(free.encode(tiny.test.x))
        sparse_stats = activation_stats(sparse.encode(tiny.test.x))
    assert sparse_stats["avg_activation"] < 0.7 * free_stats["avg_activation"]
    assert sparse_stats["active_units_per_image"] < free_stats["active_units_per_image"]


def test_nan_loss_stops_training_and_names_lr(tiny):
    x = tiny.train.x[:64].clone()
    x[5, 100] = float("nan")
    poisoned = DigitData(Split(x, tiny.train.y[:64]), tiny.val, tiny.test, "mnist", "test", "poisoned", "")
    with pytest.raises(FloatingPointError, match=r"lr") as info:
        fit(shallow(8), poisoned, epochs=3, device="cpu", progress=False)
    assert "epoch 1" in str(info.value) and "nan" in str(info.value).lower()


def test_a_run_that_ends_no_better_than_the_mean_image_is_reported(tiny, make_subset):
    """lr 1e10 drives the shallow model to a constant output: a warning names lr; a sound run says nothing."""
    import warnings

    data = make_subset(tiny, 512, 128, 64)  # 8 steps an epoch: 63 epochs reach the 500 steps judged
    with pytest.warns(RuntimeWarning, match=r"no better than always answering with the mean.*lower lr, now 1e\+10"):
        history = fit(ShallowAutoencoder(hidden_dim=16), data, epochs=63, lr=1e10, device="cpu", progress=False)
    assert min(history.val_mse) >= 0.98 * history.mean_image_mse
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sound = fit(ShallowAutoencoder(hidden_dim=16), data, epochs=63, lr=1e-3, device="cpu", progress=False)
    assert sound.val_mse[sound.best_epoch - 1] < 0.85 * sound.mean_image_mse  # 512 images overfit: well below, not far below
    with warnings.catch_warnings():  # a short, untrained run is not judged
        warnings.simplefilter("error", RuntimeWarning)
        fit(ShallowAutoencoder(hidden_dim=16), data, epochs=1, lr=1e10, device="cpu", progress=False)


@pytest.mark.parametrize("kwargs, name", [
    ({"epochs": -1}, "epochs"), ({"epochs": 1.5}, "epochs"), ({"epochs": 1, "batch_size": 0}, "batch_size"),
    ({"epochs": 1, "lr": 0}, "lr"), ({"epochs": 1, "lr": -1e-3}, "lr"), ({"epochs": 1, "device": "tpu"}, "device"),
])
def test_bad_training_settings_name_the_parameter(tiny, kwargs, name):
    with pytest.raises(ValueError, match=name):
        fit(shallow(8), tiny, progress=False, **kwargs)


def test_cuda_asked_for_without_cuda_fails_before_any_work(monkeypatch, tiny, same_weights):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, reference = shallow(8), shallow(8)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fit(model, tiny, epochs=1, device="cuda", progress=False)
    assert same_weights(model, reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_training_with_hooks_on_cuda(tiny, make_subset):
    small = make_subset(tiny, 128, 32, 32)
    model = shallow(16)
    history = fit(model, small, epochs=2, lr=1e-2, device="cuda", corruption=GaussianNoise(0.5),
                  penalty=L1Penalty(1e-3), progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert all(math.isfinite(v) for v in history.val_loss)
    err = reconstruction_mse(model, small.val.x, corruption=GaussianNoise(0.5), seed=VAL_NOISE_SEED,
                             batch_size=len(small.val))
    assert err == pytest.approx(history.val_mse[history.best_epoch - 1], rel=1e-4)
