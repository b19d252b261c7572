"""course.metrics: per-pixel MSE, denoising error, codes and unit activity on hand-made cases."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course.metrics import activation_stats, codes, mse, reconstruction_mse
from course.models import ConvCodeAutoencoder, ShallowAutoencoder
from course.training import GaussianNoise, MaskingNoise


class Scaled(nn.Module):
    """x_hat = factor * x, with z = x: an identity-like model whose errors are known in advance."""

    def __init__(self, factor: float = 1.0):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x):
        return x, self.factor * x


def test_mse_on_hand_made_tensors():
    assert mse(torch.zeros(2, 3), torch.ones(2, 3)) == 1.0
    assert mse(torch.tensor([0.0, 0.5]), torch.tensor([0.0, 1.0])) == pytest.approx(0.125)
    assert mse(torch.ones(4, 784), torch.ones(4, 1, 28, 28)) == 0.0  # flat against image layout
    assert mse(torch.zeros(3, dtype=torch.uint8), torch.ones(3, dtype=torch.uint8)) == 1.0


def test_mse_rejects_different_sizes():
    with pytest.raises(ValueError, match="x_hat and x"):
        mse(torch.zeros(2, 784), torch.zeros(3, 784))


def test_reconstruction_mse_of_an_identity_model_is_zero(tiny):
    assert reconstruction_mse(Scaled(1.0), tiny.test.x) == 0.0


def test_reconstruction_mse_is_per_pixel_and_batch_independent(tiny):
    x = tiny.test.x
    half = Scaled(0.5)
    expected = float(((0.5 * x.double()) ** 2).mean())  # (0.5 x - x)^2 = 0.25 x^2
    assert reconstruction_mse(half, x) == pytest.approx(expected, rel=1e-6)
    assert reconstruction_mse(half, x, batch_size=7) == pytest.approx(expected, rel=1e-6)  # uneven last batch
    assert reconstruction_mse(half, x.view(-1, 1, 28, 28)) == pytest.approx(expected, rel=1e-6)


def test_reconstruction_mse_with_corruption_scores_against_the_clean_images():
    x = torch.ones(50, 784)
    # masking a fraction f of the pixels of an all-ones image costs exactly f per pixel, if scored on clean x
    err = reconstruction_mse(Scaled(1.0), x, corruption=MaskingNoise(0.3))
    assert err == pytest.approx(0.3, abs=0.01)
    # the noise is drawn from `seed`: the same seed gives the same error, another seed another error
    noisy = GaussianNoise(0.5)
    a = reconstruction_mse(Scaled(1.0), x * 0.5, corruption=noisy, seed=1)
    assert a == reconstruction_mse(Scaled(1.0), x * 0.5, corruption=noisy, seed=1)
    assert a != reconstruction_mse(Scaled(1.0), x * 0.5, corruption=noisy, seed=2)


@pytest.mark.parametrize("training", [True, False])
def test_reconstruction_mse_leaves_the_weights_and_the_mode_alone(tiny, training):
    model = ShallowAutoencoder(hidden_dim=8).train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reconstruction_mse(model, tiny.test.x[:20])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training is training


def test_codes_are_flat_and_cover_every_image(tiny):
    x = tiny.test.x[:30]
    model = ConvCodeAutoencoder()
    z = codes(model, x, batch_size=8)
    assert z.shape == (30, 16) and z.device.type == "cpu"
    with torch.no_grad():
        assert torch.allclose(z, model.eval().encode(x).reshape(30, 16))


def test_activation_stats_on_a_hand_made_code():
    z = torch.tensor([[0.0, 1.0, 0.0, 0.0],
                      [0.0, 2.0, 3.0, 0.0]])
    stats = activation_stats(z)
    assert stats["avg_activation"] == pytest.approx(6 / 8)
    assert stats["active_units_per_image"] == pytest.approx(1.5)
    assert stats["active_fraction"] == pytest.approx(1.5 / 4)
    assert stats["dead_fraction"] == pytest.approx(2 / 4)  # units 0 and 3 never fire
    assert stats["units"] == 4


def test_activation_stats_all_dead_and_all_alive():
    dead = activation_stats(torch.zeros(10, 5))
    assert dead["dead_fraction"] == 1.0 and dead["active_units_per_image"] == 0.0 and dead["avg_activation"] == 0.0
    alive = activation_stats(torch.ones(10, 5))
    assert alive["dead_fraction"] == 0.0 and alive["active_fraction"] == 1.0


def test_activation_stats_threshold():
    z = torch.tensor([[0.05, 0.5], [0.01, 0.0]])
    assert activation_stats(z)["dead_fraction"] == 0.0
    assert activation_stats(z, threshold=0.1)["dead_fraction"] == 0.5
    assert activation_stats(z, threshold=0.1)["active_units_per_image"] == 0.5


@pytest.mark.parametrize("z", [torch.zeros(0, 4), torch.zeros(4), torch.zeros(2, 3, 4)], ids=["empty", "1d", "3d"])
def test_activation_stats_rejects_bad_shapes(z):
    with pytest.raises(ValueError, match="z must have shape"):
        activation_stats(z)


def test_living_units_skips_dead_ones_and_sorts_by_firing_rate():
    from course.metrics import living_units

    z = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 3.0, 0.0, 0.0], [0.0, 1.0, 0.5, 0.0]])
    assert living_units(z).tolist() == [1, 2, 3] or living_units(z).tolist() == [1, 3, 2]
    assert living_units(z)[0] == 1 and 0 not in living_units(z).tolist()
    assert living_units(z, top=1).tolist() == [1]
