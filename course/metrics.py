"""Held-out measurements: reconstruction MSE per pixel, the activity of hidden units, a VAE's negative ELBO,
and how much a set of images looks like real data (a Fréchet distance in a probe classifier's features)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course.data import IMAGE_SIZE, INPUT_DIM, DigitData, check_images, mean_image, to_float, to_pixels
from course.models import EVAL_BATCH_SIZE, batched, codes, model_device
from course.training import NegativeELBO

# A unit counts as active on an image when its ReLU output is above this.
ACTIVE_THRESHOLD = 0.0


def reconstruction_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None,
                       seed: int = 0, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Mean squared error per pixel between x and the model's reconstruction.

    With `corruption`, the model sees corrupted inputs (noise drawn with `seed`) and is scored
    against the clean x: the denoising error.
    """
    errors = per_image_mse(model, x, corruption, seed, batch_size)
    return float(errors.double().mean())


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error per pixel between two tensors of the same number of elements."""
    if x_hat.numel() != x.numel():
        raise ValueError(f"x_hat and x must have the same number of elements, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    return float(((x_hat.reshape(x.shape).float() - x.float()) ** 2).mean())


def activation_stats(z: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Sparsity of hidden activations z (N, units): mean activation, active units per image, dead units.

    - avg_activation: mean of z over images and units;
    - active_units_per_image: how many units exceed `threshold` on an average image;
    - active_fraction: that number divided by the number of units;
    - dead_fraction: the fraction of units that never exceed `threshold` on any image of z.
    """
    if z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"z must have shape (N, units) with N > 0, got {tuple(z.shape)}")
    units = z.shape[1]
    per_image = (z > threshold).sum(1).float().mean().item()
    return {
        "avg_activation": float(z.float().mean()),
        "active_units_per_image": per_image,
        "active_fraction": per_image / units,
        "dead_fraction": dead_fraction(z, threshold),
        "units": units,
    }


def dead_fraction(z: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> float:
    """The fraction of units (columns of z, (N, units)) that are not above `threshold` for any image."""
    active_somewhere = (z > threshold).any(dim=0)  # (units,): True if the unit fires at least once
    return float((~active_somewhere).float().mean())


def living_units(z: torch.Tensor, top: int | None = None, threshold: float = ACTIVE_THRESHOLD) -> torch.Tensor:
    """Indices of the units (columns of z, (N, units)) active on at least one image, most often active first.

    With `top`, at most that many: the filters worth drawing, without the speckle of dead units.
    """
    active = z > threshold  # (N, units)
    rate = active.float().mean(dim=0)  # (units,) how often each unit fires
    order = torch.argsort(rate, descending=True, stable=True)
    alive = order[rate[order] > 0]
    return alive if top is None else alive[:top]


def _pool_window_position(indices: torch.Tensor, width: int) -> torch.Tensor:
    """Which cell of its 2x2 pooling window each max came from: 0..3 (row parity * 2 + column parity)."""
    return (indices // width % 2) * 2 + indices % width % 2


def _check_unpooling(model: nn.Module) -> None:
    if not hasattr(model, "encode_with_indices"):
        raise ValueError(f"{type(model).__name__} has no encode_with_indices: it does not unpool with indices")


def pooling_index_bits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> list[dict]:
    """What the pooling indices of an unpooling model (encode_with_indices) can tell its decoder.

    Per pooling layer: how many indices an image sends (one per pooled value), their capacity
    (2 bits each: the max is one of the 4 cells of a 2x2 window) and the sum over positions of the
    entropy of each index across the images of x, in bits. An index that always points at the same
    cell carries nothing, so the entropy is the more honest figure; summed over positions it is
    still an upper bound on what the indices of one layer carry jointly.
    """
    _check_unpooling(model)
    counts: list[torch.Tensor] | None = None
    shapes: list[tuple] = []
    for _, (_, pooled) in batched(model, x, lambda m, batch: m.encode_with_indices(batch), batch_size):
        if counts is None:
            counts = [torch.zeros((*idx.shape[1:], 4), dtype=torch.float64) for idx, _ in pooled]
            shapes = [(tuple(idx.shape[1:]), tuple(size)) for idx, size in pooled]
        for layer, (idx, size) in enumerate(pooled):
            cell = _pool_window_position(idx, int(size[-1])).cpu()
            counts[layer] += torch.nn.functional.one_hot(cell, 4).sum(0).double()
    rows = []
    for layer, (count, (pooled_shape, size)) in enumerate(zip(counts or [], shapes)):
        p = count / count.sum(-1, keepdim=True)
        entropy = -(p * torch.log2(p.clamp_min(1e-300))).sum(-1)
        n = int(torch.tensor(pooled_shape).prod())
        rows.append({"layer": layer + 1, "before_pooling": f"{pooled_shape[0]}x{size[0]}x{size[1]}",
                     "indices": n, "capacity_bits": 2 * n, "entropy_bits": float(entropy.sum())})
    return rows


def unpooling_ablation(model: nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """Test MSE of an unpooling model when its decoder is given different codes and pooling indices.

    - "own code, own indices": the ordinary reconstruction;
    - "mean code, own indices": every image's code replaced by the mean code of x, so only the
      indices tell the images apart;
    - "own code, other indices": each image decoded from its code but with the indices of another
      image of x (a fixed random permutation drawn with `seed`).
    """
    _check_unpooling(model)
    n = x.shape[0]
    mean_code = codes(model, x, batch_size).mean(0).to(model_device(model))
    other = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # Each row holds an image and, beside it, the image whose pooling indices it borrows.
    pairs = torch.cat([x, x[other]], dim=1)
    totals = {"own code, own indices": 0.0, "mean code, own indices": 0.0, "own code, other indices": 0.0}

    def step(m, pair):
        clean, donor = pair.chunk(2, dim=1)
        z, pooled = m.encode_with_indices(clean)
        _, pooled_other = m.encode_with_indices(donor)
        outputs = {
            "own code, own indices": m.decode(z, pooled),
            "mean code, own indices": m.decode(mean_code.view(1, *z.shape[1:]).expand_as(z), pooled),
            "own code, other indices": m.decode(z, pooled_other),
        }
        return {name: float(((x_hat.reshape(clean.shape) - clean) ** 2).sum()) for name, x_hat in outputs.items()}

    for _, sums in batched(model, pairs, step, batch_size):
        for name, value in sums.items():
            totals[name] += value
    return {name: total / (n * x[0].numel()) for name, total in totals.items()}


def per_image_mse(model: nn.Module, x: torch.Tensor, corruption: Callable | None = None, seed: int = 0,
                  batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """The MSE per pixel of each image of x, as an (N,) CPU tensor (scored against the clean x).

    With `corruption`, the model sees corrupted inputs (noise drawn with `seed`) and is scored
    against the clean x: the denoising error.
    """
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)

    def step(m, clean):
        x_in = clean if corruption is None else corruption(clean, generator)
        x_hat = m(x_in)[1].reshape(clean.shape)
        return ((x_hat - clean) ** 2).reshape(clean.shape[0], -1).mean(1).cpu()

    return torch.cat([errors for _, errors in batched(model, x, step, batch_size)])


def class_means(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean image of each class present in y, in class order: (classes, 784) float32."""
    x, y = x.reshape(x.shape[0], -1).float().cpu(), y.cpu()
    return torch.stack([x[y == label].mean(0) for label in torch.unique(y)])


def class_template_similarity(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How much each filter looks like a whole average image: (units,) in [0, 1].

    For each filter (a row of `weights`, (units, 784) or (units, 28, 28)) the largest absolute
    correlation, over the classes of y, between the filter and the mean image of that class in x.
    A whole-digit template scores high; a small stroke detector or a noisy filter scores low.
    """
    w = weights.detach().reshape(weights.shape[0], -1).float().cpu()
    x, y = x.reshape(x.shape[0], -1).float().cpu(), y.cpu()
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"filters have {w.shape[1]} weights but images have {x.shape[1]} pixels")
    means = class_means(x, y)

    def unit(v: torch.Tensor) -> torch.Tensor:
        v = v - v.mean(1, keepdim=True)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return (unit(w) @ unit(means).T).abs().max(1).values


def nearest_neighbour_mse(x: torch.Tensor, reference: torch.Tensor, batch_size: int = 256,
                          reference_chunk: int = 2500) -> torch.Tensor:
    """For each image of x, the MSE per pixel to its closest image in `reference`: (N,) on the CPU.

    A small value means the image lies close to some real image of `reference`: near the data.
    `reference` may be a whole uint8 split (data.train.pixels): it is converted `reference_chunk` images at
    a time, so no float copy of it is made (50,000 float images are 157 MB).
    """
    x = to_float(x.detach().cpu()).reshape(x.shape[0], -1)  # uint8 pixels or float images
    reference = reference.detach().cpu().reshape(reference.shape[0], -1)
    if x.shape[1] != reference.shape[1]:
        raise ValueError(f"x has {x.shape[1]} pixels per image but reference has {reference.shape[1]}")
    if reference.shape[0] == 0:
        raise ValueError("reference must hold at least 1 image")
    best = torch.full((x.shape[0],), float("inf"))
    x_sq = (x ** 2).sum(1, keepdim=True)
    for first in range(0, reference.shape[0], reference_chunk):
        part = to_float(reference[first:first + reference_chunk]).float()
        part_sq = (part ** 2).sum(1)
        for start in range(0, x.shape[0], batch_size):
            q = x[start:start + batch_size]
            d = x_sq[start:start + batch_size] + part_sq - 2 * q @ part.T
            best[start:start + batch_size] = torch.minimum(best[start:start + batch_size], d.min(1).values)
    return best.clamp_min(0) / x.shape[1]


def filter_roughness(weights: torch.Tensor) -> torch.Tensor:
    """How grainy each 28x28 filter is: (units,), 0 for a constant filter, larger for finer texture.

    The energy of the differences between horizontally and vertically neighbouring weights,
    divided by the filter's own energy (sum of squared weights): a smooth, broad template scores
    low, a filter of fine speckle high. `weights` is (units, 784) or (units, 28, 28).
    """
    f = weights.detach().float().cpu()
    side = int(round(f[0].numel() ** 0.5))
    if side * side != f[0].numel():
        raise ValueError(f"filters must be square images, got {f[0].numel()} weights each")
    f = f.reshape(f.shape[0], side, side)
    dx = (f[:, :, 1:] - f[:, :, :-1]).pow(2).sum(dim=(1, 2))
    dy = (f[:, 1:, :] - f[:, :-1, :]).pow(2).sum(dim=(1, 2))
    return (dx + dy) / f.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)


def negative_elbo(model: nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """A VAE's negative ELBO on x (beta = 1), in nats per image, and its two terms.

    Returns {"neg_elbo_nats", "reconstruction_nats", "kl_nats"}: the Bernoulli reconstruction term
    (binary cross-entropy summed over pixels) at one sample z ~ q(z | x) per image, drawn with `seed`,
    and KL(q(z | x) || N(0, I)) in closed form. Averaged over many images the one-sample noise is small.
    """
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)
    totals = torch.zeros(2, dtype=torch.float64)
    for batch, (reconstruction, kl) in batched(model, x, lambda m, b: NegativeELBO.terms(m, b, b, generator),
                                               batch_size):
        totals += torch.tensor([float(reconstruction), float(kl)], dtype=torch.float64) * batch.shape[0]
    reconstruction, kl = (totals / x.shape[0]).tolist()
    return {"neg_elbo_nats": reconstruction + kl, "reconstruction_nats": reconstruction, "kl_nats": kl}


# ---- Data-likeness: the Fréchet distance between feature statistics seen by a probe classifier ----
# The probe: a small MLP trained for a fixed number of Adam steps (seconds on one CPU core at any
# data size; the same steps on the 3,333-image sample as on 50,000 images).
PROBE_HIDDEN_DIM = 256
PROBE_STEPS = 1000
PROBE_BATCH_SIZE = 128
PROBE_LR = 1e-3
_PROBES: dict = {}  # trained probes, by (data fingerprint, seed): one probe per data set and session
_TEST_FEATURES: dict = {}  # the probe's features of data.test, the default reference, by the same key


class ProbeClassifier(nn.Module):
    """784-hidden_dim ReLU-hidden_dim-classes: a classifier whose hidden layer is the feature space of the FD."""

    def __init__(self, classes: int = 10, hidden_dim: int = PROBE_HIDDEN_DIM):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(INPUT_DIM, hidden_dim), nn.ReLU())
        self.out = nn.Linear(hidden_dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x.reshape(x.shape[0], -1))  # (B, 784) -> (B, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))  # (B, classes) logits


def probe_classifier(data: DigitData, seed: int = 0) -> ProbeClassifier:
    """The probe for `data`: trained on data.train with its labels (cross-entropy), kept in memory per data and seed.

    A short loop of its own, not the course trainer: it trains a classifier, not an autoencoder. It is
    seeded and leaves the global random state as it was.
    """
    key = (data.fingerprint, seed)
    if key not in _PROBES:
        with torch.random.fork_rng(devices=[]):  # the initial weights come from the global RNG
            torch.manual_seed(seed)
            probe = ProbeClassifier(classes=max(len(data.classes), int(data.train.y.max()) + 1))
        with torch.enable_grad():  # also when called under torch.no_grad()
            _train_probe(probe, data.train.pixels.cpu(), data.train.y.cpu(), torch.Generator().manual_seed(seed))
        _PROBES[key] = probe.eval()
    return _PROBES[key]


def _train_probe(probe: nn.Module, pixels: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
    """PROBE_STEPS Adam steps of cross-entropy on shuffled batches of PROBE_BATCH_SIZE images."""
    optimizer = torch.optim.Adam(probe.parameters(), lr=PROBE_LR)
    step, n = 0, pixels.shape[0]
    while step < PROBE_STEPS:
        order = torch.randperm(n, generator=generator)
        for first in range(0, n, PROBE_BATCH_SIZE):
            index = order[first:first + PROBE_BATCH_SIZE]
            loss = F.cross_entropy(probe(to_float(pixels[index])), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == PROBE_STEPS:
                return


def probe_accuracy(probe: ProbeClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of images of x whose class the probe names correctly."""
    predicted = torch.cat([logits.argmax(1).cpu() for _, logits in batched(probe, x)])
    return float((predicted == y.cpu()).float().mean())


def probe_features(probe: ProbeClassifier, x: torch.Tensor) -> torch.Tensor:
    """The probe's hidden features of every image of x (uint8 or float in [0, 1]): (N, hidden_dim) on the CPU."""
    return torch.cat([f.cpu() for _, f in batched(probe, x.reshape(x.shape[0], -1), lambda m, b: m.features(b))])


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features (N_a, d) and (N_b, d).

    |mean_a - mean_b|^2 + trace(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2), computed in float64 with
    symmetric eigendecompositions. 0 for identical statistics; it grows with any difference of
    means or covariances. Estimated from samples it is biased upwards, more so for fewer images:
    compare only sets of the same size.
    """
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features must be (N, d) with the same d, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    if min(features_a.shape[0], features_b.shape[0]) < 2:
        raise ValueError("each set of features needs at least 2 rows to estimate a covariance")
    (mean_a, cov_a), (mean_b, cov_b) = _moments(features_a), _moments(features_b)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = (vectors * values.clamp_min(0).sqrt()) @ vectors.T  # C_a^1/2
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()  # trace((C_a^1/2 C_b C_a^1/2)^1/2)
    return float((mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def _moments(features: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and covariance (d, d) of features (N, d) in float64, a chunk at a time (no float64 copy of all)."""
    n, d = features.shape
    total = torch.zeros(d, dtype=torch.float64)
    for part in features.split(chunk):
        total += part.double().cpu().sum(0)
    mean = total / n
    scatter = torch.zeros(d, d, dtype=torch.float64)
    for part in features.split(chunk):
        centred = part.double().cpu() - mean  # centred first: no cancellation in the sum of squares
        scatter += centred.T @ centred
    return mean, scatter / (n - 1)


def probe_frechet_distance(x: torch.Tensor, data: DigitData, reference: torch.Tensor | None = None,
                           seed: int = 0) -> float:
    """How far the images x are from real images, as a probe classifier sees them: lower is more data-like.

    The Fréchet distance between the statistics (mean and covariance) of the probe's hidden features
    of x and of `reference` (default: the test images, which neither the probe nor the models saw).
    The probe is a small MLP trained to name the classes of data.train (probe_classifier).

    What it can show: whether a SET of images has, on the whole, the features of real images with
    their variety. Blur, a single repeated image (such as the mean image, which wins nearest-image
    MSE) and pixel noise all score far worse than real held-out images (see likeness_controls).
    What it cannot show: which individual images are bad (it compares two distributions), and
    anything the probe's features do not respond to: a classifier trained to name classes can miss
    artifacts it never needed to see. It is biased upwards for fewer images: compare sets of the
    same size, beside the real-image floor.
    """
    x = _check_images_01(x, "x")
    probe = probe_classifier(data, seed)
    if reference is None:  # the test images: their features are computed once per probe
        key = (data.fingerprint, seed)
        if key not in _TEST_FEATURES or _TEST_FEATURES[key][0] is not probe:
            _TEST_FEATURES[key] = (probe, probe_features(probe, data.test.pixels))
        reference_features = _TEST_FEATURES[key][1]
    else:
        reference_features = probe_features(probe, _check_images_01(reference, "reference"))
    return frechet_distance(probe_features(probe, x), reference_features)


def _check_images_01(x: torch.Tensor, name: str) -> torch.Tensor:
    """At least 2 images, by the course's image check: (N, 784) float in [0, 1]."""
    return check_images(x.detach() if isinstance(x, torch.Tensor) else x, name, min_count=2)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Blur 28x28 images (N, 784) with a Gaussian of std `sigma` pixels (a 5x5 kernel; black beyond the border)."""
    if not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    radius = 2
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    taps = (taps / taps.sum()).to(x.device)

    def blur(batch: torch.Tensor) -> torch.Tensor:
        images = to_float(batch).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        images = F.conv2d(images, taps.view(1, 1, 1, -1), padding=(0, radius))  # rows, then columns: separable
        images = F.conv2d(images, taps.view(1, 1, -1, 1), padding=(radius, 0))
        return images.reshape(-1, INPUT_DIM)

    # In batches: a convolution over all images at once holds ~50 KB of temporaries per image.
    return torch.cat([blur(x[i:i + EVAL_BATCH_SIZE]) for i in range(0, x.shape[0], EVAL_BATCH_SIZE)])


def likeness_controls(data: DigitData, n: int | None = None, seed: int = 0, blur_sigma: float = 1.0,
                      noise_std: float = 0.3) -> dict[str, torch.Tensor]:
    """Sets of n uint8 images (default: the validation size) that calibrate probe_frechet_distance, by name.

    - real validation images: the floor, what real images not in the reference score;
    - the same, blurred (Gaussian, blur_sigma pixels): what blur alone costs;
    - the mean training image, n times: the winner of nearest-training-image MSE;
    - the validation images plus Gaussian pixel noise (noise_std, clipped to [0, 1]);
    - uniform pixel noise.
    Every set is built from images apart from the test images, the default reference.
    """
    n = len(data.val) if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= len(data.val):
        raise ValueError(f"n must be an int from 2 to the validation size {len(data.val)}, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    val = data.val.take(slice(0, n))  # (n, 784)
    train_mean = mean_image(data.train.pixels)  # (784,)
    nouns = data.nouns
    # Each set is made and stored as 8-bit images (as real images are) before the next: one float set at a time.
    sets = {f"real validation {nouns}": to_pixels(val)}
    sets[f"validation {nouns}, blurred (σ = {blur_sigma:g} px)"] = to_pixels(gaussian_blur(val, blur_sigma))
    sets["the mean training image, repeated"] = to_pixels(train_mean).expand(n, -1).contiguous()
    noise = torch.randn(val.shape, generator=generator).mul_(noise_std)
    sets[f"validation {nouns} + pixel noise (σ = {noise_std:g})"] = to_pixels(val.add_(noise).clamp_(0, 1))
    del noise, val  # the float sets go before the last one is made
    sets["uniform pixel noise"] = to_pixels(torch.rand(n, INPUT_DIM, generator=generator))
    return sets


def pixel_entropy_nats(x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """The Bernoulli entropy of the images' own pixels, in nats per image: what even a perfect reconstruction costs.

    A VAE's reconstruction term (each pixel a Bernoulli variable) reaches 0 only on black-and-white images;
    on grey pixels this is its floor, for any model. x: uint8 or float images, converted a batch at a time.
    """
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a tensor of at least 1 image, got {type(x).__name__}")
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        batch = check_images(x[start:start + batch_size], "x")
        total += float(F.binary_cross_entropy(batch, batch, reduction="sum"))
    return total / x.shape[0]
