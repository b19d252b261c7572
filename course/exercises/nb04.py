"""Notebook 04, The denoising autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course import models, training
from course.exercises.core import Exercise, _Wrong, _add, _call, _near, _on_cpu, _scalar, _tensor
from course.exercises.fitting import _device_probe, _missing_gradients
from course.exercises.inputs import _generator, _real


def _check_gaussian_corrupt(gaussian_corrupt) -> str:
    def corrupt(x: torch.Tensor, noise_std: float, seed: int) -> torch.Tensor:
        what = f"gaussian_corrupt(x, noise_std={noise_std}, generator) with x of shape {tuple(x.shape)}"
        out = _tensor(_call(gaussian_corrupt, x, noise_std, _generator(seed), what=what), what)
        if out.shape != x.shape:
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}; the noisy images have x's shape")
        return out.detach()

    x = _real(32)
    noisy = corrupt(x, 0.5, seed=0)
    if not torch.equal(corrupt(x, 0.5, seed=0), noisy):
        raise _Wrong("two calls with equally seeded generators gave different noise: the generator is ignored, so "
                     "the noise comes from torch's global random stream; does the function that draws your noise "
                     "receive the generator you are given?")
    if torch.equal(corrupt(x, 0.5, seed=1), noisy):
        raise _Wrong("generators with different seeds gave the same noise: draw it with the generator you are given "
                     "(and do not reseed inside the function)")
    if float(noisy.min()) < 0 or float(noisy.max()) > 1:
        raise _Wrong(f"your noisy pixels run from {float(noisy.min()):.2f} to {float(noisy.max()):.2f}, outside "
                     "[0, 1], the range of a pixel: the corrupted image must still be an image; which step of the "
                     "corruption brings a pixel the noise pushed below 0 or above 1 back into range?")
    if bool((noisy[x == 0] == 0).all()):
        raise _Wrong("black pixels (0) stay exactly 0 under your noise: it is multiplicative, it grows with the "
                     "pixel's value; the noise's size must not depend on the pixel: how large is yours on a black "
                     "pixel, and how large should it be?")
    if not torch.equal(corrupt(x, 0.0, seed=0), x):
        raise _Wrong("with noise_std = 0 the images should come back unchanged")
    grey = torch.full((64, 784), 0.5)  # far from 0 and 1, so small noise is never clipped
    noise_std = 0.01
    noise = corrupt(grey, noise_std, seed=2) - 0.5  # (64, 784)
    if float(noise.std(dim=1).max()) < 1e-7:
        raise _Wrong("every pixel of an image gets the same noise: draw one number per pixel (noise of x's shape)")
    if float((noise - noise[0]).abs().max()) < 1e-7:
        raise _Wrong("every image gets the same noise pattern: draw noise of x's full shape (images x pixels)")
    std, mean = float(noise.std()), float(noise.mean())
    if abs(mean) > 0.1 * noise_std:
        raise _Wrong(f"your noise averages {mean:.4f}, not 0 (noise_std {noise_std}): torch.rand draws U(0, 1), "
                     "uniform and never negative; Gaussian noise is centred on 0: which torch function draws "
                     "standard-normal numbers?")
    for wrong_std, hint in ((math.sqrt(noise_std), "you used noise_std as the variance (std = sqrt(noise_std))"),
                            (noise_std ** 2, "you used noise_std ** 2 as the std")):
        if math.isclose(std, wrong_std, rel_tol=0.05):
            raise _Wrong(f"with noise_std = {noise_std} your noise has std {std:.4g}: {hint}; noise_std is the "
                         "standard deviation itself: a standard-normal draw has std 1, so how does scaling it by a "
                         "number change its std?")
    if not math.isclose(std, noise_std, rel_tol=0.05):
        raise _Wrong(f"with noise_std = {noise_std} your noise has std {std:.4g}; expected {noise_std}")
    return (f"Gaussian noise per pixel with std noise_std, clipped to [0, 1], reproducible with the generator "
            f"(std measured {std:.4f} for noise_std {noise_std})")


class _SpyCorruption:
    """A corruption that counts its calls and returns fixed noisy images, different on each call."""

    def __init__(self, x: torch.Tensor):
        self.noisy = [training.gaussian_corrupt(x, 0.5, _generator(seed)) for seed in (10, 11, 12)]
        self.calls = 0

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        out = self.noisy[min(self.calls, len(self.noisy) - 1)].clone()
        self.calls += 1
        return out


def _check_denoising_loss(denoising_loss) -> str:
    torch.manual_seed(0)
    _device_probe("denoising_loss(model, x, corrupt)", denoising_loss, models.ShallowAutoencoder(16), _real(16),
                  lambda images: training.gaussian_corrupt(images, 0.3))
    with _on_cpu():
        return _check_denoising_loss_on_cpu(denoising_loss)


def _check_denoising_loss_on_cpu(denoising_loss) -> str:
    torch.manual_seed(0)
    model = models.ShallowAutoencoder(16)
    for label, x in (("real MNIST digits", _real(16)), ("random images", torch.rand(8, 784, generator=_generator(4)))):
        what = f"denoising_loss(model, x, corrupt) on {label}"
        spy = _SpyCorruption(x)
        model.zero_grad(set_to_none=True)
        loss = _scalar(_call(denoising_loss, model, x, spy, what=what), what, "the mean over images and pixels")
        if spy.calls == 0:
            raise _Wrong("corrupt was never called: the model must see corrupt(x), the noisy images")
        value = float(loss.detach())
        with torch.no_grad():
            noisy, second = spy.noisy[0], spy.noisy[1]
            x_hat = model(noisy)[1]
            reference = float(training.mse_loss(x_hat, x))
            variants = [
                (float(training.mse_loss(x_hat, noisy)), "you scored against the corrupted images: "
                                                         "the target is the clean x"),
                (float(training.mse_loss(x_hat, second)), "you scored against a second corruption of x: "
                                                          "the target is the clean x (call corrupt once)"),
                (float(training.mse_loss(model(second)[1], x)), "the model saw the second noisy copy corrupt "
                                                                 "returned, not the first: each call draws new "
                                                                 "noise, so how many calls does one loss need?"),
                (float(training.mse_loss(model(x)[1], x)), "the model saw the clean x: feed it corrupt(x) "
                                                            "(the clean x is only the target)"),
                (float(training.mse_loss(model(x)[1], noisy)), "you swapped the roles: the model sees corrupt(x) "
                                                               "and is scored against the clean x"),
                (reference * x.numel(), "you summed the squared errors: take the mean (MSE per pixel)"),
                (reference * 784, "you summed over the pixels: take the mean over pixels too (MSE per pixel)"),
                (reference * x.shape[0], "you summed over the images: take the mean over images too"),
            ]
        if not _near(value, reference, rtol=1e-4):
            for candidate, hint in variants:
                if _near(value, candidate, rtol=1e-4):
                    raise _Wrong(hint)
            calls = f"; corrupt was called {spy.calls} times, and each call draws new noise" if spy.calls > 1 else ""
            raise _Wrong(f"on {label} your loss is {value:.6g}, the reference's {reference:.6g}{calls}: what "
                         "does the model see, what is it scored against, and how is the error averaged?")
        missing = _missing_gradients(model, loss)
        if missing:
            raise _Wrong(f"no gradient reaches the model's {', '.join(missing)}: return the loss tensor itself "
                         "(no .item(), .detach() or torch.no_grad())")
    return "MSE per pixel between model(corrupt(x)) and the clean x, with gradients to the model"


def denoising_loss(model, x, corrupt):
    """The denoising objective: the model sees corrupt(x) and is scored against the clean x."""
    _, x_hat = model(corrupt(x))  # the model only ever sees the noisy images
    return F.mse_loss(x_hat.reshape(x.shape), x)  # MSE per pixel against the CLEAN images

def gaussian_corrupt(x, noise_std, generator=None):
    """x + noise_std * N(0, 1) noise on every pixel, clipped back to [0, 1], the range of a pixel."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise_std * noise).clamp(0.0, 1.0)


_add(Exercise(
    "04.gaussian_corrupt", "04_denoising_autoencoder",
    "Corrupt images with Gaussian noise of standard deviation noise_std on every pixel, drawn with the given "
    "generator, then clip the pixels back to their range, 0 to 1.",
    "gaussian_corrupt(x, noise_std, generator) -> x_noisy: x (B, 784) in [0, 1]; x_noisy like x",
    5, training.gaussian_corrupt, _check_gaussian_corrupt, shown=gaussian_corrupt))

_add(Exercise(
    "04.denoising_loss", "04_denoising_autoencoder",
    "Write the denoising objective: the model sees a corrupted copy of the batch, made by corrupt, and its "
    "reconstruction is scored by the mean squared error per pixel against the clean images.",
    "denoising_loss(model, x, corrupt) -> a 0-d tensor: model(x) -> (z, x_hat); corrupt(x) -> noisy x",
    5, training.denoising_loss, _check_denoising_loss, shown=denoising_loss))
