"""Notebook 02's measures of a one-hidden-layer autoencoder: what it makes of noise, its decoder's parts, its filters."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course.data import IMAGE_SIZE, to_float
from course.metrics import filter_roughness, mse
from course.models import batched, model_device
from course.notebook import show_table
from course.plotting import symmetric_scale
from course.references import ORIGINAL_VALIDATION, SHALLOW_VALIDATION_MSE

# Column headings of the noise table, by the metrics record's key.
NOISE_COLUMNS = {"correlation_with_noise_input": "correlation: noise output with its input",
                 "correlation_test_reconstruction": "correlation: test reconstruction with its image",
                 "mse_to_mean_image": "MSE: noise output to the mean training image",
                 "mse_to_noise_input": "MSE: noise output to its own input"}


def show_mse_table(test_mse: dict, data):
    """This run's test MSE by width ({hidden_dim: MSE}) beside the original assignment's validation figures."""
    this_run = f"this run: test MSE ({len(data.test):,} test {data.nouns})"
    return show_table([{"hidden units": hidden_dim, this_run: value,
                        ORIGINAL_VALIDATION: SHALLOW_VALIDATION_MSE.get(hidden_dim, float("nan"))}
                       for hidden_dim, value in test_mse.items()], index="hidden units")


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each image of `a` with the same image of `b`, over pixels: (N, 784) twice -> (N,)."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must be (N, 784) images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def noise_response(model, noise: torch.Tensor, test_pixels: torch.Tensor, mean_image: torch.Tensor) -> dict:
    """How much of uniform `noise` (N, 784) the model lets through, beside a real test image's reconstruction.

    Keys as in the metrics record: the mean correlation of each output with its own noise input and
    of each test reconstruction with its image, and the outputs' MSE to the mean image and to their input.
    """
    out = model.reconstruct(noise.to(model_device(model))).cpu()
    noise = noise.cpu()
    test = torch.cat([correlation(x_hat, x).cpu() for x, (_, x_hat) in batched(model, test_pixels)])
    return {"correlation_with_noise_input": float(correlation(out, noise).mean()),
            "correlation_test_reconstruction": float(test.mean()),
            "mse_to_mean_image": mse(out, mean_image.cpu().expand_as(out)),
            "mse_to_noise_input": mse(out, noise)}


def show_noise_table(rows: dict):
    """The noise measures by width ({hidden_dim: noise_response(...)}) as a table with readable headings."""
    return show_table([{"hidden units": hidden_dim, **{NOISE_COLUMNS[k]: v for k, v in row.items()}}
                       for hidden_dim, row in rows.items()], index="hidden units",
                      formats={**{NOISE_COLUMNS[k]: "{:.3f}" for k in list(NOISE_COLUMNS)[:2]},
                               **{NOISE_COLUMNS[k]: "{:.4f}" for k in list(NOISE_COLUMNS)[2:]}})


def decoder_parts(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What a shallow decoder adds up for each input: parts z_j d_j (N, hidden_dim, 784) and the bias (784,)."""
    x = to_float(x).to(model_device(model))
    with torch.no_grad():
        z = model.encode(x.reshape(-1, 784))  # (N, hidden_dim)
        layer = model.decoder[0]
        return z[:, :, None] * layer.weight.T[None], layer.bias


def parts_needed(model, x: torch.Tensor, share: float = 0.9, chunk: int = 32) -> torch.Tensor:
    """For each input (N, 784): how many of its largest parts bring the output `share` of the way from the bias alone.

    "Of the way" in MSE to the model's full output: sigmoid(bias) is the start (k = 0), the full sum the end.
    Parts are taken in the order of their size (the norm of z_j d_j), the largest first.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    counts = []
    for start in range(0, len(x), chunk):
        parts, bias = decoder_parts(model, x[start:start + chunk])  # (n, h, 784), (784,)
        order = parts.norm(dim=2).argsort(dim=1, descending=True)
        ordered = torch.gather(parts, 1, order[:, :, None].expand_as(parts))
        partial = torch.sigmoid(bias + torch.cat([torch.zeros_like(ordered[:, :1]), ordered.cumsum(dim=1)], dim=1))
        gap = ((partial - partial[:, -1:]) ** 2).mean(dim=2)  # (n, h + 1): MSE to the full output after k parts
        close = gap <= (1 - share) * gap[:, :1] + 1e-12
        counts.append(close.float().argmax(dim=1).cpu())  # the first k that is close enough
    return torch.cat(counts)


def parts_figure(x: torch.Tensor, parts: torch.Tensor, rebuilt: dict, title: str | None = None) -> Figure:
    """One input, its largest parts (signed, grey = 0) and the sums of the first k parts ({k: (784,) image})."""
    n_parts = min(8, parts.shape[0])
    cols = max(n_parts, len(rebuilt)) + 1
    fig, axes = plt.subplots(2, cols, figsize=(1.25 * cols, 3.1), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    axes[0, 0].imshow(to_float(x).detach().cpu().view(IMAGE_SIZE, IMAGE_SIZE).numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("input", fontsize=8)
    shown = symmetric_scale(parts[:n_parts].detach().cpu().view(-1, IMAGE_SIZE, IMAGE_SIZE), "each")
    for j in range(n_parts):
        axes[0, j + 1].imshow(shown[j], cmap="gray", vmin=0, vmax=1)
        axes[0, j + 1].set_title(f"part {j + 1}", fontsize=8)
    for col, (k, image) in enumerate(rebuilt.items(), start=1):
        axes[1, col].imshow(image.detach().cpu().view(IMAGE_SIZE, IMAGE_SIZE).numpy(), cmap="gray", vmin=0, vmax=1)
        label = "bias alone" if k == 0 else f"all {k}: the output" if k == parts.shape[0] else f"{k} part" + "s" * (k > 1)
        axes[1, col].set_title(label, fontsize=8)
    axes[1, 0].text(0.95, 0.5, "sigmoid(bias\n+ the first\nk parts)", ha="right", va="center", fontsize=8,
                    transform=axes[1, 0].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def nearest_similarity(filters: torch.Tensor) -> torch.Tensor:
    """For each filter (n, ...), the cosine similarity to the most similar other filter of the set: (n,)."""
    if filters.shape[0] < 2:
        raise ValueError(f"filters must hold at least 2 filters to compare, got {filters.shape[0]}")
    unit = torch.nn.functional.normalize(filters.flatten(1).double(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-1.0)
    return similarity.max(dim=1).values.float()


def filter_measures(filters: torch.Tensor, mask: torch.Tensor, seed: int = 0) -> dict:
    """Roughness and nearest-neighbour similarity of filters (n, 28, 28), and that similarity for unrelated filters.

    The baseline: as many random Gaussian filters over the same `mask` pixels (28, 28), which share
    nothing: a similarity no higher than theirs means no near-copies.
    """
    generator = torch.Generator().manual_seed(seed)
    random = torch.randn(filters.shape, generator=generator) * mask.to(filters.dtype)
    return {"roughness": float(filter_roughness(filters).mean()),
            "nearest_neighbour_similarity": float(nearest_similarity(filters).mean()),
            "random_filters_similarity": float(nearest_similarity(random).mean())}


def show_filter_table(rows: dict):
    """The filter measures by width ({hidden_dim: filter_measures(...)}) as a table with readable headings."""
    names = {"roughness": "roughness", "nearest_neighbour_similarity": "nearest-neighbour similarity",
             "random_filters_similarity": "the same for random filters"}
    return show_table([{"hidden units": hidden_dim, **{names[k]: v for k, v in row.items()}}
                       for hidden_dim, row in rows.items()], index="hidden units", formats="{:.3f}")


def relative_cuts(values: Sequence[float]) -> list[float]:
    """The share by which each value is below the one before: [1 - v[i+1] / v[i], ...]."""
    if len(values) < 2 or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"values must be at least 2 positive numbers, got {list(values)!r}")
    return [1 - b / a for a, b in zip(values, values[1:])]
