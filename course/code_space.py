"""Notebook 05's code space: where codes lie, how sure the probe is of what they decode to, and the map of both.

The map of "holes": codes of several kinds (noisy, half-way, random) drawn over the test codes on their
two principal axes, beside each decoded image's distance to the nearest training code against the
probe classifier's confidence in its class.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course.data import DigitData, check_images
from course.metrics import probe_classifier
from course.models import batched

CONFIDENT = 0.9  # a probe this sure of one class is taken to see a clean image of it


def probe_confidence(x: torch.Tensor, data: DigitData, seed: int = 0) -> torch.Tensor:
    """The probe classifier's probability of its top class for each image of x (uint8 or [0, 1]): (N,) on the CPU."""
    x = check_images(x.detach() if isinstance(x, torch.Tensor) else x, "x")
    probe = probe_classifier(data, seed)
    return torch.cat([logits.softmax(1).max(1).values.cpu() for _, logits in batched(probe, x)])


def probe_classes(x: torch.Tensor, data: DigitData, seed: int = 0) -> torch.Tensor:
    """The class the probe classifier names for each image of x (uint8 or [0, 1]): (N,) int64 on the CPU."""
    x = check_images(x.detach() if isinstance(x, torch.Tensor) else x, "x")
    probe = probe_classifier(data, seed)
    return torch.cat([logits.argmax(1).cpu() for _, logits in batched(probe, x)])


def class_partners(y: torch.Tensor, same_class: bool, generator: torch.Generator) -> torch.Tensor:
    """For each label of y (N,), the index of a partner: another image of its class, or one of another class: (N,)."""
    y = torch.as_tensor(y).cpu().flatten()
    counts = torch.bincount(y)
    if same_class and bool((counts[y] < 2).any()):
        raise ValueError("y must hold every class it holds at least twice to pair images within a class")
    if not same_class and len(y.unique()) < 2:
        raise ValueError("y must hold at least two classes to pair images of different classes")
    partner = torch.empty(len(y), dtype=torch.long)
    if same_class:
        for label in y.unique():
            members = torch.nonzero(y == label).flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            partner[members] = members.roll(1)  # each member paired with the next one of its class: never itself
        return partner
    partner = torch.randperm(len(y), generator=generator)
    clash = y[partner] == y
    while clash.any():  # redraw the partners of the same class until none is left
        partner[clash] = torch.randint(len(y), (int(clash.sum()),), generator=generator)
        clash = y[partner] == y
    return partner


# boxplot's `vert` is deprecated from matplotlib 3.10 on, and `orientation` unknown before it (Colab may lag)
_HORIZONTAL = {"orientation": "horizontal"} if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10) \
    else {"vert": False}


def correlated_pair(z: torch.Tensor) -> tuple[int, int, float]:
    """The two dimensions of codes z (N, d) whose values are most correlated (either sign): (i, j, r), i < j."""
    z = z.detach().double().cpu()
    if z.dim() != 2 or z.shape[0] < 3 or z.shape[1] < 2:
        raise ValueError(f"z must be codes of shape (N, d) with N >= 3 and d >= 2, got {tuple(z.shape)}")
    r = torch.corrcoef(z.T).nan_to_num(0.0)
    r.fill_diagonal_(0.0)
    i, j = divmod(int(r.abs().argmax()), z.shape[1])
    return min(i, j), max(i, j), float(r[i, j])


def holes_figure(reference: torch.Tensor, sets: Mapping[str, tuple], max_points: int = 250,
                 noun: str = "image", on_map: Sequence[str] | None = None) -> Figure:
    """Left: the codes of the sets named `on_map` (default all) over the reference codes (grey), on the two code
    dimensions most correlated over the reference, each in units of its spread; right: per set, its codes'
    distances to the nearest training code (a box).

    Why that pair: codes drawn one dimension at a time miss how dimensions vary together, and there they show it.
    `sets` maps a name to (z (N, d), distance (N,), confidence (N,)); the map draws the first max_points of each,
    the boxes use every code.
    """
    on_map = list(sets) if on_map is None else list(on_map)
    if not set(on_map) <= set(sets):
        raise ValueError(f"on_map must name sets among {list(sets)}, got {on_map!r}")
    i, j, r = correlated_pair(reference)
    reference = reference.detach().float().cpu()
    mean, std = reference.mean(0), reference.std(0).clamp_min(1e-12)

    def plane(z):  # (N, 2): dimensions i and j, in spreads
        return ((z.detach().float().cpu() - mean) / std)[:, [i, j]].numpy()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    ref = plane(reference[:5000])
    left.scatter(ref[:, 0], ref[:, 1], s=4, color="0.6", alpha=0.5, label=f"test {noun}s' codes")
    markers = ["o", "^", "s", "x", "+", "D", "v"]
    names = list(sets)
    for k, (name, (z, distance, confidence)) in enumerate(sets.items()):
        if not len(z) == len(distance) == len(confidence):
            raise ValueError(f"sets[{name!r}]: z, distance and confidence must hold one entry per code")
        marker = markers[k % len(markers)]
        if name in on_map:  # line markers (x, +) look smaller than filled ones; the last set is drawn on top
            p = plane(z[:max_points])
            shown = name if len(z) <= max_points else f"{name} (the first {max_points})"
            left.scatter(p[:, 0], p[:, 1], s=22 if marker in "x+" else 9, marker=marker, color=f"C{k}", alpha=0.7,
                         label=shown, zorder=3 if name == on_map[-1] else 2)
        row = len(sets) - 1 - k  # the first set on top, as in the legend
        box = right.boxplot(np.asarray(distance, dtype=float), positions=[row], **_HORIZONTAL, widths=0.6,
                            whis=(5, 95), showfliers=False, patch_artist=True)
        box["boxes"][0].set(facecolor=f"C{k}", alpha=0.6)
    left.set(xlabel=f"z{i + 1} (in spreads)", ylabel=f"z{j + 1} (in spreads)", aspect="equal")
    left.set_title(f"{' and '.join(repr(name) for name in on_map)}, over the test codes (grey),\n"
                   f"on the two most correlated code dimensions (r = {r:.2f})",
                   fontsize=9)
    right.set_yticks(range(len(names)), names[::-1], fontsize=8)
    right.set(xlabel="distance to the nearest training code, in all dimensions (in spreads)",
              title="each set's distance to the nearest training code\n(box: middle half, whiskers 5%-95%)")
    right.title.set_fontsize(9)
    # the map's legend below both panels: inside the map it hides points
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, markerscale=1.5, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def share_confident(confidence: torch.Tensor, confident: float = CONFIDENT) -> float:
    """The share of images the probe names with at least `confident` probability."""
    confidence = torch.as_tensor(confidence).flatten()
    if confidence.numel() == 0:
        raise ValueError("confidence must hold at least one value")
    return float((confidence >= confident).float().mean())


def share_beyond(distance: torch.Tensor, inside: torch.Tensor, quantile: float = 0.95) -> float:
    """The share of `distance` larger than the `quantile` of `inside` (e.g. real images' codes' distances)."""
    distance, inside = torch.as_tensor(distance).float().flatten(), torch.as_tensor(inside).float().flatten()
    if distance.numel() == 0 or inside.numel() == 0:
        raise ValueError("distance and inside must each hold at least one value")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {quantile!r}")
    return float((distance > inside.quantile(quantile)).float().mean())


def extremes(distance: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of the k smallest and the k largest distances (each (k,), in order)."""
    order = torch.argsort(torch.as_tensor(distance).flatten())
    if not 1 <= k <= len(order) // 2:
        raise ValueError(f"k must be from 1 to half the number of distances ({len(order) // 2}), got {k!r}")
    return order[:k], order[-k:].flip(0)


def manifold_lessons(table, names: Mapping[str, object]) -> dict[str, tuple]:
    """Notebook 05's lesson checks, {key: (condition, claim)} for run.finish, from its likeness table.

    `names` gives the table's row names: real, blur, mean_image, noisy (pixel noise of the first level),
    recon, code_noise (the list, smallest noise first, the farthest last), mid_same, mid_other, random.
    """
    n = dict(names)
    missing = {"real", "blur", "mean_image", "noisy", "recon", "code_noise", "mid_same", "mid_other", "random"} - set(n)
    if missing:
        raise ValueError(f"names lacks {sorted(missing)}")
    fd, mse, dist = table.frechet, table.nearest_mse, table.code_distance
    noise = n["code_noise"]
    near, most, far = fd(noise[0]), fd(noise[-2]), fd(noise[-1])  # most: the largest level before the farthest
    recon, blur, real = fd(n["recon"]), fd(n["blur"]), fd(n["real"])
    same, other = n["mid_same"], n["mid_other"]
    return {
        "measure": (real < min(blur, fd(n["noisy"])) and 20 * real < fd(n["mean_image"]),
                    "the Fréchet distance ranks real images first, blurred and noisy ones behind, the mean image far behind"),
        "blur_wins_nearest_mse": (mse(n["blur"]) < mse(n["real"]) < mse(n["mean_image"]) < 1.5 * mse(n["real"]),
                                  "the nearest-training-image MSE rates blurred real images better than the real ones, "
                                  "and the mean image within 50% of them"),
        "nearest_mse_misleads": (mse(n["recon"]) < mse(n["real"]),
                                 "the nearest-training-image MSE rates the (blurrier) reconstructions better than the real images"),
        "near_codes": (max(recon, near) < blur, "reconstructions, and codes with the smallest noise, decode to images "
                                                "more data-like than blurred real images"),
        "far_codes": (all(dist(a) < dist(b) for a, b in zip(noise, noise[1:])) and max(near, recon) < most < far
                      and far > 2 * max(blur, recon),
                      "the more noise, the farther the codes from the training codes and the less data-like their "
                      "images: at the farthest, far less than blurred real images"),
        "pixel_noise_worse": (fd(n["noisy"]) > max(1.5 * most, 5 * near),
                              "pixel noise of the smallest level costs more likeness than code noise of the largest "
                              "level before the farthest (in spreads), and far more than code noise of the smallest"),
        "gaps": (recon < fd(same) < fd(other) and 3 * recon < fd(other)
                 and dist(same) < min(1.25 * dist(n["recon"]), dist(other)),
                 "half-way codes between two classes lie farther from the training codes and decode to far less "
                 "data-like images than half-way codes within a class"),
        "random_codes": (fd(n["random"]) > max(blur, most),
                         "codes drawn at random from the codes' mean and spread decode to images less data-like than "
                         "blurred real images and than the codes with the largest noise level before the farthest"),
    }


def near_far_confident(sets: Mapping[str, tuple], inside: str, quantile: float = 0.9,
                       confident: float = CONFIDENT) -> tuple[float, float]:
    """Over all sets (name -> (z, distance, confidence)): the confident share of codes nearer than the `quantile`
    of the distances of sets[inside] (e.g. real images' codes), and of those farther out."""
    if inside not in sets:
        raise ValueError(f"inside must name one of the sets {list(sets)}, got {inside!r}")
    cutoff = float(torch.as_tensor(sets[inside][1]).float().quantile(quantile))
    distance = torch.cat([torch.as_tensor(s[1]).flatten() for s in sets.values()])
    confidence = torch.cat([torch.as_tensor(s[2]).flatten() for s in sets.values()])
    near, far = distance <= cutoff, distance > cutoff
    if not far.any():
        raise ValueError("no code lies beyond the cutoff: nothing to compare")
    return share_confident(confidence[near], confident), share_confident(confidence[far], confident)
