"""course.plotting: every helper returns a Figure, draws into a given ax, and never shows it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course import plotting
from course.models import ConvAutoencoder, ShallowAutoencoder
from course.training import History

HISTORY = History(train_loss=[0.09, 0.05, 0.03], val_loss=[0.08, 0.05, 0.04], val_mse=[0.08, 0.05, 0.04],
                  seconds=[1.0, 1.0, 1.0], best_epoch=3)


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plotting helpers must not call plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    monkeypatch.setattr(Figure, "show", refuse)


def _calls(tiny):
    """(name, call with ax or None) for every single-axes helper, on real digits."""
    x = tiny.test.x
    z = torch.relu(torch.randn(200, 16, generator=torch.Generator().manual_seed(0)))
    return {
        "show_image": lambda ax: plotting.show_image(x[0], ax=ax, title="a digit"),
        "filter_grid": lambda ax: plotting.filter_grid(ShallowAutoencoder(hidden_dim=12).filters, ax=ax, title="f"),
        "kernel_grid": lambda ax: plotting.kernel_grid(ConvAutoencoder().deconv2.weight, ax=ax),
        "loss_curves": lambda ax: plotting.loss_curves({"a": HISTORY, "b": HISTORY}, ax=ax, title="loss"),
        "loss_curves_mse": lambda ax: plotting.loss_curves(HISTORY, ax=ax, metric="mse", log=False),
        "activation_histogram": lambda ax: plotting.activation_histogram({"free": z, "sparse": z * 0.1}, ax=ax),
        "latent_scatter": lambda ax: plotting.latent_scatter(z[:, :2], tiny.test.y[:200], ax=ax),
        "latent_scatter_wide": lambda ax: plotting.latent_scatter(z, tiny.test.y[:200].numpy(), ax=ax,
                                                                    class_names=tiny.classes),
        "bar_chart": lambda ax: plotting.bar_chart({"PCA": 0.019, "AE": 0.011}, ax=ax, reference={"PCA": 0.0185}),
    }


NAMES = ["show_image", "filter_grid", "kernel_grid", "loss_curves", "loss_curves_mse", "activation_histogram",
         "latent_scatter", "latent_scatter_wide", "bar_chart"]


@pytest.mark.parametrize("name", NAMES)
def test_helper_makes_and_returns_its_own_figure(name, tiny):
    before = set(plt.get_fignums())
    fig = _calls(tiny)[name](None)
    assert isinstance(fig, Figure)
    assert set(plt.get_fignums()) - before == {fig.number}  # one new figure, the one returned
    assert fig.axes and fig.axes[0].has_data()
    fig.canvas.draw()  # renders without error


@pytest.mark.parametrize("name", NAMES)
def test_helper_draws_into_the_given_ax(name, tiny):
    fig, axes = plt.subplots(1, 2)
    before = set(plt.get_fignums())
    returned = _calls(tiny)[name](axes[1])
    assert returned is fig
    assert set(plt.get_fignums()) == before  # no stray figure
    assert axes[1].has_data() and not axes[0].has_data()


def test_reconstruction_rows_grid(tiny):
    x = tiny.test.x[:12]
    fig = plotting.reconstruction_rows({"original": x, "PCA": x * 0.5, "autoencoder": x.view(-1, 1, 28, 28)}, n=10)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 10
    assert [ax.get_ylabel() for ax in fig.axes[::10]] == ["original", "PCA", "autoencoder"]
    shown = fig.axes[10].images[0].get_array()
    assert np.allclose(shown, (x[0] * 0.5).view(28, 28).numpy())


def test_reconstruction_rows_into_given_axes_and_short_rows(tiny):
    fig, axes = plt.subplots(2, 4)
    returned = plotting.reconstruction_rows({"a": tiny.test.x[:4], "b": tiny.test.x[:3]}, n=4, axes=axes)
    assert returned is fig
    assert axes[0, 2].images and not axes[0, 3].images  # only as many columns as the shortest row
    with pytest.raises(ValueError, match="rows"):
        plotting.reconstruction_rows({})


def _tiles(fig: Figure, rows: int, cols: int, size: int, pad: int = 1) -> list[np.ndarray]:
    canvas = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    return [canvas[pad + r * (size + pad): pad + r * (size + pad) + size, pad + c * (size + pad): pad + c * (size + pad) + size]
            for r in range(rows) for c in range(cols)]


def test_kernel_grid_shares_one_scale_so_sizes_compare():
    weight = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    weight[0, 1] *= 100  # one kernel far larger than the others
    fig = plotting.kernel_grid(weight)
    tiles = _tiles(fig, rows=2, cols=3, size=3)
    peak = float(weight.abs().max())
    for tile, kernel in zip(tiles, weight.reshape(6, 3, 3).numpy()):
        assert np.allclose(tile, 0.5 + kernel / (2 * peak), atol=1e-6)
    assert np.ptp(tiles[1]) > 10 * np.ptp(tiles[0])  # the large kernel shows as large


def test_kernel_grid_of_every_transposed_convolution():
    for layer in ConvAutoencoder().transposed_convs:
        c_in, c_out = layer.weight.shape[:2]
        fig = plotting.kernel_grid(layer.weight)
        assert f"{c_in}x{c_out}" in fig.axes[0].get_title()


def test_kernel_grid_rejects_non_kernels():
    with pytest.raises(ValueError, match="weight"):
        plotting.kernel_grid(torch.zeros(3, 3))


def test_filter_grid_layout_and_per_filter_symmetric_scale():
    model = ShallowAutoencoder(hidden_dim=6)
    fig = plotting.filter_grid(model.encoder[0].weight, rows=2, cols=3)  # (units, 784) accepted too
    tiles = _tiles(fig, rows=2, cols=3, size=28)
    for tile, weights in zip(tiles, model.filters.numpy()):
        assert np.allclose(tile, 0.5 + weights / (2 * np.abs(weights).max()), atol=1e-6)


def test_images_must_be_square():
    with pytest.raises(ValueError, match="square"):
        plotting.show_image(torch.zeros(1, 783))


def test_latent_scatter_needs_one_label_per_code():
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        plotting.latent_scatter(torch.zeros(10, 2), np.zeros(9))


def test_loss_curves_plot_train_and_validation():
    fig = plotting.loss_curves({"a": HISTORY}, log=False)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines][:2] == ["a train", "a validation"]
    assert list(lines[0].get_ydata()) == HISTORY.train_loss and list(lines[1].get_xdata()) == [1, 2, 3]


def test_loss_curves_mark_the_kept_epoch_on_the_validation_curve():
    kept = History(train_loss=[0.5, 0.3, 0.2], val_loss=[0.4, 0.25, 0.3], val_mse=[0.4, 0.25, 0.3], best_epoch=2)
    lines = plotting.loss_curves({"a": kept, "b": kept}, log=False).axes[0].get_lines()
    dots = [line for line in lines if line.get_marker() == "o" and len(line.get_xdata())]
    assert len(dots) == 2 and list(dots[0].get_xdata()) == [2] and list(dots[0].get_ydata()) == [0.25]
    assert all(dot.get_label().startswith("_") for dot in dots)  # no model's own colour in the legend entry
    legend = [line for line in lines if line.get_marker() == "o" and not len(line.get_xdata())]
    assert len(legend) == 1 and legend[0].get_label().startswith("kept weights")  # one neutral legend entry
    assert legend[0].get_color() not in {dot.get_color() for dot in dots}


def test_weight_grids_put_zero_at_mid_grey_and_keep_the_sign():
    w = torch.zeros(2, 28, 28)
    w[0, 0, 0], w[0, 0, 1] = 2.0, -1.0  # a filter with a positive and a negative weight
    w[1, 5, 5] = -0.5  # a filter with only a negative weight
    each = plotting.symmetric_scale(w.numpy(), "each")
    assert each[0, 0, 0] == 1.0 and each[0, 0, 1] == 0.25 and each[0, 3, 3] == 0.5
    assert each[1, 5, 5] == 0.0 and each[1, 0, 0] == 0.5  # the sign survives per-filter scaling
    shared = plotting.symmetric_scale(w.numpy(), "shared")
    assert shared[1, 5, 5] == 0.375  # one scale: -0.5 of a largest |w| of 2
    fig = plotting.filter_grid(w, rows=1, cols=2)
    shown = fig.axes[0].images[0].get_array()
    assert shown[1, 1] == 1.0 and shown[1, 2] == 0.25 and shown[5, 5] == 0.5  # (pad 1) grey background


def test_kernel_grid_uses_one_symmetric_scale():
    weight = torch.zeros(1, 2, 3, 3)
    weight[0, 0, 1, 1], weight[0, 1, 1, 1] = 4.0, -1.0
    shown = plotting.kernel_grid(weight).axes[0].images[0].get_array()
    assert shown[2, 2] == 1.0 and shown[2, 6] == 0.375 and shown[1, 1] == 0.5


def test_loss_curves_label_the_metric_and_count_whole_epochs():
    ax = plotting.loss_curves(HISTORY).axes[0]
    assert ax.get_ylabel() == "MSE per pixel (log scale)"
    ax.figure.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert plotting.loss_curves(HISTORY, metric="loss", ylabel="nats per image",
                                log=False).axes[0].get_ylabel() == "nats per image"
    with pytest.raises(ValueError, match="metric"):
        plotting.loss_curves(HISTORY, metric="accuracy")


def test_latent_scatter_legend_covers_no_point(tiny):
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    fig = plotting.latent_scatter(z, tiny.test.y[:200])
    fig.canvas.draw()
    ax = fig.axes[0]
    legend_box = ax.get_legend().get_window_extent()
    points = ax.transData.transform(z.numpy())
    inside = ((points[:, 0] >= legend_box.x0) & (points[:, 0] <= legend_box.x1)
              & (points[:, 1] >= legend_box.y0) & (points[:, 1] <= legend_box.y1))
    assert not inside.any()


def test_uint8_pixels_are_drawn_like_their_float_images(tiny):
    from course.data import to_pixels

    x = tiny.test.x[:3]
    as_floats = plotting.reconstruction_rows({"x": x}, n=3).axes[0].images[0].get_array()
    as_pixels = plotting.reconstruction_rows({"x": to_pixels(x)}, n=3).axes[0].images[0].get_array()
    assert np.allclose(as_floats, as_pixels, atol=1 / 255)
