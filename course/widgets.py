"""Live explorers for notebooks 04, 05 and 07, and the code-versus-pixel interpolation figure."""
# Each explorer draws into one persistent matplotlib Figure (not registered with pyplot, so it never
# leaks and never shows by itself), updates its AxesImages with set_data and renders the figure to
# PNG bytes in a widgets.Image: no flicker, and the same in JupyterLab, a headless kernel and a test.
# A callback never fails silently: its exception is kept in `.errors` and shown in `.status`.
from __future__ import annotations

import base64
import html
import io
import numbers
import traceback
from typing import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from course.data import GENERIC_NOUNS, IMAGE_SIZE, INPUT_DIM, NOUNS as DATA_NOUNS, check_images
from course.likeness import nearest_code_distance
from course.metrics import mse
from course.models import batched, interpolate
from course.plotting import reconstruction_rows
from course.training import CORRUPTIONS, make_corruption

CORRUPTION_LABELS = {"gaussian": "Gaussian", "masking": "masking", "salt-and-pepper": "salt-and-pepper"}
MAX_NOISE_STD = 1.0
MAX_LATENT_STD = 2.0
# What one image shows, as the notebooks' `data.noun` says it: used in the picker and the titles.
NOUNS = tuple(singular for singular, _ in DATA_NOUNS.values()) + (GENERIC_NOUNS[0],)
# The VAE explorer's sliders span +-3 standard deviations of the prior N(0, I): almost all its mass.
MAX_PRIOR_Z = 3.0
DRAW_LETTERS = "ABCDEFGH"  # names of the VAE explorer's prior draws, on its map and panels (at most 8)


def _as_batch(x, name: str = "x") -> torch.Tensor:
    """(N, 784) or (N, 1, 28, 28) images, tensor or array -> (N, 784) float32 CPU tensor, N >= 1 (the course's check)."""
    return check_images(x.detach() if isinstance(x, torch.Tensor) else x, name).cpu().float()


def _as_image(x, name: str) -> torch.Tensor:
    """One image, (784,), (28, 28) or any batch of one of those -> (1, 784) float32 CPU tensor."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.numel() != INPUT_DIM:
        raise ValueError(f"{name} must be one image of {INPUT_DIM} pixels (784,), (28, 28) or (1, 784), "
                         f"got shape {tuple(x.shape)}")
    return _as_batch(x.detach().reshape(1, INPUT_DIM), name)


def _check_labels(labels, n: int, class_names: Sequence[str] | None = None, of: str = "x") -> np.ndarray | None:
    """One label per row of `of` (n of them); with class_names, each an int index into them."""
    if labels is None:
        return None
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have one entry per row of {of} ({n}), got shape {labels.shape}")
    if class_names is not None:
        k = len(class_names)
        bad = [v for v in labels.tolist() if not isinstance(v, int) or not 0 <= v < k]
        if bad:
            raise ValueError(f"labels must be class indices 0 to {k - 1} (one per name of class_names), "
                             f"got {bad[0]!r}")
    return labels


def _check_noun(noun) -> str:
    if noun not in NOUNS:
        raise ValueError(f"noun must be one of {', '.join(map(repr, NOUNS))} (pass data.noun), got {noun!r}")
    return noun


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def _check_std(name: str, value, high: float) -> float:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
            or not 0.0 <= value <= high:
        raise ValueError(f"{name} must be a number in [0, {high}], got {value!r}")
    return float(value)


def _check_model(name: str, model) -> nn.Module:
    if not isinstance(model, nn.Module) or not hasattr(model, "encode") or not hasattr(model, "decode"):
        raise ValueError(f"{name} must be a course model (an nn.Module with encode and decode), "
                         f"got {type(model).__name__}")
    return model


def _generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from the keys, e.g. (seed, index): the same keys draw the same noise."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _run(model: nn.Module, x: torch.Tensor, step: Callable) -> torch.Tensor:
    """step(model, x on the model's device) in eval mode under no_grad; the result as (B, 784) on the CPU."""
    out = torch.cat([result for _, result in batched(model, x, step, batch_size=max(1, x.shape[0]))])
    return out.reshape(out.shape[0], -1).cpu().float()


def _encode(model: nn.Module, x: torch.Tensor):
    """(z, decode) for x: decode(z) -> x_hat; the unpooling conv model decodes with x's own pooling indices."""
    if hasattr(model, "encode_with_indices"):
        z, pooled = model.encode_with_indices(x)
        return z, lambda code: model.decode(code, pooled)
    return model.encode(x), model.decode


def _reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _run(model, x, lambda m, x_in: m(x_in)[1])


def _square(x: torch.Tensor) -> np.ndarray:
    return x.reshape(IMAGE_SIZE, IMAGE_SIZE).numpy().copy()


def _image_slider(n: int, noun: str, index=0) -> widgets.IntSlider:
    """The picker: which of the n images, described by the data's own noun ("digit", "garment", "image")."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < n:
        raise ValueError(f"index must be an int in [0, {n - 1}] (the first image shown), got {index!r}")
    return widgets.IntSlider(value=int(index), min=0, max=n - 1, step=1, description=noun,
                             continuous_update=True, layout=widgets.Layout(width="280px"))


class _Explorer:
    """One row of image panels in a persistent figure, re-rendered as PNG into `.image` on every change."""

    def __init__(self, panels: Sequence[str], controls: Sequence[widgets.Widget], labels: np.ndarray | None,
                 class_names: Sequence[str] | None, noun: str = "image", map_panel: bool = False):
        self.labels, self.class_names, self.noun = labels, class_names, noun
        self.panels = list(panels)
        columns = len(self.panels) + int(map_panel)
        # A map panel is drawn wider than an image panel, and the figure taller: its dots and letters must read.
        self.figure = Figure(figsize=(1.9 * (columns + 0.4 * map_panel), 3.4 if map_panel else 2.3), dpi=90)
        FigureCanvasAgg(self.figure)
        ratios = [1.4] * map_panel + [1] * len(self.panels)
        axes = list(self.figure.subplots(1, columns, squeeze=False, gridspec_kw={"width_ratios": ratios})[0])
        # An optional first panel that is not an image (the VAE explorer's map of the codes).
        self.map_ax = axes.pop(0) if map_panel else None
        self._axes = dict(zip(self.panels, axes))
        self._artists = {}
        for name, ax in self._axes.items():
            self._artists[name] = ax.imshow(np.zeros((IMAGE_SIZE, IMAGE_SIZE)), cmap="gray", vmin=0, vmax=1,
                                                interpolation="nearest")
            ax.set_axis_off()
        self.figure.subplots_adjust(left=0.04 if map_panel else 0.01, right=0.99, bottom=0.1 if map_panel else 0.02,
                                    top=0.84 if map_panel else 0.78, wspace=0.08)
        self.images: dict[str, np.ndarray] = {}
        self.mses: dict[str, float] = {}
        self.errors: list[BaseException] = []
        self.renders = 0
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML("")
        self.controls = list(controls)
        self.widget = widgets.VBox([widgets.HBox(self.controls), self.image, self.status])

    def _label(self, index: int) -> str:
        """E.g. "garment #3 (Ankle boot)": the data's noun, the index, and the class when known."""
        if self.labels is None:
            return f"{self.noun} #{index}"
        label = self.labels[index]
        name = self.class_names[int(label)] if self.class_names is not None else str(label)
        return f"{self.noun} #{index} ({name})"

    def _draw(self, images: Mapping[str, np.ndarray], titles: Mapping[str, str]) -> None:
        """Put new data into the existing AxesImages (and the map, if any), retitle, render once to PNG."""
        for name in self.panels:
            self._artists[name].set_data(images[name])
            self._axes[name].set_title(titles[name], fontsize=9)
        self._draw_map()
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        self.image.value = buffer.getvalue()
        self.images = dict(images)
        self.renders += 1

    def _safe_update(self, *_) -> None:
        """The observers' entry: update, or keep and show the error instead of letting ipywidgets log it."""
        try:
            self.update()
        except Exception as error:  # shown to the student and kept for tests, never swallowed
            self.errors.append(error)
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            self.status.value = f"<pre style='color:#b00020'>update failed: {html.escape(text)}</pre>"
        else:
            self.status.value = ""

    def _draw_map(self) -> None:
        """Redraw the non-image panel's moving parts; nothing to do without one."""

    def update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Close every widget of the explorer (the figure is freed with the object)."""
        for widget in (*self.controls, self.image, self.status, self.widget):
            widget.close()

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus a PNG of what it shows now and a line of text, for any static copy.

        JupyterLab shows the widget; an HTML export, a static site or a viewer without the widget's
        state falls back to the picture instead of the text `VBox(children=...)`.
        """
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        if self.image.value:
            data["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        data["text/plain"] = self._static_text()
        return data

    def _static_text(self) -> str:
        """What a plain-text copy shows: the explorer's name and its panels' titles."""
        titles = [" ".join(ax.get_title().split()) for ax in self._axes.values()]
        return f"{type(self).__name__} (a live widget; run the notebook to use it): " + "; ".join(titles)


class CorruptionExplorer(_Explorer):
    """Notebook 04: corrupt a test image, compare the standard and the denoising autoencoders' outputs."""

    def __init__(self, standard_model, denoising_model: nn.Module, x, labels=None, noise_std: float = 0.5,
                 kind: str = "gaussian", seed: int = 0, class_names: Sequence[str] | None = None,
                 noun: str = "image", denoising_name: str = "denoising"):
        if isinstance(standard_model, Mapping):
            if not standard_model:
                raise ValueError("standard_model must be a model or a non-empty mapping of names to models")
            models = {str(k): _check_model(f"standard_model[{k!r}]", m) for k, m in standard_model.items()}
        else:
            models = {"standard": _check_model("standard_model", standard_model)}
        if not isinstance(denoising_name, str) or not denoising_name.strip():
            raise ValueError(f"denoising_name must be a non-empty str (the denoiser's panel title), got {denoising_name!r}")
        if denoising_name in models or {"x", "x_noisy"} & set(models):
            raise ValueError(f"standard_model names must not be 'x', 'x_noisy' or {denoising_name!r} (denoising_name)")
        models[denoising_name] = _check_model("denoising_model", denoising_model)
        self.models = models
        self.x = _as_batch(x)
        labels = _check_labels(labels, self.x.shape[0], class_names)
        noun = _check_noun(noun)
        noise_std = _check_std("noise_std", noise_std, MAX_NOISE_STD)
        if kind not in CORRUPTIONS:
            raise ValueError(f"kind must be one of {', '.join(CORRUPTIONS)}, got {kind!r}")
        self.seed = _check_seed(seed)
        self.image_slider = _image_slider(self.x.shape[0], noun)
        self.kind_dropdown = widgets.Dropdown(options=[(CORRUPTION_LABELS[k], k) for k in CORRUPTIONS], value=kind,
                                              description="corruption", layout=widgets.Layout(width="240px"))
        self.noise_slider = widgets.FloatSlider(value=noise_std, min=0.0, max=MAX_NOISE_STD, step=0.05,
                                                description=self._level_name(kind), readout_format=".2f",
                                                continuous_update=True, layout=widgets.Layout(width="300px"))
        self.titles = {"x": f"clean {noun}", "x_noisy": "corrupted input",
                       **{name: name for name in models}}  # the names the notebook uses
        super().__init__(["x", "x_noisy", *models], [self.image_slider, self.kind_dropdown, self.noise_slider],
                         labels, class_names, noun)
        self.update()
        for control in self.controls:
            control.observe(self._safe_update, names="value")

    @staticmethod
    def _level_name(kind: str) -> str:
        return "noise_std" if kind == "gaussian" else "fraction"

    def update(self) -> None:
        """Corrupt the chosen image with noise fixed by (seed, index), run every model, redraw."""
        index, kind, level = self.image_slider.value, self.kind_dropdown.value, self.noise_slider.value
        self.noise_slider.description = self._level_name(kind)
        x = self.x[index:index + 1]
        x_noisy = make_corruption(kind, float(level))(x, _generator(self.seed, index))
        outputs = {"x_noisy": x_noisy, **{name: _reconstruct(m, x_noisy) for name, m in self.models.items()}}
        self.mses = {name: mse(x_hat, x) for name, x_hat in outputs.items()}
        images = {"x": _square(x), **{name: _square(x_hat) for name, x_hat in outputs.items()}}
        titles = {name: f"{self.titles[name]}\nMSE {self.mses[name]:.4f}" for name in outputs}
        titles["x"] = f"clean x\n{self._label(index)}"
        self._draw(images, titles)


class LatentExplorer(_Explorer):
    """Notebook 05: decode z + noise_std * eps for a test image's code z, with eps redrawn on demand."""

    def __init__(self, model: nn.Module, x, labels=None, noise_std: float = 0.5, seed: int = 0,
                 class_names: Sequence[str] | None = None, noun: str = "image", reference_codes=None,
                 unit: str | None = None, index: int = 0):
        self.model = _check_model("model", model)
        self.x = _as_batch(x)
        self.reference_codes = _check_reference_codes(reference_codes)
        if unit is not None and (not isinstance(unit, str) or not unit.strip()):
            raise ValueError(f"unit must be None or a non-empty str naming the code's unit, got {unit!r}")
        self.unit = unit
        labels = _check_labels(labels, self.x.shape[0], class_names)
        noun = _check_noun(noun)
        noise_std = _check_std("noise_std", noise_std, MAX_LATENT_STD)
        self.seed = _check_seed(seed)
        self.draw = 0
        self.eps: torch.Tensor | None = None
        self.image_slider = _image_slider(self.x.shape[0], noun, index)
        self.noise_slider = widgets.FloatSlider(value=noise_std, min=0.0, max=MAX_LATENT_STD, step=0.05,
                                                description="noise_std", readout_format=".2f",
                                                continuous_update=True, layout=widgets.Layout(width="300px"))
        self.resample_button = widgets.Button(description="resample eps", icon="refresh",
                                              tooltip="draw a new noise direction eps")
        super().__init__(["x", "x_hat", "x_hat_noisy"], [self.image_slider, self.noise_slider, self.resample_button],
                         labels, class_names, noun)
        self.update()
        self.image_slider.observe(self._safe_update, names="value")
        self.noise_slider.observe(self._safe_update, names="value")
        self.resample_button.on_click(self._on_resample)

    def _on_resample(self, _button=None) -> None:
        self.draw += 1
        self._safe_update()

    def resample(self) -> None:
        """Draw a new eps (the button's action)."""
        self._on_resample()

    def update(self) -> None:
        """Encode the chosen image, decode z and z + noise_std * eps (eps fixed by (seed, draw)), redraw."""
        index, noise_std = self.image_slider.value, float(self.noise_slider.value)
        x = self.x[index:index + 1]
        generator = _generator(self.seed, self.draw)

        def step(model, x_in):
            z, decode = _encode(model, x_in)
            eps = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
            self.z, self.eps = z.detach().cpu(), eps.cpu()
            return torch.cat([decode(z), decode(z + noise_std * eps)]).reshape(2, -1)

        x_hat, x_hat_noisy = _run(self.model, x, step)
        self.mses = {"x_hat": mse(x_hat, x[0]), "x_hat_noisy": mse(x_hat_noisy, x[0])}
        images = {"x": _square(x), "x_hat": _square(x_hat), "x_hat_noisy": _square(x_hat_noisy)}
        size = f"{noise_std:.2f} eps" if self.unit is None else f"{noise_std:.2f} {self.unit}"
        noisy_title = f"decode(z + {size})\nMSE {self.mses['x_hat_noisy']:.4f}"
        if self.reference_codes is not None:  # how far out the noisy code lies: the lesson's measure
            z_noisy = self.z + noise_std * self.eps
            self.distance = float(nearest_code_distance(z_noisy, self.reference_codes)[0])
            noisy_title += f"\nnearest code {self.distance:.2f}" + ("" if self.unit is None else f" {self.unit}")
        clean_title = f"decode(z)\nMSE {self.mses['x_hat']:.4f}"
        if self.reference_codes is not None:  # where the code itself lies: the noisy one's starting point
            start = float(nearest_code_distance(self.z, self.reference_codes)[0])
            clean_title += f"\nnearest code {start:.2f}" + ("" if self.unit is None else f" {self.unit}")
        titles = {"x": f"x\n{self._label(index)}", "x_hat": clean_title, "x_hat_noisy": noisy_title}
        self._draw(images, titles)


def _pair(z: torch.Tensor) -> str:
    """A 2-D code as "(+0.5, -1.2)", with no "-0.0"."""
    return "({:+.1f}, {:+.1f})".format(*(round(float(v), 1) + 0.0 for v in z))


class VAEExplorer(_Explorer):
    """Notebook 07: two sliders over a 2-D code decoding live; a button that decodes new draws z ~ N(0, I).

    With `codes` (N, 2), e.g. the means of q(z | x) of test images, a first panel maps them (coloured
    by `labels`, class names at each class's median) with the slider's z (+) and the prior draws (x).
    """

    def __init__(self, model: nn.Module, n_samples: int = 4, seed: int = 0, z: Sequence[float] = (0.0, 0.0),
                 codes=None, labels=None, class_names: Sequence[str] | None = None, noun: str = "image"):
        self.model = _check_model("model", model)
        if getattr(model, "latent_dim", None) != 2:
            raise ValueError(f"model must have a 2-D code (latent_dim=2) for the two sliders, "
                             f"got latent_dim={getattr(model, 'latent_dim', None)!r}")
        if not isinstance(n_samples, int) or isinstance(n_samples, bool) or not 1 <= n_samples <= len(DRAW_LETTERS):
            raise ValueError(f"n_samples must be an int from 1 to 8, got {n_samples!r}")
        z = self._check_z(z)
        self.seed = _check_seed(seed)
        noun = _check_noun(noun)
        self.codes = None if codes is None else self._check_codes(codes)
        if labels is not None and self.codes is None:
            raise ValueError("labels colour the map of codes: give codes (N, 2) with them, or no labels")
        labels = _check_labels(labels, 0 if self.codes is None else len(self.codes), class_names, "codes")
        self.n_samples, self.draw = n_samples, 0
        self.z_samples: torch.Tensor | None = None
        self.z1_slider, self.z2_slider = (
            widgets.FloatSlider(value=float(v), min=-MAX_PRIOR_Z, max=MAX_PRIOR_Z, step=0.1, description=name,
                                readout_format="+.1f", continuous_update=True, layout=widgets.Layout(width="260px"))
            for name, v in (("z1", z[0]), ("z2", z[1])))
        self.sample_button = widgets.Button(description="sample from the prior", icon="random",
                                            tooltip=f"decode {n_samples} new draws z ~ N(0, I)")
        panels = ["x_hat", *[f"sample_{k + 1}" for k in range(n_samples)]]
        super().__init__(panels, [self.z1_slider, self.z2_slider, self.sample_button], labels, class_names, noun,
                         map_panel=self.codes is not None)
        if self.map_ax is not None:
            self._setup_map()
        self.update()
        self.z1_slider.observe(self._safe_update, names="value")
        self.z2_slider.observe(self._safe_update, names="value")
        self.sample_button.on_click(self._on_sample)

    @staticmethod
    def _check_z(z) -> tuple[float, float]:
        """Two real numbers in [-3, 3]: a tuple, list, array or tensor of 2, Python or numpy numbers alike."""
        if isinstance(z, torch.Tensor):
            z = z.detach().cpu().flatten().tolist()
        elif isinstance(z, np.ndarray):
            z = z.flatten().tolist()
        values = tuple(z) if isinstance(z, (tuple, list)) else None
        if values is None or len(values) != 2 or not all(
                isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and np.isfinite(float(v))
                and -MAX_PRIOR_Z <= float(v) <= MAX_PRIOR_Z for v in values):
            raise ValueError(f"z must be 2 numbers in [-{MAX_PRIOR_Z:g}, {MAX_PRIOR_Z:g}], got {z!r}")
        return float(values[0]), float(values[1])

    @staticmethod
    def _check_codes(codes) -> torch.Tensor:
        codes = torch.as_tensor(codes.detach().cpu() if isinstance(codes, torch.Tensor) else np.asarray(codes),
                                dtype=torch.float32)
        if codes.dim() != 2 or codes.shape[1] != 2 or codes.shape[0] == 0 or not torch.isfinite(codes).all():
            raise ValueError(f"codes must be finite 2-D codes of shape (N, 2) with N >= 1, got {tuple(codes.shape)}")
        return codes

    def _setup_map(self) -> None:
        """The codes as dots (drawn once); a + for the sliders' z and x marks for the prior draws (moved later)."""
        ax, z = self.map_ax, self.codes.numpy()
        colours = None
        if self.labels is not None:  # one colour per class: int labels by their index, others (names) in sorted order
            distinct = list(np.unique(self.labels))
            colour_of = {v: (int(v) if np.issubdtype(type(v), np.integer) else k) for k, v in enumerate(distinct)}
            colours = [f"C{colour_of[v] % 10}" for v in self.labels]
        ax.scatter(z[:, 0], z[:, 1], s=1.5, c=colours or "0.6", alpha=0.5, linewidths=0)
        if self.labels is not None:
            classes = np.unique(self.labels)
            centres = np.stack([np.median(z[self.labels == label], axis=0) for label in classes])
            for label, centre in zip(classes, spread_labels(centres)):
                name = self.class_names[int(label)] if self.class_names is not None else str(label)
                ax.text(*centre, name, fontsize=6, ha="center", va="center", color="black",
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
        # the marks above the class names (zorder), lettered as the panels' prior draws (digits would read as classes)
        (self._samples_mark,) = ax.plot([], [], "x", color="black", markersize=6, markeredgewidth=1.5, zorder=5)
        self._draw_letters = [ax.text(0, 0, DRAW_LETTERS[k], fontsize=6, fontweight="bold", color="red", zorder=6,
                                        visible=False) for k in range(self.n_samples)]
        (self._z_mark,) = ax.plot([], [], "+", color="red", markersize=12, markeredgewidth=2, zorder=6)
        ax.set_xlim(-MAX_PRIOR_Z - 0.2, MAX_PRIOR_Z + 0.2)
        ax.set_ylim(-MAX_PRIOR_Z - 0.2, MAX_PRIOR_Z + 0.2)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.8", linewidth=0.5, zorder=0)
        ax.axvline(0, color="0.8", linewidth=0.5, zorder=0)
        ticks = [-MAX_PRIOR_Z, 0.0, MAX_PRIOR_Z]  # the sliders' range
        ax.set_xticks(ticks), ax.set_yticks(ticks)
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_xlabel("z1", fontsize=7, labelpad=0), ax.set_ylabel("z2", fontsize=7, labelpad=0)
        ax.set_title(f"codes of {self.noun}s", fontsize=9)

    def _draw_map(self) -> None:
        if self.map_ax is None:
            return
        self._z_mark.set_data([self.z1_slider.value], [self.z2_slider.value])
        self._samples_mark.set_data(self.z_samples[:, 0].numpy(), self.z_samples[:, 1].numpy())
        for letter, (z1, z2) in zip(self._draw_letters, self.z_samples.tolist()):
            letter.set(position=(z1 + 0.15, z2 + 0.15), visible=abs(z1) < MAX_PRIOR_Z and abs(z2) < MAX_PRIOR_Z)

    def _on_sample(self, _button=None) -> None:
        self.draw += 1
        self._safe_update()

    def sample(self) -> None:
        """Decode new draws from the prior (the button's action)."""
        self._on_sample()

    def update(self) -> None:
        """Decode the sliders' z and n_samples draws z ~ N(0, I) fixed by (seed, draw), redraw."""
        z = torch.tensor([[float(self.z1_slider.value), float(self.z2_slider.value)]])  # (1, 2)
        self.z_samples = torch.randn(self.n_samples, 2, generator=_generator(self.seed, self.draw))  # (n, 2)
        x_hat = _run(self.model, torch.cat([z, self.z_samples]), lambda m, code: m.decode(code))  # (1 + n, 784)
        images = {name: _square(image) for name, image in zip(self.panels, x_hat)}
        titles = {"x_hat": f"decode(z)\nz = {_pair(z[0])}"}
        for k, code in enumerate(self.z_samples):
            titles[f"sample_{k + 1}"] = f"prior draw {DRAW_LETTERS[k]}\nz = {_pair(code)}"
        self._draw(images, titles)


def corruption_explorer(standard_model, denoising_model: nn.Module, x, labels=None, noise_std: float = 0.5,
                        kind: str = "gaussian", seed: int = 0, class_names: Sequence[str] | None = None,
                        noun: str = "image", denoising_name: str = "denoising") -> CorruptionExplorer:
    """Notebook 04's widget: corruption kind and level, image picker; noisy input, standard and denoising outputs."""
    return CorruptionExplorer(standard_model, denoising_model, x, labels=labels, noise_std=noise_std, kind=kind,
                              seed=seed, class_names=class_names, noun=noun, denoising_name=denoising_name)


def latent_explorer(model: nn.Module, x, labels=None, noise_std: float = 0.5, seed: int = 0,
                    class_names: Sequence[str] | None = None, noun: str = "image",
                    reference_codes=None, unit: str | None = None, index: int = 0) -> LatentExplorer:
    """Notebook 05's widget: latent noise_std slider, resample button, image picker; x, decode(z), decode(z + noise),
    with the noisy code's distance to the nearest of `reference_codes` (M, d), in the model's code units, if given.

    unit names the model's code unit in the titles ("spreads" for standardised codes); None writes "eps".
    index is the image shown first.
    """
    return LatentExplorer(model, x, labels=labels, noise_std=noise_std, seed=seed, class_names=class_names, noun=noun,
                          reference_codes=reference_codes, unit=unit, index=index)


def _check_reference_codes(reference_codes) -> torch.Tensor | None:
    """None, or (M, d) codes with M >= 1 as a float CPU tensor."""
    if reference_codes is None:
        return None
    if not isinstance(reference_codes, torch.Tensor) or reference_codes.dim() != 2 or reference_codes.shape[0] == 0:
        raise ValueError("reference_codes must be None or a (M, d) tensor of codes with M >= 1, got "
                         f"{getattr(reference_codes, 'shape', type(reference_codes).__name__)}")
    return reference_codes.detach().float().cpu()


def interpolation_figure(model: nn.Module, x_a, x_b, steps: int = 10, axes=None) -> Figure:
    """Two rows from x_a to x_b: decodings of codes on the line between theirs (models.interpolate) above,
    pixel-space blends (1 - t) x_a + t x_b below."""
    _check_model("model", model)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    x_a, x_b = _as_image(x_a, "x_a"), _as_image(x_b, "x_b")

    def step(m, x_in):
        z = m.encode(x_in)  # (2, ...) the codes of x_a and x_b
        line = interpolate(z[0].flatten(), z[1].flatten(), steps)  # (steps, code size)
        return m.decode(line.reshape(steps, *z.shape[1:]))

    code = _run(model, torch.cat([x_a, x_b]), step)
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    pixel = (1 - t) * x_a + t * x_b
    side = (steps, IMAGE_SIZE, IMAGE_SIZE)
    if axes is None:
        _, axes = plt.subplots(2, steps, figsize=(0.9 * steps, 2.3), squeeze=False)
    axes = np.asarray(axes).reshape(2, -1)
    fig = reconstruction_rows({"between codes": code.reshape(side).numpy(), "between pixels": pixel.reshape(side).numpy()},
                              n=steps, axes=axes)
    for ax, value in zip(axes[0], t.squeeze(1).tolist()):
        ax.set_title(f"t={value:.2f}", fontsize=8)
    return fig


def spread_labels(centres: np.ndarray, width: float = 1.6, height: float = 0.45, rounds: int = 100) -> np.ndarray:
    """Label positions (K, 2) near `centres`, moved apart up and down until no two labels' boxes overlap.

    Why: the medians of overlapping classes can coincide, and their names would print on top of each other.
    """
    pos = np.array(centres, dtype=float).reshape(-1, 2).copy()
    for _ in range(rounds):
        moved = False
        for i in range(len(pos)):
            for j in range(i + 1, len(pos)):
                gap = abs(pos[i, 1] - pos[j, 1])
                if abs(pos[i, 0] - pos[j, 0]) < width and gap < height:
                    up = 1.0 if (pos[i, 1], i) >= (pos[j, 1], j) else -1.0
                    push = (height - gap) / 2 + 1e-3
                    pos[i, 1] += up * push
                    pos[j, 1] -= up * push
                    moved = True
        if not moved:
            break
    return pos


def vae_explorer(model: nn.Module, n_samples: int = 4, seed: int = 0, z: Sequence[float] = (0.0, 0.0), codes=None,
                 labels=None, class_names: Sequence[str] | None = None, noun: str = "image") -> VAEExplorer:
    """Notebook 07's widget: sliders z1, z2 over a 2-D code, decoded live; a button decoding new z ~ N(0, I)."""
    return VAEExplorer(model, n_samples=n_samples, seed=seed, z=z, codes=codes, labels=labels,
                       class_names=class_names, noun=noun)
