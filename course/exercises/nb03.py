"""Notebook 03, The sparse autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import torch

from course import metrics, training
from course.exercises.core import Exercise, _Wrong, _add, _call, _near, _number, _same, _scalar, _tensor
from course.exercises.inputs import _generator, _real


def _real_codes(n: int = 64, units: int = 48, dead: int = 8) -> torch.Tensor:
    """ReLU codes (n, units) of real MNIST digits through a seeded random layer; the last `dead` units never fire."""
    g = _generator(3)
    weight = torch.randn(784, units, generator=g) / 28
    bias = torch.randn(units, generator=g) * 0.5
    bias[-dead:] = -100.0
    return torch.relu(_real(n) @ weight + bias)


def _check_l1_penalty(l1_penalty) -> str:
    z = torch.randn(8, 32, generator=_generator(0))  # signed: a missing abs shows
    weight = 0.3

    def penalty(z: torch.Tensor, weight: float) -> float:
        what = f"l1_penalty(z, weight={weight}) with z of shape {tuple(z.shape)}"
        value = _scalar(_call(l1_penalty, z, weight, what=what), what, "one price for the whole batch")
        return float(value.detach())

    small = penalty(z, weight)
    if _near(penalty(z.repeat(8, 1), weight), 8 * small, rtol=1e-3) and small != 0:
        raise _Wrong("your penalty grows with the batch size: you summed over the batch, which breaks "
                     "the statement's first rule; what reduction does not care how many images there are?")
    if _near(penalty(z.repeat(1, 4), weight), 4 * small, rtol=1e-3) and small != 0:
        raise _Wrong("your penalty grows with the number of units: you summed over the units, which "
                     "breaks the statement's second rule (a wider layer must not cost more)")
    doubled = penalty(z, 2 * weight)
    if _near(doubled, small, rtol=1e-3):
        raise _Wrong(f"your penalty does not change with weight: {small:.4g} at weight {weight} and at "
                     f"{2 * weight}; weight is the price per unit of activity, so what must doubling it do to "
                     "the penalty?")
    if not _near(penalty(-z, weight), small, rtol=1e-3) or not _near(penalty(z.abs(), weight), small, rtol=1e-3):
        raise _Wrong("your penalty changes when z changes sign, so negative entries cancel positive ones: an L1 "
                     "penalty prices each entry by its absolute value, its size whatever its sign")
    for codes, w in ((z, weight), (_real_codes(), 0.01)):
        value, reference = penalty(codes, w), float(training.l1_penalty(codes, w))
        if _near(value, reference, rtol=1e-4):
            continue
        if _near(value, w * float(codes.pow(2).mean()), rtol=1e-4):
            raise _Wrong("you squared z: that is an L2 penalty; the L1 penalty uses |z|")
        raise _Wrong(f"for z of shape {tuple(codes.shape)} and weight {w} your penalty is {value:.6g}, "
                     f"the reference's {reference:.6g}")
    z_grad = z.clone().requires_grad_(True)
    what = f"l1_penalty(z, weight={weight}) with z of shape {tuple(z.shape)}"
    value = _tensor(_call(l1_penalty, z_grad, weight, what=what), what)
    if not value.requires_grad:
        raise _Wrong("no gradient flows through your penalty to z (torch.no_grad, .detach() or numpy?): "
                     "it must push the codes towards 0 during training")
    value.backward()
    expected = weight * z.sign() / z.numel()  # d(weight * mean |z|) / dz
    if z_grad.grad is None or not _same(z_grad.grad, expected, rtol=1e-3, atol=1e-9):
        raise _Wrong("the value is right but its gradient is not the reference's: was part of it computed "
                     "outside torch's operations on z, or with a constant standing in for a tensor?")
    return "weight * mean |z| over images and units: the same for batch sizes 8 and 64 and for wider layers"


def _check_dead_fraction(dead_fraction) -> str:
    # 7 images x 12 units; units 0-1 dead, 2-4 silent on some images, image 5 silent everywhere; units 10-11
    # alive but barely (1e-30 on one image, 1e-4 on five): any threshold above 0 calls them dead.
    pattern = torch.tensor([
        [0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1],
        [0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1],
        [0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
    ], dtype=torch.float32)
    designed = pattern * torch.rand(7, 12, generator=_generator(0)).add(0.1)
    designed[:, 10:] = pattern[:, 10:] * torch.tensor([1e-30, 1e-4])
    random_codes = torch.relu(torch.randn(40, 25, generator=_generator(1)))
    random_codes[:, ::4] = 0.0  # 7 of 25 units dead
    cases = (("a designed (7 images, 12 units) code", designed), ("ReLU codes of real MNIST digits", _real_codes()),
             ("random (40, 25) codes", random_codes))
    for label, z in cases:
        what = f"dead_fraction(z) for {label}"
        returned = _call(dead_fraction, z, what=what)
        value = _number(returned, what)
        reference = metrics.dead_fraction(z)
        if _near(value, reference, rtol=1e-6, atol=1e-6):
            if isinstance(returned, torch.Tensor):
                raise _Wrong(f"{what}: the right fraction, {value:.4g}, but as a tensor of shape "
                             f"{tuple(returned.shape)}: return a Python float, the number the table formats")
            continue
        zero = z <= 0
        variants = [
            (float(zero.all(dim=0).sum()), "you returned the number of dead units; return the fraction: "
                                           "divide by the number of units"),
            (float(zero.float().mean()), "you measured the fraction of zero ENTRIES (image, unit pairs); a unit is "
                                         "dead only when it is 0 for every image: count units (columns), not entries"),
            (float(zero.any(dim=0).float().mean()), "you counted units that are 0 on ANY image; a dead unit is 0 on "
                                                    "EVERY image: which logical reduction asks that?"),
            (float(zero.all(dim=1).float().mean()), "you reduced along the wrong axis: you found the images whose "
                                                    "whole code is 0; which axis of z counts the images?"),
            (1.0 - reference, "you returned the fraction of units that are ALIVE (active on some image); "
                              "dead_fraction is the fraction that never fire"),
        ]
        for candidate, hint in variants:
            if _near(value, candidate, rtol=1e-6, atol=1e-6):
                raise _Wrong(hint)
        largest = z.max(dim=0).values  # (units,)
        faint = largest[(largest > 0) & (largest < 0.01)].sort().values  # living units a threshold may call dead
        for count, barely in enumerate(faint.tolist(), start=1):
            if _near(value, reference + count / z.shape[1], rtol=1e-6, atol=1e-6):
                raise _Wrong(f"for {label} you counted as dead a unit that is on, if barely (its largest value is "
                             f"{barely:.0e}): dead means exactly 0 for every image, and any threshold above 0 "
                             "calls some living units dead")
        raise _Wrong(f"for {label} you return {value:.4g}; the fraction of units that are 0 for every image is "
                     f"{reference:.4g}")
    return "the fraction of units that are 0 on every image, for designed, real and random codes"


def dead_fraction(z):
    """The fraction of units (columns of z, (N, units)) that are 0 for every image."""
    active_somewhere = (z > 0).any(dim=0)  # (units,): True if the unit fires at least once
    return float((~active_somewhere).float().mean())

_add(Exercise(
    "03.l1_penalty", "03_sparse_autoencoder",
    "Write the L1 sparsity penalty of the codes z, scaled by weight, as a 0-d tensor whose size depends neither on "
    "the batch size nor on the layer's width (at the same activity per unit).",
    "l1_penalty(z, weight) -> a 0-d tensor: z (B, units), weight a float",
    5, training.l1_penalty, _check_l1_penalty))

_add(Exercise(
    "03.dead_fraction", "03_sparse_autoencoder",
    "Measure the fraction of hidden units that are 0 for every image of z (dead units).",
    "dead_fraction(z) -> float: z (N, units), ReLU codes",
    5, metrics.dead_fraction, _check_dead_fraction, shown=dead_fraction))
