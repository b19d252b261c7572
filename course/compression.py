"""Notebook 01's measurements: PCA's test error at every code size from one fit, and small-sample averages."""
from __future__ import annotations

from typing import Mapping

import torch

from course.data import check_images
from course.models import EVAL_BATCH_SIZE, PCA


def pca_error_curve(pca: PCA, pixels: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """MSE per pixel of `pca` keeping only its first k directions, for k = 1 .. latent_dim: (latent_dim,) float64.

    The directions are orthonormal, so an image's error with k of them is its centred squared norm
    minus the squares of its first k code numbers: one pass over the images gives every k.
    """
    if not isinstance(pca, PCA):
        raise ValueError(f"pca must be a fitted course.models.PCA, got {type(pca).__name__}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(pixels, torch.Tensor) or len(pixels) == 0:
        raise ValueError("pixels must be a tensor of images (N, 784) or (N, 1, 28, 28), N >= 1")
    total = torch.zeros(pca.latent_dim, dtype=torch.float64)
    for start in range(0, len(pixels), batch_size):
        x = check_images(pixels[start:start + batch_size].cpu(), "pixels")  # (B, 784) floats, a batch at a time
        centred = (x - pca.mean).double()
        z = centred @ pca.components.double()  # (B, latent_dim)
        left_out = centred.pow(2).sum(1, keepdim=True) - z.pow(2).cumsum(1)  # (B, latent_dim)
        total += left_out.clamp_min(0).sum(0)
    return total / (len(pixels) * pca.input_dim)


def means_of_draws(errors: Mapping[str, torch.Tensor], size: int = 10, n_draws: int = 1000,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The mean error over `size` items drawn at random, `n_draws` times, the same draws for every name: (n_draws,) each."""
    if not isinstance(errors, Mapping) or not errors:
        raise ValueError("errors must map names to per-item errors (N,), at least one")
    lengths = {name: torch.as_tensor(e).numel() for name, e in errors.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"errors must hold one value per item, the same N for every name, got {lengths}")
    n = next(iter(lengths.values()))
    for name, value in (("size", size), ("n_draws", n_draws)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if size > n:
        raise ValueError(f"size must be at most the number of items ({n}), got {size}")
    draws = torch.stack([torch.randperm(n, generator=generator)[:size] for _ in range(n_draws)])  # (n_draws, size)
    return {name: torch.as_tensor(e).detach().cpu().double().flatten()[draws].mean(1) for name, e in errors.items()}


def share_ranked_wrong(draws_a: torch.Tensor, draws_b: torch.Tensor, mean_a: float, mean_b: float) -> float:
    """The share of draws (means of a few items each, (n_draws,) per method) that order methods a and b the other way
    round from their means over all items."""
    draws_a, draws_b = torch.as_tensor(draws_a).double(), torch.as_tensor(draws_b).double()
    if draws_a.shape != draws_b.shape or draws_a.dim() != 1 or not len(draws_a):
        raise ValueError(f"draws_a and draws_b must be two (n_draws,) tensors of one length, got {tuple(draws_a.shape)} "
                         f"and {tuple(draws_b.shape)}")
    return float(((draws_a > draws_b) != (mean_a > mean_b)).double().mean())


def pca_equivalent(pca_curve: torch.Tensor, error: float) -> int | None:
    """The fewest PCA directions whose error (pca_curve[k - 1], from pca_error_curve) is at most `error`; None if none."""
    curve = torch.as_tensor(pca_curve).double().flatten()
    if curve.numel() == 0:
        raise ValueError("pca_curve must hold PCA's error for k = 1, 2, ...: got an empty tensor")
    within = (curve <= float(error)).nonzero()
    return int(within[0]) + 1 if len(within) else None


def code_size_curves(pca_curve: torch.Tensor, autoencoder: Mapping[int, float], mean_image_mse: float | None = None,
                     ax=None, title: str | None = None):
    """Test MSE against code size, log-log: PCA's curve, the autoencoders' points, each joined to the PCA size it matches."""
    import matplotlib.pyplot as plt

    curve = torch.as_tensor(pca_curve).double().flatten().numpy()
    if not autoencoder:
        raise ValueError("autoencoder must map code sizes to test MSEs, at least one")
    fig, ax = plt.subplots(figsize=(7, 4)) if ax is None else (ax.figure, ax)
    ax.plot(range(1, len(curve) + 1), curve, color="k", label="PCA with its first k directions")
    sizes = sorted(autoencoder)
    ax.plot(sizes, [autoencoder[k] for k in sizes], "o-", color="C1", label="deep autoencoder, k-number code")
    marked = False  # one legend entry for all the markers
    for k in sizes:
        match = pca_equivalent(curve, autoencoder[k])
        ax.plot([k, match or len(curve)], [autoencoder[k]] * 2, ":", color="C1", lw=1)
        if match:
            ax.plot(match, curve[match - 1], "x", color="C1", label="_" if marked else "the PCA size that does as well")
            marked = True
    if mean_image_mse is not None:
        ax.axhline(mean_image_mse, color="grey", linestyle="--", lw=1, label="the mean image (no code)")
    ax.set(xscale="log", yscale="log", xlabel="code size k (numbers per image)", ylabel="test MSE per pixel")
    ticks = [k for k in (1, 2, 5, 10, 20, 30, 50, 100) if k <= len(curve)]  # readable sizes, not decades only
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_title(title or "test MSE against code size", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def per_image_scatter(errors_x: torch.Tensor, errors_y: torch.Tensor, name_x: str, name_y: str, ax=None,
                      title: str | None = None):
    """One dot per image, its error under two methods, log-log on equal axes with the diagonal of a tie."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    x, y = (torch.as_tensor(e).detach().cpu().double().flatten() for e in (errors_x, errors_y))
    if x.shape != y.shape or x.numel() == 0:
        raise ValueError(f"errors_x and errors_y must hold one error per image, the same N > 0, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    both = torch.cat([x, y])
    low, high = float(both[both > 0].min()) / 1.3, float(both.max()) * 1.3  # log axes: zero errors are left out
    fig, ax = plt.subplots(figsize=(4.8, 4.6)) if ax is None else (ax.figure, ax)
    ax.scatter(x.numpy(), y.numpy(), s=3, alpha=0.3)
    ax.plot([low, high], [low, high], "k--", lw=1, label="equally good")
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel=f"{name_x}: MSE per pixel",
           ylabel=f"{name_y}: MSE per pixel")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_title(title or f"one dot per image: below the line, {name_y} wins", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return fig
