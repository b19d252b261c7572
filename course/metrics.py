"""Held-out measurements: reconstruction MSE per pixel and the activity of hidden units."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# A unit counts as active on an image when its ReLU output is above this.
ACTIVE_THRESHOLD = 0.0


def _model_device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def _batches(model: nn.Module, x: torch.Tensor, batch_size: int, corruption: Callable | None, seed: int):
    """Yield (clean x, z, x_hat) batch by batch, in evaluation mode, on the model's device."""
    model.eval()
    device = _model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, x.shape[0], batch_size):
        clean = x[start:start + batch_size].to(device)
        x_in = clean if corruption is None else corruption(clean, generator)
        z, x_hat = model(x_in)
        yield clean, z, x_hat


def reconstruction_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None,
                       seed: int = 0, batch_size: int = 2048) -> float:
    """Mean squared error per pixel between x and the model's reconstruction.

    With `corruption`, the model sees corrupted inputs (noise drawn with `seed`) and is scored
    against the clean x: the denoising error.
    """
    total, count = 0.0, 0
    for clean, _, x_hat in _batches(model, x, batch_size, corruption, seed):
        total += float(((x_hat.reshape(clean.shape) - clean) ** 2).sum())
        count += clean.numel()
    return total / count


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error per pixel between two tensors of the same number of elements."""
    if x_hat.numel() != x.numel():
        raise ValueError(f"x_hat and x must have the same number of elements, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    return float(((x_hat.reshape(x.shape).float() - x.float()) ** 2).mean())


@torch.no_grad()
def codes(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """The codes z of every image of x, flattened to (N, code size), on the CPU."""
    return torch.cat([z.reshape(z.shape[0], -1).cpu() for _, z, _ in _batches(model, x, batch_size, None, 0)])


def activation_stats(z: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Sparsity of hidden activations z (N, units): mean activation, active units per image, dead units.

    - avg_activation: mean of z over images and units;
    - active_units_per_image: how many units exceed `threshold` on an average image;
    - active_fraction: that number divided by the number of units;
    - dead_fraction: the fraction of units that never exceed `threshold` on any image of z.
    """
    if z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"z must have shape (N, units) with N > 0, got {tuple(z.shape)}")
    active = z > threshold
    units = z.shape[1]
    per_image = active.sum(1).float().mean().item()
    return {
        "avg_activation": float(z.float().mean()),
        "active_units_per_image": per_image,
        "active_fraction": per_image / units,
        "dead_fraction": float((~active.any(0)).float().mean()),
        "units": units,
    }
