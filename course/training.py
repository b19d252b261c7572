"""One small trainer for every model, with named hooks: input corruptions and activation penalties."""
from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from course.config import resolve_device
from course.data import DigitData, mean_image as data_mean_image, to_float
from course.models import EVAL_BATCH_SIZE, batched, reparameterize

# Below this many optimizer steps a model that beats no mean image is untrained, not diverged.
MIN_STEPS_TO_JUDGE = 500
NO_BETTER_THAN_MEAN = 0.98  # a validation MSE at this share of the mean image's or more: the model learned nothing
# Validation inputs are corrupted once, with this seed, so every epoch is scored on the same noise.
VAL_NOISE_SEED = 12345


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GaussianNoise:
    """Add N(0, noise_std^2) to every pixel, then clip to [0, 1]."""

    noise_std: float

    def __post_init__(self):
        if not isinstance(self.noise_std, (int, float)) or not math.isfinite(self.noise_std) or self.noise_std < 0:
            raise ValueError(f"noise_std must be a finite number >= 0, got {self.noise_std!r}")

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return gaussian_corrupt(x, self.noise_std, generator)


def gaussian_corrupt(x: torch.Tensor, noise_std: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """x + noise_std * N(0, 1) noise on every pixel, clipped back to [0, 1], the range of a pixel."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise_std * noise).clamp(0.0, 1.0)


@dataclass(frozen=True)
class MaskingNoise:
    """Set a random `fraction` of the pixels to 0."""

    fraction: float

    def __post_init__(self):
        _check_fraction("fraction", self.fraction)

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.fraction
        return x * keep


@dataclass(frozen=True)
class SaltAndPepper:
    """Set a random `fraction` of the pixels to 0 or 1, half each."""

    fraction: float

    def __post_init__(self):
        _check_fraction("fraction", self.fraction)

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        u = torch.rand(x.shape, generator=generator, device=x.device)
        out = x.clone()
        out[u < self.fraction / 2] = 0.0
        out[(u >= self.fraction / 2) & (u < self.fraction)] = 1.0
        return out


CORRUPTIONS = {"gaussian": GaussianNoise, "masking": MaskingNoise, "salt-and-pepper": SaltAndPepper}


def make_corruption(kind: str, level: float):
    """A corruption by name: "gaussian" (level = noise_std), "masking" or "salt-and-pepper" (level = fraction)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption kind must be one of {', '.join(CORRUPTIONS)}, got {kind!r}")
    return CORRUPTIONS[kind](level)


def _check_weight(weight: float) -> None:
    if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"penalty weight must be a finite number >= 0, got {weight!r}")


@dataclass(frozen=True)
class L1Penalty:
    """weight * mean |z| over the batch and the units.

    Averaging (not summing) over the batch keeps the penalty's size independent of batch_size,
    and averaging over units keeps it independent of the layer's width.
    """

    weight: float

    def __post_init__(self):
        _check_weight(self.weight)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return l1_penalty(z, self.weight)


def l1_penalty(z: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * mean |z| over the batch and the units: the same size whatever the batch size or width."""
    return weight * z.abs().mean()


@dataclass(frozen=True)
class KLSparsity:
    """weight * sum over units of KL(target || mean activation of the unit over the batch).

    The mean activation is clamped into (0, 1), so it suits ReLU units whose rates stay below 1.
    """

    weight: float
    target: float = 0.05

    def __post_init__(self):
        _check_weight(self.weight)
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"target must be in (0, 1), got {self.target!r}")

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        rate = z.mean(0).clamp(1e-6, 1 - 1e-6)
        p = self.target
        kl = p * torch.log(p / rate) + (1 - p) * torch.log((1 - p) / (1 - rate))
        return self.weight * kl.sum()


@dataclass
class History:
    """Per-epoch training record: objective on train and validation, validation MSE, seconds.

    mean_image_mse is the validation MSE of always answering with the mean training image: a
    model whose val_mse is no better has learned nothing about its input.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    mean_image_mse: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "History":
        return cls(**record)


def mse_loss(x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel."""
    return F.mse_loss(x_hat.reshape(target.shape), target)


@dataclass(frozen=True)
class Reconstruction:
    """The objective of every plain autoencoder: MSE per pixel to the clean target, plus an optional code penalty."""

    penalty: Callable | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z, x_hat = model(x)  # forward: the code and the reconstruction
        return self.from_forward(z, x_hat, target)

    def from_forward(self, z: torch.Tensor, x_hat: torch.Tensor, target: torch.Tensor,
                     mse: torch.Tensor | None = None) -> torch.Tensor:
        """The loss from a forward pass already made (its MSE too, when known): no second pass to score it."""
        loss = mse_loss(x_hat, target) if mse is None else mse  # how far the reconstruction is from the clean image
        if self.penalty is not None:
            loss = loss + self.penalty(z)  # e.g. an L1 penalty that keeps the code sparse
        return loss


def resolve_objective(penalty: Callable | None = None, objective: Callable | None = None) -> Callable:
    """What training minimises: `objective`, else Reconstruction(penalty); both at once is an error."""
    if objective is not None and penalty is not None:
        raise ValueError("give penalty inside the objective (Reconstruction(penalty)), not both")
    return objective if objective is not None else Reconstruction(penalty)


def denoising_loss(model: nn.Module, x: torch.Tensor, corrupt: Callable) -> torch.Tensor:
    """The denoising objective: the model sees corrupt(x) and is scored against the clean x."""
    _, x_hat = model(corrupt(x))
    return mse_loss(x_hat, x)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) in nats, summed over the code's dimensions, averaged over the batch."""
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both have shape (B, latent_dim), got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    per_image = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # (B,) one KL per image
    return per_image.mean()


def bernoulli_nll(x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the pixels, averaged over the batch: nats per image."""
    x_hat = x_hat.reshape(target.shape[0], -1)
    return F.binary_cross_entropy(x_hat, target.reshape(x_hat.shape), reduction="sum") / target.shape[0]


def bernoulli_nll_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """bernoulli_nll(sigmoid(logits), target), computed from the logits: stable, and cheaper to differentiate."""
    logits = logits.reshape(target.shape[0], -1)
    return F.binary_cross_entropy_with_logits(logits, target.reshape(logits.shape), reduction="sum") / target.shape[0]


@dataclass(frozen=True)
class NegativeELBO:
    """The VAE's objective in nats per image: Bernoulli reconstruction term + beta * KL(q(z|x) || N(0, I))."""

    beta: float = 1.0

    def __post_init__(self):
        _check_weight(self.beta)

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        reconstruction, kl = self.terms(model, x, target)
        return reconstruction + self.beta * kl

    @staticmethod
    def terms(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction term, KL term), each in nats per image, from one sample z of q(z | x) per image."""
        mu, logvar = model.encode_stats(x)  # (B, latent_dim) each
        z = reparameterize(mu, logvar, generator)  # a sample of q(z | x), differentiable in mu and logvar
        if hasattr(model, "decode_logits"):  # the same cross-entropy, from the decoder's logits
            reconstruction = bernoulli_nll_logits(model.decode_logits(z), target)
        else:
            reconstruction = bernoulli_nll(model.decode(z), target)
        return reconstruction, kl_divergence(mu, logvar)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor,
               objective: Callable) -> torch.Tensor:
    """One optimizer step on one batch: forward and loss, backward, update; returns the batch's loss."""
    loss = objective(model, x, target)  # forward pass and the number to minimise
    optimizer.zero_grad(set_to_none=True)  # forget the previous batch's gradients
    loss.backward()  # d(loss)/d(weight) for every weight
    optimizer.step()  # move every weight a small step downhill
    return loss.detach()


def _evaluate(model: nn.Module, x_in: torch.Tensor, target: torch.Tensor, objective: Callable,
              batch_size: int) -> tuple[float, float]:
    """Mean objective and mean MSE over (x_in, target), in evaluation mode; uint8 or float images.

    Without corruption x_in is target, and the batches come straight from it (uint8 stays uint8 until
    each batch is converted); corrupted inputs are paired with their targets in one float tensor.
    """
    same = x_in is target
    pairs = target if same else torch.cat([x_in.reshape(x_in.shape[0], -1),
                                           to_float(target).reshape(target.shape[0], -1)], dim=1)

    def step(m, pair):
        batch_in, batch_target = (pair, pair) if same else pair.chunk(2, dim=1)
        batch_in = batch_in.reshape(-1, *x_in.shape[1:])
        z, x_hat = m(batch_in)
        mse = mse_loss(x_hat, batch_target)
        if hasattr(objective, "from_forward"):  # its loss comes from the same forward pass
            loss = objective.from_forward(z, x_hat, batch_target, mse)
        else:  # e.g. a VAE's -ELBO, which samples codes in a forward pass of its own
            loss = objective(m, batch_in, batch_target)
        n = batch_in.shape[0]
        return float(loss) * n, float(mse) * n

    sums = [result for _, result in batched(model, pairs, step, batch_size)]
    n = x_in.shape[0]
    return sum(s[0] for s in sums) / n, sum(s[1] for s in sums) / n


def _adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel where this torch has one for the device, else the default (foreach) one.

    With batches of 64 the optimizer step is a large share of each training step; the fused kernel updates
    each parameter in one pass instead of through a dozen separate foreach ops.
    """
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:  # torch < 2.4 on CPU, or a device without the fused kernel
        return torch.optim.Adam(params, lr=lr)


def fit(model: nn.Module, data: DigitData, epochs: int, lr: float = 1e-3, batch_size: int = 64,
        device: str | torch.device = "auto", seed: int = 0,
        corruption: Callable | None = None, penalty: Callable | None = None, objective: Callable | None = None,
        keep_best: bool = True, progress: bool = True, eval_batch_size: int = EVAL_BATCH_SIZE) -> History:
    """Train `model` with Adam to reconstruct clean images; return its History.

    The loss is `objective(model, x, target)`: by default Reconstruction(penalty), the MSE per pixel
    plus `penalty(z)`; NegativeELBO(beta) for a VAE. The images stay on `device` as one uint8 tensor
    and batches are drawn by index and converted to float, which avoids the per-sample
    Dataset/DataLoader overhead. `corruption(x, generator)` corrupts the inputs (the target stays
    clean) for training and, with a fixed seed, for validation. With keep_best the weights of the
    epoch with the lowest validation objective are restored at the end.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'epochs' else 1}, got {value!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    objective = resolve_objective(penalty, objective)
    device = resolve_device(device)
    model.to(device)
    pixels = data.train.pixels.to(device)
    x_val = data.val.pixels.to(device)  # uint8 images stay uint8: each evaluation batch is converted on its own
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    x_val_in = x_val if corruption is None else corruption(
        to_float(x_val), torch.Generator(device=device).manual_seed(VAL_NOISE_SEED))
    optimizer = _adam(model, lr)
    history = History(mean_image_mse=mean_image_mse(mean_image(pixels), x_val))
    best_state, best_loss = None, math.inf
    n = pixels.shape[0]

    size = getattr(model, "latent_dim", None)  # names the model when a notebook trains several of one class
    bar = _progress_bar(epochs, progress, type(model).__name__ + (f" (latent_dim {size})" if isinstance(size, int) else ""))
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle_gen).to(device)
        total = torch.zeros((), device=device)
        for first in range(0, n, batch_size):
            target = to_float(pixels.index_select(0, order[first:first + batch_size]))
            x = target if corruption is None else corruption(target, noise_gen)
            total += train_step(model, optimizer, x, target, objective) * target.shape[0]
        train_loss = float(total) / n
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training loss became {train_loss} in epoch {epoch + 1}: lower lr (now {lr}) "
                f"or the penalty weight ({objective!r}), or check the inputs for NaN")
        val_loss, val_mse = _evaluate(model, x_val_in, x_val, objective, eval_batch_size)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_mse.append(val_mse)
        history.seconds.append(time.perf_counter() - start)
        if keep_best and val_loss < best_loss:
            best_loss, history.best_epoch = val_loss, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if bar is not None:
            # the loss is the objective (MSE plus any penalty); the validation MSE alone is shown where it differs
            bar.set_postfix(train_loss=f"{train_loss:.5f}", val_loss=f"{val_loss:.5f}",
                            **({"val_mse": f"{val_mse:.5f}"} if val_mse != val_loss else {}))
            bar.update(1)
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    _warn_if_no_better_than_mean(history, lr, steps=epochs * -(-n // batch_size))
    return history


def mean_image(pixels: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The mean of uint8 or float images, in chunks: course.data.mean_image (Split.mean_image), kept here by name."""
    return data_mean_image(pixels, chunk)


def mean_image_mse(image: torch.Tensor, x: torch.Tensor, chunk: int = 8192) -> float:
    """MSE per pixel of answering every image of x (uint8 or float) with one image, in chunks."""
    total = sum(float((to_float(x[i:i + chunk]) - image).pow(2).sum(dtype=torch.float64))
                for i in range(0, x.shape[0], chunk))
    return total / x[0].numel() / x.shape[0]


def _warn_if_no_better_than_mean(history: History, lr: float, steps: int) -> None:
    """A model that ends no better than the mean image has learned nothing: say so (diverged lr, dead units).

    A run of a few dozen steps (a smoke run, a test) is merely untrained, not broken: it is not checked.
    """
    if steps < MIN_STEPS_TO_JUDGE or not history.val_mse or history.mean_image_mse is None:
        return
    final = history.val_mse[(history.best_epoch or history.epochs) - 1]
    if final >= NO_BETTER_THAN_MEAN * history.mean_image_mse:
        warnings.warn(
            f"training ended with validation MSE {final:.4f}, no better than always answering with the mean "
            f"training image ({history.mean_image_mse:.4f}): the model ignores its input (a diverged run: "
            f"lower lr, now {lr:g}; or every unit dead: lower the penalty)", RuntimeWarning, stacklevel=3)


def _progress_bar(epochs: int, progress: bool, name: str):
    """A text bar on stdout: an executed notebook keeps its last state (a widget bar would keep its first, 0%)."""
    if not progress or epochs == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=epochs, desc=f"training {name}", unit="epoch", file=sys.stdout, ncols=140, mininterval=1.0)  # 140: room for three losses
