"""Computed sentences: what this run found, chosen among texts for the cases and filled with its numbers.

The markdown of a notebook says what holds on every data set; where runs differ, the code picks the
case this run is in (finding) and reports a paired comparison with its odds (paired_comparison).
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

FINDING_PREFIX = "This run"


@dataclass(frozen=True)
class Finding:
    """A sentence about this run, shown highlighted: Markdown in a notebook and an HTML export, plain text elsewhere."""

    text: str
    case: object = None

    def _repr_markdown_(self) -> str:
        return f"> **{FINDING_PREFIX}:** {self.text}"

    def __str__(self) -> str:
        return self.text


def finding(case, texts: Mapping | str, display: bool = True, **values) -> Finding:
    """Show the text for this run's `case` (a key of `texts`), its {fields} filled from `values`; return it.

    `texts` maps each possible case (True/False, or names) to a sentence with str.format fields, e.g.
    finding(ae < pca, {True: "the autoencoder beats PCA by {gain:.0%}", False: "PCA wins, by {loss:.0%}"},
    gain=1 - ae / pca, loss=ae / pca - 1). A single str is the only case. A missing case or field is a
    ValueError naming it, so that no sentence is shown with a hole in it.
    """
    if isinstance(texts, str):
        texts = {case: texts}
    if not isinstance(texts, Mapping) or not texts:
        raise ValueError("texts must be a str or a non-empty mapping of cases to sentences")
    key = bool(case) if _is_truth_value(case) else case
    if key not in texts:
        raise ValueError(f"no text for the case {case!r}: texts has cases {list(texts)!r}")
    template = texts[key]
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(f.split(".")[0].split("[")[0] for f in fields) if fields else []
    missing = [name for name in missing if name not in values]
    if missing:
        raise ValueError(f"the text for case {case!r} needs the value(s) {', '.join(missing)}: give them as keywords")
    result = Finding(template.format(**{k: _number(v) for k, v in values.items()}), key)
    if display:
        from IPython.display import display as show

        show(result)
    return result


def _is_truth_value(case) -> bool:
    """A Python, numpy or 0-d tensor bool (what a comparison of two numbers gives)."""
    if isinstance(case, torch.Tensor):
        return case.dim() == 0 and case.dtype == torch.bool
    return isinstance(case, (bool, np.bool_))


def _number(value):
    """A 0-d tensor as a Python number, so that format specs such as :.0% apply; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    return value


@dataclass(frozen=True)
class PairedComparison:
    """A on each item against B on the same item (lower is better): wins, losses, ties and a sign test."""

    n: int
    wins: int  # items where A is strictly lower (better) than B
    losses: int
    ties: int
    p_value: float  # two-sided sign test over the items that are not ties

    @property
    def share(self) -> float:
        """The share of all items where A beats B."""
        return self.wins / self.n

    def describe(self, a: str, b: str, items: str = "test images") -> str:
        """One sentence: the share, the count and how likely so lopsided a split would be by chance."""
        ties = f" ({self.ties:,} ties)" if self.ties else ""
        return (f"{a} is better than {b} on {self.share:.0%} of the {self.n:,} {items}{ties}: "
                f"{self.wins:,} against {self.losses:,}, {format_p_value(self.p_value)} "
                f"(sign test: the chance of a split at least this uneven if neither were better)")


def paired_comparison(a, b) -> PairedComparison:
    """Compare two per-item errors of the same items, a (N,) and b (N,), lower better: A's wins with a sign test.

    A margin in the mean can come from a few items; the share of items where A is better, and the
    probability of a split at least as uneven were A and B equally good (the exact two-sided binomial
    test with p = 1/2 over the non-tied items), say whether it is real.
    """
    a, b = (torch.as_tensor(v).detach().cpu().double().flatten() for v in (a, b))
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"a and b must hold one error per item, the same N > 0 each, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if torch.isnan(a).any() or torch.isnan(b).any():
        raise ValueError("a and b must not hold NaN")
    wins, losses = int((a < b).sum()), int((a > b).sum())
    return PairedComparison(a.numel(), wins, losses, a.numel() - wins - losses, sign_test(wins, losses))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: P(a split at least as uneven as wins:losses | each side 1/2), in [0, 1]."""
    for name, value in (("wins", wins), ("losses", losses)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    n = wins + losses
    if n == 0:
        return 1.0
    k = max(wins, losses)
    # P(X >= k) for X ~ Binomial(n, 1/2), summed in log space: exact for any n the course meets
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k, n + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2 * tail)


def format_p_value(p: float) -> str:
    """E.g. "p = 0.03", "p < 0.001", "p < 1e-30": small values as an order of magnitude, not as 0."""
    if p >= 0.001:
        return f"p = {p:.2g}"
    exponent = math.floor(math.log10(p)) + 1 if p > 0 else -300
    return f"p < 1e{exponent:d}" if exponent < -3 else "p < 0.001"
