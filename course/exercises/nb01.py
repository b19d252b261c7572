"""Notebook 01, PCA versus a deep autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import math
import warnings
from copy import deepcopy

import torch
import torch.nn.functional as F
from torch import nn

from course import models
from course.exercises.core import (
    Exercise, _Wrong, _add, _alias, _call, _described, _device, _near, _number, _on_cpu, _same, _tensor)
from course.exercises.fitting import _device_probe
from course.exercises.inputs import _generator, _real


def _low_rank_images(n: int = 120, seed: int = 0) -> torch.Tensor:
    """(n, 784) random data: a mean image plus 6 directions of clearly different variance, plus faint noise."""
    g = _generator(seed)
    basis = torch.linalg.qr(torch.randn(784, 6, generator=g)).Q  # (784, 6), orthonormal columns
    scales = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])
    mean = torch.rand(784, generator=g)  # far from 0: forgetting to centre shows
    return mean + (torch.randn(n, 6, generator=g) * scales) @ basis.T + 0.01 * torch.randn(n, 784, generator=g)


def _check_pca_reconstruct(pca_reconstruct) -> str:
    cases = [(_low_rank_images(), 3), (_real(300), 5), (_real(300), 30)]
    for x, k in cases:
        what = f"pca_reconstruct(x, k={k}) with x of shape {tuple(x.shape)}"
        try:
            x_hat = _tensor(_call(pca_reconstruct, x, k, what=what), what)
        except _Wrong as wrong:
            if "shapes cannot be multiplied" not in str(wrong):
                raise
            raise _Wrong(f"{wrong}; print Vh's shape: its two axes are not alike. Which one runs over the "
                         "principal directions, largest variance first, and which over the pixels? Does the pixel "
                         "axis of the directions you kept meet the pixel axis of the (N, 784) images?") from wrong
        if x_hat.shape != x.shape:
            if x_hat.shape == (x.shape[0], k):
                raise _Wrong(f"{what} returned the codes, shape {tuple(x_hat.shape)}: k numbers per image, not "
                             "its reconstruction; x_hat has x's shape, so what takes k numbers back to 784 pixels "
                             "around the images?")
            raise _Wrong(f"{what} returned shape {tuple(x_hat.shape)}; x_hat must have x's shape {tuple(x.shape)}")
        x_hat = x_hat.detach().float()
        reference = models.pca_reconstruct(x, k)
        scale = float(x.abs().max())
        if _same(x_hat, reference, rtol=0, atol=1e-3 * scale):
            continue
        mean = x.mean(0)
        centred = x - mean
        directions = torch.linalg.svd(centred, full_matrices=False).Vh[:k].T  # (784, k)
        raw = torch.linalg.svd(x, full_matrices=False).Vh[:k].T  # top directions of the uncentred x
        error = float(((x_hat - x) ** 2).mean())
        reference_error = float(((reference - x) ** 2).mean())
        uncentred_error = float(((x @ raw @ raw.T - x) ** 2).mean())
        mean_error = float(((mean - x) ** 2).mean())
        image_means = x.mean(1, keepdim=True)  # (N, 1): one number per image, the wrong axis
        by_image = x - image_means
        image_directions = torch.linalg.svd(by_image, full_matrices=False).Vh[:k].T
        by_image_hat = by_image @ image_directions @ image_directions.T
        if any(_same(x_hat, candidate, rtol=0, atol=1e-3 * scale)
               for candidate in (by_image_hat + image_means, by_image_hat)):
            raise _Wrong("you centred x along the wrong axis: per image (each image minus the mean of its own "
                         "pixels) instead of per pixel over the images. PCA subtracts the mean image, 784 numbers, "
                         "one per pixel; which axis of x (N, 784) must the mean run over to give that?")
        if _same(x_hat, centred @ directions @ directions.T, rtol=0, atol=1e-3 * scale):
            raise _Wrong("you forgot to add the mean image back: you subtracted it before projecting, so your "
                         "x_hat lies around 0, not around the images; undo the centring at the end")
        if _same(x_hat, x @ raw @ raw.T, rtol=0, atol=1e-3 * scale) or (
                math.isclose(error, uncentred_error, rel_tol=0.02)
                and not math.isclose(error, reference_error, rel_tol=0.02)):
            raise _Wrong(f"you did not centre x: your error {error:.4f} is that of projecting the raw images "
                         f"({uncentred_error:.4f}), the reference's is {reference_error:.4f}. PCA's directions are those "
                         "along which the images vary around their mean image: what must x become first?")
        if error > 0.95 * mean_error:
            raise _Wrong(f"your reconstruction is about the mean image (MSE {error:.4f}, the mean image's "
                         f"{mean_error:.4f}): the k directions you kept carry almost no variance. Did you take the "
                         "k of SMALLEST variance? torch.linalg.svd sorts singular values largest first, "
                         "torch.linalg.eigh sorts eigenvalues smallest first")
        for other_k in sorted({k - 1, k + 1, 5, 30} - {0, k}):
            if _same(x_hat, models.pca_reconstruct(x, other_k), rtol=0, atol=1e-3 * scale):
                raise _Wrong(f"asked for k={k} you returned the reconstruction with {other_k} directions: "
                             "use k directions")
        if reference_error <= error < 1.25 * reference_error:
            raise _Wrong(f"{what}: close (MSE {error:.4f}, the reference's {reference_error:.4f}) but not the "
                         "reconstruction by the exact top-k directions; an approximate method such as "
                         "torch.pca_lowrank? Use torch.linalg.svd of the centred images")
        raise _Wrong(f"{what}: your reconstruction differs from the reference's (MSE to x {error:.4f}, the "
                     f"reference's {reference_error:.4f}): did you centre by the mean image, keep the k directions of "
                     "largest variance, and undo the centring at the end?")
    return "the same reconstructions as the reference for k = 3 on random data and k = 5 and 30 on real MNIST digits"


_add(Exercise(
    "01.pca_reconstruct", "01_pca_vs_autoencoder",
    "Rebuild every image from its k principal components, the k directions along which the centred images vary "
    "most, and return the reconstructions in pixels, of x's shape.",
    "pca_reconstruct(x, k) -> x_hat: x (N, 784) float, k an int; x_hat (N, 784)",
    10, models.pca_reconstruct, _check_pca_reconstruct))


# The train_on_batch check runs plain SGD: an update is exactly -lr * gradient, so a loss of the wrong scale (a sum)
# shows as an update that many times the reference's, and leftover gradients show as a second batch's update.
_STEP_LR, _STEP_BATCH = 0.5, 32


def train_on_batch(model, optimizer, x):
    """One optimizer step of a plain autoencoder on a batch x (B, 784); returns the batch's loss."""
    z, x_hat = model(x)  # forward: the code and the reconstruction
    loss = F.mse_loss(x_hat, x)  # MSE per pixel: the reconstruction against the input itself
    optimizer.zero_grad()  # forget the previous batch's gradients (backward adds to them)
    loss.backward()  # d(loss)/d(weight) for every weight
    optimizer.step()  # move every weight a small step downhill
    return loss.detach()  # the number, without the graph behind it


def _flat_parameters(model: nn.Module) -> torch.Tensor:
    """Every weight of the model in one float64 vector (a copy)."""
    return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


def _gradients(model: nn.Module) -> str:
    """'none' when no parameter has a gradient, 'zero' when every gradient is 0, else 'some'."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return "none"
    return "some" if any(bool(g.any()) for g in grads) else "zero"


def _same_update(update: torch.Tensor, reference: torch.Tensor) -> bool:
    """The same change of the weights up to float rounding (relative to the reference's largest change)."""
    return torch.allclose(update, reference, rtol=1e-3, atol=1e-3 * float(reference.abs().max()))


class _StepCounter:
    """Counts an optimizer's steps; notes a step that found no gradient although backward had computed non-zero
    ones earlier in the same call (they were cleared in between).
    A loss passed to step() becomes a hint."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module):
        self.steps = 0
        self.new_call()
        optimizer.register_step_pre_hook(self._before_step)
        for p in model.parameters():
            p.register_hook(self._on_gradient)

    def new_call(self) -> None:
        self.gradients_computed = False  # backward computed a non-zero gradient of some weight in this call
        self.cleared_before_step = False

    def _on_gradient(self, grad: torch.Tensor) -> None:
        self.gradients_computed = self.gradients_computed or bool(grad.any())

    def _before_step(self, optimizer, args, kwargs) -> None:
        if any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            raise _Wrong("optimizer.step() takes no loss (its optional argument is a closure): the step reads "
                         "the gradients already stored on the weights; what must have put them there?")
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.gradients_computed and not any(bool(g.any()) for g in grads):
            self.cleared_before_step = True
        self.steps += 1


# Errors a train_on_batch typically raises, by phrases of their message, and the hint each gets.
_TRAIN_STEP_CRASHES = [
    (("must match the size of tensor",), "your loss compares tensors of different shapes: compare the "
     "reconstruction x_hat (B, 784) with the input x, not with the code z; model(x) returns (z, x_hat), in that "
     "order"),
    (("'tuple' object has no attribute",), "model(x) returns the pair (z, x_hat), not one tensor: which of the "
     "two is the reconstruction to score against x?"),
    (("has no attribute 'step'", "has no attribute 'zero_grad'", "has no attribute 'backward'"),
     "step() and zero_grad() are the optimizer's methods, backward() is the loss tensor's: which object did you "
     "call each on?"),
    (("only for scalar outputs",), "loss.backward() needs one number: the loss is a 0-d tensor, the mean over "
     "images and pixels (F.mse_loss's default, not reduction='none')"),
    (("does not require grad",), "your loss has no graph back to the weights (torch.no_grad(), .detach(), "
     ".item() or numpy before backward?): compute it from model(x) with torch operations"),
]


def _train_on_batch_call(answer, model: nn.Module, optimizer, x: torch.Tensor, what: str):
    """answer(model, optimizer, x); its typical crashes become their own hints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # F.mse_loss's warning on mismatched shapes: the hint says more
        try:
            return _call(answer, model, optimizer, x, what=what)
        except _Wrong as wrong:
            error = wrong.__cause__
            if error is None:  # a hint already (from the step counter, or an in-place change of x)
                raise
            for phrases, hint in _TRAIN_STEP_CRASHES:
                if any(phrase in str(error) for phrase in phrases):
                    raise _Wrong(f"{what} failed: {hint}") from error
            raise


def _step_loss(loss, what: str) -> float:
    """The returned loss as a float, or a hint: it must be one number, without its graph."""
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        raise _Wrong("you returned the loss with its graph (requires_grad=True): it still carries the record of "
                     "every operation of the step, and a caller that keeps every step's loss for the loss curve "
                     "keeps every batch's graph in memory. What does the caller need: the number, or how it was "
                     "computed?")
    if loss is None or loss is Ellipsis:
        raise _Wrong(f"{what} returned {_described(loss)}; return the batch's loss, the number the step "
                     "lowered, without its graph")
    return _number(loss, what)


def _check_train_on_batch(answer) -> str:
    torch.manual_seed(0)
    model = models.small_autoencoder(latent_dim=4, hidden_dim=16).to(_device())
    _device_probe("train_on_batch(model, optimizer, x)", answer, model,
                  torch.optim.SGD(model.parameters(), lr=_STEP_LR), _real(_STEP_BATCH))
    with _on_cpu():
        return _check_train_on_batch_on_cpu(answer)


def _check_train_on_batch_on_cpu(answer) -> str:
    torch.manual_seed(0)
    model = models.small_autoencoder(latent_dim=4, hidden_dim=16)
    reference = deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=_STEP_LR)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=_STEP_LR)
    counter = _StepCounter(optimizer, model)
    previous_update = None
    for call, x in enumerate((_real(_STEP_BATCH), _real(_STEP_BATCH, start=_STEP_BATCH)), start=1):
        which = "first" if call == 1 else "second"
        what = f"train_on_batch(model, optimizer, x) ({which} call, x of shape {tuple(x.shape)})"
        before, steps = _flat_parameters(model), counter.steps
        counter.new_call()
        value = _step_loss(_train_on_batch_call(answer, model, optimizer, x, what), what)
        update, steps = _flat_parameters(model) - before, counter.steps - steps
        reference_before = _flat_parameters(reference)
        reference_loss = float(train_on_batch(reference, reference_optimizer, x))
        reference_update = _flat_parameters(reference) - reference_before
        moved = bool(update.any())
        if steps == 0 and moved:
            raise _Wrong("the weights changed but the optimizer passed in never stepped: you made an optimizer of "
                         "your own inside your function; step the one you are given (it keeps its learning rate and, "
                         "for Adam, its running averages from call to call)")
        if steps == 0:
            if _gradients(model) == "none":
                raise _Wrong("nothing happened to the model: no gradient was computed and the optimizer never "
                             "stepped. Of the four parts of a training step, which two come after the loss?")
            raise _Wrong("the gradients are there but the weights did not move: the optimizer you were given "
                         "never stepped. Which object moves the weights once the gradients exist?")
        if steps > 1:
            raise _Wrong(f"one call stepped the optimizer {steps} times: call optimizer.step() once per batch")
        if not moved:  # one step, yet no weight moved: the step found no gradient
            if counter.cleared_before_step:
                raise _Wrong("the gradients were computed (backward ran) but cleared again before the step: "
                             "optimizer.step() found none, so the weights did not move. zero_grad throws away the "
                             "gradients there are: which batch's must it throw away, and so where in the step does it belong?")
            gradients = _gradients(model)
            if gradients == "some":
                raise _Wrong("optimizer.step() ran before loss.backward(): it found no gradients, so the first call "
                             "changes nothing and every later call applies the previous batch's gradients. What "
                             "must exist before the step can use it?")
            if gradients == "none":
                raise _Wrong("the weights did not change: optimizer.step() found no gradients and none were "
                             "computed. Which part of a training step computes them, and on which tensor?")
            raise _Wrong("every gradient is 0, so the weights did not change: your loss does not depend on them "
                         "(x_hat compared with itself or a detached copy?). What must the reconstruction be "
                         "scored against?")
        if not _same_update(update, reference_update):
            if previous_update is not None and _same_update(update, reference_update + previous_update):
                raise _Wrong("the first call was right, but the second moved the weights by both batches' "
                             "gradients: backward() adds to the .grad already there, and the first batch's were "
                             "still there. What clears them, and when must it run in every call?")
            sums = [(x.numel(), "you summed the squared errors over images and pixels"),
                    (x.shape[1], "you summed over the pixels"), (x.shape[0], "you summed over the images")]
            for factor, hint in sums:
                if _same_update(update, factor * reference_update):
                    raise _Wrong(f"your update is {factor:,} times the reference's: {hint}, so the step size "
                                 "grows with the batch or image size. Which reduction gives the error per pixel, "
                                 "the same for any batch?")
            raise _Wrong(f"after the {which} call your weights moved differently from "
                         "the reference's (same model, same batch, plain SGD): is your loss the MSE per pixel of "
                         "the reconstruction against the input, and does the step use this batch's gradients "
                         "alone?")
        if not _near(value, reference_loss, rtol=1e-4):
            raise _Wrong(f"{what} returned {value:.6g}; the batch's loss (the MSE per pixel before the step) is "
                         f"{reference_loss:.6g}: return the loss you called backward on")
        previous_update = update
    return ("the same SGD updates as the reference on two consecutive batches (gradients cleared between them), "
            "and the batch's loss returned without its graph")


_add(Exercise(
    "01.train_on_batch", "01_pca_vs_autoencoder",
    "Write one training step of a plain autoencoder on a batch: reconstruct the batch, score the reconstruction "
    "against the batch itself, move every weight once with the optimizer you are given, and return the batch's loss"
    " as a number without its graph.",
    "train_on_batch(model, optimizer, x) -> loss: x (B, 784); model(x) -> (z, x_hat); loss a float or a detached "
    "0-d tensor",
    10, train_on_batch, _check_train_on_batch))
# Its first name: notebook 01's cells may still call it so (it shadowed course.training.train_step).
_alias("01.train_step", "01.train_on_batch")
