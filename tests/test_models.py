"""course.models: one interface for every architecture, their shapes, their bad inputs, and PCA."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course.metrics import mse, reconstruction_mse
from course.models import (MODELS, PCA, ConvAutoencoder, ConvCodeAutoencoder, MLPAutoencoder, ShallowAutoencoder,
                           build_model, deep_autoencoder, small_autoencoder)

# name -> (builder, code shape per image, output is an image (B, 1, 28, 28) rather than flat (B, 784))
ARCHITECTURES = {
    "deep": (lambda: deep_autoencoder(), (30,), False),
    "deep-2d": (lambda: deep_autoencoder(latent_dim=2), (2,), False),
    "small": (lambda: small_autoencoder(), (8,), False),
    "mlp": (lambda: MLPAutoencoder(hidden_dims=(32, 16), latent_dim=4), (4,), False),
    "shallow": (lambda: ShallowAutoencoder(hidden_dim=64), (64,), False),
    "conv-unpool": (lambda: ConvAutoencoder(), (16, 1, 1), True),
    "conv-code": (lambda: ConvCodeAutoencoder(), (16, 1, 1), True),
}


@pytest.fixture
def batch(tiny):
    return tiny.test.x[:5]


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("layout", ["flat", "image"])
def test_forward_returns_code_and_reconstruction(name, layout, batch):
    build, code_shape, image_out = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = build().eval()
    x = batch if layout == "flat" else batch.view(-1, 1, 28, 28)
    with torch.no_grad():
        z, x_hat = model(x)
    assert z.shape == (5, *code_shape)
    assert x_hat.shape == ((5, 1, 28, 28) if image_out else (5, 784))
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0  # sigmoid output
    assert torch.isfinite(z).all()
    # the images of a batch are encoded independently of each other
    with torch.no_grad():
        z_one, _ = model(x[:1])
    assert torch.allclose(z_one, z[:1], atol=1e-5)


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if n != "conv-unpool"])
def test_encode_then_decode_is_forward(name, batch):
    model = ARCHITECTURES[name][0]().eval()
    z, x_hat = model(batch)
    assert torch.equal(model.encode(batch), z)
    assert torch.allclose(model.decode(z), x_hat)


def test_unpooling_decoder_needs_and_uses_the_indices(batch):
    """The seed's decoder takes position information from the encoder: not only the 16 numbers."""
    torch.manual_seed(0)
    model = ConvAutoencoder().eval()
    z, x_hat = model(batch)
    code, pooled = model.encode_with_indices(batch)
    assert torch.equal(code, z) and torch.equal(model.encode(batch), z)
    assert torch.allclose(model.decode(code, pooled), x_hat)
    with pytest.raises(ValueError, match="pooled"):
        model.decode(code)
    _, other_pooled = model.encode_with_indices(batch.flip(0))
    assert not torch.allclose(model.decode(code, other_pooled), x_hat)  # same code, other indices


@pytest.mark.parametrize("name", ["conv-unpool", "conv-code"])
def test_conv_models_expose_their_transposed_convolutions(name):
    model = build_model(name)
    layers = model.transposed_convs
    assert len(layers) >= 3 and all(isinstance(layer, nn.ConvTranspose2d) for layer in layers)
    assert all(layer.kernel_size == (3, 3) for layer in layers)
    assert layers[-1].out_channels == 1
    assert model.latent_dim == 16


def test_syllabus_layer_sizes():
    deep = deep_autoencoder()
    linear = [m for m in deep.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [
        (784, 512), (512, 256), (256, 128), (128, 30), (30, 128), (128, 256), (256, 784)]
    # the code is linear: no activation after the encoder's last layer
    assert isinstance(deep.encoder[-1], nn.Linear)
    manifold = small_autoencoder()
    assert [(m.in_features, m.out_features) for m in manifold.modules() if isinstance(m, nn.Linear)] == [
        (784, 64), (64, 8), (8, 64), (64, 784)]
    conv = ConvAutoencoder()
    assert [(c.in_channels, c.out_channels) for c in (conv.conv1, conv.conv2, conv.conv3)] == [(1, 8), (8, 16), (16, 16)]


def test_linear_code_can_be_negative(batch):
    torch.manual_seed(0)
    with torch.no_grad():
        z = deep_autoencoder().encode(batch)
    assert float(z.min()) < 0.0  # a ReLU code could not be


def test_shallow_filters_are_the_encoder_weights():
    model = ShallowAutoencoder(hidden_dim=12)
    filters = model.filters
    assert filters.shape == (12, 28, 28)
    assert torch.equal(filters[3].flatten(), model.encoder[0].weight[3])
    assert not filters.requires_grad


@pytest.mark.parametrize("name", ["shallow", "conv-code"])
def test_reconstruct_keeps_shape_and_mode(name, batch):
    model = ARCHITECTURES[name][0]()
    model.train()
    images = batch.view(-1, 1, 28, 28)
    assert model.reconstruct(batch).shape == batch.shape
    assert model.reconstruct(images).shape == images.shape
    assert model.training  # put back as it was
    assert not model.reconstruct(batch).requires_grad


@pytest.mark.parametrize("name, kwargs, shape", [
    ("deep", {"latent_dim": 5}, (5,)), ("small", {}, (8,)), ("mlp", {"hidden_dims": [20], "latent_dim": 3}, (3,)),
    ("shallow", {"hidden_dim": 7}, (7,)), ("conv-unpool", {}, (16, 1, 1)),
    ("conv-code", {"channels": (4, 6, 10)}, (10, 1, 1)),
])
def test_build_model_by_name(name, kwargs, shape, batch):
    model = build_model(name, **kwargs)
    assert model(batch)[0].shape == (5, *shape)


def test_registry_lists_every_syllabus_model():
    assert set(MODELS) == {"deep", "small", "mlp", "shallow", "conv-unpool", "conv-code", "vae"}


# --- bad inputs name the parameter ---------------------------------------------------------------

def test_unknown_model_name_is_an_error_naming_it():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("transformer")


@pytest.mark.parametrize("build, name", [
    (lambda: ShallowAutoencoder(hidden_dim=0), "hidden_dim"),
    (lambda: ShallowAutoencoder(hidden_dim=-3), "hidden_dim"),
    (lambda: ShallowAutoencoder(hidden_dim=2.5), "hidden_dim"),
    (lambda: build_model("shallow", hidden_dim=0), "hidden_dim"),
    (lambda: small_autoencoder(hidden_dim=0), "hidden_dims"),
    (lambda: MLPAutoencoder(hidden_dims=(32, 0)), "hidden_dims"),
    (lambda: MLPAutoencoder(hidden_dims=(True,)), "hidden_dims"),
    (lambda: MLPAutoencoder(decoder_dims=(0,)), "decoder_dims"),
    (lambda: MLPAutoencoder(latent_dim=0), "latent_dim"),
    (lambda: deep_autoencoder(latent_dim=0), "latent_dim"),
    (lambda: small_autoencoder(latent_dim=0), "latent_dim"),
    (lambda: PCA(latent_dim=0), "latent_dim"),
    (lambda: PCA(latent_dim=785), "latent_dim"),
    (lambda: ConvAutoencoder(channels=(8, 0, 16)), "channels"),
    (lambda: ConvAutoencoder(channels=(8, 16)), "channels"),
    (lambda: ConvCodeAutoencoder(channels=(8, 16, 16, 16)), "channels"),
])
def test_bad_sizes_name_the_parameter(build, name):
    with pytest.raises(ValueError, match=name):
        build()


WRONG_SHAPES = [torch.rand(4, 783), torch.rand(4, 28, 28), torch.rand(4, 1, 32, 32), torch.rand(4, 3, 28, 28),
                torch.rand(784)]


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("x", WRONG_SHAPES, ids=lambda x: "x".join(map(str, x.shape)))
def test_wrong_image_shape_is_an_error_naming_x(name, x):
    model = ARCHITECTURES[name][0]()
    with pytest.raises(ValueError, match=r"x must have shape"):
        model(x)
    with pytest.raises(ValueError, match=r"x must have shape"):
        model.encode(x)


@pytest.mark.parametrize("x", WRONG_SHAPES, ids=lambda x: "x".join(map(str, x.shape)))
def test_wrong_image_shape_to_pca(x, pca30):
    with pytest.raises(ValueError, match=r"x must have shape"):
        pca30.encode(x)
    with pytest.raises(ValueError, match=r"x must have shape"):
        pca30(x)
    with pytest.raises(ValueError, match=r"x must have shape"):
        PCA(latent_dim=3).fit(x)


# --- PCA -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pca30(sample):
    return PCA(latent_dim=30).fit(sample.train.x)


def test_pca_interface_and_orthonormal_components(pca30, sample):
    x = sample.test.x[:10]
    z, x_hat = pca30(x)
    assert z.shape == (10, 30) and x_hat.shape == (10, 784)
    assert torch.allclose(pca30.decode(pca30.encode(x)), x_hat)
    assert torch.allclose(pca30(x.view(-1, 1, 28, 28))[0], z)
    w = pca30.components
    assert torch.allclose(w.T @ w, torch.eye(30), atol=1e-5)
    variance = pca30.explained_variance
    assert (variance[:-1] >= variance[1:]).all() and float(variance[-1]) > 0
    assert torch.allclose(pca30.mean, sample.train.x.mean(0), atol=1e-6)
    # codes of the training images are centred, and their variances are the eigenvalues
    codes = pca30.encode(sample.train.x)
    assert float(codes.mean(0).abs().max()) < 1e-4
    assert torch.allclose(codes.var(0), variance, rtol=1e-3)


def test_pca_beats_the_mean_image_and_matches_an_svd(pca30, sample):
    test = sample.test.x
    pca_mse = reconstruction_mse(pca30, test)
    mean_mse = mse(sample.train.x.mean(0).expand_as(test), test)
    assert 0.05 < mean_mse < 0.09  # predicting the mean digit: about 0.067 on MNIST
    assert pca_mse < 0.4 * mean_mse
    # the same subspace by another route: the top right singular vectors of the centred training set
    mean = sample.train.x.mean(0)
    _, _, vh = torch.linalg.svd(sample.train.x - mean, full_matrices=False)
    top = vh[:30].T
    svd_mse = mse((test - mean) @ top @ top.T + mean, test)
    assert pca_mse == pytest.approx(svd_mse, rel=1e-3)


def test_pca_with_every_component_reconstructs_exactly(sample, pca30):
    full = PCA(latent_dim=784).fit(sample.train.x)
    assert reconstruction_mse(full, sample.test.x) < 1e-9
    assert reconstruction_mse(pca30, sample.test.x) > 1e-3


def test_pca_more_components_reconstruct_better(sample, pca30):
    small = PCA(latent_dim=3).fit(sample.train.x)
    errors = [reconstruction_mse(model, sample.test.x) for model in (small, pca30)]
    assert errors[0] > errors[1]
    assert torch.allclose(small.components.abs(), pca30.components[:, :3].abs(), atol=1e-3)  # nested


def test_pca_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        PCA(latent_dim=3).fit(torch.rand(1, 784))


def test_pca_state_dict_round_trip(pca30, sample):
    copy = PCA(latent_dim=30)
    copy.load_state_dict(pca30.state_dict())
    x = sample.test.x[:4]
    assert torch.equal(copy(x)[1], pca30(x)[1])
