"""Notebook 07's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import torch

from exercise_helpers import notebook_tests


# 07.reparameterize
def reparam_variance_as_std(mu, logvar, generator):
    return mu + torch.exp(logvar) * torch.randn(mu.shape, generator=generator)


def reparam_exponent_sign(mu, logvar, generator):
    return mu + torch.exp(-logvar / 2) * torch.randn(mu.shape, generator=generator)


def reparam_minus_mu(mu, logvar, generator):
    return -mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=generator)


def reparam_sqrt_logvar(mu, logvar, generator):
    return mu + torch.sqrt(logvar) * torch.randn(mu.shape, generator=generator)


def reparam_ignores_generator(mu, logvar, generator):
    return mu + torch.exp(logvar / 2) * torch.randn_like(mu)


def reparam_torch_normal(mu, logvar, generator):
    return torch.normal(mu, torch.exp(logvar / 2), generator=generator)


def reparam_detached(mu, logvar, generator):
    return (mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=generator)).detach()


def reparam_shared_eps(mu, logvar, generator):
    return mu + torch.exp(logvar / 2) * torch.randn(mu.shape[1], generator=generator)


def reparam_logvar_as_std(mu, logvar, generator):
    return mu + logvar * torch.randn(mu.shape, generator=generator)


def reparam_half_logvar_as_std(mu, logvar, generator):
    return mu + 0.5 * logvar * torch.randn(mu.shape, generator=generator)


# 07.kl_divergence
def kl_reference_terms(mu, logvar):
    return 1 + logvar - mu.pow(2) - logvar.exp()


def kl_sign(mu, logvar):
    return 0.5 * kl_reference_terms(mu, logvar).sum(1).mean()


def kl_sum_over_batch(mu, logvar):
    return -0.5 * kl_reference_terms(mu, logvar).sum()


def kl_mean_over_dims(mu, logvar):
    return -0.5 * kl_reference_terms(mu, logvar).mean(1).mean()


def kl_logvar_for_exp(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar).sum(1).mean()


def kl_missing_one(mu, logvar):
    return -0.5 * (logvar - mu.pow(2) - logvar.exp()).sum(1).mean()


def kl_mu_sign(mu, logvar):
    return -0.5 * (1 + logvar + mu.pow(2) - logvar.exp()).sum(1).mean()


def kl_no_half(mu, logvar):
    return -(1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()


def kl_logvar_for_log_sigma(mu, logvar):
    """-ln sigma + (sigma^2 + mu^2 - 1) / 2 with logvar written for ln sigma: the hand checks at logvar = 0 pass."""
    return (-logvar + 0.5 * (logvar.exp() + mu.pow(2) - 1)).sum(1).mean()


# 07.kl_monte_carlo
def _draws(mu, logvar, generator, n):
    """eps (n, B, d) and codes z drawn from q(z | x), as a student's estimate would."""
    eps = torch.randn((n, *mu.shape), generator=generator)
    return eps, mu + torch.exp(0.5 * logvar) * eps


def mc_per_image(mu, logvar, generator, n=2000):
    eps, z = _draws(mu, logvar, generator, n)
    return (0.5 * z ** 2 - 0.5 * eps ** 2 - 0.5 * logvar).sum(-1).mean(0)  # (B,): not averaged over images


def mc_summed_over_images(mu, logvar, generator, n=2000):
    return mc_per_image(mu, logvar, generator, n).sum()


def mc_sign(mu, logvar, generator, n=2000):
    return -mc_per_image(mu, logvar, generator, n).mean()


def mc_mean_over_dims(mu, logvar, generator, n=2000):
    eps, z = _draws(mu, logvar, generator, n)
    return (0.5 * z ** 2 - 0.5 * eps ** 2 - 0.5 * logvar).mean()


def mc_ignores_n(mu, logvar, generator, n=2000):
    return mc_per_image(mu, logvar, generator, 2000).mean()


def mc_closed_form(mu, logvar, generator, n=2000):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()


def mc_without_log_sigma(mu, logvar, generator, n=2000):
    eps, z = _draws(mu, logvar, generator, n)
    return (0.5 * z ** 2 - 0.5 * eps ** 2).sum(-1).mean()


def _mc_with_scale(mu, logvar, generator, n, scale):
    eps, z = _draws(mu, logvar, generator, n)
    q, p = torch.distributions.Normal(mu, scale), torch.distributions.Normal(0.0, 1.0)
    return (q.log_prob(z) - p.log_prob(z)).sum(dim=-1).mean()


def mc_variance_as_scale(mu, logvar, generator, n=2000):
    return _mc_with_scale(mu, logvar, generator, n, logvar.exp())


def mc_logvar_as_scale(mu, logvar, generator, n=2000):
    return _mc_with_scale(mu, logvar, generator, n, logvar)


def mc_first_image_only(mu, logvar, generator, n=2000):
    return mc_per_image(mu[:1], logvar[:1], generator, n).mean().expand(()).clone()


def mc_with_distributions(mu, logvar, generator, n=2000):
    std = logvar.mul(0.5).exp()
    z = mu + std * torch.randn(n, *mu.shape, generator=generator)
    q, p = torch.distributions.Normal(mu, std), torch.distributions.Normal(0.0, 1.0)
    return (q.log_prob(z) - p.log_prob(z)).sum(dim=2).mean()


WRONG = [
    ("07.reparameterize", reparam_variance_as_std, "exp(logvar), the variance, as the std"),
    ("07.reparameterize", reparam_exponent_sign, "sign error in the exponent"),
    ("07.reparameterize", reparam_minus_mu, "is -mu: a sign error"),
    ("07.reparameterize", reparam_sqrt_logvar, "sqrt(logvar) is not sigma"),
    ("07.reparameterize", reparam_ignores_generator, "the generator is ignored"),
    ("07.reparameterize", reparam_torch_normal, "no gradient reaches mu"),
    ("07.reparameterize", reparam_detached, "no gradient flows"),
    ("07.reparameterize", reparam_shared_eps, "every image gets the same eps"),
    ("07.reparameterize", reparam_logvar_as_std, "spread follows logvar itself"),
    ("07.reparameterize", reparam_half_logvar_as_std, "spread follows half of logvar"),
    ("07.kl_divergence", kl_sign, "a sign error"),
    ("07.kl_divergence", kl_sum_over_batch, "summed over the batch"),
    ("07.kl_divergence", kl_mean_over_dims, "averaged over the code's dimensions"),
    ("07.kl_divergence", kl_logvar_for_exp, "you wrote logvar where the formula has the variance sigma^2"),
    ("07.kl_divergence", kl_missing_one, "your KL is 2, not 0: 0.5 per dimension, a constant term is missing"),
    ("07.kl_divergence", kl_mu_sign, "sign error on mu^2"),
    ("07.kl_divergence", kl_no_half, "yours is twice the KL"),
    ("07.kl_divergence", kl_logvar_for_log_sigma, "the log-variance term is 2 times what it should be"),
    ("07.kl_monte_carlo", mc_per_image, "returned one estimate per image"),
    ("07.kl_monte_carlo", mc_summed_over_images, "you summed over the images"),
    ("07.kl_monte_carlo", mc_sign, "the wrong sign"),
    ("07.kl_monte_carlo", mc_mean_over_dims, "averaged over the code's dimensions"),
    ("07.kl_monte_carlo", mc_ignores_n, "the same with n = 1 as with n = 2000"),
    ("07.kl_monte_carlo", mc_closed_form, "nothing is drawn with the generator"),
    ("07.kl_monte_carlo", mc_without_log_sigma, "lacks its log-sigma term"),
    ("07.kl_monte_carlo", mc_variance_as_scale, "Normal's scale is a standard deviation: you passed the variance"),
    ("07.kl_monte_carlo", mc_logvar_as_scale, "Normal's scale is a standard deviation: you passed the log-variance"),
    ("07.kl_monte_carlo", mc_first_image_only, "a correct estimate is within"),
]


CORRECT = [
    ("07.kl_monte_carlo", mc_with_distributions),
    ("07.reparameterize", lambda mu, logvar, generator:
        mu + logvar.mul(0.5).exp() * torch.randn(mu.size(), generator=generator)),
    ("07.kl_divergence", lambda mu, logvar: 0.5 * torch.sum(mu ** 2 + logvar.exp() - 1 - logvar, dim=1).mean()),
]

(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("07", WRONG, CORRECT)
