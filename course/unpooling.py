"""Notebook 06's controls for the unpooling decoder: indices that carry nothing, and the index swap."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from course.checkpoints import Trained, train_or_load
from course.data import DigitData, to_float
from course.findings import Finding, finding
from course.models import IMAGE_SIZE, CodeOnlyDecoder, ConvAutoencoder, ConvCodeAutoencoder, evaluating, model_device
from course.notebook import show_table

# What each of notebook 06's three decoders gets, in the order the notebook trains them.
DECODER_GETS = ("code + the encoder's indices", "code + the same indices for all", "code")

# The sides of the encoder's feature maps just before each pooling: 28 -> 26, 13 -> 11, 5 -> 3.
_POOLED_FROM = ((IMAGE_SIZE - 2, IMAGE_SIZE - 2), (11, 11), (3, 3))


def fixed_random_indices(channels: int, pooled: Sequence[int], size: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Pooling indices (channels, h, w) into a `size` map, one random pixel of each 2x2 window, drawn once with `seed`."""
    h, w = pooled
    if not (isinstance(channels, int) and channels > 0 and 0 < 2 * h <= size[0] and 0 < 2 * w <= size[1]):
        raise ValueError(f"channels must be a positive int and a ({h}, {w}) pooled map must fit a 2x2 pooling "
                         f"of size {tuple(size)}, got channels={channels!r}")
    generator = torch.Generator().manual_seed(seed)
    dy, dx = torch.randint(0, 2, (2, channels, h, w), generator=generator)  # the pixel of each window
    rows = torch.arange(h)[:, None] * 2 + dy
    cols = torch.arange(w)[None, :] * 2 + dx
    return rows * size[1] + cols  # index into the flattened H x W map


class FixedIndexUnpoolAutoencoder(ConvAutoencoder):
    """The unpooling autoencoder whose decoder gets the same uninformative indices for every image.

    The encoder, the decoder's layers and the parameters are those of ConvAutoencoder; only the
    indices differ: every unpooling writes its value into one pixel of its 2x2 window, chosen at
    random once (a buffer, the same for every image), so everything the decoder knows about an image
    has to pass through the 16-number code.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 16), seed: int = 0):
        super().__init__(channels)
        for name, c, size in zip(("indices1", "indices2", "indices3"), channels, _POOLED_FROM):
            pooled = (size[0] // 2, size[1] // 2)
            self.register_buffer(name, fixed_random_indices(c, pooled, size, seed), persistent=False)

    def decode(self, z: torch.Tensor, pooled: list | None = None) -> torch.Tensor:
        if pooled is not None:
            raise ValueError("FixedIndexUnpoolAutoencoder.decode takes the code z only (pooled must be None): "
                             "its decoder unpools with fixed indices, never the encoder's")
        h = z
        fixed = (self.indices3, self.indices2, self.indices1)
        for deconv, indices, size in zip(self.transposed_convs, fixed, reversed(_POOLED_FROM)):
            h = self.unpool(h, indices.expand(h.shape[0], -1, -1, -1).contiguous(), output_size=size)
            h = deconv(h)  # 3 -> 5, 11 -> 13, 26 -> 28
            h = self.relu(h) if deconv is not self.deconv3 else torch.sigmoid(h)
        return h  # (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


def _check_layers(layers, n_layers: int) -> tuple[int, ...]:
    """None (every pooling layer) or pooling-layer numbers from 1 to n_layers, as a tuple of 0-based positions."""
    if layers is None:
        return tuple(range(n_layers))
    layers = tuple(layers)
    if not layers or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_layers for k in layers):
        raise ValueError(f"layers must be None or pooling-layer numbers from 1 to {n_layers}, got {layers!r}")
    return tuple(k - 1 for k in layers)


def swapped_decode(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, layers: Sequence[int] | None = None) -> torch.Tensor:
    """Decode A's code with B's pooling indices at the pooling layers `layers` (1 = the first), A's own elsewhere.

    x_a, x_b: (B, 1, 28, 28) float images on the model's device; returns (B, 1, 28, 28).
    """
    z_a, pooled_a = model.encode_with_indices(x_a)
    _, pooled_b = model.encode_with_indices(x_b)
    swapped = set(_check_layers(layers, len(pooled_a)))
    return model.decode(z_a, [pooled_b[k] if k in swapped else pooled_a[k] for k in range(len(pooled_a))])


def index_swap(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, layers: Sequence[int] | None = None) -> dict:
    """Decode each image of x_a from its own code with the pooling indices of the same row of x_b.

    layers: the pooling layers whose indices come from x_b (1 = the first; None: all). Returns
    "closer_to_b" (the share of results whose MSE to the image of x_b, which gave the indices, is
    below their MSE to the image of x_a, which gave the code) and the two per-image MSEs "to_a" and
    "to_b", (N,) CPU tensors.
    """
    if not hasattr(model, "encode_with_indices"):
        raise ValueError(f"model must unpool with its encoder's indices (encode_with_indices); "
                         f"{type(model).__name__} does not")
    if x_a.shape[0] != x_b.shape[0] or x_a.shape[0] == 0:
        raise ValueError(f"x_a and x_b must hold the same number (> 0) of images, got {x_a.shape[0]} and {x_b.shape[0]}")
    _check_layers(layers, len(_POOLED_FROM))
    device = model_device(model)
    to_a, to_b = [], []
    with evaluating(model):
        for start in range(0, x_a.shape[0], 512):  # a batch at a time: no float copy of the whole set
            a = to_float(x_a[start:start + 512].to(device)).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
            b = to_float(x_b[start:start + 512].to(device)).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
            x_hat = swapped_decode(model, a, b, layers)
            to_a.append(((x_hat - a) ** 2).flatten(1).mean(1).cpu())
            to_b.append(((x_hat - b) ** 2).flatten(1).mean(1).cpu())
    to_a, to_b = torch.cat(to_a), torch.cat(to_b)
    return {"closer_to_b": float((to_b < to_a).float().mean()), "to_a": to_a, "to_b": to_b}


def train_code_only(decoder_class: type[nn.Module], data: DigitData, **train_args) -> Trained:
    """The course's conv encoder with `decoder_class()` behind it, trained or loaded (the registry's "conv-code"
    when it is the course's own decoder, cached once trained)."""
    if decoder_class is CodeOnlyDecoder:
        return train_or_load("conv-code", data, **train_args)
    return train_or_load(lambda: ConvCodeAutoencoder(decoder=decoder_class()), data, **train_args)


def show_results(test_mse: Mapping[str, float], mean_image_mse: float, data: DigitData):
    """Notebook 06's table: each decoder ({name: test MSE}, in DECODER_GETS order), what it gets, and the mean image."""
    if len(test_mse) != len(DECODER_GETS):
        raise ValueError(f"test_mse must name the {len(DECODER_GETS)} decoders of notebook 06, got {list(test_mse)}")
    rows = [{"decoder": name, "gets": gets, "test MSE": value} for (name, value), gets in zip(test_mse.items(), DECODER_GETS)]
    rows.append({"decoder": "the mean training image", "gets": "nothing", "test MSE": mean_image_mse})
    return show_table(rows, index="decoder", caption=f"{data.name}: MSE per pixel, {len(data.test):,} test {data.nouns}")


def print_verdicts(test_mse: Mapping[str, float]) -> None:
    """Section 4's three readings of the table ({name: test MSE} in DECODER_GETS order): the indices, the
    architecture, and which way the two add up when the leaky model meets the code-only decoder."""
    leak, fixed, coded = test_mse.values()
    print(f"the indices: the same decoder's error is {fixed / leak:.1f} times as high with uninformative indices")
    print(f"the architecture and its fixed placement: given the code alone, the unpooling decoder's error is "
          f"{fixed / coded:.1f} times the code-only decoder's")
    print("here the leaky model " + ("beats" if leak < coded else "loses to") + " the code-only decoder: "
          + ("the indices give it more than its architecture costs" if leak < coded else
             "the indices help it, but not enough to make up for what the unpooling architecture costs "
             "(the control against code-only)" if fixed > leak
             else "and its indices do not even help it"))


def show_index_bits(bits: Sequence[Mapping]):
    """course.metrics.pooling_index_bits as a table: per pooling layer, its indices, their capacity and summed entropy."""
    return show_table([{"pooling layer": r["layer"], "indices": r["indices"], "capacity (bits)": r["capacity_bits"],
                        "summed entropy (bits)": r["entropy_bits"]} for r in bits], index="pooling layer",
                      formats={"summed entropy (bits)": "{:,.0f}"}, caption="pooling indices per image")


def show_ablation(ablation: Mapping[str, float], others: Mapping[str, float], data: DigitData):
    """course.metrics.unpooling_ablation as a table, with the rows `others` ({what: test MSE}) under it for comparison."""
    key = "the leaky decoder gets"
    return show_table([{key: name, "test MSE": value} for name, value in {**ablation, **others}.items()],
                      index=key, caption=f"{len(data.test):,} test {data.nouns}")


def class_errors(image_errors: Mapping[str, torch.Tensor], data: DigitData) -> list[dict]:
    """Each model's mean test MSE per class ({name: (N,) per-image MSE}), shown as a table; the rows are returned."""
    y = data.test.y.cpu()
    rows = [{"class": class_name, **{name: float(errors[y == label].mean()) for name, errors in image_errors.items()}}
            for label, class_name in enumerate(data.classes)]
    show_table(rows, index="class", formats="{:.4f}", caption=f"test MSE per {data.noun} class")
    return rows


def comparison_figure(errors: Mapping[str, float], baseline: float, ax=None, title: str | None = None,
                      untrained: Sequence[str] = ()):
    """One horizontal bar per model ({name: test MSE}), best at the top, with the `baseline` (the mean image) as a line;
    the `untrained` names (a trained model fed other inputs, no model of their own) in another colour."""
    import matplotlib.pyplot as plt

    if not errors:
        raise ValueError("errors must name at least one model")
    if not set(untrained) <= set(errors):
        raise ValueError(f"untrained must name bars among {list(errors)}, got {list(untrained)!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * len(errors) + 1.2))
    names = sorted(errors, key=errors.get, reverse=True)  # barh draws bottom-up: the best ends on top
    bars = ax.barh(names, [errors[name] for name in names],
                   color=["tab:orange" if name in untrained else "tab:blue" for name in names])
    ax.bar_label(bars, labels=[f"{errors[name]:.4f}" for name in names], padding=3, fontsize=8)
    ax.axvline(baseline, color="k", linestyle=":", label=f"the mean training image ({baseline:.4f})")
    ax.set_xlim(0, 1.18 * max(baseline, *errors.values()))
    ax.set(xlabel="test MSE per pixel", title=title)
    handles, _ = ax.get_legend_handles_labels()
    if untrained:
        from matplotlib.patches import Patch

        handles.append(Patch(color="tab:orange", label="not retrained: the leaky model fed other inputs"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)  # below: clear of the bars
    ax.figure.tight_layout()
    return ax.figure


def layer_swap_finding(closer_to_b: Mapping[int, float], bits: Sequence[Mapping]) -> Finding:
    """Whether the pooling layer whose swap moves the output most towards B ({layer: share of pairs closer to B})
    is also the one whose indices hold the most bits (pooling_index_bits rows)."""
    moves = max(closer_to_b, key=closer_to_b.get)
    richest = max(bits, key=lambda row: row["entropy_bits"])["layer"]
    return finding(moves == richest, {
        True: "pooling layer {k}, whose indices hold the most bits, also moves the output most ({s:.0%} of the pairs "
              "closer to B).",
        False: "pooling layer {k} moves the output most ({s:.0%} of the pairs closer to B), not layer {r}, whose indices "
               "hold the most bits: entropy measures how much an index varies, not how much the decoder relies on it."},
        k=moves, s=closer_to_b[moves], r=richest)
