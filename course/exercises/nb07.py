"""Notebook 07, The variational autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import math

import torch

from course import models, training
from course.exercises.core import Exercise, _Wrong, _add, _call, _near, _same, _scalar, _tensor
from course.exercises.inputs import _generator, _real


def _check_reparameterize(reparameterize) -> str:
    def sample(mu: torch.Tensor, logvar: torch.Tensor, seed: int) -> torch.Tensor:
        what = f"reparameterize(mu, logvar, generator) with mu of shape {tuple(mu.shape)}"
        z = _tensor(_call(reparameterize, mu, logvar, _generator(seed), what=what), what, finite=False)  # NaN: below
        if z.shape != mu.shape:
            raise _Wrong(f"{what} returned shape {tuple(z.shape)}; z has mu's shape: draw eps with mu's shape")
        return z

    images, dims = 4000, 8
    mu_row, logvar_row = torch.linspace(-3, 3, dims), torch.linspace(-2, 2, dims)
    mu, logvar = mu_row.expand(images, dims).clone(), logvar_row.expand(images, dims).clone()
    z = sample(mu, logvar, seed=0).detach()
    if bool(torch.isnan(z).any()):
        raise _Wrong("z has NaN where logvar < 0: sqrt(logvar) is not sigma; logvar = log sigma^2 can be negative: "
                     "which function undoes a log?")
    if not torch.equal(sample(mu, logvar, seed=0).detach(), z):
        raise _Wrong("two calls with equally seeded generators gave different z: the generator is ignored; "
                     "draw eps with the generator you are given (torch.randn takes it by the keyword generator)")
    if torch.equal(sample(mu, logvar, seed=1).detach(), z):
        raise _Wrong("generators with different seeds gave the same z: draw eps with the generator you are given")
    std = z.std(0)  # over 4,000 samples, one per dimension; logvar_row has no 0, so |logvar| > 0
    for factor, which in ((1.0, "logvar itself"), (0.5, "half of logvar")):
        if bool(((std - factor * logvar_row.abs()).abs() < 0.06 * factor * logvar_row.abs()).all()):
            raise _Wrong(f"your samples' spread follows {which}, not the standard deviation logvar encodes (logvar is "
                         "the log of the variance): what is sigma when logvar = 0?")
    eps = sample(torch.zeros(16, dims), torch.zeros(16, dims), seed=2).detach()  # z = eps when mu = 0, sigma = 1
    if float(eps.abs().max()) < 1e-7:
        raise _Wrong("with mu = 0 and logvar = 0 every z is exactly 0, no spread at all: what is sigma when "
                     "logvar = 0?")
    if float((eps - eps[0]).abs().max()) < 1e-7:
        raise _Wrong("every image gets the same eps: draw eps with mu's shape (one N(0, 1) number per image and "
                     "dimension)")
    if float((eps - eps[:, :1]).abs().max()) < 1e-7:
        raise _Wrong("every code dimension gets the same eps: draw eps with mu's shape")
    mean = z.mean(0)  # (dims,), over 4,000 samples
    sigma = torch.exp(logvar_row / 2)
    tolerance = 0.1 * torch.maximum(sigma, std)  # over 6 standard errors of the mean
    if bool(((mean + mu_row).abs() < tolerance).all()):
        raise _Wrong("the mean of your z is -mu: a sign error; the samples must be centred on mu")
    if not bool(((mean - mu_row).abs() < tolerance).all()):
        raise _Wrong(f"the samples are not centred on mu: for mu {', '.join(f'{v:.2f}' for v in mu_row)} the mean of "
                     f"your z over {images:,} draws is {', '.join(f'{v:.2f}' for v in mean)}")

    def like(candidate: torch.Tensor) -> bool:
        return bool(((std - candidate).abs() / candidate < 0.06).all())

    wrong_stds = [
        (torch.exp(logvar_row), "you used exp(logvar), the variance, as the std: your spread grows as sigma^2, "
                                "not sigma; how do you get sigma from the variance?"),
        (torch.exp(-logvar_row / 2), "sign error in the exponent: your spread shrinks as logvar grows, but a larger "
                                     "log-variance is a wider Gaussian"),
    ]
    if not like(sigma):
        for candidate, hint in wrong_stds:
            if like(candidate):
                raise _Wrong(hint)
        raise _Wrong(f"the spread of your z is wrong: for logvar {', '.join(f'{v:.2f}' for v in logvar_row)} its std "
                     f"is {', '.join(f'{v:.2f}' for v in std)}, expected sigma = "
                     f"{', '.join(f'{v:.2f}' for v in sigma)}")
    torch.manual_seed(0)
    vae = models.VariationalAutoencoder(latent_dim=dims, hidden_dim=32)
    with torch.no_grad():
        mu_real, logvar_real = vae.encode_stats(_real(16))
    mu_leaf, logvar_leaf = mu_real.clone().requires_grad_(True), logvar_real.clone().requires_grad_(True)
    z = sample(mu_leaf, logvar_leaf, seed=3)
    if not z.requires_grad:
        raise _Wrong("no gradient flows from z to mu and logvar (a detached sample, torch.no_grad or numpy?): "
                     "build z from mu and logvar themselves, with torch operations")
    weights = torch.randn(z.shape, generator=_generator(8))
    (z * weights).sum().backward()
    for name, leaf in (("mu", mu_leaf), ("logvar", logvar_leaf)):
        if leaf.grad is None or not bool(leaf.grad.any()):
            raise _Wrong(f"no gradient reaches {name}: torch.normal(mu, std) and .sample() are not differentiable "
                         "in mu and sigma; which part of z can be drawn without them, so that mu and sigma enter by "
                         "arithmetic?")
    eps = (z.detach() - mu_real) / torch.exp(logvar_real / 2)
    if not (_same(mu_leaf.grad, weights, rtol=1e-3, atol=1e-5)
            and _same(logvar_leaf.grad, weights * 0.5 * torch.exp(logvar_real / 2) * eps, rtol=1e-3, atol=1e-5)):
        raise _Wrong("your z has the right values, but its gradients to mu and logvar differ from the reference's: "
                     "compute sigma from logvar itself with torch operations (no detached or numpy detour)")
    return "z = mu + exp(logvar / 2) * eps with eps of mu's shape from the generator, differentiable in mu and logvar"


def _check_kl_divergence(kl_divergence) -> str:
    g = _generator(0)
    mu, logvar = torch.randn(8, 4, generator=g), 0.5 * torch.randn(8, 4, generator=g)

    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> float:
        what = f"kl_divergence(mu, logvar) with mu of shape {tuple(mu.shape)}"
        value = _scalar(_call(kl_divergence, mu, logvar, what=what), what,
                        "sum over the code's dimensions, then the mean over the images")
        return float(value.detach())

    zero = torch.zeros(8, 4)
    at_prior = kl(zero, zero)
    if _near(at_prior, 0.5 * 4, rtol=1e-4):
        raise _Wrong(f"at mu = 0, logvar = 0 (q is the prior itself) your KL is {at_prior:.3g}, not 0: 0.5 per "
                     "dimension, a constant term is missing (the KL of a distribution from itself is 0)")
    value = kl(mu, logvar)
    if _near(kl(mu.repeat(8, 1), logvar.repeat(8, 1)), 8 * value, rtol=1e-3) and value != 0:
        raise _Wrong("your KL grows with the batch size: you summed over the batch; average over the images")
    if _near(kl(mu.repeat(1, 2), logvar.repeat(1, 2)), value, rtol=1e-3) and value != 0:
        raise _Wrong("you averaged over the code's dimensions: sum over them (the KL of independent dimensions adds "
                     "up), then average over the images")
    torch.manual_seed(0)
    vae = models.VariationalAutoencoder(latent_dim=8, hidden_dim=32)
    with torch.no_grad():
        mu_real, logvar_real = vae.encode_stats(_real(16))
    for m, lv in ((mu, logvar), (mu_real, logvar_real)):
        value, reference = kl(m, lv), float(training.kl_divergence(m, lv))
        if _near(value, reference, rtol=1e-4, atol=1e-6):
            continue
        per_image = lambda terms: float(terms.sum(dim=1).mean())  # noqa: E731
        variants = [
            (-reference, "your KL is negative: a sign error; a KL divergence is never below 0"),
            (per_image(-0.5 * (1 + lv + m ** 2 - lv.exp())), "sign error on mu^2: yours falls as mu moves away from "
                                                               "0, yet a code far from the prior's mean must cost more"),
            (per_image(-0.5 * (1 + lv - m ** 2 - lv)), "you wrote logvar where the formula has the variance sigma^2: "
                                                       "what is sigma^2 in terms of logvar?"),
            (2 * reference, "yours is twice the KL: a factor is missing"),
            (reference + 0.5 * m.shape[1], "yours is 0.5 per dimension too large: a constant term is missing"),
        ]
        for candidate, hint in variants:
            if _near(value, candidate, rtol=1e-4, atol=1e-6):
                raise _Wrong(hint)
        at_one = kl(torch.ones(8, 4), zero)  # 1/2 per dimension: 2
        # At mu = 0 the KL per dimension is (exp(L) - 1) / 2 minus the log-variance term, L / 2: yours, c * L
        factors = [((math.exp(L) - 1) / 2 - kl(zero, torch.full((8, 4), L)) / 4) / L / 0.5 for L in (1.0, -1.0)]
        if _near(at_one, 2, rtol=1e-3) and _near(factors[0], factors[1], rtol=1e-3) \
                and not _near(factors[0], 1, rtol=1e-3):
            raise _Wrong(f"your KL is right where logvar = 0 but not elsewhere: at mu = 0, logvar = 1 it is "
                         f"{kl(zero, torch.ones(8, 4)) / 4:.4g} per dimension, not {(math.e - 2) / 2:.4g}: the "
                         f"log-variance term is {factors[0]:.3g} times what it should be; the term is ln sigma, so "
                         "what is ln sigma in terms of logvar?")
        raise _Wrong(f"for mu of shape {tuple(m.shape)} your KL is {value:.6g}, the reference's {reference:.6g}: "
                     f"check your closed form by hand at two points: with mu = 0 and logvar = 0 yours gives "
                     f"{at_prior:.4g} (it must be 0), with mu = 1 and logvar = 0 it gives {at_one:.4g} (it must be "
                     "1/2 per dimension: 2 for these 4)")
    mu_leaf, logvar_leaf = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    what = f"kl_divergence(mu, logvar) with mu of shape {tuple(mu.shape)}"
    value = _tensor(_call(kl_divergence, mu_leaf, logvar_leaf, what=what), what)
    if not value.requires_grad:
        raise _Wrong("no gradient flows through your KL (torch.no_grad, .detach() or numpy?): it trains the encoder")
    value.backward()
    mu_ref, logvar_ref = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    training.kl_divergence(mu_ref, logvar_ref).backward()
    if not (_same(mu_leaf.grad, mu_ref.grad, rtol=1e-3) and _same(logvar_leaf.grad, logvar_ref.grad, rtol=1e-3)):
        raise _Wrong("the value is right but its gradients are not: compute it with torch operations")
    return "KL(N(mu, sigma^2) || N(0, I)) summed over the code's dimensions, averaged over the images, with gradients"


_add(Exercise(
    "07.reparameterize", "07_variational_autoencoder",
    "Draw one code per image from the Gaussian with mean mu and log-variance logvar, using the generator, written "
    "so that the sample stays differentiable in mu and logvar (the reparameterization trick).",
    "reparameterize(mu, logvar, generator) -> z: mu, logvar (B, d); z (B, d)",
    10, models.reparameterize, _check_reparameterize))

_add(Exercise(
    "07.kl_divergence", "07_variational_autoencoder",
    "Compute the KL divergence of each image's Gaussian (mean mu, log-variance logvar) from the standard normal "
    "prior in closed form, summed over the code's dimensions and averaged over the images.",
    "kl_divergence(mu, logvar) -> a 0-d tensor: mu, logvar (B, d)",
    10, training.kl_divergence, _check_kl_divergence))


def kl_monte_carlo(mu, logvar, generator, n=2000):
    """A Monte-Carlo estimate of kl_divergence(mu, logvar): log q(z) - log p(z) averaged over n codes per image."""
    std = torch.exp(0.5 * logvar)
    # eps (n, B, d): n draws for every image, where the generator lives, then moved beside mu
    eps = torch.randn((n, *mu.shape), generator=generator, device=generator.device).to(mu.device)
    z = mu + std * eps  # n codes from q(z | x) for every image
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(dim=-1)  # (n, B): summed over the code's dimensions
    log_p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)).log_prob(z).sum(dim=-1)
    return (log_q - log_p).mean()  # over the samples and the images


def _kl_spread(mu: torch.Tensor, logvar: torch.Tensor, draws: int = 20_000) -> float:
    """The standard deviation of one draw's log q(z) - log p(z), averaged over the images: n draws' mean has
    this spread divided by the square root of n."""
    eps = torch.randn((draws, *mu.shape), generator=_generator(99))
    z = mu + torch.exp(0.5 * logvar) * eps
    per_draw = (-0.5 * (logvar + eps ** 2) + 0.5 * z ** 2).sum(dim=-1).mean(dim=-1)  # (draws,)
    return float(per_draw.std())


def _kl_with_scale(mu: torch.Tensor, logvar: torch.Tensor, scale: torch.Tensor) -> float:
    """The expected log N(z; mu, scale) - log N(z; 0, 1) for z ~ N(mu, sigma^2): what an estimate that gives Normal
    the wrong scale tends to, summed over the code's dimensions and averaged over the images."""
    variance = torch.exp(logvar)
    return float((-torch.log(scale) - variance / (2 * scale ** 2) + (mu ** 2 + variance) / 2).sum(dim=1).mean())


def _check_kl_monte_carlo(kl_monte_carlo) -> str:
    g = _generator(0)
    # sigma mostly below 1, as a trained encoder gives: a missing log-sigma term shows
    mu, logvar = torch.randn(6, 4, generator=g), 0.5 * torch.randn(6, 4, generator=g) - 0.7

    def estimate(m: torch.Tensor, lv: torch.Tensor, seed: int, **n) -> float:
        what = f"kl_monte_carlo(mu, logvar, generator{', n=' + str(n['n']) if n else ''}) with mu of shape " \
               f"{tuple(m.shape)}"
        try:
            value = _tensor(_call(kl_monte_carlo, m, lv, _generator(seed), what=what, **n), what)
        except _Wrong as wrong:
            cause = wrong.__cause__
            if isinstance(cause, ValueError) and "scale" in str(cause) and "GreaterThan" in str(cause) \
                    and bool((lv < 0).any()):
                positive = lv.abs() + 0.3  # a log-variance passed as scale runs here, and its estimate shows it
                try:
                    shown = float(_call(kl_monte_carlo, m, positive, _generator(seed), what=what, **n))
                except Exception:
                    shown = math.nan
                if abs(shown - _kl_with_scale(m, positive, positive)) < 0.05 + 0.05 * abs(shown):
                    raise _Wrong(f"{what} raised ValueError, Normal's scale below 0: Normal's scale is a standard "
                                 "deviation: you passed the log-variance, which is negative wherever sigma < 1; "
                                 "what is sigma in terms of logvar?") from cause
                raise _Wrong(f"{what} raised ValueError, Normal's scale below 0: Normal's scale is a standard "
                             "deviation, which is never negative; which tensor did you pass as scale?") from cause
            raise
        if value.shape == (m.shape[0],):
            raise _Wrong(f"{what} returned one estimate per image, shape {tuple(value.shape)}; return one number, "
                         "as kl_divergence does: average over the images too")
        if value.dim() != 0:
            raise _Wrong(f"{what} returned a tensor of shape {tuple(value.shape)}; return one number (a 0-d tensor)")
        return float(value.detach())

    value = estimate(mu, logvar, seed=0)
    if estimate(mu, logvar, seed=0) != value:
        raise _Wrong("two calls with equally seeded generators gave different estimates: the generator is ignored; "
                     "draw the codes with it")
    if estimate(mu, logvar, seed=1) == value:
        raise _Wrong("generators with different seeds gave the same estimate: nothing is drawn with the generator "
                     "(the closed form again?); estimate the KL from codes drawn with it")
    if estimate(mu, logvar, seed=0, n=1) == value:
        raise _Wrong("your estimate is the same with n = 1 as with n = 2000: draw n codes for every image")
    closed, spread = float(training.kl_divergence(mu, logvar)), _kl_spread(mu, logvar)
    tolerance = 5 * spread / math.sqrt(2000)  # five standard errors of a 2,000-draw mean
    if abs(value - closed) > tolerance:
        images, dims = mu.shape
        variants = [(2000 * closed, "you summed over the samples: average them"),
                    (images * closed, "you summed over the images: average over them, as kl_divergence does"),
                    (closed / dims, "you averaged over the code's dimensions: sum the log-densities over them"),
                    (-closed, "your estimate has the wrong sign: it is log q(z) minus log p(z), q the encoder's"),
                    (closed + 0.5 * float(logvar.sum(dim=1).mean()), "log q(z) lacks its log-sigma term: q's "
                     "density has sigma in its normalisation, not only in the exponent"),
                    (_kl_with_scale(mu, logvar, torch.exp(logvar)), "Normal's scale is a standard deviation: you "
                     "passed the variance; how do you get sigma from it?")]
        for candidate, hint in variants:
            if abs(value - candidate) <= tolerance * max(1.0, abs(candidate / closed)):
                raise _Wrong(f"your estimate is {value:.4g}, the closed form {closed:.4g}: {hint}")
        raise _Wrong(f"your estimate is {value:.4g} nats, the closed form {closed:.4g}: with 2,000 draws a correct "
                     f"estimate is within {tolerance:.3f} of it (five standard errors)")
    return (f"within sampling noise of the closed form ({value:.3f} against {closed:.3f} nats; five standard errors "
            f"are {tolerance:.3f} with 2,000 draws), drawn with the generator, n draws per image")


_add(Exercise(
    "07.kl_monte_carlo", "07_variational_autoencoder",
    "Estimate the same KL as kl_divergence by sampling: draw n codes for every image from its Gaussian with the "
    "generator, and average, over the codes and the images, the log of how much more likely each code is under the "
    "image's Gaussian than under the prior.",
    "kl_monte_carlo(mu, logvar, generator, n=2000) -> a 0-d tensor: mu, logvar (B, d)",
    5, kl_monte_carlo, _check_kl_monte_carlo))
