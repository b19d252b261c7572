"""One small trainer for every model, with named hooks: input corruptions and activation penalties."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from course.config import resolve_device
from course.data import DigitData

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
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.noise_std * noise).clamp_(0.0, 1.0)


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
        return self.weight * z.abs().mean()


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
    """Per-epoch training record: objective on train and validation, validation MSE, seconds."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None

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


def _reconstruction_loss(x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x_hat.reshape(target.shape), target)


@torch.no_grad()
def _evaluate(model: nn.Module, x_in: torch.Tensor, target: torch.Tensor, penalty, batch_size: int) -> tuple[float, float]:
    """Mean objective and mean MSE over (x_in, target), in evaluation mode."""
    model.eval()
    mse_sum = penalty_sum = 0.0
    for start in range(0, x_in.shape[0], batch_size):
        z, x_hat = model(x_in[start:start + batch_size])
        b = z.shape[0]
        mse_sum += float(_reconstruction_loss(x_hat, target[start:start + batch_size])) * b
        if penalty is not None:
            penalty_sum += float(penalty(z)) * b
    n = x_in.shape[0]
    return (mse_sum + penalty_sum) / n, mse_sum / n


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
        corruption: Callable | None = None, penalty: Callable | None = None,
        keep_best: bool = True, progress: bool = True, eval_batch_size: int = 2048) -> History:
    """Train `model` with Adam on MSE (+ penalty) to reconstruct clean images; return its History.

    The images stay on `device` as one tensor and batches are drawn by index, which avoids the
    per-sample Dataset/DataLoader overhead. `corruption(x, generator)` corrupts the inputs (the
    target stays clean) for training and, with a fixed seed, for validation. `penalty(z)` is added
    to the loss. With keep_best the weights of the epoch with the lowest validation objective are
    restored at the end.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'epochs' else 1}, got {value!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    device = resolve_device(device)
    model.to(device)
    x_train = data.train.x.to(device)
    x_val = data.val.x.to(device)
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    x_val_in = x_val if corruption is None else corruption(
        x_val, torch.Generator(device=device).manual_seed(VAL_NOISE_SEED))
    optimizer = _adam(model, lr)
    history = History()
    best_state, best_loss = None, math.inf
    n = x_train.shape[0]

    bar = _progress_bar(epochs, progress, type(model).__name__)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle_gen).to(device)
        total = torch.zeros((), device=device)
        for first in range(0, n, batch_size):
            target = x_train.index_select(0, order[first:first + batch_size])
            x = target if corruption is None else corruption(target, noise_gen)
            z, x_hat = model(x)
            loss = _reconstruction_loss(x_hat, target)
            if penalty is not None:
                loss = loss + penalty(z)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * target.shape[0]
        train_loss = float(total) / n
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training loss became {train_loss} in epoch {epoch + 1}: lower lr (now {lr}) "
                f"or the penalty weight ({penalty!r}), or check the inputs for NaN")
        val_loss, val_mse = _evaluate(model, x_val_in, x_val, penalty, eval_batch_size)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_mse.append(val_mse)
        history.seconds.append(time.perf_counter() - start)
        if keep_best and val_loss < best_loss:
            best_loss, history.best_epoch = val_loss, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if bar is not None:
            bar.set_postfix(train=f"{train_loss:.5f}", val=f"{val_loss:.5f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _progress_bar(epochs: int, progress: bool, name: str):
    if not progress or epochs == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=f"training {name}", unit="epoch", leave=False)
