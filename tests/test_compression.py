"""course.compression: PCA's error at every code size from one fit, and the means of small random draws."""
from __future__ import annotations

import pytest
import torch

from course.compression import code_size_curves, means_of_draws, pca_equivalent, share_ranked_wrong, pca_error_curve, per_image_scatter
from course.metrics import reconstruction_mse
from course.models import PCA


def _images(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(784, 8, generator=g)).Q  # 8 orthonormal directions
    x = 0.5 + (torch.randn(n, 8, generator=g) * torch.linspace(3, 0.3, 8)) @ basis.T * 0.05
    return (x + 0.01 * torch.randn(n, 784, generator=g)).clamp(0, 1)


def test_each_point_is_the_error_of_pca_with_that_many_directions():
    train, test = _images(seed=0), _images(n=200, seed=1)
    pca = PCA(10).fit(train)
    curve = pca_error_curve(pca, test, batch_size=64)
    assert curve.shape == (10,) and curve.dtype == torch.float64
    for k in (1, 4, 10):
        assert float(curve[k - 1]) == pytest.approx(reconstruction_mse(PCA(k).fit(train), test), rel=1e-4)
    assert bool((curve[1:] <= curve[:-1] + 1e-12).all())  # more directions never leave out more


def test_uint8_pixels_give_the_float_images_curve():
    pixels = (_images(seed=2) * 255).round().to(torch.uint8)
    pca = PCA(5).fit(pixels)
    assert torch.allclose(pca_error_curve(pca, pixels), pca_error_curve(pca, pixels.float() / 255), rtol=1e-5)


def test_pca_error_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="pca"):
        pca_error_curve(object(), _images())
    with pytest.raises(ValueError, match="pixels"):
        pca_error_curve(PCA(3).fit(_images()), torch.full((4, 784), 2.0))
    with pytest.raises(ValueError, match="batch_size"):
        pca_error_curve(PCA(3).fit(_images()), _images(), batch_size=0)


def test_means_of_draws_use_the_same_draws_for_every_name():
    errors = {"a": torch.arange(20.0), "b": 2 * torch.arange(20.0)}
    means = means_of_draws(errors, size=5, n_draws=50, generator=torch.Generator().manual_seed(0))
    assert means["a"].shape == (50,)
    assert torch.allclose(means["b"], 2 * means["a"])  # the same items drawn for both
    assert float(means["a"].min()) >= 2.0 and float(means["a"].max()) <= 17.0  # a mean of 5 distinct of 0..19
    whole = means_of_draws({"a": torch.arange(20.0)}, size=20, n_draws=3)
    assert torch.allclose(whole["a"], torch.full((3,), 9.5, dtype=torch.float64))


def test_means_of_draws_rejects_bad_input():
    with pytest.raises(ValueError, match="same N"):
        means_of_draws({"a": torch.zeros(5), "b": torch.zeros(6)})
    with pytest.raises(ValueError, match="size"):
        means_of_draws({"a": torch.zeros(5)}, size=6)
    with pytest.raises(ValueError, match="n_draws"):
        means_of_draws({"a": torch.zeros(5)}, size=2, n_draws=0)
    with pytest.raises(ValueError, match="errors"):
        means_of_draws({})


def test_pca_equivalent_is_the_fewest_directions_that_do_as_well():
    curve = torch.tensor([0.05, 0.03, 0.02, 0.015, 0.01], dtype=torch.float64)
    assert pca_equivalent(curve, 0.02) == 3  # as good as k = 3 exactly
    assert pca_equivalent(curve, 0.025) == 3
    assert pca_equivalent(curve, 0.06) == 1
    assert pca_equivalent(curve, 0.005) is None  # better than every k the curve holds
    with pytest.raises(ValueError, match="pca_curve"):
        pca_equivalent(torch.zeros(0), 0.1)


def test_code_size_curves_draws_both_methods():
    import matplotlib

    matplotlib.use("Agg")
    curve = torch.linspace(0.05, 0.01, 40)
    fig = code_size_curves(curve, {2: 0.03, 30: 0.005}, mean_image_mse=0.07)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()][:2] == ["PCA with its first k directions",
                                                                 "deep autoencoder, k-number code"]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels.count("the PCA size that does as well") == 1  # 2 matches PCA's k = 21; 30 beats every k
    with pytest.raises(ValueError, match="autoencoder"):
        code_size_curves(curve, {})


def test_per_image_scatter_puts_both_methods_on_equal_log_axes():
    import matplotlib

    matplotlib.use("Agg")
    fig = per_image_scatter(torch.tensor([0.01, 0.02, 0.04]), torch.tensor([0.005, 0.03, 0.0]), "PCA", "AE")
    ax = fig.axes[0]
    assert ax.get_xlim() == ax.get_ylim() and ax.get_xscale() == "log"
    assert ax.get_xlim()[0] == pytest.approx(0.005 / 1.3)  # the zero error is left off the log axes
    with pytest.raises(ValueError, match="errors_x"):
        per_image_scatter(torch.zeros(3), torch.zeros(4), "a", "b")


def test_share_ranked_wrong_counts_the_draws_that_flip_the_order_of_the_means():
    a, b = torch.tensor([1.0, 3.0, 1.0, 1.0]), torch.tensor([2.0, 2.0, 2.0, 2.0])
    assert share_ranked_wrong(a, b, mean_a=1.5, mean_b=2.0) == 0.25  # a is better overall; one draw says otherwise
    assert share_ranked_wrong(a, b, mean_a=2.5, mean_b=2.0) == 0.75
    with pytest.raises(ValueError, match="draws_a and draws_b"):
        share_ranked_wrong(a, b[:3], 1.0, 2.0)
