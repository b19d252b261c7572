"""Maps of a 2-D code space (notebook 07): a decoded grid of codes, and the prior's circles."""
from __future__ import annotations

import math

import torch
from torch import nn

from course.findings import Finding, finding
from course.models import IMAGE_SIZE, evaluating, model_device


def code_grid(reach: float = 3.0, side: int = 15) -> torch.Tensor:
    """A side x side grid of 2-D codes from -reach to reach, (side * side, 2), rows from the top (z2 falls)."""
    if not isinstance(side, int) or isinstance(side, bool) or side < 2:
        raise ValueError(f"side must be an int of at least 2, got {side!r}")
    if not reach > 0:
        raise ValueError(f"reach must be a positive number, got {reach!r}")
    ticks = torch.linspace(-reach, reach, side)
    return torch.stack(torch.meshgrid(ticks, ticks.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)


def decoded_grid(model: nn.Module, reach: float = 3.0, side: int = 15) -> torch.Tensor:
    """decode(z) over code_grid(reach, side), tiled into one (side * 28, side * 28) picture on the CPU."""
    z = code_grid(reach, side)
    with evaluating(model):
        tiles = model.decode(z.to(model_device(model))).cpu().reshape(side, side, IMAGE_SIZE, IMAGE_SIZE)
    return tiles.permute(0, 2, 1, 3).reshape(side * IMAGE_SIZE, side * IMAGE_SIZE)


def share_within(z: torch.Tensor, radius: float) -> float:
    """The share of the 2-D (or wider) codes z, (N, d), whose distance to the origin is at most radius."""
    if z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"z must have shape (N, d) with N > 0, got {tuple(z.shape)}")
    return float((z.float().norm(dim=1) <= radius).float().mean())


def prior_share_within(radius: float, dim: int = 2) -> float:
    """The probability that a draw of N(0, I) in `dim` = 2 dimensions lies within radius of the origin."""
    if dim != 2:
        raise ValueError(f"dim must be 2 (the closed form 1 - exp(-r^2 / 2) holds in the plane), got {dim!r}")
    return 1.0 - math.exp(-radius ** 2 / 2)


def prior_circles(ax, radii=(1.0, 2.0, 3.0), square: float | None = None) -> None:
    """Draw the prior's 1, 2 and 3 sigma circles (and, given `square`, the box |z1|, |z2| <= square) with a legend below."""
    from matplotlib.patches import Circle, Rectangle

    patches = [ax.add_patch(Circle((0, 0), radius, fill=False, color="black", linestyle=style, linewidth=1.2,
                                   label=f"prior: {radius:g}σ ({prior_share_within(radius):.0%} of its draws)"))
               for radius, style in zip(radii, ("-", "--", ":"))]
    if square is not None:
        patches.append(ax.add_patch(Rectangle((-square, -square), 2 * square, 2 * square, fill=False, color="red",
                                              linewidth=1.0, label=f"the decoded grid (±{square:g})")))
    earlier = ax.get_legend()  # the class legend stays: a second legend would replace it
    ax.legend(handles=patches, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    if earlier is not None:
        ax.add_artist(earlier).set_clip_on(False)  # add_artist clips to the axes; this legend lies outside them


def centre_finding(z: torch.Tensor) -> Finding:
    """How the 2-D codes z (N, 2) fill the prior's centre: their share within 1 sigma against its draws'."""
    codes_share, prior_share = share_within(z, 1.0), prior_share_within(1.0)
    ratio = codes_share / prior_share
    return finding("empty" if ratio < 0.5 else "thin" if ratio < 0.8 else "full", {
        "empty": "the VAE's codes leave the prior's centre partly empty: {a:.0%} of them lie within 1σ, against {b:.0%} "
                 "of the prior's draws, so many draws land where few codes lie.",
        "thin": "the VAE's codes fill the prior's centre more thinly than its draws: {a:.0%} of them lie within 1σ, "
                "against {b:.0%} of the prior's draws.",
        "full": "the VAE's codes fill the prior's centre about as its draws do: {a:.0%} of them lie within 1σ, against "
                "{b:.0%} of the prior's draws."}, a=codes_share, b=prior_share)
