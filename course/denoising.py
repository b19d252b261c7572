"""Notebook 04's measurements and figures: the corruption's effect, the denoising objective from a loss
function, the error curves, what a probe classifier reads in the outputs, and the filters compared.

The notebook calls these one line at a time; the chunked loops and the figure layout live here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from course.data import IMAGE_SIZE, to_float
from course.metrics import class_means, class_template_similarity, filter_roughness, gaussian_blur, living_units, reconstruction_mse
from course.models import batched, model_device
from course.notebook import show_table
from course.plotting import filter_grid
from course.training import make_corruption

CHUNK = 2000  # test images corrupted at once: a float copy of 2,000 images is 6 MB
BLACK_AFTER = "mean value of the originally black pixels after the noise, ÷ σ"


def corruption_stats(corrupt: Callable, pixels: torch.Tensor, noise_levels: Sequence[float], seed: int = 0,
                     chunk: int = CHUNK) -> dict[float, dict]:
    """What corrupt(x, noise_std, generator) does to the images `pixels` at each level, a chunk at a time.

    For each level: the share of pixels that are exactly black, the share of those the noise makes
    brighter, their mean brightness after the noise (also divided by the level), and the MSE of the
    noisy images against the clean ones (the error of a "model" that returns its input).
    """
    levels = [float(s) for s in noise_levels]
    if not levels or any(s <= 0 for s in levels):
        raise ValueError(f"noise_levels must be numbers > 0, got {list(noise_levels)!r}")
    generator = torch.Generator().manual_seed(seed)
    totals = {s: torch.zeros(4, dtype=torch.float64) for s in levels}  # black, brighter, black sum, squared error
    for first in range(0, pixels.shape[0], chunk):
        x = to_float(pixels[first:first + chunk]).reshape(-1, IMAGE_SIZE * IMAGE_SIZE)
        black = x == 0
        for s in levels:
            x_noisy = corrupt(x, s, generator)
            totals[s] += torch.tensor([float(black.sum()), float((x_noisy[black] > 0).sum()),
                                       float(x_noisy[black].sum()), float((x_noisy - x).pow(2).sum())],
                                      dtype=torch.float64)
    n_pixels = pixels.shape[0] * IMAGE_SIZE * IMAGE_SIZE
    out = {}
    for s, (black, brighter, black_sum, squared) in totals.items():
        black = max(float(black), 1.0)
        out[s] = {"black share": float(totals[s][0]) / n_pixels, "black made brighter": float(brighter) / black,
                  "black mean": float(black_sum) / black, "black mean / σ": float(black_sum) / black / s,
                  "noisy input MSE": float(squared) / n_pixels}
    return out


def corruption_rows(stats: Mapping[float, Mapping[str, float]]) -> list[dict]:
    """corruption_stats as table rows: each level's mean black pixel after the noise (in σ) and the noisy input's MSE."""
    return [{"σ": f"{s:g}", BLACK_AFTER: r["black mean / σ"],
             "MSE of the noisy image": r["noisy input MSE"]} for s, r in stats.items()]


@dataclass(frozen=True)
class DenoisingObjective:
    """The trainer's objective from a loss(model, x, corrupt) function: corrupt returns the batch fit corrupted.

    fit draws the noisy batch x of the clean target (its corruption hook, seeded); the loss function
    runs the model on it and scores against the target, exactly as it would corrupt a batch itself.
    """

    loss: Callable

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(model, target, lambda _clean: x)


class BlurBaseline(nn.Module):
    """A denoiser that learns nothing: it blurs its input (a Gaussian of `sigma` pixels). forward -> (z, x_hat), z = x."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not sigma > 0:
            raise ValueError(f"sigma must be a number > 0 (pixels), got {sigma!r}")
        self.sigma = float(sigma)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)  # (B, 784): no code, the image itself

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(z, self.sigma)  # (B, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


def error_curves(table: Mapping[str, Mapping[float, float]], noisy_input_mse: Mapping[float, float],
                 train_noise_std: float, highlight: str | None = None) -> Figure:
    """Test MSE against the noise level, one line per model ({name: {σ: mse}}), and the noisy input's own error."""
    fig, ax = plt.subplots(figsize=(7.8, 3.6))
    for i, (name, row) in enumerate(table.items()):
        ax.plot(list(row), list(row.values()), "o-", color=f"C{i}", label=name,
                linewidth=2.5 if name == highlight else 1.2)
    ax.plot(list(noisy_input_mse), list(noisy_input_mse.values()), "k:", label="noisy input itself")
    ax.axvline(train_noise_std, color="grey", linewidth=0.8, linestyle="--",
               label=f"σ it was trained at ({train_noise_std:g})")
    ax.set(xlabel="noise level σ of the test inputs", ylabel="test MSE against the clean image (log scale)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside: inside it hid a curve
    fig.tight_layout()
    return fig


def show_error_table(table: Mapping[str, Mapping[float, float]], noisy_input_mse: Mapping[float, float], caption: str,
                     levels: Sequence[float] | None = None):
    """The error table {name: {σ: mse}} as one row per model, and a last row for the noisy input itself (0 at σ = 0);
    only the columns σ in `levels`, if given (all of them otherwise)."""
    measured = list(next(iter(table.values())))
    levels = measured if levels is None else list(levels)
    missing = [s for s in levels if s not in measured]
    if missing or not levels:
        raise ValueError(f"levels must be a non-empty list of the measured noise levels {measured}, got {levels!r}")
    rows = [{"model": name, **{f"σ = {s:g}": row[s] for s in levels}} for name, row in table.items()]
    rows.append({"model": "noisy input itself", **{f"σ = {s:g}": noisy_input_mse.get(s, 0.0) for s in levels}})
    return show_table(rows, index="model", caption=caption)


def first_of_each_class(y: torch.Tensor, n: int = 8) -> torch.Tensor:
    """The index of the first image of each of the first n classes present in y, in class order: (n,)."""
    classes = torch.unique(y.cpu())
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(classes):
        raise ValueError(f"n must be an int from 1 to the {len(classes)} classes present, got {n!r}")
    return torch.stack([torch.nonzero(y.cpu() == c)[0, 0] for c in classes[:n]])


def clean_brightness(model: nn.Module, pixels: torch.Tensor) -> tuple[float, float]:
    """The mean pixel of the clean images `pixels` and of the model's outputs for them: (inputs, outputs)."""
    total_in = total_out = 0.0

    def step(m, clean):
        return float(clean.double().sum()), float(m(clean)[1].double().sum())

    with torch.no_grad():
        for _, (s_in, s_out) in batched(model, pixels, step):
            total_in, total_out = total_in + s_in, total_out + s_out
    count = pixels.shape[0] * pixels[0].numel()
    return total_in / count, total_out / count


def probe_reads(probe: nn.Module, pixels: torch.Tensor, model: nn.Module | None = None,
                corruption: Callable | None = None, seed: int = 0) -> torch.Tensor:
    """The class the probe names for each image: of `pixels` corrupted (if given), then passed through `model` (if given).

    The noise is drawn as course.metrics.per_image_mse draws it (same seed, same batches), so the images
    the probe reads are those the error table scored. Returns (N,) class indices on the CPU.
    """
    runner = model if model is not None else probe
    generator = torch.Generator(device=model_device(runner)).manual_seed(seed)

    def step(m, clean):
        x_in = clean if corruption is None else corruption(clean, generator)
        x_out = x_in if model is None else m(x_in)[1].reshape(clean.shape)
        return probe(x_out.to(model_device(probe))).argmax(1).cpu()

    with torch.no_grad():
        return torch.cat([classes for _, classes in batched(runner, pixels, step)])


def class_change_figure(rows: Mapping[str, torch.Tensor], reads: Mapping[str, torch.Tensor], y: torch.Tensor,
                        class_names: Sequence[str], indices: Sequence[int] | None = None) -> Figure:
    """One row of images per entry of `rows`, each titled with the probe's reading; a wrong class framed in red.

    indices, if given, are the images' test indices, printed above the first row.
    """
    names, y = list(rows), y.cpu()
    n = len(y)
    fig, axes = plt.subplots(len(names), n, figsize=(1.15 * n + 1.2, 1.3 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        images = rows[name].detach().cpu().reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        for c, ax in enumerate(axes[r]):
            ax.imshow(images[c].numpy(), cmap="gray", vmin=0, vmax=1)
            read = int(reads[name][c])
            wrong = read != int(y[c])
            title = class_names[read] if indices is None or r else f"test {int(indices[c])}\n{class_names[read]}"
            ax.set_title(title, fontsize=7, color="red" if wrong else "black")
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(wrong)
                spine.set(color="red", linewidth=2.5)
        axes[r][0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def filter_comparison(models: Mapping[str, nn.Module], data, corrupt: Callable, noise_std: float, seed: int = 0,
                      pixel_masks: Mapping[str, torch.Tensor] | None = None, n_templates: int = 5000) -> dict:
    """Per model: its living units' filters (busiest first, masked), and numbers on them, on noisy test images.

    Living units fire for at least one test image corrupted at noise_std (the same noise for every
    model); roughness and template similarity (course.metrics) are medians over the living filters;
    the weight sums are the medians of each unit's 784 input weights, for living and for dead units.
    """
    x_val, y_val = data.val.take(slice(0, n_templates)), data.val.y[:n_templates]
    out = {}
    for name, model in models.items():
        generator = torch.Generator(device=model_device(model)).manual_seed(seed)
        z = torch.cat([z.cpu() for _, z in batched(model, data.test.pixels,
                                                    lambda m, x: m.encode(corrupt(x, noise_std, generator)))])
        alive = living_units(z, top=z.shape[1])
        weights = model.filters.detach().cpu().reshape(z.shape[1], -1)
        mask = pixel_masks[name].float() if pixel_masks and name in pixel_masks else torch.ones(weights.shape[1])
        filters = (weights * mask)[alive]
        dead = torch.ones(z.shape[1], dtype=torch.bool)
        dead[alive] = False
        out[name] = {"filters": filters, "living units": len(alive),
                     "active units per image": float((z > 0).sum(1).float().mean()),
                     "median roughness": float(filter_roughness(filters).median()),
                     "median template similarity": float(class_template_similarity(filters, x_val, y_val).median()),
                     "weight sum, living": float(weights[~dead].sum(1).median()),
                     "weight sum, dead": float(weights[dead].sum(1).median()) if dead.any() else float("nan")}
    return out


def filter_figure(compared: Mapping[str, dict], hidden_dim: int, templates: torch.Tensor | None = None,
                  n: int = 16) -> Figure:
    """Each model's n busiest living filters, a 4-wide grid per model, and beside them the class averages `templates`."""
    panels = len(compared) + (templates is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 4.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], compared.items()):
        shown = r["filters"][:n]
        filter_grid(shown, cols=4, ax=ax, title=f"{name}: the {len(shown)} busiest\nof {r['living units']} living "
                                                 f"units (of {hidden_dim})")
    if templates is not None:  # centred, as the template similarity compares them, and drawn in the filters' style
        t = templates.reshape(len(templates), -1).float()
        filter_grid(t - t.mean(1, keepdim=True), cols=2, ax=axes[0][-1], title="the class averages, centred\n(the templates)")
    fig.tight_layout()
    return fig


def corruption_robustness(models: Mapping[str, nn.Module], pixels: torch.Tensor,
                          levels: Mapping[str, Sequence[float]], seed: int = 0) -> dict:
    """Test MSE against the clean images for each corruption kind and level: {kind: {name: {level: mse}}}."""
    return {kind: {name: {float(v): reconstruction_mse(m, pixels, corruption=make_corruption(kind, float(v)), seed=seed)
                          for v in values} for name, m in models.items()} for kind, values in levels.items()}


def robustness_figure(robustness: Mapping[str, Mapping[str, Mapping[float, float]]],
                      highlight: str | None = None) -> Figure:
    """One panel per corruption kind: test MSE against its level (fraction of pixels), one line per model."""
    fig, axes = plt.subplots(1, len(robustness), figsize=(5 * len(robustness), 3.3), squeeze=False)
    for ax, (kind, table) in zip(axes[0], robustness.items()):
        for i, (name, row) in enumerate(table.items()):
            ax.plot(list(row), list(row.values()), "o-", color=f"C{i}", label=name,
                    linewidth=2.5 if name == highlight else 1.2)
        ax.set(title=kind, xlabel="fraction of the pixels corrupted", ylabel="test MSE against the clean image")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def wins(table: Mapping[str, Mapping[float, float]], name: str) -> list[float]:
    """The levels at which model `name` has a lower error than every other model of the table."""
    others = [n for n in table if n != name]
    return [level for level, value in table[name].items() if all(value < table[o][level] for o in others)]

