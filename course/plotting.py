"""Small plotting helpers: each takes `ax=` (or makes its own figure), returns the figure, never shows it."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course.data import IMAGE_SIZE, INPUT_DIM, check_images, to_float
from course.training import History


def _as_images(x, name: str = "images") -> np.ndarray:
    """Images (the course's image check: (N, 784), (N, 1, 28, 28), (N, 28, 28), or one of them) -> (N, 28, 28) floats.

    uint8 pixels become [0, 1]; values are not range-checked (a PCA reconstruction may stray outside [0, 1],
    and imshow clips). Other square sizes pass too, for filters and kernels (weights of any sign).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    shape = tuple(np.shape(x))
    if len(shape) == 1 or shape == (IMAGE_SIZE, IMAGE_SIZE):  # one image
        x, shape = x[None], (1, *shape)
    if shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):  # (N, 28, 28): filters are often shaped so
        x, shape = x.reshape(shape[0], INPUT_DIM), (shape[0], INPUT_DIM)
    if shape[1:] in ((INPUT_DIM,), (1, IMAGE_SIZE, IMAGE_SIZE)):
        images = check_images(x, name, layout="flat", values=False, min_count=0)
        return images.float().numpy().reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    x = np.asarray(to_float(torch.as_tensor(np.asarray(x))).numpy(), dtype=np.float32)
    side = int(round(math.sqrt(x[0].size))) if x.size else 0
    if not x.size or side * side != x[0].size:
        raise ValueError(f"{name} must be square images, got shape {shape}")
    return x.reshape(x.shape[0], side, side)


def _figure(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def show_image(x, ax=None, title: str | None = None, cmap: str = "gray", vmin: float | None = 0.0,
               vmax: float | None = 1.0) -> Figure:
    """One image, axes off."""
    fig, ax = _figure(ax, (2, 2))
    ax.imshow(_as_images(x)[0], cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def reconstruction_rows(rows: Mapping[str, object], n: int = 10, axes=None, scale: float = 1.0) -> Figure:
    """A grid of digits: one row per entry of `rows` ({"original": x, "PCA": x_hat, ...}), n columns."""
    if not rows:
        raise ValueError("rows must name at least one set of images")
    names = list(rows)
    images = [_as_images(rows[name])[:n] for name in names]
    n = min(n, min(len(im) for im in images))
    if axes is None:
        fig, axes = plt.subplots(len(names), n, figsize=(scale * n * 0.9, scale * len(names) * 1.0), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(len(names), -1)
        fig = axes.flat[0].figure
    for r, (name, ims) in enumerate(zip(names, images)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(ims[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")  # pixels as they are
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def _tile(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile (N, h, w) images into one (rows*(h+pad)+pad, cols*(w+pad)+pad) array; the gaps are NaN."""
    n, h, w = images.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), np.nan, dtype=np.float32)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i]
    return canvas


def symmetric_scale(weights, scale: str = "each") -> np.ndarray:
    """Weights (N, h, w) mapped to [0, 1] with 0 at 0.5 (mid-grey), by max |w| of each ("each") or of all ("shared")."""
    if scale not in ("each", "shared"):
        raise ValueError(f"scale must be 'each' or 'shared', got {scale!r}")
    w = np.asarray(weights, dtype=np.float32)
    axes = tuple(range(1, w.ndim)) if scale == "each" else None
    peak = np.abs(w).max(axis=axes, keepdims=True) if w.size else np.ones(1, dtype=np.float32)
    return 0.5 + w / (2 * np.maximum(peak, 1e-12))


def _weight_image(ax, canvas: np.ndarray, title: str | None, fontsize: int) -> None:
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=fontsize)


def filter_grid(weights, rows: int | None = None, cols: int | None = None, ax=None, title: str | None = None,
                scale: str = "each") -> Figure:
    """Encoder filters as a grid, grey = 0, light = positive, dark = negative: weights (units, 784) or (units, 28, 28).

    scale="each" scales every filter by its own largest |weight| (its pattern shows, sizes do not
    compare); "shared" uses one scale for the whole grid.
    """
    images = _as_images(weights)
    n = images.shape[0]
    if cols is None:
        cols = int(math.ceil(math.sqrt(n)))
    if rows is None:
        rows = int(math.ceil(n / cols))
    fig, ax = _figure(ax, (max(3, cols * 0.35), max(3, rows * 0.35)))
    _weight_image(ax, _tile(symmetric_scale(images, scale), rows, cols), title, 10)
    return fig


def kernel_grid(weight, ax=None, title: str | None = None, max_kernels: int = 256, scale: str = "shared") -> Figure:
    """The k x k kernels of a (transposed) convolution weight (C_in, C_out, k, k): grey = 0, one scale for all by default."""
    if isinstance(weight, torch.Tensor):
        weight = weight.detach().cpu().float().numpy()
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (C_in, C_out, k, k), got {weight.shape}")
    c_in, c_out, kh, kw = weight.shape
    kernels = weight.reshape(c_in * c_out, kh, kw)[:max_kernels]
    cols = c_out if c_in * c_out <= max_kernels else int(math.ceil(math.sqrt(len(kernels))))
    rows = int(math.ceil(len(kernels) / cols))
    fig, ax = _figure(ax, (max(2, cols * 0.4), max(2, rows * 0.4)))
    _weight_image(ax, _tile(symmetric_scale(kernels, scale), rows, cols), title or f"{c_in}x{c_out} kernels of {kh}x{kw}", 9)
    return fig


def loss_curves(histories: Mapping[str, History] | History, ax=None, log: bool = True,
                title: str | None = None, metric: str = "mse", ylabel: str | None = None) -> Figure:
    """Train (solid) and validation (dashed) curves per epoch for one or several histories, a dot at each one's
    kept (best validation) epoch.

    metric="mse": the validation curve is the MSE per pixel; metric="loss": the objective trained on
    (MSE plus a penalty, or a VAE's -ELBO), named by `ylabel`. The training curve is always the
    objective averaged over each epoch's batches.
    """
    if metric not in ("mse", "loss"):
        raise ValueError(f"metric must be 'mse' or 'loss', got {metric!r}")
    if isinstance(histories, History):
        histories = {"": histories}
    fig, ax = _figure(ax, (6, 3.5))
    kept = False
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i % 10}"
        epochs = np.arange(1, history.epochs + 1)
        label = f"{name} " if name else ""
        ax.plot(epochs, history.train_loss, color=color, label=f"{label}train")
        val = history.val_mse if metric == "mse" else history.val_loss
        ax.plot(epochs, val, color=color, linestyle="--", label=f"{label}validation")
        if history.best_epoch is not None and 1 <= history.best_epoch <= history.epochs:  # the weights kept
            ax.plot(history.best_epoch, val[history.best_epoch - 1], marker="o", color=color, markersize=6,
                    linestyle="none")
            kept = True
    if kept:  # one legend entry for the dots: in the curves' colour for one model, neutral for several
        ax.plot([], [], marker="o", color="C0" if len(histories) == 1 else "0.35", linestyle="none",
                label="kept weights (lowest validation)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel((ylabel or ("MSE per pixel" if metric == "mse" else "training objective")) + (" (log scale)" if log else ""))
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(histories) >= 3:  # six or more entries would cover the curves: put them beside the axes
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def activation_histogram(activations: Mapping[str, torch.Tensor], ax=None, bins: int = 50,
                         title: str | None = None) -> Figure:
    """Histograms of hidden activations (log counts), one per entry, to compare sparsity."""
    fig, ax = _figure(ax, (6, 3.5))
    for name, z in activations.items():
        values = z.detach().cpu().float().flatten().numpy() if isinstance(z, torch.Tensor) else np.ravel(z)
        ax.hist(values, bins=bins, histtype="step", log=True, label=name, linewidth=1.5)
    ax.set_xlabel("activation")
    ax.set_ylabel("count (log)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def latent_scatter(z, labels, ax=None, class_names: Sequence[str] | None = None, title: str | None = None,
                   max_points: int = 5000) -> Figure:
    """2-D codes (N, 2) as points coloured by label; wider codes are projected on their top 2 principal axes."""
    z = z.detach().cpu().float() if isinstance(z, torch.Tensor) else torch.as_tensor(np.asarray(z), dtype=torch.float32)
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if z.dim() != 2 or z.shape[0] != len(labels):
        raise ValueError(f"z must have shape (N, d) with N = len(labels) = {len(labels)}, got {tuple(z.shape)}")
    projected = z.shape[1] > 2
    if projected:
        centred = z - z.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        z = centred @ v[:2].T
    z, labels = z[:max_points].numpy(), labels[:max_points]
    fig, ax = _figure(ax, (5, 5))
    for label in np.unique(labels):
        keep = labels == label
        name = class_names[int(label)] if class_names is not None else str(label)
        ax.scatter(z[keep, 0], z[keep, 1], s=4, alpha=0.6, color=f"C{int(label) % 10}", label=name)
    # outside the axes, so that no point is hidden under the legend
    ax.legend(markerscale=3, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("principal axis 1 of the codes" if projected else "z1")
    ax.set_ylabel("principal axis 2 of the codes" if projected else "z2")
    if title:
        ax.set_title(title)
    return fig


def bar_chart(values: Mapping[str, float], ax=None, ylabel: str = "test MSE per pixel", title: str | None = None,
              reference: Mapping[str, float] | None = None) -> Figure:
    """Bars of one number per name, with optional reference markers (e.g. the syllabus' figures)."""
    fig, ax = _figure(ax, (5, 3.5))
    names = list(values)
    ax.bar(names, [values[n] for n in names], color=[f"C{i}" for i in range(len(names))])
    if reference:
        for i, name in enumerate(names):
            if name in reference:
                ax.plot([i - 0.4, i + 0.4], [reference[name]] * 2, "k--", linewidth=1)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig
