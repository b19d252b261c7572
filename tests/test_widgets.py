"""The notebook widgets, driven from Python: controls change the displayed image data, errors stay visible."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course.models import ConvAutoencoder, ConvCodeAutoencoder, ShallowAutoencoder, small_autoencoder
from course.widgets import (CorruptionExplorer, LatentExplorer, corruption_explorer, interpolation,
                            interpolation_figure, latent_explorer)


class Flaky(ShallowAutoencoder):
    """A shallow autoencoder that fails on demand, and records whether it ran in training mode."""

    def __init__(self):
        super().__init__(hidden_dim=8)
        self.fail = False
        self.seen_training = []

    def forward(self, x):
        self.seen_training.append(self.training)
        if self.fail:
            raise RuntimeError("model broke on purpose")
        return super().forward(x)

    def decode(self, z):
        if self.fail:
            raise RuntimeError("decoder broke on purpose")
        return super().decode(z)


@pytest.fixture
def x():
    return torch.rand(6, 784, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def models():
    torch.manual_seed(0)
    return ShallowAutoencoder(16), ShallowAutoencoder(16)


def snapshot(explorer):
    return {name: image.copy() for name, image in explorer.images.items()}, explorer.image.value


def assert_same(explorer, before):
    images, png = before
    assert explorer.images.keys() == images.keys()
    for name in images:
        np.testing.assert_array_equal(explorer.images[name], images[name], err_msg=name)
    assert explorer.image.value == png


def test_corruption_explorer_shows_clean_noisy_and_both_outputs(models, x):
    ex = corruption_explorer(*models, x, labels=[7, 1, 2, 3, 4, 5], noise_std=0.5)
    assert isinstance(ex, CorruptionExplorer)
    assert list(ex.images) == ["x", "x_noisy", "standard", "denoising"]
    assert all(image.shape == (28, 28) for image in ex.images.values())
    np.testing.assert_allclose(ex.images["x"], x[0].reshape(28, 28).numpy())
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("x_noisy", "standard", "denoising"):
        expected = float(np.mean((ex.images[name] - ex.images["x"]) ** 2))
        assert ex.mses[name] == pytest.approx(expected, rel=1e-5)
        assert f"MSE {ex.mses[name]:.4f}" in ex.figure.axes[list(ex.images).index(name)].get_title()
    assert "(7)" in ex.figure.axes[0].get_title()
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()
    assert ex.errors == []


@pytest.mark.parametrize("control, new_value, changed", [
    ("noise_slider", 0.9, "x_noisy"),
    ("kind_dropdown", "masking", "x_noisy"),
    ("kind_dropdown", "salt-and-pepper", "x_noisy"),
    ("digit_slider", 3, "x"),
])
def test_corruption_controls_change_the_picture_and_moving_back_restores_it(models, x, control, new_value, changed):
    ex = corruption_explorer(*models, x, noise_std=0.5)
    before = snapshot(ex)
    widget = getattr(ex, control)
    old_value = widget.value
    widget.value = new_value
    assert not np.array_equal(ex.images[changed], before[0][changed])
    assert not np.array_equal(ex.images["denoising"], before[0]["denoising"])
    assert ex.image.value != before[1]
    widget.value = old_value
    assert_same(ex, before)
    assert ex.errors == [] and ex.status.value == ""


def test_corruption_level_names_and_limits(models, x):
    ex = corruption_explorer(*models, x, noise_std=0.0)
    np.testing.assert_array_equal(ex.images["x_noisy"], ex.images["x"])
    assert ex.mses["x_noisy"] == 0.0
    assert ex.noise_slider.description == "noise_std"
    assert (ex.noise_slider.min, ex.noise_slider.max, ex.noise_slider.step) == (0.0, 1.0, 0.05)
    ex.kind_dropdown.value = "masking"
    assert ex.noise_slider.description == "fraction"
    ex.noise_slider.value = 1.0
    assert ex.images["x_noisy"].max() == 0.0  # every pixel masked
    assert [label for label, _ in ex.kind_dropdown.options] == ["Gaussian", "masking", "salt-and-pepper"]


def test_noise_is_fixed_by_seed_and_digit(models, x):
    a = corruption_explorer(*models, x, seed=3)
    b = corruption_explorer(*models, x, seed=3)
    c = corruption_explorer(*models, x, seed=4)
    np.testing.assert_array_equal(a.images["x_noisy"], b.images["x_noisy"])
    assert not np.array_equal(a.images["x_noisy"], c.images["x_noisy"])


def test_several_standard_models_and_input_layouts(models, x):
    ex = corruption_explorer({"x = 16": models[0], "x = 8": ShallowAutoencoder(8)}, models[1],
                             x.numpy().reshape(6, 1, 28, 28))
    assert list(ex.images) == ["x", "x_noisy", "x = 16", "x = 8", "denoising"]
    assert set(ex.mses) == {"x_noisy", "x = 16", "x = 8", "denoising"}


def test_models_run_in_eval_mode_and_keep_their_mode(x):
    model = Flaky()
    model.train()
    ex = corruption_explorer(model, ShallowAutoencoder(8), x)
    ex.noise_slider.value = 0.2
    assert model.seen_training and not any(model.seen_training)
    assert model.training


def test_a_failing_callback_is_kept_and_shown_not_swallowed(x):
    model = Flaky()
    ex = corruption_explorer(model, ShallowAutoencoder(8), x)
    before = snapshot(ex)
    model.fail = True
    ex.noise_slider.value = 0.8
    assert len(ex.errors) == 1 and "broke on purpose" in str(ex.errors[0])
    assert "broke on purpose" in ex.status.value
    assert_same(ex, before)  # the last good picture stays
    model.fail = False
    ex.noise_slider.value = 0.7
    assert ex.status.value == "" and len(ex.errors) == 1


def test_a_failing_button_callback_is_kept_too(x):
    model = Flaky()
    ex = latent_explorer(model, x, noise_std=1.0)
    model.fail = True
    ex.resample_button.click()  # ipywidgets alone would only log this
    assert len(ex.errors) == 1 and "broke on purpose" in ex.status.value


def test_a_failure_while_building_raises():
    model = Flaky()
    model.fail = True
    with pytest.raises(RuntimeError, match="on purpose"):
        corruption_explorer(model, ShallowAutoencoder(8), torch.rand(2, 784))


def test_many_updates_leave_no_figures_open(models, x):
    plt.close("all")
    ex = corruption_explorer(*models, x)
    lat = latent_explorer(small_autoencoder(), x)
    for i in range(30):
        ex.noise_slider.value = (i % 20) * 0.05
        lat.noise_slider.value = (i % 40) * 0.05
    ex.kind_dropdown.value = "salt-and-pepper"
    lat.resample_button.click()
    assert plt.get_fignums() == []
    assert ex.renders == 32 and lat.renders == 32
    assert ex.errors == [] and lat.errors == []
    ex.close(), lat.close()


def test_latent_explorer_noise_resample_and_digit(x):
    torch.manual_seed(0)
    ex = latent_explorer(small_autoencoder(), x, labels=np.arange(6), noise_std=0.0)
    assert isinstance(ex, LatentExplorer)
    assert list(ex.images) == ["x", "x_hat", "x_hat_noisy"]
    np.testing.assert_array_equal(ex.images["x_hat_noisy"], ex.images["x_hat"])
    assert (ex.noise_slider.min, ex.noise_slider.max) == (0.0, 2.0)
    ex.noise_slider.value = 1.0
    assert not np.allclose(ex.images["x_hat_noisy"], ex.images["x_hat"])
    before, eps = snapshot(ex), ex.eps.clone()
    assert eps.shape == (1, 8)
    ex.resample_button.click()
    assert ex.draw == 1 and not torch.equal(ex.eps, eps)
    assert not np.array_equal(ex.images["x_hat_noisy"], before[0]["x_hat_noisy"])
    np.testing.assert_array_equal(ex.images["x_hat"], before[0]["x_hat"])
    after_resample = snapshot(ex)
    ex.digit_slider.value = 4
    assert not np.array_equal(ex.images["x"], before[0]["x"])
    ex.digit_slider.value = 0
    assert_same(ex, after_resample)
    ex.noise_slider.value = 0.3
    ex.noise_slider.value = 1.0
    assert_same(ex, after_resample)
    assert ex.errors == []


@pytest.mark.parametrize("model", [ConvCodeAutoencoder(), ConvAutoencoder()], ids=["conv-code", "conv-unpool"])
def test_latent_explorer_handles_conv_codes(model, x):
    ex = latent_explorer(model, x, noise_std=0.5)
    assert ex.eps.shape == (1, 16, 1, 1)
    assert ex.images["x_hat_noisy"].shape == (28, 28)


def test_interpolation_rows_run_from_a_to_b(x):
    torch.manual_seed(0)
    model = small_autoencoder()
    result = interpolation(model, x[0], x[1].reshape(28, 28), steps=5)
    np.testing.assert_allclose(result["t"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(result["pixel"][0], x[0].reshape(28, 28).numpy(), atol=1e-6)
    np.testing.assert_allclose(result["pixel"][-1], x[1].reshape(28, 28).numpy(), atol=1e-6)
    x_hat = model.reconstruct(x[:2]).reshape(2, 28, 28).numpy()
    np.testing.assert_allclose(result["code"][[0, -1]], x_hat, atol=1e-5)
    assert interpolation(ConvCodeAutoencoder(), x[0], x[1], steps=3)["code"].shape == (3, 28, 28)
    fig = interpolation_figure(model, x[0], x[1], steps=5)
    assert len(fig.axes) == 10 and fig.axes[0].get_title() == "t=0.00"
    plt.close(fig)


@pytest.mark.parametrize("call, match", [
    (lambda m, x: corruption_explorer(m, m, torch.rand(3, 100)), "x must have shape"),
    (lambda m, x: corruption_explorer(m, m, torch.rand(0, 784)), "x must have shape"),
    (lambda m, x: corruption_explorer(m, m, x, noise_std=-0.1), "noise_std"),
    (lambda m, x: corruption_explorer(m, m, x, noise_std=1.5), "noise_std"),
    (lambda m, x: corruption_explorer(m, m, x, kind="speckle"), "kind"),
    (lambda m, x: corruption_explorer(m, m, x, labels=[1, 2]), "labels"),
    (lambda m, x: corruption_explorer(m, m, x, seed=-1), "seed"),
    (lambda m, x: corruption_explorer("model", m, x), "standard_model"),
    (lambda m, x: corruption_explorer(m, None, x), "denoising_model"),
    (lambda m, x: corruption_explorer({"denoising": m}, m, x), "standard_model"),
    (lambda m, x: latent_explorer(m, x, noise_std=2.5), "noise_std"),
    (lambda m, x: latent_explorer(m, x[:, :10]), "x must have shape"),
    (lambda m, x: interpolation(m, x[0], x[1], steps=1), "steps"),
    (lambda m, x: interpolation(m, x[:2], x[1]), "x_a"),
])
def test_bad_arguments_name_the_parameter(models, x, call, match):
    with pytest.raises(ValueError, match=match):
        call(models[0], x)
