"""Helpers added for notebooks 04-06: pooling-index measurements, per-image and nearest-neighbour
errors, filter template similarity, standardised codes, and the channels-last conv layout."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course.metrics import (_pool_window_position, class_template_similarity, filter_roughness, nearest_neighbour_mse,
                            per_image_mse, pooling_index_bits, reconstruction_mse, unpooling_ablation)
from course.models import (ConvAutoencoder, ConvCodeAutoencoder, StandardisedCode, small_autoencoder,
                           standardise_codes)
from course.training import GaussianNoise


@pytest.fixture
def images():
    return torch.rand(40, 784, generator=torch.Generator().manual_seed(0))


def test_pool_window_position_names_the_cell_of_the_max():
    pool = nn.MaxPool2d(2, return_indices=True)
    for cell in range(4):
        x = torch.zeros(1, 1, 4, 6)
        r, c = divmod(cell, 2)
        x[0, 0, r::2, c::2] = 1.0  # the max of every 2x2 window sits in the same cell
        _, idx = pool(x)
        assert (_pool_window_position(idx, 6) == cell).all()


def test_pooling_index_bits_counts_capacity_and_entropy(images):
    torch.manual_seed(0)
    rows = pooling_index_bits(ConvAutoencoder(), images, batch_size=16)
    assert [r["indices"] for r in rows] == [8 * 13 * 13, 16 * 5 * 5, 16]
    assert [r["before_pooling"] for r in rows] == ["8x26x26", "16x11x11", "16x3x3"]
    for r in rows:
        assert r["capacity_bits"] == 2 * r["indices"]
        assert 0.0 <= r["entropy_bits"] <= r["capacity_bits"] + 1e-9


def test_identical_images_carry_no_index_information():
    torch.manual_seed(0)
    x = torch.rand(1, 784).expand(12, -1).clone()
    rows = pooling_index_bits(ConvAutoencoder(), x, batch_size=5)
    assert all(r["entropy_bits"] == pytest.approx(0.0, abs=1e-9) for r in rows)


def test_index_helpers_refuse_models_without_indices(images):
    with pytest.raises(ValueError, match="encode_with_indices"):
        pooling_index_bits(ConvCodeAutoencoder(), images)
    with pytest.raises(ValueError, match="encode_with_indices"):
        unpooling_ablation(ConvCodeAutoencoder(), images)


def test_unpooling_ablation_matches_the_plain_reconstruction(images):
    torch.manual_seed(0)
    model = ConvAutoencoder()
    result = unpooling_ablation(model, images, seed=0, batch_size=16)
    assert set(result) == {"own code, own indices", "mean code, own indices", "own code, other indices"}
    assert result["own code, own indices"] == pytest.approx(reconstruction_mse(model, images), rel=1e-5)
    single = unpooling_ablation(model, images[:1])  # its only "other" image is itself
    assert single["own code, other indices"] == pytest.approx(single["own code, own indices"], rel=1e-6)


def test_per_image_mse_averages_to_the_test_mse(images):
    torch.manual_seed(0)
    model = small_autoencoder()
    errors = per_image_mse(model, images, batch_size=16)
    assert errors.shape == (40,)
    assert float(errors.mean()) == pytest.approx(reconstruction_mse(model, images), rel=1e-5)
    noisy = per_image_mse(model, images, corruption=GaussianNoise(0.5), seed=3, batch_size=7)
    assert float(noisy.mean()) == pytest.approx(
        reconstruction_mse(model, images, corruption=GaussianNoise(0.5), seed=3, batch_size=7), rel=1e-5)


def test_class_template_similarity():
    x = torch.rand(30, 784, generator=torch.Generator().manual_seed(1))
    y = torch.arange(30) % 3
    mean_of_class_1 = x[y == 1].mean(0)
    filters = torch.stack([mean_of_class_1, -2 * mean_of_class_1 + 0.3, torch.randn(784)])
    sim = class_template_similarity(filters, x, y)
    assert sim.shape == (3,)
    assert sim[0] == pytest.approx(1.0, abs=1e-5) and sim[1] == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= float(sim[2]) < 0.5
    with pytest.raises(ValueError, match="pixels"):
        class_template_similarity(torch.rand(2, 10), x, y)


def test_nearest_neighbour_mse():
    reference = torch.rand(50, 784, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(nearest_neighbour_mse(reference[:7], reference, batch_size=3), torch.zeros(7), atol=1e-5)
    shifted = reference[:1] + 0.1
    expected = min(float(((shifted - r) ** 2).mean()) for r in reference)
    assert float(nearest_neighbour_mse(shifted, reference)[0]) == pytest.approx(expected, rel=1e-4)
    pixels = (reference * 255).round().to(torch.uint8)  # stored images: the same distances as their floats
    assert torch.allclose(nearest_neighbour_mse(pixels[:3], pixels), torch.zeros(3), atol=1e-5)
    assert torch.allclose(nearest_neighbour_mse(pixels[:3] // 2, reference), nearest_neighbour_mse((pixels[:3] // 2).float() / 255, reference))
    with pytest.raises(ValueError, match="pixels"):
        nearest_neighbour_mse(torch.rand(2, 10), reference)


def test_standardised_codes_have_unit_spread_and_decode_the_same(images):
    torch.manual_seed(0)
    model = small_autoencoder().eval()
    view = standardise_codes(model, images, batch_size=16)
    assert isinstance(view, StandardisedCode)
    with torch.no_grad():
        u = view.encode(images)
        assert torch.allclose(u.mean(0), torch.zeros(8), atol=1e-4)
        assert torch.allclose(u.std(0), torch.ones(8), atol=1e-4)
        assert torch.allclose(view.decode(u), model(images)[1], atol=1e-5)
    assert not list(view.parameters()) or all(p is q for p, q in zip(view.parameters(), model.parameters()))


def test_standardised_code_rejects_bad_scales():
    model = small_autoencoder()
    with pytest.raises(ValueError, match="> 0"):
        StandardisedCode(model, torch.zeros(8), torch.zeros(8))
    with pytest.raises(ValueError, match="same length"):
        StandardisedCode(model, torch.zeros(8), torch.ones(7))
    with pytest.raises(ValueError, match="at least 2"):
        standardise_codes(model, torch.rand(1, 784))


@pytest.mark.parametrize("cls", [ConvAutoencoder, ConvCodeAutoencoder])
def test_conv_models_store_weights_channels_last_without_changing_results(cls, images):
    torch.manual_seed(0)
    model = cls().eval()
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    plain = cls().eval()
    plain.load_state_dict({k: v.contiguous() for k, v in model.state_dict().items()})
    plain.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        assert torch.allclose(model(images)[1], plain(images)[1], atol=1e-5)
    fresh = cls().eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(images)[1], model(images)[1])


def test_filter_roughness_orders_smooth_below_grainy():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    smooth = torch.exp(-((yy - 14) ** 2 + (xx - 14) ** 2) / 50)
    checker = ((yy + xx) % 2) * 2 - 1
    rough = filter_roughness(torch.stack([smooth, checker, torch.ones(28, 28)]).reshape(3, 784))
    assert rough.shape == (3,)
    assert float(rough[2]) == 0.0
    assert float(rough[0]) < 0.1 < float(rough[1])
    assert float(rough[1]) == pytest.approx(4 * 2 * 27 * 28 / 784)  # every neighbour pair differs by 2
    with pytest.raises(ValueError, match="square"):
        filter_roughness(torch.rand(2, 10))
