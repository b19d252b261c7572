"""Notebook 05, Manifold learning: its exercises, their checks and references."""
from __future__ import annotations

import math

import torch

from course import models
from course.exercises.core import Exercise, _Wrong, _add, _call, _near, _same, _tensor
from course.exercises.inputs import _generator, _real


def _check_interpolate(interpolate) -> str:
    g = _generator(0)
    z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    digits = _real(2)
    for a, b, steps in ((z0, z1, 5), (z0, z1, 2), (digits[0], digits[1], 7)):
        d = a.shape[0]
        what = f"interpolate(z0, z1, steps={steps}) with codes of {d} numbers"
        try:
            out = _tensor(_call(interpolate, a, b, steps, what=what), what).detach()
        except _Wrong as wrong:
            if _weights_along_the_code(wrong.__cause__, steps, d):
                raise _Wrong(f"{what} raised a RuntimeError, {steps} numbers meeting {d}: your weights have shape "
                             f"(steps,) = ({steps},) (or (1, steps)), and broadcasting lines them up with the {d} "
                             "numbers of a code, on the last axis; what shape must they have so that each row gets "
                             "one weight?") from wrong.__cause__
            raise
        if out.shape != (steps, d):
            hint = " (transposed: one row per step)" if out.shape == (d, steps) else ""
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}{hint}; expected (steps, d) = ({steps}, {d})")
        if _same(out, models.interpolate(a, b, steps)):
            continue
        if _same(out[0], b) and _same(out[-1], a):
            raise _Wrong("your path runs backwards, from z1 to z0: row 0 must be z0 and the last row z1")
        direction = b - a
        t = (out - a) @ direction / direction.dot(direction)  # (steps,) position of each row along the line
        off = (out - (a + t.unsqueeze(1) * direction)).norm(dim=1)  # (steps,) each row's distance from the line
        if not _same(out, a + t.unsqueeze(1) * direction, rtol=1e-3, atol=1e-4):
            row = int(off.argmax())
            raise _Wrong(f"your codes are not on the straight line from z0 to z1 (steps={steps}: row {row} lies "
                         f"{float(off[row]):.3g} away from it, z0 and z1 {float(direction.norm()):.3g} apart): every "
                         "point of that line mixes z0 and z1 with two weights that add up to 1; do yours, in every "
                         "row?")
        shown = ", ".join(f"{float(v):.2f}" for v in t)
        starts, ends = _near(float(t[0]), 0.0, atol=1e-4), _near(float(t[-1]), 1.0, atol=1e-4)
        if not (starts and ends):
            missing = "neither end is there" if not (starts or ends) else "z0 is missing" if ends else "z1 is missing"
            raise _Wrong(f"your t runs [{shown}]: both ends must be included, t from 0 (z0) to 1 (z1), and in yours "
                         f"{missing}; how many equal gaps lie between {steps} evenly spaced points that include both "
                         "ends?")
        gaps = t[1:] - t[:-1]
        raise _Wrong(f"your t = [{shown}] is not evenly spaced: its gaps run from {float(gaps.min()):.3f} to "
                     f"{float(gaps.max()):.3f}; evenly spaced points have equal gaps between neighbouring rows: "
                     "what makes yours change along the path?")
    return "steps evenly spaced codes from z0 to z1, both ends included, as (steps, d)"


def _weights_along_the_code(error, steps: int, d: int) -> bool:
    """Whether error is the broadcasting failure of (steps,) weights times a (d,) code: 'The size of tensor a (5)
    must match the size of tensor b (8) at non-singleton dimension 0'."""
    message = str(error)
    return (isinstance(error, RuntimeError) and "must match the size of tensor" in message
            and f"({steps})" in message and f"({d})" in message)


_add(Exercise(
    "05.interpolate", "05_manifold_learning",
    "Return `steps` codes evenly spaced on the straight line from z0 to z1, both ends included.",
    "interpolate(z0, z1, steps) -> (steps, d): z0, z1 codes of shape (d,)",
    5, models.interpolate, _check_interpolate))


def perturb_code(z, noise_std, code_std, generator):
    """z plus Gaussian noise of noise_std times the codes' spread in each dimension; (B, d) like z."""
    # eps (B, d): one N(0, 1) number per image and dimension, drawn where the generator lives, then moved beside z
    eps = torch.randn(z.shape, generator=generator, device=generator.device).to(z.device)
    return z + noise_std * code_std * eps  # code_std (d,) broadcasts over the images


# The spread check's code_std: never 1, so a std and a variance (code_std ** 2) always differ.
_CODE_STDS = (0.5, 0.8, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


def _check_perturb_code(answer) -> str:
    def perturb(z: torch.Tensor, noise_std: float, code_std: torch.Tensor, seed: int) -> torch.Tensor:
        what = f"perturb_code(z, noise_std={noise_std}, code_std, generator) with z of shape {tuple(z.shape)}"
        out = _tensor(_call(answer, z, noise_std, code_std, _generator(seed), what=what), what)
        if out.shape != z.shape:
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}; the noisy codes have z's shape "
                         "(eps is drawn with z's shape)")
        return out.detach()

    torch.manual_seed(0)
    with torch.no_grad():
        z = models.small_autoencoder(latent_dim=8, hidden_dim=32).encode(_real(64))  # (64, 8) real codes
    code_std = z.std(dim=0)  # (8,)
    noisy = perturb(z, 0.5, code_std, seed=0)
    if not torch.equal(perturb(z, 0.5, code_std, seed=0), noisy):
        raise _Wrong("two calls with equally seeded generators gave different noise: the generator is ignored, so "
                     "eps comes from torch's global random stream; does the function that draws eps receive the "
                     "generator you are given?")
    if torch.equal(perturb(z, 0.5, code_std, seed=1), noisy):
        raise _Wrong("generators with different seeds gave the same noise: draw eps with the generator you are given "
                     "(and do not reseed inside the function)")
    if not _same(perturb(z, 0.0, code_std, seed=0), z, rtol=0, atol=0):
        raise _Wrong("with noise_std = 0 the codes must come back unchanged (is noise_std unused, or the noise "
                     "returned without z?)")
    noise = noisy - z  # (64, 8)
    if float((noise - noise[0]).abs().max()) < 1e-6:
        raise _Wrong("every image gets the same noise: draw eps with z's shape, (B, d), one number per image and "
                     "dimension")
    units = noise / code_std  # (64, 8): eps itself when the noise is scaled right
    if float((noise - noise[:, :1]).abs().max()) < 1e-6 or float((units - units[:, :1]).abs().max()) < 1e-5:
        raise _Wrong("every code dimension of an image gets the same eps: draw eps with z's shape, (B, d), not one "
                     "number per image")

    images, noise_std = 4000, 0.3
    std_row = torch.tensor(_CODE_STDS)
    z = torch.randn(images, len(_CODE_STDS), generator=_generator(4)) * std_row + 1.0  # spread like std_row
    noise = perturb(z, noise_std, std_row, seed=5) - z
    mean, std = noise.mean(dim=0), noise.std(dim=0)  # (8,) each, over 4,000 draws
    expected = noise_std * std_row
    if not bool((mean.abs() < 0.1 * torch.maximum(expected, std)).all()):  # 0.1 std: over 6 standard errors
        raise _Wrong(f"your noise averages {', '.join(f'{v:.2f}' for v in mean)} per dimension, not 0: torch.rand "
                     "draws U(0, 1), uniform and never negative; Gaussian noise is centred on 0: which torch "
                     "function draws standard-normal numbers?")

    def like(candidate: torch.Tensor) -> bool:
        return bool(((std - candidate).abs() / candidate < 0.06).all())

    shown = ", ".join(f"{v:.2f}" for v in std)
    if not like(expected):
        wrong_spreads = [
            (noise_std * torch.ones_like(std_row), f"your noise's std per dimension is {shown}, noise_std = "
                                                  f"{noise_std} in every dimension, in the codes' raw units, though "
                                                  f"their spreads differ ({_CODE_STDS[0]:g} to {_CODE_STDS[-1]:g}): "
                                                  "noise_std counts spreads; how large must the noise's std be in "
                                                  "a dimension of spread 2?"),
            (noise_std * std_row ** 2, f"your noise's std per dimension is {shown}: you scaled eps by code_std "
                                       "squared (a variance), so a dimension of spread 2 gets 4 times the noise of "
                                       "one of spread 1; how many times should it get?"),
            (math.sqrt(noise_std) * std_row, f"you used noise_std as a variance (a std of sqrt(noise_std) * code_std, "
                                             f"{math.sqrt(noise_std):.3g} spreads): noise_std = {noise_std} counts "
                                             "standard deviations of the codes; how many spreads must your noise's "
                                             "std be?"),
        ]
        for candidate, hint in wrong_spreads:
            if like(candidate):
                raise _Wrong(hint)
        raise _Wrong(f"the spread of your noise is wrong: with noise_std = {noise_std} and code_std "
                     f"{', '.join(f'{v:g}' for v in _CODE_STDS)} its std per dimension is {shown}, expected "
                     f"{', '.join(f'{v:.2f}' for v in expected)} ({noise_std} spreads in every dimension)")
    z = torch.randn(64, 8, generator=_generator(6))  # one draw followed across levels, as the notebook does
    half = perturb(z, 0.5, code_std, seed=0) - z
    if not _same(perturb(z, 1.0, code_std, seed=0) - z, 2 * half, rtol=1e-4, atol=1e-5):
        raise _Wrong("with the same seed, noise_std = 1 must give exactly twice the noise of noise_std = 0.5: one "
                     "standard-normal draw, scaled by noise_std (the notebook follows one draw across noise levels); "
                     "does noise_std change what you draw, or enter other than as a factor?")
    return (f"z + noise_std * code_std * eps with eps of z's shape from the generator (std per dimension measured "
            f"{shown} for noise_std * code_std = {', '.join(f'{v:.2f}' for v in expected)}), z left unchanged")


_add(Exercise(
    "05.perturb_code", "05_manifold_learning",
    "Add Gaussian noise drawn with the generator to the codes, one number per image and code dimension, its size "
    "noise_std in units of each dimension's spread code_std.",
    "perturb_code(z, noise_std, code_std, generator) -> z_noisy: z (B, d); code_std (d,), the per-dimension std "
    "of the training codes; z_noisy (B, d)",
    5, perturb_code, _check_perturb_code))
