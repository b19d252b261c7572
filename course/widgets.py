"""Live explorers for notebooks 04 and 05, and the code-versus-pixel interpolation figure."""
# Each explorer draws into one persistent matplotlib Figure (not registered with pyplot, so it never
# leaks and never shows by itself), updates its AxesImages with set_data and renders the figure to
# PNG bytes in a widgets.Image: no flicker, and the same in JupyterLab, a headless kernel and a test.
# A callback never fails silently: its exception is kept in `.errors` and shown in `.status`.
from __future__ import annotations

import html
import io
import traceback
from typing import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from course.metrics import mse
from course.models import IMAGE_SIZE, INPUT_DIM, batched
from course.plotting import reconstruction_rows
from course.training import CORRUPTIONS, make_corruption

CORRUPTION_LABELS = {"gaussian": "Gaussian", "masking": "masking", "salt-and-pepper": "salt-and-pepper"}
MAX_NOISE_STD = 1.0
MAX_LATENT_STD = 2.0


def _as_batch(x, name: str = "x") -> torch.Tensor:
    """(N, 784) or (N, 1, 28, 28) tensor or array -> (N, 784) float32 CPU tensor, N >= 1."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be a tensor or array of images, got {type(x).__name__}") from error
    shape = tuple(x.shape)
    if shape[1:] == (1, IMAGE_SIZE, IMAGE_SIZE) and len(shape) == 4:
        x = x.reshape(shape[0], INPUT_DIM)
    if x.dim() != 2 or x.shape[1] != INPUT_DIM or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, {INPUT_DIM}) or (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}) "
                         f"with N >= 1, got {shape}")
    return x.detach().cpu().float()


def _as_image(x, name: str) -> torch.Tensor:
    """One image, (784,), (28, 28) or any batch of one of those -> (1, 784) float32 CPU tensor."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.numel() != INPUT_DIM:
        raise ValueError(f"{name} must be one image of {INPUT_DIM} pixels (784,), (28, 28) or (1, 784), "
                         f"got shape {tuple(x.shape)}")
    return x.detach().cpu().float().reshape(1, INPUT_DIM)


def _check_labels(labels, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have one entry per image of x ({n}), got shape {labels.shape}")
    return labels


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
    """A CPU generator seeded from the keys, e.g. (seed, digit): the same keys draw the same noise."""
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


def _digit_slider(n: int) -> widgets.IntSlider:
    return widgets.IntSlider(value=0, min=0, max=n - 1, step=1, description="digit",
                             continuous_update=True, layout=widgets.Layout(width="280px"))


class _Explorer:
    """One row of image panels in a persistent figure, re-rendered as PNG into `.image` on every change."""

    def __init__(self, panels: Sequence[str], controls: Sequence[widgets.Widget], labels: np.ndarray | None,
                 class_names: Sequence[str] | None):
        self.labels, self.class_names = labels, class_names
        self.panels = list(panels)
        self.figure = Figure(figsize=(1.9 * len(self.panels), 2.3), dpi=90)
        FigureCanvasAgg(self.figure)
        axes = self.figure.subplots(1, len(self.panels), squeeze=False)[0]
        self._axes = dict(zip(self.panels, axes))
        self._artists = {}
        for name, ax in self._axes.items():
            self._artists[name] = ax.imshow(np.zeros((IMAGE_SIZE, IMAGE_SIZE)), cmap="gray", vmin=0, vmax=1,
                                                interpolation="nearest")
            ax.set_axis_off()
        self.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.78, wspace=0.08)
        self.images: dict[str, np.ndarray] = {}
        self.mses: dict[str, float] = {}
        self.errors: list[BaseException] = []
        self.renders = 0
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML("")
        self.controls = list(controls)
        self.widget = widgets.VBox([widgets.HBox(self.controls), self.image, self.status])

    def _label(self, index: int) -> str:
        if self.labels is None:
            return f"#{index}"
        label = self.labels[index]
        name = self.class_names[int(label)] if self.class_names is not None else str(label)
        return f"#{index} ({name})"

    def _draw(self, images: Mapping[str, np.ndarray], titles: Mapping[str, str]) -> None:
        """Put new data into the existing AxesImages, retitle, render once to PNG."""
        for name in self.panels:
            self._artists[name].set_data(images[name])
            self._axes[name].set_title(titles[name], fontsize=9)
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

    def update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Close every widget of the explorer (the figure is freed with the object)."""
        for widget in (*self.controls, self.image, self.status, self.widget):
            widget.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class CorruptionExplorer(_Explorer):
    """Notebook 04: corrupt a test digit, compare the standard and the denoising autoencoders' outputs."""

    def __init__(self, standard_model, denoising_model: nn.Module, x, labels=None, noise_std: float = 0.5,
                 kind: str = "gaussian", seed: int = 0, class_names: Sequence[str] | None = None):
        if isinstance(standard_model, Mapping):
            if not standard_model:
                raise ValueError("standard_model must be a model or a non-empty mapping of names to models")
            models = {str(k): _check_model(f"standard_model[{k!r}]", m) for k, m in standard_model.items()}
        else:
            models = {"standard": _check_model("standard_model", standard_model)}
        if "denoising" in models or {"x", "x_noisy"} & set(models):
            raise ValueError("standard_model names must not be 'x', 'x_noisy' or 'denoising'")
        models["denoising"] = _check_model("denoising_model", denoising_model)
        self.models = models
        self.x = _as_batch(x)
        labels = _check_labels(labels, self.x.shape[0])
        noise_std = _check_std("noise_std", noise_std, MAX_NOISE_STD)
        if kind not in CORRUPTIONS:
            raise ValueError(f"kind must be one of {', '.join(CORRUPTIONS)}, got {kind!r}")
        self.seed = _check_seed(seed)
        self.digit_slider = _digit_slider(self.x.shape[0])
        self.kind_dropdown = widgets.Dropdown(options=[(CORRUPTION_LABELS[k], k) for k in CORRUPTIONS], value=kind,
                                              description="corruption", layout=widgets.Layout(width="240px"))
        self.noise_slider = widgets.FloatSlider(value=noise_std, min=0.0, max=MAX_NOISE_STD, step=0.05,
                                                description=self._level_name(kind), readout_format=".2f",
                                                continuous_update=True, layout=widgets.Layout(width="300px"))
        self.titles = {"x": "clean x", "x_noisy": "noisy input",
                       **{name: f"{name} AE" for name in models}}
        super().__init__(["x", "x_noisy", *models], [self.digit_slider, self.kind_dropdown, self.noise_slider],
                         labels, class_names)
        self.update()
        for control in self.controls:
            control.observe(self._safe_update, names="value")

    @staticmethod
    def _level_name(kind: str) -> str:
        return "noise_std" if kind == "gaussian" else "fraction"

    def update(self) -> None:
        """Corrupt the chosen digit with noise fixed by (seed, digit), run every model, redraw."""
        index, kind, level = self.digit_slider.value, self.kind_dropdown.value, self.noise_slider.value
        self.noise_slider.description = self._level_name(kind)
        x = self.x[index:index + 1]
        x_noisy = make_corruption(kind, float(level))(x, _generator(self.seed, index))
        outputs = {"x_noisy": x_noisy, **{name: _reconstruct(m, x_noisy) for name, m in self.models.items()}}
        self.mses = {name: mse(x_hat, x) for name, x_hat in outputs.items()}
        images = {"x": _square(x), **{name: _square(x_hat) for name, x_hat in outputs.items()}}
        titles = {name: f"{self.titles[name]}\nMSE {self.mses[name]:.4f}" for name in outputs}
        titles["x"] = f"clean x {self._label(index)}"
        self._draw(images, titles)


class LatentExplorer(_Explorer):
    """Notebook 05: decode z + noise_std * eps for a test digit's code z, with eps redrawn on demand."""

    def __init__(self, model: nn.Module, x, labels=None, noise_std: float = 0.5, seed: int = 0,
                 class_names: Sequence[str] | None = None):
        self.model = _check_model("model", model)
        self.x = _as_batch(x)
        labels = _check_labels(labels, self.x.shape[0])
        noise_std = _check_std("noise_std", noise_std, MAX_LATENT_STD)
        self.seed = _check_seed(seed)
        self.draw = 0
        self.eps: torch.Tensor | None = None
        self.digit_slider = _digit_slider(self.x.shape[0])
        self.noise_slider = widgets.FloatSlider(value=noise_std, min=0.0, max=MAX_LATENT_STD, step=0.05,
                                                description="noise_std", readout_format=".2f",
                                                continuous_update=True, layout=widgets.Layout(width="300px"))
        self.resample_button = widgets.Button(description="resample eps", icon="refresh",
                                              tooltip="draw a new noise direction eps")
        super().__init__(["x", "x_hat", "x_hat_noisy"], [self.digit_slider, self.noise_slider, self.resample_button],
                         labels, class_names)
        self.update()
        self.digit_slider.observe(self._safe_update, names="value")
        self.noise_slider.observe(self._safe_update, names="value")
        self.resample_button.on_click(self._on_resample)

    def _on_resample(self, _button=None) -> None:
        self.draw += 1
        self._safe_update()

    def resample(self) -> None:
        """Draw a new eps (the button's action)."""
        self._on_resample()

    def update(self) -> None:
        """Encode the chosen digit, decode z and z + noise_std * eps (eps fixed by (seed, draw)), redraw."""
        index, noise_std = self.digit_slider.value, float(self.noise_slider.value)
        x = self.x[index:index + 1]
        generator = _generator(self.seed, self.draw)

        def step(model, x_in):
            z, decode = _encode(model, x_in)
            eps = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
            self.eps = eps.cpu()
            return torch.cat([decode(z), decode(z + noise_std * eps)]).reshape(2, -1)

        x_hat, x_hat_noisy = _run(self.model, x, step)
        self.mses = {"x_hat": mse(x_hat, x[0]), "x_hat_noisy": mse(x_hat_noisy, x[0])}
        images = {"x": _square(x), "x_hat": _square(x_hat), "x_hat_noisy": _square(x_hat_noisy)}
        titles = {"x": f"x {self._label(index)}",
                  "x_hat": f"decode(z)\nMSE {self.mses['x_hat']:.4f}",
                  "x_hat_noisy": f"decode(z + {noise_std:.2f} eps)\nMSE {self.mses['x_hat_noisy']:.4f}"}
        self._draw(images, titles)


def corruption_explorer(standard_model, denoising_model: nn.Module, x, labels=None, noise_std: float = 0.5,
                        kind: str = "gaussian", seed: int = 0,
                        class_names: Sequence[str] | None = None) -> CorruptionExplorer:
    """Notebook 04's widget: corruption kind and level, digit picker; noisy input, standard and denoising outputs."""
    return CorruptionExplorer(standard_model, denoising_model, x, labels=labels, noise_std=noise_std, kind=kind,
                              seed=seed, class_names=class_names)


def latent_explorer(model: nn.Module, x, labels=None, noise_std: float = 0.5, seed: int = 0,
                    class_names: Sequence[str] | None = None) -> LatentExplorer:
    """Notebook 05's widget: latent noise_std slider, resample button, digit picker; x, decode(z), decode(z + noise)."""
    return LatentExplorer(model, x, labels=labels, noise_std=noise_std, seed=seed, class_names=class_names)


def interpolation(model: nn.Module, x_a, x_b, steps: int = 10) -> dict[str, np.ndarray]:
    """t (steps,), and (steps, 28, 28) images: "code" decodes (1-t) z_a + t z_b, "pixel" is (1-t) x_a + t x_b."""
    _check_model("model", model)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    x_a, x_b = _as_image(x_a, "x_a"), _as_image(x_b, "x_b")
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)

    def step(m, x_in):
        z = m.encode(x_in)
        z_a, z_b = z[:1], z[1:]
        weights = t.to(z.device, z.dtype).reshape(-1, *([1] * (z.dim() - 1)))
        return m.decode((1 - weights) * z_a + weights * z_b)

    code = _run(model, torch.cat([x_a, x_b]), step)
    pixel = (1 - t) * x_a + t * x_b
    side = (steps, IMAGE_SIZE, IMAGE_SIZE)
    return {"t": t.squeeze(1).numpy(), "code": code.reshape(side).numpy(), "pixel": pixel.reshape(side).numpy()}


def interpolation_figure(model: nn.Module, x_a, x_b, steps: int = 10, axes=None) -> Figure:
    """Two rows from x_a to x_b: decodings of interpolated codes above, pixel-space blends below."""
    result = interpolation(model, x_a, x_b, steps)
    if axes is None:
        _, axes = plt.subplots(2, steps, figsize=(0.9 * steps, 2.3), squeeze=False)
    axes = np.asarray(axes).reshape(2, -1)
    fig = reconstruction_rows({"between codes": result["code"], "between pixels": result["pixel"]},
                              n=steps, axes=axes)
    for ax, t in zip(axes[0], result["t"]):
        ax.set_title(f"t={t:.2f}", fontsize=8)
    return fig
