"""How data-like sets of images are, as one table: notebooks 05 and 07 measure sets by name and show the rows.

Each row holds the probe's Fréchet distance to the test images (course.metrics.probe_frechet_distance),
optionally the median MSE to the nearest training image and, for decoded codes, the median distance of
the codes to the nearest training code. The chunking and the memory care live here, not in the notebooks.
"""
from __future__ import annotations

from typing import Iterable

import torch

from course.data import DigitData, check_images
from course.metrics import likeness_controls, nearest_neighbour_mse, probe_frechet_distance

FRECHET = "Fréchet distance"
NEAREST_MSE = "MSE to the nearest training image"
CODE_DISTANCE = "distance to the nearest training code"
KIND = "kind"
FORMATS = {FRECHET: "{:.2f}", NEAREST_MSE: "{:.4f}", CODE_DISTANCE: "{:.2f}"}
REFERENCE_CHUNK = 2500  # reference rows compared at once: a few MB of distances, no float copy of a whole split


def nearest_code_distance(z: torch.Tensor, reference: torch.Tensor, scale: torch.Tensor | None = None,
                          chunk: int = REFERENCE_CHUNK) -> torch.Tensor:
    """For each code of z (N, d), the Euclidean distance to its nearest code in `reference` (M, d): (N,) on the CPU.

    With `scale` (d,), e.g. the codes' std per dimension, each dimension is measured in those units.
    """
    z, reference = z.detach().float().cpu().reshape(z.shape[0], -1), reference.detach().float().cpu()
    reference = reference.reshape(reference.shape[0], -1)
    if z.shape[1] != reference.shape[1] or reference.shape[0] == 0:
        raise ValueError(f"z and reference must be codes of the same size, reference not empty: got "
                         f"{tuple(z.shape)} and {tuple(reference.shape)}")
    if scale is not None:
        scale = torch.as_tensor(scale, dtype=torch.float32).flatten()
        if scale.shape != (z.shape[1],) or not bool((scale > 0).all()):
            raise ValueError(f"scale must be {z.shape[1]} numbers > 0 (one per code dimension), got {tuple(scale.shape)}")
        z = z / scale
    best = torch.full((z.shape[0],), float("inf"))
    for part in reference.split(chunk):
        part = part / scale if scale is not None else part
        best = torch.minimum(best, torch.cdist(z, part).min(1).values)
    return best


class LikenessTable:
    """Sets of images measured by name: the Fréchet distance, and the nearest-image and nearest-code figures.

    table = LikenessTable(data, seed=seed, n_nearest=200); names = table.add_controls(n=1000);
    table.measure("decoded codes", x, z=codes); table.show(names + ["decoded codes"]); table.frechet(name).
    n_nearest=None (or 0) skips the nearest-training-image MSE (07 needs the Fréchet distance only).
    """

    def __init__(self, data: DigitData, seed: int = 0, n_nearest: int | None = 200,
                 reference_codes: torch.Tensor | None = None, code_scale: torch.Tensor | None = None):
        if not isinstance(data, DigitData):
            raise ValueError(f"data must be the notebook's DigitData (run.data), got {type(data).__name__}")
        if n_nearest is not None and (not isinstance(n_nearest, int) or isinstance(n_nearest, bool) or n_nearest < 0):
            raise ValueError(f"n_nearest must be None or an int >= 0, got {n_nearest!r}")
        self.data, self.seed, self.n_nearest = data, seed, n_nearest or 0
        self.reference_codes, self.code_scale = reference_codes, code_scale
        self.rows: dict[str, dict] = {}

    def set_reference_codes(self, codes: torch.Tensor, scale: torch.Tensor | None = None) -> None:
        """The training codes that `measure(..., z=)` measures distances to, in units of `scale` per dimension."""
        self.reference_codes, self.code_scale = codes, scale

    def measure(self, name: str, x: torch.Tensor, z: torch.Tensor | None = None, kind: str | None = None) -> dict:
        """Measure the images x (uint8 or float in [0, 1]) as the row `name`; with codes z, their code distance too."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        x = check_images(x, "x", min_count=2)
        row = {} if kind is None else {KIND: kind}
        row[FRECHET] = probe_frechet_distance(x, self.data, seed=self.seed)
        if self.n_nearest:
            row[NEAREST_MSE] = median_nearest_mse(x[:self.n_nearest], self.data.train.pixels)
        if z is not None:
            if self.reference_codes is None:
                raise ValueError("give the training codes first (set_reference_codes, or reference_codes=) to "
                                 "measure the distance of z to them")
            # every code (cheap in a small code space), so that the median matches one computed from all of z
            row[CODE_DISTANCE] = float(nearest_code_distance(z, self.reference_codes, self.code_scale).median())
        self.rows[name] = row
        return row

    def add_controls(self, n: int | None = None, blur_sigma: float = 1.0, noise_std: float = 0.3) -> list[str]:
        """Measure likeness_controls' sets (real, blurred, mean image, pixel noise, uniform noise); their names, in order."""
        controls = likeness_controls(self.data, n=n, seed=self.seed, blur_sigma=blur_sigma, noise_std=noise_std)
        names = list(controls)
        for name in names:
            self.measure(name, controls.pop(name), kind="control")  # each set freed once measured
        return names

    def __getitem__(self, name: str) -> dict:
        if name not in self.rows:
            raise KeyError(f"no set named {name!r} was measured; measured: {list(self.rows)}")
        return self.rows[name]

    def __contains__(self, name: str) -> bool:
        return name in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def frechet(self, name: str) -> float:
        """The Fréchet distance measured for the named set."""
        return self[name][FRECHET]

    def nearest_mse(self, name: str) -> float:
        """The median MSE to the nearest training image measured for the named set."""
        return self[name][NEAREST_MSE]

    def code_distance(self, name: str) -> float:
        """The median distance to the nearest training code measured for the named set."""
        return self[name][CODE_DISTANCE]

    def show(self, names: Iterable[str] | None = None, caption: str | None = None, sort: bool = False,
             columns: Iterable[str] | None = None):
        """The rows of the named sets (default: all, in the order measured) as a table, `columns` of FORMATS only; the DataFrame."""
        from course.notebook import show_table

        names = list(self.rows) if names is None else list(names)
        keep = set(FORMATS) if columns is None else set(columns)
        if not keep <= set(FORMATS):
            raise ValueError(f"columns must be among {list(FORMATS)}, got {sorted(keep - set(FORMATS))}")
        rows = [{"images": name, **{k: v for k, v in self[name].items() if k in keep}} for name in names]
        if sort:
            rows.sort(key=lambda row: row[FRECHET])
        return show_table(rows, index="images", formats=FORMATS, caption=caption, index_name=False)

    def record(self, digits: int = 5) -> dict:
        """Every row as plain rounded numbers, for the metrics record."""
        return {name: {k: (round(v, digits) if isinstance(v, float) else v) for k, v in row.items()}
                for name, row in self.rows.items()}


def median_nearest_mse(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The median, over the images of x, of the MSE per pixel to the nearest image of `reference` (chunked)."""
    return float(nearest_neighbour_mse(x, reference).median())
