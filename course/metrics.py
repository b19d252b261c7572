"""Held-out measurements: reconstruction MSE per pixel and the activity of hidden units."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from course.models import EVAL_BATCH_SIZE, batched, codes, model_device

# A unit counts as active on an image when its ReLU output is above this.
ACTIVE_THRESHOLD = 0.0


def reconstruction_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None,
                       seed: int = 0, batch_size: int = 2048) -> float:
    """Mean squared error per pixel between x and the model's reconstruction.

    With `corruption`, the model sees corrupted inputs (noise drawn with `seed`) and is scored
    against the clean x: the denoising error.
    """
    errors = per_image_mse(model, x, corruption, seed, batch_size)
    return float(errors.double().mean())


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error per pixel between two tensors of the same number of elements."""
    if x_hat.numel() != x.numel():
        raise ValueError(f"x_hat and x must have the same number of elements, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    return float(((x_hat.reshape(x.shape).float() - x.float()) ** 2).mean())


def activation_stats(z: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Sparsity of hidden activations z (N, units): mean activation, active units per image, dead units.

    - avg_activation: mean of z over images and units;
    - active_units_per_image: how many units exceed `threshold` on an average image;
    - active_fraction: that number divided by the number of units;
    - dead_fraction: the fraction of units that never exceed `threshold` on any image of z.
    """
    if z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"z must have shape (N, units) with N > 0, got {tuple(z.shape)}")
    units = z.shape[1]
    per_image = (z > threshold).sum(1).float().mean().item()
    return {
        "avg_activation": float(z.float().mean()),
        "active_units_per_image": per_image,
        "active_fraction": per_image / units,
        "dead_fraction": dead_fraction(z, threshold),
        "units": units,
    }


def dead_fraction(z: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> float:
    """The fraction of units (columns of z, (N, units)) that are not above `threshold` for any image."""
    active_somewhere = (z > threshold).any(dim=0)  # (units,): True if the unit fires at least once
    return float((~active_somewhere).float().mean())


def living_units(z: torch.Tensor, top: int | None = None, threshold: float = ACTIVE_THRESHOLD) -> torch.Tensor:
    """Indices of the units (columns of z, (N, units)) active on at least one image, most often active first.

    With `top`, at most that many: the filters worth drawing, without the speckle of dead units.
    """
    active = z > threshold  # (N, units)
    rate = active.float().mean(dim=0)  # (units,) how often each unit fires
    order = torch.argsort(rate, descending=True, stable=True)
    alive = order[rate[order] > 0]
    return alive if top is None else alive[:top]


def _pool_window_position(indices: torch.Tensor, width: int) -> torch.Tensor:
    """Which cell of its 2x2 pooling window each max came from: 0..3 (row parity * 2 + column parity)."""
    return (indices // width % 2) * 2 + indices % width % 2


def _check_unpooling(model: nn.Module) -> None:
    if not hasattr(model, "encode_with_indices"):
        raise ValueError(f"{type(model).__name__} has no encode_with_indices: it does not unpool with indices")


def pooling_index_bits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> list[dict]:
    """What the pooling indices of an unpooling model (encode_with_indices) can tell its decoder.

    Per pooling layer: how many indices an image sends (one per pooled value), their capacity
    (2 bits each: the max is one of the 4 cells of a 2x2 window) and the sum over positions of the
    entropy of each index across the images of x, in bits. An index that always points at the same
    cell carries nothing, so the entropy is the more honest figure; summed over positions it is
    still an upper bound on what the indices of one layer carry jointly.
    """
    _check_unpooling(model)
    counts: list[torch.Tensor] | None = None
    shapes: list[tuple] = []
    for _, (_, pooled) in batched(model, x, lambda m, batch: m.encode_with_indices(batch), batch_size):
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


def unpooling_ablation(model: nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """Test MSE of an unpooling model when its decoder is given different codes and pooling indices.

    - "own code, own indices": the ordinary reconstruction;
    - "mean code, own indices": every image's code replaced by the mean code of x, so only the
      indices tell the images apart;
    - "own code, other indices": each image decoded from its code but with the indices of another
      image of x (a fixed random permutation drawn with `seed`).
    """
    _check_unpooling(model)
    n = x.shape[0]
    mean_code = codes(model, x, batch_size).mean(0).to(model_device(model))
    other = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # Each row holds an image and, beside it, the image whose pooling indices it borrows.
    pairs = torch.cat([x, x[other]], dim=1)
    totals = {"own code, own indices": 0.0, "mean code, own indices": 0.0, "own code, other indices": 0.0}

    def step(m, pair):
        clean, donor = pair.chunk(2, dim=1)
        z, pooled = m.encode_with_indices(clean)
        _, pooled_other = m.encode_with_indices(donor)
        outputs = {
            "own code, own indices": m.decode(z, pooled),
            "mean code, own indices": m.decode(mean_code.view(1, *z.shape[1:]).expand_as(z), pooled),
            "own code, other indices": m.decode(z, pooled_other),
        }
        return {name: float(((x_hat.reshape(clean.shape) - clean) ** 2).sum()) for name, x_hat in outputs.items()}

    for _, sums in batched(model, pairs, step, batch_size):
        for name, value in sums.items():
            totals[name] += value
    return {name: total / (n * x[0].numel()) for name, total in totals.items()}


def per_image_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None, seed: int = 0,
                  batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """The MSE per pixel of each image of x, as an (N,) CPU tensor (scored against the clean x).

    With `corruption`, the model sees corrupted inputs (noise drawn with `seed`) and is scored
    against the clean x: the denoising error.
    """
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)

    def step(m, clean):
        x_in = clean if corruption is None else corruption(clean, generator)
        x_hat = m(x_in)[1].reshape(clean.shape)
        return ((x_hat - clean) ** 2).reshape(clean.shape[0], -1).mean(1).cpu()

    return torch.cat([errors for _, errors in batched(model, x, step, batch_size)])


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
