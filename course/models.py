"""Every model of the course, with one interface: encode(x) -> z, decode(z) -> x_hat, forward(x) -> (z, x_hat)."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from course.data import IMAGE_SIZE, INPUT_DIM, check_images, to_float, to_pixels
# Images per forward pass when a trained model is only evaluated (no gradients): large enough to be
# fast, small enough that the batch's temporaries stay a few MB (2048 left ~75 MB behind over 50,000 images).
EVAL_BATCH_SIZE = 512


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for an empty model)."""
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Evaluation mode without gradients inside the block; the model's previous mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def batched(model: nn.Module, x: torch.Tensor, step: Callable | None = None,
            batch_size: int = EVAL_BATCH_SIZE) -> Iterator[tuple[torch.Tensor, object]]:
    """Yield (x batch as float on the model's device, step(model, that batch)) in evaluation mode.

    The one inference loop of the course: x may be uint8 or float, on any device; `step` defaults to
    the forward pass, (z, x_hat). The model's training mode is restored when the loop ends.
    """
    step = step or (lambda m, batch: m(batch))
    device = model_device(model)
    with evaluating(model):
        for start in range(0, x.shape[0], batch_size):
            batch = to_float(x[start:start + batch_size].to(device))
            yield batch, step(model, batch)


def codes(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """The codes z of every image of x, flattened to (N, code size), on the CPU."""
    return torch.cat([z.reshape(z.shape[0], -1).cpu() for _, (z, _) in batched(model, x, batch_size=batch_size)])


def decoded(model: nn.Module, z: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """The images decode(z) of codes z (N, code size) as uint8 pixels (N, 784) on the CPU, a batch at a time."""
    return torch.cat([to_pixels(x_hat.reshape(x_hat.shape[0], -1)).cpu()
                      for _, x_hat in batched(model, z, lambda m, b: m.decode(b), batch_size)])


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_channels(channels: Sequence[int]) -> tuple[int, int, int]:
    """The three channel counts of a convolutional encoder, each a positive int."""
    channels = tuple(channels)
    if len(channels) != 3:
        raise ValueError(f"channels must hold 3 positive ints (one per conv layer), got {channels!r}")
    for c in channels:
        _check_positive("channels", c)
    return channels


def _check_flat(x: torch.Tensor, input_dim: int) -> torch.Tensor:
    """(B, 784) images for a model's first layer, by the course's image check (shape only: no sync per batch).

    A model built for other inputs (input_dim != 784) takes (B, input_dim) vectors.
    """
    if input_dim == INPUT_DIM:
        return check_images(x, "x", layout="flat", values=False, min_count=0)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != input_dim:
        raise ValueError(f"x must have shape (B, {input_dim}), got {tuple(getattr(x, 'shape', ()))}")
    return x


def _check_images(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) images for a convolutional encoder, by the course's image check (shape only)."""
    return check_images(x, "x", layout="square", values=False, min_count=0)


def _mlp(dims: Sequence[int], last_activation: nn.Module | None) -> nn.Sequential:
    """Linear layers through `dims`, ReLU between them, `last_activation` after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Base of every course model: forward(x) returns the code and the reconstruction."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x_hat for x in evaluation mode, shaped like x and on x's device."""
        parts = [x_hat.reshape(batch.shape) for batch, (_, x_hat) in batched(self, x)]
        return torch.cat(parts).reshape(x.shape).to(x.device)


class MLPAutoencoder(Autoencoder):
    """Fully connected autoencoder with ReLU hidden layers, a linear code and a sigmoid output.

    The code is linear on purpose: a ReLU on a narrow code lets code units die (stuck at 0
    for every input), silently shrinking the bottleneck.
    """

    def __init__(self, hidden_dims: Sequence[int] = (512, 256, 128), latent_dim: int = 30,
                 decoder_dims: Sequence[int] | None = None, input_dim: int = INPUT_DIM):
        super().__init__()
        hidden_dims = tuple(hidden_dims)
        decoder_dims = tuple(reversed(hidden_dims)) if decoder_dims is None else tuple(decoder_dims)
        for name, dims in (("hidden_dims", hidden_dims), ("decoder_dims", decoder_dims)):
            for dim in dims:
                _check_positive(name, dim)
        _check_positive("latent_dim", latent_dim)
        _check_positive("input_dim", input_dim)
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.hidden_dims, self.decoder_dims = hidden_dims, decoder_dims
        self.encoder = _mlp((input_dim, *hidden_dims, latent_dim), last_activation=None)
        self.decoder = _mlp((latent_dim, *decoder_dims, input_dim), last_activation=nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_check_flat(x, self.input_dim))  # (B, 784) -> (B, latent_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, latent_dim) -> (B, 784)


def deep_autoencoder(latent_dim: int = 30) -> MLPAutoencoder:
    """The syllabus' deep autoencoder: 784-512-256-128-latent_dim, decoder latent_dim-128-256-784."""
    return MLPAutoencoder(hidden_dims=(512, 256, 128), latent_dim=latent_dim, decoder_dims=(128, 256))


def small_autoencoder(latent_dim: int = 8, hidden_dim: int = 64) -> MLPAutoencoder:
    """One hidden layer each side and a small linear code: 784-hidden_dim-latent_dim-hidden_dim-784."""
    return MLPAutoencoder(hidden_dims=(hidden_dim,), latent_dim=latent_dim, decoder_dims=(hidden_dim,))


class ShallowAutoencoder(Autoencoder):
    """One hidden layer of ReLU units: 784-hidden_dim-784; the code is the hidden activation h."""

    def __init__(self, hidden_dim: int = 128, input_dim: int = INPUT_DIM):
        super().__init__()
        _check_positive("hidden_dim", hidden_dim)
        _check_positive("input_dim", input_dim)
        self.input_dim, self.hidden_dim = input_dim, hidden_dim
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(hidden_dim, input_dim), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_check_flat(x, self.input_dim))  # (B, 784) -> (B, hidden_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, hidden_dim) -> (B, 784)

    @property
    def filters(self) -> torch.Tensor:
        """Each hidden unit's input weights as an image: (hidden_dim, 28, 28)."""
        return self.encoder[0].weight.detach().view(self.hidden_dim, IMAGE_SIZE, IMAGE_SIZE)


def _use_channels_last(module: nn.Module) -> None:
    """Store the conv weights channels-last: the same numbers, about twice as fast on the CPU.

    With 1 to 16 channels, oneDNN's (transposed) convolutions are much quicker in the NHWC layout
    (measured with one CPU thread: 23 -> 10 ms per training step of ConvAutoencoder, 11 -> 8 ms for
    ConvCodeAutoencoder). The layout survives .to(device) and load_state_dict, and does not change
    the architecture, the parameters or the results.
    """
    module.to(memory_format=torch.channels_last)


class ConvAutoencoder(Autoencoder):
    """The original assignment's convolutional autoencoder: a 16x1x1 code, decoded with the encoder's pooling indices.

    The unpooling layers put each value back where the encoder's max was, so the decoder also
    receives position information through the indices: the 16 numbers are not the whole bottleneck.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 16)):
        super().__init__()
        c1, c2, c3 = _check_channels(channels)
        self.latent_dim = c3
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(1, c1, 3), nn.Conv2d(c1, c2, 3), nn.Conv2d(c2, c3, 3)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.deconv1 = nn.ConvTranspose2d(c3, c2, 3)
        self.deconv2 = nn.ConvTranspose2d(c2, c1, 3)
        self.deconv3 = nn.ConvTranspose2d(c1, 1, 3)
        self.relu = nn.ReLU()
        _use_channels_last(self)

    def encode_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """The code and, per pooling layer, (indices, size before pooling) for the decoder."""
        h = _check_images(x)  # (B, 1, 28, 28)
        pooled = []
        for conv in (self.conv1, self.conv2, self.conv3):
            h = self.relu(conv(h))  # 28 -> 26, 13 -> 11, 5 -> 3
            size = h.shape[-2:]
            h, indices = self.pool(h)  # 26 -> 13, 11 -> 5, 3 -> 1
            pooled.append((indices, size))
        return h, pooled  # (B, 16, 1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_indices(x)[0]

    def decode(self, z: torch.Tensor, pooled: list | None = None) -> torch.Tensor:
        if pooled is None:
            raise ValueError("ConvAutoencoder.decode needs pooled=(indices, sizes) from encode_with_indices: "
                             "its decoder unpools with the encoder's indices; ConvCodeAutoencoder decodes from z alone")
        h = z
        for deconv, (indices, size) in zip((self.deconv1, self.deconv2, self.deconv3), reversed(pooled)):
            h = self.unpool(h, indices, output_size=size)  # 1 -> 3, 5 -> 11, 13 -> 26
            h = deconv(h)  # 3 -> 5, 11 -> 13, 26 -> 28
            h = self.relu(h) if deconv is not self.deconv3 else torch.sigmoid(h)
        return h  # (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, pooled = self.encode_with_indices(x)
        return z, self.decode(z, pooled)

    @property
    def transposed_convs(self) -> list[nn.ConvTranspose2d]:
        return [self.deconv1, self.deconv2, self.deconv3]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's (or pooling's) output: floor((size + 2 * padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


class CodeOnlyDecoder(nn.Sequential):
    """Grows a (B, c3, 1, 1) code to a (B, 1, 28, 28) image with transposed convolutions, from the code alone."""

    def __init__(self, channels: Sequence[int] = (8, 16, 16)):
        c1, c2, c3 = _check_channels(channels)
        super().__init__(
            nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # 1 -> 3
            nn.ConvTranspose2d(c2, c2, 3, stride=2), nn.ReLU(),  # 3 -> 7
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 14 -> 28
        )


class ConvCodeAutoencoder(Autoencoder):
    """The same encoder and code size, but a decoder that sees only the 16x1x1 code.

    Strided transposed convolutions grow the code back to 28x28, so everything the decoder
    knows about the image has to pass through the code.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 16), decoder: nn.Module | None = None):
        super().__init__()
        c1, c2, c3 = _check_channels(channels)
        self.latent_dim = c3
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 26 -> 13
            nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2),  # 13 -> 11 -> 5
            nn.Conv2d(c2, c3, 3), nn.ReLU(), nn.MaxPool2d(2),  # 5 -> 3 -> 1
        )
        self.decoder = CodeOnlyDecoder(channels) if decoder is None else decoder
        _use_channels_last(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_check_images(x))  # (B, 1, 28, 28) -> (B, 16, 1, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 16, 1, 1) -> (B, 1, 28, 28)

    @property
    def transposed_convs(self) -> list[nn.ConvTranspose2d]:
        return [m for m in self.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]


class PCA(Autoencoder):
    """Principal component analysis with the autoencoder interface: z = (x - mean) W, x_hat = z W^T + mean."""

    def __init__(self, latent_dim: int = 30, input_dim: int = INPUT_DIM):
        super().__init__()
        _check_positive("latent_dim", latent_dim)
        _check_positive("input_dim", input_dim)
        if latent_dim > input_dim:
            raise ValueError(f"latent_dim must be at most input_dim={input_dim} for PCA, got {latent_dim}")
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("components", torch.zeros(input_dim, latent_dim))
        self.register_buffer("explained_variance", torch.zeros(latent_dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, batch_size: int = 4096) -> "PCA":
        """Fit the top `latent_dim` principal directions of x (N, input_dim), uint8 or float.

        The covariance is summed in float64 over batches, so no float copy of all of x is made.
        """
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"x must hold at least 2 images to fit PCA, got {n}")
        total = torch.zeros(self.input_dim, dtype=torch.float64)
        outer = torch.zeros(self.input_dim, self.input_dim, dtype=torch.float64)
        for start in range(0, n, batch_size):
            batch = _check_flat(to_float(x[start:start + batch_size].cpu()), self.input_dim).double()
            total += batch.sum(0)
            outer += batch.T @ batch
        mean = total / n
        cov = (outer - n * torch.outer(mean, mean)) / (n - 1)  # sum of (x - mean)(x - mean)^T / (n - 1)
        values, vectors = torch.linalg.eigh(cov)  # ascending order
        top = torch.argsort(values, descending=True)[: self.latent_dim]
        self.mean.copy_(mean.float())
        self.components.copy_(vectors[:, top].float())
        self.explained_variance.copy_(values[top].float())
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (_check_flat(to_float(x), self.input_dim) - self.mean) @ self.components  # (B, 784) -> (B, latent_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.components.T + self.mean  # (B, latent_dim) -> (B, 784)


def pca_reconstruct(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rebuild x (N, 784) from its top-k principal components, fitted on x itself: centre, project, rebuild."""
    mean = x.mean(dim=0)  # (784,) the mean image
    centred = x - mean  # (N, 784)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)  # rows of vt: principal directions
    directions = vt[:k].T  # (784, k), the k of largest variance
    return centred @ directions @ directions.T + mean  # k numbers per image, back to 784 pixels


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` codes on the straight line from z0 to z1 (both (d,)), both ends included: (steps, d)."""
    t = torch.linspace(0.0, 1.0, steps, device=z0.device, dtype=z0.dtype).unsqueeze(1)  # (steps, 1)
    return (1 - t) * z0 + t * z1


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample z = mu + sigma * eps of N(mu, sigma^2), with eps ~ N(0, I): random, yet differentiable in mu and logvar."""
    # Drawn where the generator lives (a CPU generator cannot draw on a GPU), then moved beside mu.
    device = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps  # sigma = exp(logvar / 2)


class VariationalAutoencoder(Autoencoder):
    """784-hidden_dim ReLU, then a mean and a log-variance of latent_dim each; latent_dim-hidden_dim-784 sigmoid.

    encode(x) returns the code the decoder uses: a sample mu + sigma * eps in training mode, the mean
    mu in evaluation mode; encode_stats(x) gives (mu, logvar) themselves. decode_logits(z) gives the
    decoder's output before the sigmoid: the loss reads it (a cross-entropy from logits is stable and
    several times cheaper than one from probabilities).
    """

    def __init__(self, latent_dim: int = 16, hidden_dim: int = 256, input_dim: int = INPUT_DIM):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("hidden_dim", hidden_dim), ("input_dim", input_dim)):
            _check_positive(name, value)
        self.input_dim, self.latent_dim, self.hidden_dim = input_dim, latent_dim, hidden_dim
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, input_dim))

    def encode_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(_check_flat(x, self.input_dim))  # (B, 784) -> (B, hidden_dim)
        return self.to_mu(h), self.to_logvar(h)  # (B, latent_dim) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encode_stats(x)
        return reparameterize(mu, logvar) if self.training else mu  # (B, latent_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, latent_dim) -> (B, 784), before the sigmoid

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))  # (B, latent_dim) -> (B, 784) in (0, 1)


MODELS = {
    "deep": deep_autoencoder,
    "small": small_autoencoder,
    "mlp": MLPAutoencoder,
    "shallow": ShallowAutoencoder,
    "conv-unpool": ConvAutoencoder,
    "conv-code": ConvCodeAutoencoder,
    "vae": VariationalAutoencoder,
}


def build_model(name: str, **kwargs) -> Autoencoder:
    """A model by registry name ("deep", "small", "mlp", "shallow", "conv-unpool", "conv-code", "vae")."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)


class StandardisedCode(Autoencoder):
    """A trained model seen through standardised codes: u = (z - mean) / std, per code dimension.

    A linear code has no natural scale (the encoder could multiply it by 10 and the decoder divide
    by 10 without changing a single reconstruction), so noise added to a raw code means little by
    itself. Through this view, noise of std 1 on u is noise as large as the spread of the codes.
    It wraps the model (no copy, no new parameters): encode(x) -> u, decode(u) -> x_hat.
    """

    def __init__(self, model: Autoencoder, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.dim() != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be 1-D of the same length, got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("std must be > 0 in every code dimension")
        self.model = model
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model.encode(x)
        return (z - self.mean.to(z.device)) / self.std.to(z.device)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        return self.model.decode(u * self.std.to(u.device) + self.mean.to(u.device))


def standardise_codes(model: Autoencoder, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> StandardisedCode:
    """`model` seen through codes standardised with the mean and std of its codes of the images x."""
    z = codes(model, x, batch_size)
    if z.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 images to measure the spread of the codes, got {z.shape[0]}")
    return StandardisedCode(model, z.mean(0), z.std(0)).to(model_device(model)).eval()
