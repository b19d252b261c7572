"""Notebook 02's measures of a one-hidden-layer autoencoder: what it makes of noise, its decoder's parts, its filters."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course.data import IMAGE_SIZE, to_float
from course.findings import Finding, finding
from course.metrics import filter_roughness
from course.models import batched, model_device
from course.notebook import show_table
from course.plotting import filter_grid, reconstruction_rows, symmetric_scale
from course.references import ORIGINAL_VALIDATION, SHALLOW_VALIDATION_MSE

# Column headings of the noise table, by the metrics record's key.
NOISE_COLUMNS = {"correlation_with_noise_input": "correlation: noise output with its input",
                 "correlation_test_reconstruction": "correlation: test reconstruction with its image",
                 "correlation_with_closest_training_image": "correlation: noise output with its closest training image",
                 "noise_with_closest_training_image": "the same for the noise itself"}
NOISE_BASELINE = "noise_with_closest_training_image"


def show_mse_table(test_mse: dict, data):
    """This run's test MSE by width ({hidden_dim: MSE}), on MNIST beside the original assignment's validation figures
    (on another data set they would only mislead)."""
    this_run = f"this run: test MSE ({len(data.test):,} test {data.nouns})"
    original = {ORIGINAL_VALIDATION: SHALLOW_VALIDATION_MSE} if data.dataset == "mnist" else {}
    return show_table([{"hidden units": hidden_dim, this_run: value,
                        **{name: figures.get(hidden_dim, float("nan")) for name, figures in original.items()}}
                       for hidden_dim, value in test_mse.items()], index="hidden units")


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each image of `a` with the same image of `b`, over pixels: (N, 784) twice -> (N,)."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must be (N, 784) images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def closest_correlation(x: torch.Tensor, reference: torch.Tensor, index: bool = False):
    """For each image of x (N, 784), its correlation with the most correlated image of `reference` (M, 784): (N,).

    With index=True, also which image of `reference` that is: ((N,), (N,)).
    """
    def unit(a):
        a = to_float(a).cpu().flatten(1)
        a = a - a.mean(dim=1, keepdim=True)
        return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    reference = unit(reference)
    best = [(unit(chunk) @ reference.T).max(dim=1) for chunk in x.split(256)]
    values = torch.cat([b.values for b in best])
    return (values, torch.cat([b.indices for b in best])) if index else values


N_REFERENCE = 5000  # training images searched for the one closest to an output: enough, and quick


def noise_response(model, noise: torch.Tensor, test_pixels: torch.Tensor, train_pixels: torch.Tensor,
                   n_reference: int | None = None) -> dict:
    """How much of uniform `noise` (N, 784) the model lets through, beside a real test image's reconstruction.

    Keys as in the metrics record: the mean correlation of each output with its own noise input, of each
    test reconstruction with its image, and of each output (and, as a baseline, each noise image) with
    its most correlated image among the first `n_reference` training images (default N_REFERENCE).
    """
    out = model.reconstruct(noise.to(model_device(model))).cpu()
    noise, reference = noise.cpu(), train_pixels[:N_REFERENCE if n_reference is None else n_reference]
    test = torch.cat([correlation(x_hat, x).cpu() for x, (_, x_hat) in batched(model, test_pixels)])
    return {"correlation_with_noise_input": float(correlation(out, noise).mean()),
            "correlation_test_reconstruction": float(test.mean()),
            "correlation_with_closest_training_image": float(closest_correlation(out, reference).mean()),
            NOISE_BASELINE: float(closest_correlation(noise, reference).mean())}


def show_noise_table(rows: dict, n_train: int | None = None):
    """The noise measures by width ({hidden_dim: noise_response(...)}) as a table with readable headings.

    n_train: the training split's size, for the caption's count of the images the closest one is sought among.
    """
    caption = None if n_train is None else (f"the closest training image sought among the first {N_REFERENCE:,} of "
                                            f"{n_train:,}" if n_train > N_REFERENCE else f"the closest training image sought among all {n_train:,}")
    # The noise's own closest correlation is the same at every width: the finding prints it, the table leaves it out.
    return show_table([{"hidden units": hidden_dim, **{NOISE_COLUMNS[k]: v for k, v in row.items() if k != NOISE_BASELINE}}
                       for hidden_dim, row in rows.items()], index="hidden units",
                      formats="{:.3f}", caption=caption)


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


def build_up(model, x: torch.Tensor, ks: Sequence[int] = (0, 1, 2, 4, 8, 16, 32)) -> tuple[torch.Tensor, dict]:
    """One input's parts z_j d_j, largest first (hidden_dim, 784), and {k: sigmoid(bias + the first k parts)}.

    Sums past the units that are on would repeat the full output, so only k below that count are kept, and the
    full sum (k = hidden_dim) always: notebook 02's take-apart cell, for reuse (03).
    """
    parts, bias = decoder_parts(model, x[:1])  # (1, hidden_dim, 784), (784,)
    parts = parts[0][parts[0].norm(dim=1).argsort(descending=True)]  # the largest first
    on = int((parts.norm(dim=1) > 0).sum())
    rebuilt = {k: torch.sigmoid(bias + parts[:k].sum(0)).cpu() for k in ks if k < on}
    rebuilt[parts.shape[0]] = torch.sigmoid(bias + parts.sum(0)).cpu()
    return parts.cpu(), rebuilt


def parts_figure(x: torch.Tensor, parts: torch.Tensor, rebuilt: dict, title: str | None = None) -> Figure:
    """One input, its largest parts (signed, grey = 0) and the sums of the first k parts ({k: (784,) image})."""
    n_parts = min(8, parts.shape[0])
    cols = max(n_parts, len(rebuilt)) + 1
    fig, axes = plt.subplots(2, cols, figsize=(1.25 * cols, 3.9), squeeze=False)  # room for two-line titles
    for ax in axes.flat:
        ax.set_axis_off()
    axes[0, 0].imshow(to_float(x).detach().cpu().view(IMAGE_SIZE, IMAGE_SIZE).numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("input", fontsize=8)
    # each part at its own contrast (a shared one leaves the small ones flat grey); its size, the norm, in the title
    terms = parts[:n_parts].detach().cpu().view(-1, IMAGE_SIZE, IMAGE_SIZE)
    shown = symmetric_scale(terms, "each")
    for j in range(n_parts):
        axes[0, j + 1].imshow(shown[j], cmap="gray", vmin=0, vmax=1)
        axes[0, j + 1].set_title(f"part {j + 1}: z_j d_j\nnorm {float(terms[j].norm()):.2f}", fontsize=8)
    on = int((parts.detach().flatten(1).abs().sum(1) > 0).sum())  # parts of units that are on: past them the sum is the output
    output = rebuilt[max(rebuilt)].detach().cpu().flatten()
    for col, (k, image) in enumerate(rebuilt.items(), start=1):
        image = image.detach().cpu().flatten()
        axes[1, col].imshow(image.view(IMAGE_SIZE, IMAGE_SIZE).numpy(), cmap="gray", vmin=0, vmax=1)
        label = "bias alone" if k == 0 else f"{k} part" + "s" * (k > 1)
        if k >= on:
            label = f"the output\n(all {on} parts on)"
        else:  # how far this partial sum still is from the output
            label += f"\nMSE {float(((image - output) ** 2).mean()):.4f}"
        axes[1, col].set_title(label, fontsize=8)
    axes[1, 0].text(0.95, 0.5, "sigmoid(bias\n+ the first\nk parts);\nMSE to the\noutput", ha="right", va="center", fontsize=8,
                    transform=axes[1, 0].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(h_pad=1.2)
    return fig


def noise_figure(noise: torch.Tensor, models: dict, n: int = 8, reference: torch.Tensor | None = None) -> Figure:
    """The first n noise images and each model's output ({hidden_dim: model}), every output titled with its
    correlation r to its own input (pixel by pixel), so that how much of the noise passes can be seen.

    With `reference` (training images), a last row: the reference image most correlated with each output of the
    narrowest model, titled with that correlation.
    """
    x = noise[:n]
    outputs = {hidden_dim: model.reconstruct(x.to(model_device(model))).cpu() for hidden_dim, model in models.items()}
    rows = {"uniform noise in": x, **{f"width {h} out": out for h, out in outputs.items()}}
    titles = [correlation(out, x.cpu()) for out in outputs.values()]
    if reference is not None:
        narrowest, reference = min(outputs), reference[:N_REFERENCE]  # as the noise table searches
        r, index = closest_correlation(outputs[narrowest], reference, index=True)
        rows[f"closest training\nimage (r to the\nwidth-{narrowest} output)"] = to_float(reference[index]).cpu()
        titles.append(r)
    fig = reconstruction_rows(rows, n=n, scale=1.1)
    for row, rs in enumerate(titles, start=1):
        for col, r in enumerate(rs):
            fig.axes[row * n + col].set_title(f"r = {float(r):.2f}", fontsize=7)
    fig.tight_layout()
    return fig


def filters_figure(filters: dict, living: dict, n_filters: int = 64) -> Figure:
    """Per width ({hidden_dim: filters (hidden_dim, 28, 28)}), the filters of its n_filters most often active living units."""
    fig, axes = plt.subplots(1, len(filters), figsize=(4.6 * len(filters), 5.2), squeeze=False)
    for ax, (hidden_dim, f) in zip(axes[0], filters.items()):
        shown, n_living = living[hidden_dim][:n_filters], len(living[hidden_dim])
        which = f"all {n_living} living units" if len(shown) == n_living else f"{len(shown)} most often active of {n_living} living units"
        filter_grid(f[shown], cols=8, ax=ax, title=f"width {hidden_dim}: {which}\n({hidden_dim - n_living} dead, not drawn)")
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


def width_findings(test_mse: dict, train_loss: float, val_mse: float, nouns: str) -> list[Finding]:
    """Section 2's findings: which step up in width cuts the test error most; whether the widest model fits its training images better than unseen ones."""
    widths = sorted(test_mse)
    cuts = relative_cuts([test_mse[w] for w in widths])
    shares = ", ".join(f"{c:.0%} from width {a} to {b}" for c, a, b in zip(cuts, widths, widths[1:]))
    gap = val_mse / train_loss - 1
    return [finding(cuts[-1] > cuts[0], {True: "the last step up in width cuts the test error by a larger share than "
                    "the first: {cuts}", False: "the last step up in width cuts the test error by a smaller share "
                    "than the first: {cuts}"}, cuts=shares),
            finding("worse" if gap > 0.1 else "better" if gap < -0.1 else "close", {
                "worse": "the widest model ends {gap:.0%} worse on validation than on its training {nouns}: it fits "
                         "the images it trained on much better than unseen ones (a generalisation gap)",
                "close": "the widest model's validation and training errors end within 10% of each other ({gap:+.0%}): "
                         "it does about as well on unseen {nouns} as on its training ones",
                "better": "the widest model ends {neg:.0%} better on validation than on its training {nouns}: no "
                          "generalisation gap shows (the training error, averaged over the last epoch while the "
                          "weights still improve, can sit above validation)"},
                gap=gap, neg=-gap, nouns=nouns)]


def noise_finding(rows: dict, noun: str) -> Finding:
    """Whether at every width a noise output is more like its closest training image than like its own input."""
    closest = {h: (r["correlation_with_closest_training_image"], r["correlation_with_noise_input"]) for h, r in rows.items()}
    like = [h for h, (c, own) in closest.items() if c > own]
    baseline = next(iter(rows.values()))[NOISE_BASELINE]
    narrow = [f"width {h} only narrowly, {c:.2f} against {own:.2f}" for h, (c, own) in closest.items() if 0 < c - own < 0.05]
    note = f"; {', '.join(narrow)}: almost as much of the noise comes through as of any one training {noun}" if narrow else ""
    return finding(len(like) == len(rows), {True: "at every width a noise output correlates more with its closest "
                   "training {noun} than with its own input (the noise itself: {b:.2f} with its closest){note}",
                   False: "a noise output correlates more with its closest training {noun} than with its own input "
                   "at width(s) {widths} only: at the others as much of the noise comes through as of any one "
                   "training image (the noise itself: {b:.2f} with its closest)"},
                   noun=noun, b=baseline, widths=", ".join(map(str, like)) or "none", note=note)


def dark_pixels_finding(model, dark: torch.Tensor, nouns: str, x: torch.Tensor) -> Finding:
    """At the pixels `dark` (784,) that training images leave blank: the parts' sign there, what the bias alone paints,
    and what the parts switched on by inputs x (N, 784) add up to, summed before the sigmoid."""
    weight, bias = model.decoder[0].weight.detach().cpu(), model.decoder[0].bias.detach().cpu()  # (784, k), (784,)
    with torch.no_grad():
        z = model.encode(to_float(x).to(model_device(model))).cpu()  # (N, k), never negative
    all_parts = z @ weight.T  # (N, 784): each input's summed parts at every pixel
    summed, summed_rest = all_parts[:, dark], all_parts[:, ~dark]  # at the dark pixels, and at the others
    return finding(float(summed.mean()) < 0, {
        True: "at the {n} pixels inked in under 1% of the training {nouns}, {share:.0%} of the part weights are "
              "negative. Before the sigmoid, the bias there is {bias:+.2f} on average and the parts the noise switches "
              "on add {added:+.2f}; after it, the bias alone would give {grey:.2f}, the outputs are {out:.2f} (at the "
              "other pixels {rest:.2f})",
        False: "at the {n} pixels inked in under 1% of the training {nouns}, {share:.0%} of the part weights are "
               "negative, yet before the sigmoid the parts the noise switches on add {added:+.2f} there on average "
               "(the bias {bias:+.2f}); after it, the bias alone would give {grey:.2f}, the outputs are {out:.2f} (at the "
               "other pixels {rest:.2f})"},
        n=int(dark.sum()), nouns=nouns, share=float((weight[dark] < 0).float().mean()), bias=float(bias[dark].mean()),
        grey=float(torch.sigmoid(bias[dark]).mean()), added=float(summed.mean()),
        out=float(torch.sigmoid(bias[dark] + summed).mean()), rest=float(torch.sigmoid(bias[~dark] + summed_rest).mean()))


def dead_finding(dead_share: dict) -> Finding:
    """Whether the narrowest layer loses the largest share of its units ({hidden_dim: share dead})."""
    return finding(max(dead_share, key=dead_share.get) == min(dead_share), {True: "the narrowest layer loses the "
                   "largest share of its units: {shares}", False: "dead units by width: {shares}"},
                   shares=", ".join(f"{s:.0%} at width {h}" for h, s in dead_share.items()))


def filter_finding(rows: dict) -> Finding:
    """Whether the wider the layer, the closer its filters' nearest neighbours come to those of random filters."""
    widths = sorted(rows)
    ratio = {h: rows[h]["nearest_neighbour_similarity"] / rows[h]["random_filters_similarity"] for h in widths}
    ratios = ", ".join(f"{ratio[w]:.1f} times (width {w})" for w in widths)
    return finding([ratio[w] for w in widths] == sorted(ratio.values(), reverse=True),
                   {True: "the wider the layer, the less alike its filters are, against random ones: a filter's nearest "
                    "neighbour is {ratios} as similar as among random filters (1: no more alike than unrelated ones)", False: "a filter's nearest neighbour "
                    "is {ratios} as similar as among random filters: no steady trend with the width"}, ratios=ratios)


def lessons(test_mse: dict, noise_rows: dict, needed: dict) -> dict:
    """The notebook's lessons for run.finish, each (holds in this run, sentence)."""
    widths = sorted(test_mse)
    corr = [noise_rows[w]["correlation_with_noise_input"] for w in widths]
    medians = [float(needed[w].float().median()) for w in widths]
    return {"mse_falls": (all(c > 0 for c in relative_cuts([test_mse[w] for w in widths])),
                          "the test MSE falls as the hidden layer grows"),
            "noise_not_copied": (all(r["correlation_with_noise_input"] < min(0.5, r["correlation_test_reconstruction"])
                                     for r in noise_rows.values()), "for every width, the output for uniform noise "
                                 "keeps only part of the noise (correlation below 0.5), unlike a real test image's "
                                 "reconstruction"),
            "wider_lets_more_noise_through": (corr == sorted(corr), "the wider the layer, the more of the noise gets through"),
            "more_parts_when_wider": (medians == sorted(medians), "the wider the layer, the more parts paint a noise output")}
