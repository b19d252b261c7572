"""The syllabus' reference numbers, in one place: the original assignment's and the literature's.

Notebooks, the batch report and the README's table read them from here (a test keeps the README
in step). All are MSE per pixel on MNIST unless a label says otherwise; `measured_on` says what
the original measured them on, because several of its figures are not test-set figures.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One published number: its value, what it measured, and where it comes from."""

    value: float
    label: str  # short column heading, e.g. "original (10 MNIST training images)"
    measured_on: str  # a sentence for the notebook's text


ORIGINAL_TRAIN10 = "original (10 MNIST training images)"
ORIGINAL_VALIDATION = "original (validation, full MNIST)"
HINTON_2006 = "Hinton & Salakhutdinov 2006 (MNIST test set)"

# 01: PCA and the deep autoencoder, both with 30-number codes.
PCA_30 = {
    "original": Reference(0.0185, ORIGINAL_TRAIN10, "10 randomly chosen MNIST training images"),
    "hinton_2006": Reference(0.0177, HINTON_2006, "the MNIST test set (13.87 squared error per image / 784)"),
}
AUTOENCODER_30 = {
    "original": Reference(0.0106, ORIGINAL_TRAIN10, "10 randomly chosen MNIST training images"),
    "hinton_2006": Reference(0.0038, HINTON_2006,
                             "the MNIST test set (3.00 per image / 784), 784-1000-500-250-30, pre-trained"),
}

# 02: the shallow autoencoder 784-h-784, validation MSE after 15 epochs, by hidden_dim.
SHALLOW_VALIDATION_MSE = {64: 0.0048, 128: 0.0019, 256: 0.0011}

# 03: the original's sparse grid; its lambda multiplied the SUM of |h| over units and batch
# (batch 64, 1024 units), so lambda_sum * 64 * 1024 is the course's mean-scaled weight.
SPARSE_BATCH_SIZE, SPARSE_HIDDEN_DIM = 64, 1024
SPARSE_ORIGINAL = [  # (lambda, average activation, MSE)
    (0.0, 0.629, 0.00085),
    (1e-5, 0.0101, 0.011),
    (1e-4, 0.0, 0.067),
    (1e-3, 0.0, 0.067),
]

# 05: the 8-d code autoencoder 784-64-8-64-784, validation MSE after 15 epochs.
MANIFOLD_VALIDATION_MSE = Reference(0.0229, ORIGINAL_VALIDATION, "the validation set after 15 epochs")

# 06: the convolutional autoencoder with unpooling indices, 20 epochs.
CONV_UNPOOL = {
    "validation": Reference(0.0078, ORIGINAL_VALIDATION, "the validation set after 20 epochs"),
    "train10": Reference(0.0083, ORIGINAL_TRAIN10, "10 MNIST training images"),
}

# 07: small fully connected VAEs on binarized MNIST, negative ELBO in nats per image (orientation only:
# a Bernoulli likelihood on grey levels, other data or another architecture give other numbers).
VAE_NEG_ELBO_NATS = (85.0, 100.0)
VAE_LITERATURE = ("Kingma & Welling 2014; Burda et al. 2016: binarized MNIST, a Bernoulli likelihood on "
                  "0/1 pixels, fully connected encoders and decoders")


def sparse_weight_from_original(lambda_sum: float) -> float:
    """The course's mean-scaled L1 weight that equals the original's summed lambda."""
    return lambda_sum * SPARSE_BATCH_SIZE * SPARSE_HIDDEN_DIM
