"""The notebook widgets, driven from Python: controls change the displayed image data, errors stay visible."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course.models import (ConvAutoencoder, ConvCodeAutoencoder, ShallowAutoencoder, VariationalAutoencoder,
                           small_autoencoder)
from course.widgets import (CorruptionExplorer, LatentExplorer, VAEExplorer, corruption_explorer, spread_labels,
                            interpolation_figure, latent_explorer, vae_explorer)


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
    ("image_slider", 3, "x"),
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
    ex.image_slider.value = 4
    assert not np.array_equal(ex.images["x"], before[0]["x"])
    ex.image_slider.value = 0
    assert_same(ex, after_resample)
    ex.noise_slider.value = 0.3
    ex.noise_slider.value = 1.0
    assert_same(ex, after_resample)
    assert ex.errors == []


def test_latent_explorer_shows_the_noisy_codes_distance_to_the_nearest_reference_code(x):
    torch.manual_seed(0)
    model = small_autoencoder()
    reference = model.encode(x).detach()  # every image's own code: at noise 0 the nearest is at distance 0
    ex = latent_explorer(model, x, noise_std=0.0, reference_codes=reference)
    assert ex.distance == pytest.approx(0.0, abs=1e-5)
    assert "nearest code 0.00" in ex._axes["x_hat_noisy"].get_title()
    ex.noise_slider.value = 1.0
    expected = float(torch.cdist(ex.z + ex.eps, reference).min())
    assert ex.distance == pytest.approx(expected, rel=1e-4) and ex.distance > 0
    assert f"nearest code {expected:.2f}" in ex._axes["x_hat_noisy"].get_title()
    assert "nearest code 0.00" in ex._axes["x_hat"].get_title()  # the code itself is a reference code
    assert "nearest code" not in latent_explorer(model, x)._axes["x_hat_noisy"].get_title()
    named = latent_explorer(model, x, noise_std=0.5, reference_codes=reference, unit="spreads")
    assert "decode(z + 0.50 spreads)" in named._axes["x_hat_noisy"].get_title()
    assert named._axes["x_hat_noisy"].get_title().endswith(" spreads")
    with pytest.raises(ValueError, match="unit"):
        latent_explorer(model, x, unit="")
    with pytest.raises(ValueError, match="reference_codes must be None or a \\(M, d\\) tensor"):
        latent_explorer(model, x, reference_codes=torch.zeros(0, 8))


@pytest.mark.parametrize("model", [ConvCodeAutoencoder(), ConvAutoencoder()], ids=["conv-code", "conv-unpool"])
def test_latent_explorer_handles_conv_codes(model, x):
    ex = latent_explorer(model, x, noise_std=0.5)
    assert ex.eps.shape == (1, 16, 1, 1)
    assert ex.images["x_hat_noisy"].shape == (28, 28)


def test_interpolation_figure_runs_from_a_to_b(x):
    torch.manual_seed(0)
    model = small_autoencoder()
    fig = interpolation_figure(model, x[0], x[1].reshape(28, 28), steps=5)
    assert len(fig.axes) == 10 and [ax.get_title() for ax in fig.axes[:5]] == [
        "t=0.00", "t=0.25", "t=0.50", "t=0.75", "t=1.00"]
    code_row = np.stack([ax.images[0].get_array() for ax in fig.axes[:5]])
    pixel_row = np.stack([ax.images[0].get_array() for ax in fig.axes[5:]])
    np.testing.assert_allclose(pixel_row[0], x[0].reshape(28, 28).numpy(), atol=1e-6)
    np.testing.assert_allclose(pixel_row[-1], x[1].reshape(28, 28).numpy(), atol=1e-6)
    x_hat = model.reconstruct(x[:2]).reshape(2, 28, 28).numpy()
    np.testing.assert_allclose(code_row[[0, -1]], x_hat, atol=1e-5)
    plt.close(fig)
    fig = interpolation_figure(ConvCodeAutoencoder(), x[0], x[1], steps=3)  # a (16, 1, 1) code
    assert len(fig.axes) == 6
    plt.close(fig)


def test_widgets_has_no_copy_of_models_interpolate():
    import course.widgets as widgets_module

    assert not hasattr(widgets_module, "interpolation")


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
    (lambda m, x: interpolation_figure(m, x[0], x[1], steps=1), "steps"),
    (lambda m, x: interpolation_figure(m, x[:2], x[1]), "x_a"),
    (lambda m, x: corruption_explorer(m, m, x, noun="digits"), "noun must be one of 'digit', 'garment', 'image'"),
    (lambda m, x: latent_explorer(m, x, noun="Garment"), "noun"),
    (lambda m, x: latent_explorer(m, x, index=len(x)), r"index must be an int in \[0, "),
    (lambda m, x: latent_explorer(m, x, index=1.0), "index"),
])
def test_bad_arguments_name_the_parameter(models, x, call, match):
    with pytest.raises(ValueError, match=match):
        call(models[0], x)


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.parametrize("make", [
    lambda m, x, **kw: corruption_explorer(m, m, x, **kw),
    lambda m, x, **kw: latent_explorer(m, x, **kw),
], ids=["corruption", "latent"])
def test_labels_and_picker_use_the_datas_noun(models, x, make):
    ex = make(models[0], x, labels=[9, 1, 2, 3, 4, 5], class_names=FASHION, noun="garment")
    assert ex.image_slider.description == "garment"
    assert "garment #0 (Ankle boot)" in ex.figure.axes[0].get_title()
    ex.image_slider.value = 2
    assert "garment #2 (Pullover)" in ex.figure.axes[0].get_title()
    default = make(models[0], x)
    assert default.image_slider.description == "image"
    assert "image #0" in default.figure.axes[0].get_title()
    assert "digit" not in default.figure.axes[0].get_title()


@pytest.mark.parametrize("make", [
    lambda m, x, **kw: corruption_explorer(m, m, x, **kw),
    lambda m, x, **kw: latent_explorer(m, x, **kw),
], ids=["corruption", "latent"])
@pytest.mark.parametrize("bad, match", [
    (lambda x: x * 255, r"x must hold pixel values in \[0, 1\].*divide by 255"),
    (lambda x: x - 0.5, r"x must hold pixel values in \[0, 1\], got values from -0.4999"),
    (lambda x: x.index_put((torch.tensor([1]), torch.tensor([5])), torch.tensor(float("nan"))),
     r"x must hold pixel values in \[0, 1\], got NaN in 1 pixels"),
], ids=["0-255 float", "negative", "nan"])
def test_images_outside_0_1_are_refused_by_name(models, x, make, bad, match):
    with pytest.raises(ValueError, match=match):
        make(models[0], bad(x))


@pytest.mark.parametrize("labels, match", [
    ([0, 1, 2, 3, 4, 10], "labels must be class indices 0 to 9.*got 10"),
    ([0, 1, 2, 3, 4, -1], "labels must be class indices 0 to 9.*got -1"),
    ([0.5, 1, 2, 3, 4, 5], "labels must be class indices 0 to 9"),
])
def test_labels_outside_the_classes_are_refused(models, x, labels, match):
    with pytest.raises(ValueError, match=match):
        corruption_explorer(models[0], models[1], x, labels=labels, class_names=FASHION)
    with pytest.raises(ValueError, match=match):
        latent_explorer(models[0], x, labels=labels, class_names=FASHION)
    latent_explorer(models[0], x, labels=labels)  # without class names any label is shown as it is


def test_interpolation_refuses_0_255_images(models, x):
    with pytest.raises(ValueError, match=r"x_b must hold pixel values in \[0, 1\]"):
        interpolation_figure(small_autoencoder(), x[0], x[1] * 255)


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return VariationalAutoencoder(latent_dim=2, hidden_dim=16)


def test_vae_explorer_sliders_decode_the_chosen_code(vae):
    ex = vae_explorer(vae, n_samples=3, seed=1)
    assert isinstance(ex, VAEExplorer)
    assert list(ex.images) == ["x_hat", "sample_1", "sample_2", "sample_3"]
    assert (ex.z1_slider.min, ex.z1_slider.max, ex.z2_slider.min, ex.z2_slider.max) == (-3.0, 3.0, -3.0, 3.0)
    expected = vae.decode(torch.zeros(1, 2)).detach().reshape(28, 28).numpy()
    np.testing.assert_allclose(ex.images["x_hat"], expected, atol=1e-6)
    before = snapshot(ex)
    ex.z1_slider.value = 2.5
    assert not np.array_equal(ex.images["x_hat"], before[0]["x_hat"])
    np.testing.assert_allclose(ex.images["x_hat"], vae.decode(torch.tensor([[2.5, 0.0]])).detach().reshape(28, 28),
                               atol=1e-6)
    for k in (1, 2, 3):  # the prior samples do not move with the sliders
        np.testing.assert_array_equal(ex.images[f"sample_{k}"], before[0][f"sample_{k}"])
    assert "+2.5" in ex.figure.axes[0].get_title()
    ex.z2_slider.value = -1.0
    np.testing.assert_allclose(ex.images["x_hat"], vae.decode(torch.tensor([[2.5, -1.0]])).detach().reshape(28, 28),
                               atol=1e-6)
    ex.z1_slider.value, ex.z2_slider.value = 0.0, 0.0
    assert_same(ex, before)
    assert ex.errors == [] and ex.status.value == ""


def test_vae_explorer_button_draws_new_prior_samples(vae):
    ex = vae_explorer(vae, n_samples=4, seed=3)
    first, z_first = snapshot(ex), ex.z_samples.clone()
    assert z_first.shape == (4, 2)
    np.testing.assert_allclose(ex.images["sample_2"], vae.decode(z_first[1:2]).detach().reshape(28, 28), atol=1e-6)
    ex.sample_button.click()
    assert ex.draw == 1 and not torch.equal(ex.z_samples, z_first)
    for k in (1, 2, 3, 4):
        assert not np.array_equal(ex.images[f"sample_{k}"], first[0][f"sample_{k}"])
    np.testing.assert_array_equal(ex.images["x_hat"], first[0]["x_hat"])
    second = ex.z_samples.clone()
    ex.sample()
    assert not torch.equal(ex.z_samples, second)
    again = vae_explorer(vae, n_samples=4, seed=3)  # the same seed replays the same draws
    torch.testing.assert_close(again.z_samples, z_first)
    assert not torch.equal(vae_explorer(vae, n_samples=4, seed=4).z_samples, z_first)
    assert ex.errors == []


def test_vae_explorer_map_marks_the_code_and_the_draws(vae):
    codes = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    ex = vae_explorer(vae, n_samples=2, codes=codes, labels=torch.arange(50) % 10, class_names=FASHION,
                      noun="garment")
    assert ex.map_ax is ex.figure.axes[0] and len(ex.figure.axes) == 4
    assert ex.map_ax.get_title() == "codes of garments"
    numbers = [t for t in ex.map_ax.texts if t.get_text() in ("A", "B")]  # the prior draws, lettered as their panels
    assert {t.get_text() for t in ex.map_ax.texts if t not in numbers} == set(FASHION)
    assert [t.get_text() for t in numbers] == ["A", "B"]
    assert min(t.get_zorder() for t in numbers) > max(t.get_zorder() for t in ex.map_ax.texts if t not in numbers)
    for t, (z1, z2) in zip(numbers, ex.z_samples.tolist()):
        assert t.get_visible() == (abs(z1) < 3 and abs(z2) < 3)
        if t.get_visible():
            np.testing.assert_allclose(t.get_position(), (z1 + 0.15, z2 + 0.15))
    ex.z1_slider.value = 1.5
    np.testing.assert_allclose(ex._z_mark.get_data(), [[1.5], [0.0]])
    ex.sample_button.click()
    np.testing.assert_allclose(np.asarray(ex._samples_mark.get_data()).T, ex.z_samples.numpy())
    assert ex.errors == []


def test_vae_explorer_keeps_a_failing_decode_visible():
    model = Flaky()
    model.latent_dim = 2  # decode of a 2-unit hidden layer: any 2-D code decodes
    model.decoder[0] = torch.nn.Linear(2, 784)
    ex = vae_explorer(model)
    before = snapshot(ex)
    model.fail = True
    ex.sample_button.click()
    assert len(ex.errors) == 1 and "broke on purpose" in ex.status.value
    assert_same(ex, before)


def test_vae_explorer_leaves_no_figures_open(vae):
    plt.close("all")
    ex = vae_explorer(vae, codes=torch.zeros(5, 2))
    for i in range(20):
        ex.z1_slider.value = -3 + 0.3 * i
        ex.sample_button.click()
    assert plt.get_fignums() == []
    assert ex.renders == 41 and ex.errors == []
    ex.close()


@pytest.mark.parametrize("call, match", [
    (lambda v: vae_explorer(small_autoencoder()), "latent_dim=2"),
    (lambda v: vae_explorer("vae"), "model must be a course model"),
    (lambda v: vae_explorer(v, n_samples=0), "n_samples"),
    (lambda v: vae_explorer(v, n_samples=9), "n_samples"),
    (lambda v: vae_explorer(v, z=(0.0, 4.0)), r"z must be 2 numbers in \[-3, 3\]"),
    (lambda v: vae_explorer(v, z=(1.0,)), "z must be 2 numbers"),
    (lambda v: vae_explorer(v, seed=-2), "seed"),
    (lambda v: vae_explorer(v, noun="shoe"), "noun"),
    (lambda v: vae_explorer(v, codes=torch.zeros(5, 3)), r"codes must .*shape \(N, 2\)"),
    (lambda v: vae_explorer(v, codes=torch.full((5, 2), float("nan"))), "codes must be finite"),
    (lambda v: vae_explorer(v, labels=[1, 2]), "give codes"),
    (lambda v: vae_explorer(v, codes=torch.zeros(3, 2), labels=[1, 2]), "labels must have one entry per row of codes"),
    (lambda v: vae_explorer(v, codes=torch.zeros(2, 2), labels=[1, 12], class_names=FASHION), "class indices"),
])
def test_vae_explorer_bad_arguments_name_the_parameter(vae, call, match):
    with pytest.raises(ValueError, match=match):
        call(vae)


def test_uint8_pixels_are_read_as_real_images_are(models, x):
    """The course's one image check: uint8 pixels 0..255 mean x / 255, as in every split's .pixels."""
    pixels = (x * 255).round().to(torch.uint8)
    ex = corruption_explorer(*models, pixels)
    np.testing.assert_allclose(ex.images["x"], pixels[0].reshape(28, 28).numpy() / 255, atol=1e-6)


# --- issue 17: numpy numbers for z, names as labels -----------------------------------------------

@pytest.mark.parametrize("z", [(np.float32(0.5), np.float64(-1.0)), np.array([0.5, -1.0]), torch.tensor([0.5, -1.0]),
                               [np.int64(0), 1]], ids=["numpy-scalars", "array", "tensor", "numpy-int"])
def test_vae_explorer_takes_z_as_numpy_numbers_arrays_or_tensors(vae, z):
    ex = vae_explorer(vae, z=z)
    expected = [float(v) for v in (z.tolist() if hasattr(z, "tolist") else z)]
    assert [ex.z1_slider.value, ex.z2_slider.value] == pytest.approx(expected)
    assert ex.errors == []


@pytest.mark.parametrize("z", [(True, 0.0), ("0", 0.0), (float("nan"), 0.0), np.zeros(3)])
def test_vae_explorer_still_refuses_what_is_not_2_numbers(vae, z):
    with pytest.raises(ValueError, match="z must be 2 numbers"):
        vae_explorer(vae, z=z)


def test_vae_explorer_shows_string_labels_as_their_own_names(vae):
    codes = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    labels = ["bag", "sandal", "bag", "shirt", "sandal", "bag"]
    ex = vae_explorer(vae, codes=codes, labels=labels)
    assert {t.get_text() for t in ex.map_ax.texts if len(t.get_text()) > 1} == {"bag", "sandal", "shirt"}
    colours = ex.map_ax.collections[0].get_facecolors()
    assert len({tuple(c) for c in colours}) == 3  # one colour per name
    with pytest.raises(ValueError, match="class indices"):
        vae_explorer(vae, codes=codes, labels=labels, class_names=FASHION)  # names need no class_names


# --- a static picture of every explorer ------------------------------------------------------------

def test_every_explorer_bundles_a_png_of_what_it_shows(models, x, vae):
    import base64

    for ex in (corruption_explorer(*models, x), latent_explorer(models[0], x), vae_explorer(vae)):
        bundle = ex._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert base64.b64decode(bundle["image/png"]) == ex.image.value
        assert "VBox(" not in bundle["text/plain"] and type(ex).__name__ in bundle["text/plain"]


def test_html_export_of_an_executed_notebook_shows_a_picture_not_vbox(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    import course

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from nbconvert import HTMLExporter

    root = str(Path(course.__file__).resolve().parent.parent)  # the kernel imports this checkout's course
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import torch\n"
        "from course.models import small_autoencoder\n"
        "from course.widgets import corruption_explorer\n"
        "torch.manual_seed(0)\n"
        "m = small_autoencoder()\n"
        "corruption_explorer(m, m, torch.rand(3, 784))")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert outputs and "image/png" in outputs[0]["data"]
    nb.metadata.pop("widgets", None)  # what a static copy without the widgets' state holds
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "VBox(" not in html
    assert "<img" in html and "data:image/png;base64," in html


def test_spread_labels_parts_names_on_top_of_each_other_and_leaves_far_ones():
    centres = np.array([[0.0, 0.0], [0.1, 0.05], [0.2, -0.1], [2.5, 2.5]])
    pos = spread_labels(centres, width=1.6, height=0.45)
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            assert abs(pos[i, 0] - pos[j, 0]) >= 1.6 or abs(pos[i, 1] - pos[j, 1]) >= 0.45 - 1e-9
    assert np.allclose(pos[:, 0], centres[:, 0])  # moved up and down only
    assert np.allclose(pos[3], centres[3])  # nothing near it: it stays
    assert np.allclose(spread_labels(centres[3:]), centres[3:])


def test_corruption_explorer_titles_the_denoiser_by_the_name_it_is_given():
    m = ShallowAutoencoder(hidden_dim=8)
    x = torch.rand(3, 784)
    ex = corruption_explorer({"standard-8": m}, m, x, denoising_name="denoising-8")
    assert list(ex.images) == ["x", "x_noisy", "standard-8", "denoising-8"]
    for bad in ("", "  ", 3, "standard-8"):
        with pytest.raises(ValueError, match="denoising_name|standard_model"):
            corruption_explorer({"standard-8": m}, m, x, denoising_name=bad)


def test_the_latent_explorer_starts_on_the_image_it_is_given(models, x):
    ex = latent_explorer(models[0], x, index=3)
    assert ex.image_slider.value == 3
    first = ex.images["x"].copy()
    ex.image_slider.value = 0
    ex.image_slider.value = 3
    np.testing.assert_array_equal(ex.images["x"], first)
    np.testing.assert_array_equal(first, x[3].reshape(28, 28).numpy())
