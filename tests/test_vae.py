"""The variational autoencoder: its objective on hand-computed cases, the reparameterisation, training, evaluation."""
import math

import pytest
import torch
from torch import nn

from course.metrics import negative_elbo
from course.models import VariationalAutoencoder, build_model, reparameterize
from course.training import NegativeELBO, bernoulli_nll, bernoulli_nll_logits, fit, kl_divergence


class Fixed(nn.Module):
    """A stand-in VAE with given (mu, logvar) and a decoder that ignores z: every term is known by hand."""

    def __init__(self, mu, logvar, x_hat):
        super().__init__()
        self.mu, self.logvar, self.x_hat = mu, logvar, x_hat

    def encode_stats(self, x):
        return self.mu, self.logvar

    def decode(self, z):
        return self.x_hat


# Two images of three pixels. Binary cross-entropy summed over pixels:
# image 1: -ln 0.9 - ln 0.8 - ln 0.5; image 2: 3 ln 2.
X_HAT = torch.tensor([[0.9, 0.2, 0.5], [0.5, 0.5, 0.5]])
TARGET = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
BCE = ((-math.log(0.9) - math.log(0.8) - math.log(0.5)) + 3 * math.log(2)) / 2
# KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1 - ln sigma^2) / 2 per dimension.
# image 1: mu = (1, 0), sigma^2 = (1, 4): (1 + 1 - 1 - 0) / 2 + (0 + 4 - 1 - ln 4) / 2; image 2: mu = 0, sigma = 1: 0.
MU = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
LOGVAR = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
KL = (0.5 + 0.5 * (3 - math.log(4.0))) / 2


def test_bernoulli_nll_is_the_bce_summed_over_pixels_averaged_over_images():
    assert float(bernoulli_nll(X_HAT, TARGET)) == pytest.approx(BCE, rel=1e-6)
    assert float(bernoulli_nll(TARGET, TARGET)) == pytest.approx(0.0, abs=1e-6)  # perfect 0/1 reconstruction
    grey = torch.full((1, 4), 0.5)  # on grey levels even a perfect reconstruction costs the entropy, ln 2 a pixel
    assert float(bernoulli_nll(grey, grey)) == pytest.approx(4 * math.log(2), rel=1e-6)


def test_the_vae_scores_its_logits_with_the_same_cross_entropy():
    torch.manual_seed(0)
    model = VariationalAutoencoder(latent_dim=3, hidden_dim=16)
    z, target = torch.randn(5, 3), torch.rand(5, 784)
    torch.testing.assert_close(bernoulli_nll_logits(model.decode_logits(z), target),
                               bernoulli_nll(model.decode(z), target), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(model.decode(z), torch.sigmoid(model.decode_logits(z)))
    with_logits = NegativeELBO.terms(model, target, target, torch.Generator().manual_seed(1))

    class ProbabilitiesOnly(nn.Module):  # the same model seen without decode_logits
        encode_stats, decode = model.encode_stats, model.decode

    from_probabilities = NegativeELBO.terms(ProbabilitiesOnly(), target, target, torch.Generator().manual_seed(1))
    torch.testing.assert_close(with_logits, from_probabilities, rtol=1e-5, atol=1e-4)


def test_kl_divergence_by_hand_and_against_torch_distributions():
    assert float(kl_divergence(MU, LOGVAR)) == pytest.approx(KL, rel=1e-6)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)


def test_kl_is_zero_exactly_at_the_prior_and_positive_elsewhere():
    assert float(kl_divergence(torch.zeros(4, 8), torch.zeros(4, 8))) == 0.0
    assert float(kl_divergence(torch.full((4, 8), 0.1), torch.zeros(4, 8))) > 0
    assert float(kl_divergence(torch.zeros(4, 8), torch.full((4, 8), -0.1))) > 0


def test_kl_is_a_mean_over_the_batch_not_a_sum():
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    torch.testing.assert_close(kl_divergence(mu.repeat(4, 1), logvar.repeat(4, 1)), kl_divergence(mu, logvar))


def test_negative_elbo_is_bce_sum_plus_beta_kl():
    model = Fixed(MU, LOGVAR, X_HAT)
    assert float(NegativeELBO(1.0)(model, TARGET, TARGET)) == pytest.approx(BCE + KL, rel=1e-6)
    assert float(NegativeELBO(4.0)(model, TARGET, TARGET)) == pytest.approx(BCE + 4 * KL, rel=1e-6)
    assert float(NegativeELBO(0.0)(model, TARGET, TARGET)) == pytest.approx(BCE, rel=1e-6)
    reconstruction, kl = NegativeELBO.terms(model, TARGET, TARGET)
    assert (float(reconstruction), float(kl)) == pytest.approx((BCE, KL), rel=1e-6)


def test_reparameterize_is_seeded_differentiable_and_has_the_asked_spread():
    mu = torch.tensor([[2.0, -1.0]], requires_grad=True)
    logvar = torch.tensor([[math.log(9.0), 0.0]], requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, mu + torch.tensor([[3.0, 1.0]]) * eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(1, 2))  # dz/dmu = 1
    torch.testing.assert_close(logvar.grad, 0.5 * torch.tensor([[3.0, 1.0]]) * eps)  # dz/dlogvar = sigma eps / 2
    many = reparameterize(torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25)),
                          torch.Generator().manual_seed(1))
    assert float(many.mean()) == pytest.approx(2.0, abs=0.02)
    assert float(many.std()) == pytest.approx(0.5, abs=0.01)


def test_eval_mode_encode_is_the_mean_and_training_mode_samples():
    torch.manual_seed(0)
    model = VariationalAutoencoder(latent_dim=4, hidden_dim=16)
    x = torch.rand(5, 784)
    mu, logvar = model.encode_stats(x)
    model.eval()
    torch.testing.assert_close(model.encode(x), mu)
    torch.testing.assert_close(model.encode(x), model.encode(x))
    z, x_hat = model(x)
    torch.testing.assert_close(z, mu)
    torch.testing.assert_close(x_hat, model.decode(mu))
    model.train()
    a, b = model.encode(x), model.encode(x)
    assert not torch.equal(a, b) and not torch.equal(a, mu)


def test_the_registry_builds_the_vae():
    model = build_model("vae", latent_dim=2, hidden_dim=8)
    assert isinstance(model, VariationalAutoencoder) and model.latent_dim == 2
    assert model.decode(torch.zeros(3, 2)).shape == (3, 784)
    with pytest.raises(ValueError, match="latent_dim"):
        VariationalAutoencoder(latent_dim=0)


def test_kl_divergence_names_mismatched_shapes():
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_divergence(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_divergence(torch.zeros(4), torch.zeros(4))


def test_a_vae_trains_through_the_course_trainer_and_its_negative_elbo_falls(tiny):
    torch.manual_seed(0)
    model = VariationalAutoencoder(latent_dim=4, hidden_dim=64)
    before = negative_elbo(model, tiny.test.x)
    history = fit(model, tiny, epochs=15, lr=1e-3, batch_size=32, seed=0, objective=NegativeELBO(1.0),
                  progress=False)
    after = negative_elbo(model, tiny.test.x)
    assert history.val_loss[-1] < 0.6 * history.val_loss[0]
    assert after["neg_elbo_nats"] < 0.5 * before["neg_elbo_nats"]  # about 544 nats (ln 2 a pixel) untrained
    assert after["kl_nats"] > 1.0  # the codes carry information about the images
    assert history.val_mse[-1] < history.mean_image_mse  # and the reconstructions beat the mean image


def test_negative_elbo_measure_is_seeded_and_sums_its_terms(tiny):
    torch.manual_seed(0)
    model = VariationalAutoencoder(latent_dim=4, hidden_dim=16)
    a, b = negative_elbo(model, tiny.test.x, seed=3), negative_elbo(model, tiny.test.x, seed=3)
    assert a == b
    assert a["neg_elbo_nats"] == pytest.approx(a["reconstruction_nats"] + a["kl_nats"])
    small_batches = negative_elbo(model, tiny.test.x, seed=3, batch_size=7)
    assert small_batches["kl_nats"] == pytest.approx(a["kl_nats"], rel=1e-5)  # exact term: batching changes nothing
    assert model.training  # the measurement restores the model's mode
