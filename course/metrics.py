"""Held-out measurements: reconstruction MSE per pixel and the activity of hidden units."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# A unit counts as active on an image when its ReLU output is above this.
ACTIVE_THRESHOLD = 0.0


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for an empty model)."""
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def _batches(model: nn.Module, x: torch.Tensor, batch_size: int, corruption: Callable | None, seed: int):
    """Yield (clean x, z, x_hat) batch by batch, in evaluation mode, on the model's device."""
    model.eval()
    device = model_device(model)
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


def _pool_window_position(indices: torch.Tensor, width: int) -> torch.Tensor:
    """Which cell of its 2x2 pooling window each max came from: 0..3 (row parity * 2 + column parity)."""
    return (indices // width % 2) * 2 + indices % width % 2


@torch.no_grad()
def pooling_index_bits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> list[dict]:
    """What the pooling indices of an unpooling model (encode_with_indices) can tell its decoder.

    Per pooling layer: how many indices an image sends (one per pooled value), their capacity
    (2 bits each: the max is one of the 4 cells of a 2x2 window) and the sum over positions of the
    entropy of each index across the images of x, in bits. An index that always points at the same
    cell carries nothing, so the entropy is the more honest figure; summed over positions it is
    still an upper bound on what the indices of one layer carry jointly.
    """
    if not hasattr(model, "encode_with_indices"):
        raise ValueError(f"{type(model).__name__} has no encode_with_indices: it does not unpool with indices")
    model.eval()
    device = model_device(model)
    counts: list[torch.Tensor] | None = None
    shapes: list[tuple] = []
    for start in range(0, x.shape[0], batch_size):
        _, pooled = model.encode_with_indices(x[start:start + batch_size].to(device))
        if counts is None:
            counts = [torch.zeros((*idx.shape[1:], 4), dtype=torch.float64) for idx, _ in pooled]
            shapes = [(tuple(idx.shape[1:]), tuple(size)) for idx, size in pooled]
        for layer, (idx, size) in enumerate(pooled):
            cell = _pool_window_position(idx, int(size[-1])).cpu()
            counts[layer] += torch.nn.functional.one_hot(cell, 4).sum(0).double()
    rows = []
    for layer, (count, (pooled_shape, size)) in enumerate(zip(counts or [], shapes)):
        p = count / count.sum(-1, keepdim=True)
        entropy = -(p * torch.log2(p.clamp_min(1e-300))).sum(-1)
        n = int(torch.tensor(pooled_shape).prod())
        rows.append({"layer": layer + 1, "before_pooling": f"{pooled_shape[0]}x{size[0]}x{size[1]}",
                     "indices": n, "capacity_bits": 2 * n, "entropy_bits": float(entropy.sum())})
    return rows


@torch.no_grad()
def unpooling_ablation(model: nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = 2048) -> dict:
    """Test MSE of an unpooling model when its decoder is given different codes and pooling indices.

    - "own code, own indices": the ordinary reconstruction;
    - "mean code, own indices": every image's code replaced by the mean code of x, so only the
      indices tell the images apart;
    - "own code, other indices": each image decoded from its code but with the indices of another
      image of x (a fixed random permutation drawn with `seed`).
    """
    if not hasattr(model, "encode_with_indices"):
        raise ValueError(f"{type(model).__name__} has no encode_with_indices: it does not unpool with indices")
    model.eval()
    device = model_device(model)
    n = x.shape[0]
    mean_code = codes(model, x, batch_size).mean(0).to(device)
    other = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    totals = {"own code, own indices": 0.0, "mean code, own indices": 0.0, "own code, other indices": 0.0}
    for start in range(0, n, batch_size):
        clean = x[start:start + batch_size].to(device)
        z, pooled = model.encode_with_indices(clean)
        _, pooled_other = model.encode_with_indices(x[other[start:start + batch_size]].to(device))
        outputs = {
            "own code, own indices": model.decode(z, pooled),
            "mean code, own indices": model.decode(mean_code.view(1, *z.shape[1:]).expand_as(z), pooled),
            "own code, other indices": model.decode(z, pooled_other),
        }
        for name, x_hat in outputs.items():
            totals[name] += float(((x_hat.reshape(clean.shape) - clean) ** 2).sum())
    return {name: total / x.numel() for name, total in totals.items()}


def per_image_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None, seed: int = 0,
                  batch_size: int = 2048) -> torch.Tensor:
    """The MSE per pixel of each image of x, as an (N,) CPU tensor (scored against the clean x)."""
    return torch.cat([((x_hat.reshape(clean.shape) - clean) ** 2).reshape(clean.shape[0], -1).mean(1).cpu()
                      for clean, _, x_hat in _batches(model, x, batch_size, corruption, seed)])


def class_template_similarity(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How much each filter looks like a whole average image: (units,) in [0, 1].

    For each filter (a row of `weights`, (units, 784) or (units, 28, 28)) the largest absolute
    correlation, over the classes of y, between the filter and the mean image of that class in x.
    A whole-digit template scores high; a small stroke detector or a noisy filter scores low.
    """
    w = weights.detach().reshape(weights.shape[0], -1).float().cpu()
    x, y = x.reshape(x.shape[0], -1).float().cpu(), y.cpu()
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"filters have {w.shape[1]} weights but images have {x.shape[1]} pixels")
    means = torch.stack([x[y == label].mean(0) for label in torch.unique(y)])

    def unit(v: torch.Tensor) -> torch.Tensor:
        v = v - v.mean(1, keepdim=True)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return (unit(w) @ unit(means).T).abs().max(1).values


def nearest_neighbour_mse(x: torch.Tensor, reference: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """For each image of x, the MSE per pixel to its closest image in `reference`: (N,) on the CPU.

    A small value means the image lies close to some real image of `reference`: near the data.
    """
    x = x.detach().reshape(x.shape[0], -1).float().cpu()
    reference = reference.detach().reshape(reference.shape[0], -1).float().cpu()
    if x.shape[1] != reference.shape[1]:
        raise ValueError(f"x has {x.shape[1]} pixels per image but reference has {reference.shape[1]}")
    ref_sq = (reference ** 2).sum(1)
    out = []
    for start in range(0, x.shape[0], batch_size):
        q = x[start:start + batch_size]
        d = (q ** 2).sum(1, keepdim=True) + ref_sq - 2 * q @ reference.T
        out.append(d.min(1).values.clamp_min(0) / x.shape[1])
    return torch.cat(out)


def filter_roughness(weights: torch.Tensor) -> torch.Tensor:
    """How grainy each 28x28 filter is: (units,), 0 for a constant filter, larger for finer texture.

    The energy of the differences between horizontally and vertically neighbouring weights,
    divided by the filter's own energy (sum of squared weights): a smooth, broad template scores
    low, a filter of fine speckle high. `weights` is (units, 784) or (units, 28, 28).
    """
    f = weights.detach().float().cpu()
    side = int(round(f[0].numel() ** 0.5))
    if side * side != f[0].numel():
        raise ValueError(f"filters must be square images, got {f[0].numel()} weights each")
    f = f.reshape(f.shape[0], side, side)
    dx = (f[:, :, 1:] - f[:, :, :-1]).pow(2).sum(dim=(1, 2))
    dy = (f[:, 1:, :] - f[:, :-1, :]).pow(2).sum(dim=(1, 2))
    return (dx + dy) / f.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)
