"""Notebook 03's measurements of a sparse code: its penalty grid, what the trainer says, and how many units are on."""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from course.checkpoints import Trained, train_or_load
from course.findings import Finding, finding
from course.metrics import dead_fraction as course_dead_fraction, filter_roughness, reconstruction_mse
from course.models import batched, codes
from course.notebook import require_one_of
from course.references import SPARSE_ORIGINAL, sparse_weight_from_original
from course.training import NO_BETTER_THAN_MEAN

# The words of the trainer's warning for a model no better than the mean image (course.training.fit).
MEAN_IMAGE_WARNING = "no better than always answering with the mean"


@dataclass(frozen=True)
class PenaltyGrid:
    """The penalty weights of notebook 03: the trade-off weights (sorted), the collapse weight, all of them in order."""

    trade_off: list[float]
    collapse: float
    exercise: float | None

    @property
    def all(self) -> list[float]:
        return self.trade_off + ([self.collapse] if self.collapse not in self.trade_off else [])

    def role(self, weight: float) -> str:
        """'no penalty', 'trade-off' or 'collapse (on purpose)'."""
        return "no penalty" if weight == 0 else "trade-off" if weight in self.trade_off else "collapse (on purpose)"


def original_collapse_weight() -> float:
    """The original's smallest weight at which every unit died (average activation 0), on the course's scale."""
    return sparse_weight_from_original(min(lam for lam, activation, _ in SPARSE_ORIGINAL if activation == 0))


def penalty_grid(penalty_weights: Sequence[float], collapse_weight: float | None = None,
                 exercise_weight: float | None = None) -> PenaltyGrid:
    """Check notebook 03's weight parameters (a ValueError names the bad one) and return them as a PenaltyGrid."""
    try:
        trade_off = sorted({float(w) for w in penalty_weights})
    except (TypeError, ValueError) as error:
        raise ValueError(f"penalty_weights must be a list of numbers >= 0, got {penalty_weights!r}") from error
    if not trade_off or trade_off[0] < 0:
        raise ValueError(f"penalty_weights must be a non-empty list of numbers >= 0, got {penalty_weights!r}")
    collapse = original_collapse_weight() if collapse_weight is None else collapse_weight
    if not isinstance(collapse, (int, float)) or isinstance(collapse, bool) or collapse <= 0:
        raise ValueError(f"collapse_weight must be None or a number > 0, got {collapse_weight!r}")
    require_one_of("exercise_weight", exercise_weight, [w for w in trade_off if w > 0], none_ok=True)
    return PenaltyGrid(trade_off, float(collapse), None if exercise_weight is None else float(exercise_weight))


def train_noting_collapse(*args, **kwargs) -> tuple[Trained, list[str]]:
    """train_or_load(*args, **kwargs), with the trainer's mean-image warnings caught and returned as text.

    Any other warning is shown as usual. A model loaded from the cache brings its History, not the warning.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = train_or_load(*args, **kwargs)
    for c in caught:
        if MEAN_IMAGE_WARNING not in str(c.message):
            warnings.warn_explicit(c.message, c.category, c.filename, c.lineno)
    return trained, [str(c.message) for c in caught if MEAN_IMAGE_WARNING in str(c.message)]


def trained_with(penalty) -> str:
    """How a model's penalty was given: 'none', 'your l1_penalty' (a function with its weight) or 'L1Penalty'."""
    if penalty is None:
        return "none"
    return "your l1_penalty" if isinstance(penalty, functools.partial) else type(penalty).__name__


def kept_val_mse(history) -> float:
    """The validation MSE of the epoch whose weights were kept (the best one, else the last)."""
    return history.val_mse[(history.best_epoch or history.epochs) - 1]


def sparsity_measures(model: nn.Module, x: torch.Tensor,
                      dead_fraction: Callable[[torch.Tensor], float] = course_dead_fraction) -> dict:
    """A shallow model's sparsity on images x: test MSE, activity, active units per image, dead units, and scale.

    active_units_per_image is the sum of the units' firing rates; active_share_living leaves the dead out;
    value_when_on is the mean of the activations above 0, decoder_norm_living the median length of a living
    unit's decoder weights (None where no unit lives). `dead_fraction` may be the student's function.
    """
    z = codes(model, x)  # (N, hidden_dim)
    units = z.shape[1]
    dead = float(dead_fraction(z))
    living = units - round(dead * units)
    firing_rate = (z > 0).float().mean(0)  # (units,) the share of the images each unit fires on
    active = float(firing_rate.sum())
    decoder_norm = model.decoder[0].weight.detach().norm(dim=0).cpu()  # (units,)
    alive = firing_rate > 0
    return {
        "test_mse": reconstruction_mse(model, x), "avg_activation": float(z.mean()),
        "active_units_per_image": active, "active_share_all": active / units,
        "dead_fraction": dead, "living_units": living,
        "active_share_living": active / living if living else None,
        "median_firing_rate_living": float(firing_rate[alive].median()) if living else None,
        "value_when_on": float(z.sum()) / max(active * z.shape[0], 1),
        "decoder_norm_living": float(decoder_norm[alive].median()) if bool(alive.any()) else None,
    }


def grid_rows(trained: Mapping[float, Trained], grid: PenaltyGrid, penalty_for: Callable, x: torch.Tensor,
              dead_fraction: Callable[[torch.Tensor], float] = course_dead_fraction) -> list[dict]:
    """One row per weight for the table and the metrics record: sparsity_measures on x, and how it was trained."""
    return [{"penalty": "l1", "weight": w, "role": grid.role(w), "trained_with": trained_with(penalty_for(w)),
             **sparsity_measures(t.model, x, dead_fraction), "train_seconds": round(t.history.total_seconds, 2),
             "from_cache": t.from_cache} for w, t in trained.items()]


def death_split(low: Mapping, high: Mapping) -> dict:
    """How the share of all units on per image fell from the row `low` to `high` (sparsity_measures rows): the fold
    of the fall, the folds due to death (the share alive) and to selectivity (the living firing less), which multiply
    to it, and death's share of the fall on a log scale."""
    alive_low, alive_high = 1.0 - low["dead_fraction"], 1.0 - high["dead_fraction"]
    if not (alive_high > 0 and high["active_share_all"] > 0):
        raise ValueError("the row `high` has no unit alive: there is no split of its sparsity to make")
    fold = low["active_share_all"] / high["active_share_all"]
    death = alive_low / alive_high
    selectivity = fold / death
    share = math.log(death) / math.log(fold) if fold > 1 else 0.0
    return {"fold": fold, "death_fold": death, "selective_fold": selectivity, "death_share": share}


def death_finding(results: Mapping[float, Mapping], low: float, high: float) -> Finding:
    """Show how the share of all units on fell from the weight `low` to `high` (death_split), and which fold leads."""
    split = death_split(results[low], results[high])
    death_share = split["death_share"]
    case = "death" if death_share > 0.65 else "even" if death_share >= 0.35 else "selective"
    head = ("from lambda = {low:g} to {high:g} the share of all units on per image falls {fold:.1f}-fold: {death:.1f}-fold "
            "because units died ({dead:.0%} dead), {sel:.1f}-fold because the living fire less often. ")
    return finding(case, {"death": head + "Most of this sparsity is death.",
                          "even": head + "Death and selectivity share this sparsity about evenly.",
                          "selective": head + "This sparsity is mostly selective units, not death."},
                   low=low, high=high, fold=split["fold"], death=split["death_fold"], sel=split["selective_fold"],
                   dead=results[high]["dead_fraction"])


def trainer_verdicts(trained: Mapping[float, Trained], caught: Mapping[float, list]) -> list[dict]:
    """For each weight, the stored History's verdict: kept validation MSE, the mean image's, their ratio, and
    "warns": whether the trainer warns at that ratio (NO_BETTER_THAN_MEAN or more), cached or not."""
    rows = []
    for weight, t in trained.items():
        kept, floor = kept_val_mse(t.history), t.history.mean_image_mse
        rows.append({"weight": weight, "model": "from the cache" if t.from_cache else "trained now",
                     "validation MSE, kept weights": kept, "validation MSE, mean image": floor,
                     "ratio": kept / floor if floor else None, "warns": bool(floor and kept >= NO_BETTER_THAN_MEAN * floor),
                     "warned while training here": bool(caught.get(weight))})
    return rows


def largest_preactivation(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(hidden_dim,) on the CPU: each unit's largest pre-activation w . x + b over the images x, batch by batch."""
    step = lambda m, batch: m.encoder[0](batch)  # noqa: E731 - the linear layer before the ReLU
    return torch.stack([pre.max(0).values for _, pre in batched(model, x, step=step)]).max(0).values.cpu()


def roughness_yardsticks(inked: torch.Tensor, mean_image: torch.Tensor, n: int = 64, seed: int = 0) -> dict:
    """Mean filter roughness of n white-noise filters (grainy) and of the mean image (smooth), both masked by inked."""
    mask = inked.float().flatten()  # (784,)
    noise = torch.randn(n, mask.numel(), generator=torch.Generator().manual_seed(seed)) * mask
    smooth = (mean_image.float().flatten().cpu() * mask).unsqueeze(0)  # (1, 784)
    return {"noise": float(filter_roughness(noise).mean()), "mean_image": float(filter_roughness(smooth)[0])}


def rising(values: Sequence[float]) -> bool:
    """Whether the values strictly increase."""
    return all(a < b for a, b in zip(values, values[1:]))


def one_code_figure(x: torch.Tensor, models: Mapping[str, nn.Module], side: int | None = None):
    """One image (784,) and, per model, its hidden code drawn as a square of units with 'N units on', and x_hat."""
    import matplotlib.pyplot as plt

    x = x.reshape(1, -1)
    fig, axes = plt.subplots(2, len(models) + 1, figsize=(2.3 * (len(models) + 1), 5.8), squeeze=False)
    axes[0, 0].imshow(x.view(28, 28).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("the test image", fontsize=9)
    axes[1, 0].axis("off")
    for col, (label, model) in enumerate(models.items(), start=1):
        z, x_hat = (t.detach().cpu() for t in model(x.to(next(model.parameters()).device)))
        z = z.flatten()
        n = side or int(round(z.numel() ** 0.5))
        on = int((z > 0).sum())
        top = float(z.max()) if on else 1.0
        # every unit on drawn at least a third bright: a few strong units must not hide the many weak ones
        shown = torch.where(z > 0, 0.35 + 0.65 * z / top, torch.zeros_like(z))
        axes[0, col].imshow(shown[: n * n].view(n, -1).numpy(), cmap="magma", vmin=0, vmax=1)
        axes[0, col].set_title(f"{label}\n{on} of {z.numel()} units on", fontsize=9)
        axes[1, col].imshow(x_hat.view(28, 28).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, col].set_title("its reconstruction", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.text(0.5, 0.01, "each square: one unit per cell, black = off; every unit on is at least dimly lit, brighter = more "
             "active (each square on its own scale); a unit's place in the square means nothing", ha="center", fontsize=8)
    return fig


def trade_off_figure(rows: Sequence[Mapping], mean_image_mse: float, title: str = ""):
    """Three panels over the weights: test MSE (with the mean image's), the share of units on per image, dead units."""
    import matplotlib.pyplot as plt

    labels = [f"{r['weight']:g}" for r in rows]
    column = lambda key: [float("nan") if r[key] is None else r[key] for r in rows]  # noqa: E731
    floor = 1e-4  # shares of 0 are drawn here, on the log scale
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(labels, column("test_mse"), "o-")
    axes[0].axhline(mean_image_mse, color="k", linestyle="--", linewidth=1, label="output = mean image")
    axes[0].set(yscale="log", ylabel="test MSE per pixel")
    for key, style, color, label in (("active_share_all", "o-", "C1", "of all units"),
                                     ("active_share_living", "s--", "C2", "of the living units")):
        axes[1].plot(labels, [max(s, floor) for s in column(key)], style, color=color, label=label)
    axes[1].set(yscale="log", ylabel="share of units on per image")
    axes[1].set_title(f"(shares under {floor:.2%} drawn at {floor:.2%})", fontsize=8)
    bars = axes[2].bar(labels, column("dead_fraction"), color="C3")
    axes[2].bar_label(bars, labels=[f"{d:.1%}" for d in column("dead_fraction")], fontsize=8)
    axes[2].set(ylim=(0, 1.1), ylabel="dead units (share of all)")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("penalty weight lambda (one category each, not to scale)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def firing_rates(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each hidden unit's firing rate, the share of the images x on which it is on (> 0), busiest first: (units,)."""
    return (codes(model, x) > 0).float().mean(0).sort(descending=True).values


def firing_rate_figure(rates: Mapping[str, torch.Tensor], noun: str = "image", ax=None):
    """One line per model ({label: firing_rates(...)}): firing rate against the unit's rank, on a log scale.

    Dead units (rate 0) are drawn at a floor below the smallest rate any unit has, so that a unit on for a
    single image and a dead one stay apart; a dotted line marks where each model's dead units begin.
    """
    import matplotlib.pyplot as plt

    positive = [float(r[r > 0].min()) for r in rates.values() if bool((r > 0).any())]
    floor = min(positive, default=1.0) / 10  # a decade below a unit on for a single image
    fig, ax = (plt.subplots(figsize=(7.5, 3.6)) if ax is None else (ax.figure, ax))
    for i, (label, r) in enumerate(rates.items()):
        living = int((r > 0).sum())
        ax.plot(range(1, len(r) + 1), r.clamp_min(floor).numpy(), color=f"C{i}",
                label=f"{label}: {living} living, {len(r) - living} dead")
        if 0 < living < len(r):
            ax.axvline(living + 0.5, color=f"C{i}", linewidth=0.8, linestyle=":")
    ax.axhline(floor, color="grey", linewidth=0.6)
    ax.set(xlabel="units, busiest first (rank)", ylabel=f"share of test {noun}s it is on for", yscale="log",
           title=f"each unit's firing rate (dotted: where the dead units begin; dead drawn at {floor:.0e})")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# The sparsity table's columns: record key -> (heading, format).
SPARSITY_COLUMNS = {
    "role": ("role", None), "test_mse": ("test MSE", "{:.5f}"), "avg_activation": ("avg activation", "{:.4f}"),
    "active_units_per_image": ("units on per image", "{:.1f}"), "dead_fraction": ("dead units", "{:.1%}"),
    "active_share_living": ("on, share of living", "{:.1%}"),
}  # the table a student reads (the share of all units on is the count over hidden_dim: the figure draws it);
# sparsity_measures records more (living units, the median firing rate, ...)


def show_sparsity_table(rows: Sequence[Mapping], caption: str | None = None):
    """Display the sparsity measurements of each weight (rows from sparsity_measures, with 'weight') as a table."""
    from course.notebook import show_table

    table = [{"lambda": f"{r['weight']:g}", **{heading: r[key] for key, (heading, _) in SPARSITY_COLUMNS.items()}}
             for r in rows]
    formats = {heading: fmt for heading, fmt in SPARSITY_COLUMNS.values() if fmt}
    return show_table(table, index="lambda", formats=formats, caption=caption)


def lesson_checks(results: Mapping[float, Mapping], grid: PenaltyGrid, mean_image_mse: float,
                  collapse_history) -> dict:
    """Notebook 03's lessons as {key: (condition, claim)} for run.finish, from its measurements by weight."""
    trade = [results[w] for w in grid.trade_off]
    col = results[grid.collapse]
    living_share = [-(r["active_share_living"] or 0.0) for r in trade]  # None: no living unit left
    return {
        "trade_off": (rising([r["test_mse"] for r in trade]) and rising([-r["active_units_per_image"] for r in trade]),
                      "across the trade-off weights, the test MSE rises and the active units per image fall as lambda grows"),
        "living_more_selective": (rising(living_share), "the penalty makes the living units more selective too, not "
                                  "only fewer: the share of LIVING units active per image falls as lambda grows"),
        "trade_off_alive": (all(r["dead_fraction"] < 0.9 and r["test_mse"] < 0.5 * mean_image_mse for r in trade),
                            "no trade-off model has collapsed: fewer than 90% of units dead and MSE well below the "
                            "mean-image MSE"),
        "collapse": (col["dead_fraction"] > 0.99 and col["active_units_per_image"] < 1
                     and abs(col["test_mse"] - mean_image_mse) < 0.05 * mean_image_mse,
                     f"with lambda = {grid.collapse:g} the network collapses: {col['dead_fraction']:.1%} of units dead, "
                     f"{col['active_units_per_image']:.2f} active per image, test MSE {col['test_mse']:.4f} "
                     f"= the mean-image MSE {mean_image_mse:.4f} (within 5%)"),
        "collapse_history": (kept_val_mse(collapse_history) >= NO_BETTER_THAN_MEAN * collapse_history.mean_image_mse,
                             "its stored History shows what the trainer's warning says: validation MSE no better "
                             "than the mean image's"),
    }
