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


def test_kernel_grid_normalises_each_kernel():
    weight = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    weight[0, 1] *= 100  # one kernel far larger than the others
    weight[1, 2] = 0.7  # and one constant kernel
    fig = plotting.kernel_grid(weight)
    tiles = _tiles(fig, rows=2, cols=3, size=3)
    for i, tile in enumerate(tiles):
        if i == 5:
            assert np.all(tile == 0.0)  # flat: no contrast to show, and no NaN
            continue
        assert tile.min() == pytest.approx(0.0) and tile.max() == pytest.approx(1.0)
        kernel = weight.reshape(6, 3, 3)[i].numpy()
        assert np.allclose(tile, (kernel - kernel.min()) / (kernel.max() - kernel.min()), atol=1e-6)


def test_kernel_grid_of_every_transposed_convolution():
    for layer in ConvAutoencoder().transposed_convs:
        c_in, c_out = layer.weight.shape[:2]
        fig = plotting.kernel_grid(layer.weight)
        assert f"{c_in}x{c_out}" in fig.axes[0].get_title()


def test_kernel_grid_rejects_non_kernels():
    with pytest.raises(ValueError, match="weight"):
        plotting.kernel_grid(torch.zeros(3, 3))


def test_filter_grid_layout_and_normalisation():
    model = ShallowAutoencoder(hidden_dim=6)
    fig = plotting.filter_grid(model.encoder[0].weight, rows=2, cols=3)  # (units, 784) accepted too
    tiles = _tiles(fig, rows=2, cols=3, size=28)
    for tile, weights in zip(tiles, model.filters.numpy()):
        assert np.allclose(tile, (weights - weights.min()) / (weights.max() - weights.min()), atol=1e-6)


def test_images_must_be_square():
    with pytest.raises(ValueError, match="square"):
        plotting.show_image(torch.zeros(1, 783))


def test_latent_scatter_needs_one_label_per_code():
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        plotting.latent_scatter(torch.zeros(10, 2), np.zeros(9))


def test_loss_curves_plot_train_and_validation():
    fig = plotting.loss_curves({"a": HISTORY}, log=False)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["a train", "a validation"]
    assert list(lines[0].get_ydata()) == HISTORY.train_loss and list(lines[1].get_xdata()) == [1, 2, 3]
