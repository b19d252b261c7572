"""pixel_entropy_nats: the floor of a VAE's Bernoulli reconstruction term on grey pixels."""
import math

import pytest
import torch

from course.metrics import pixel_entropy_nats
from course.training import bernoulli_nll


def test_black_and_white_images_cost_nothing_and_grey_ones_ln2_per_pixel():
    binary = torch.zeros(3, 784, dtype=torch.uint8)
    binary[:, ::2] = 255
    assert pixel_entropy_nats(binary) == pytest.approx(0.0, abs=1e-6)
    grey = torch.full((2, 1, 28, 28), 0.5)
    assert pixel_entropy_nats(grey) == pytest.approx(784 * math.log(2), rel=1e-6)


def test_the_same_in_any_batching_as_one_bernoulli_nll():
    pixels = torch.randint(0, 256, (37, 784), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x = pixels.float() / 255
    expected = float(bernoulli_nll(x, x))
    assert pixel_entropy_nats(pixels, batch_size=5) == pytest.approx(expected, rel=1e-5)
    assert pixel_entropy_nats(pixels) == pytest.approx(expected, rel=1e-5)


def test_bad_input_names_x():
    with pytest.raises(ValueError, match="x must"):
        pixel_entropy_nats(torch.zeros(0, 784))
    with pytest.raises(ValueError, match="x must"):
        pixel_entropy_nats(torch.full((2, 784), 2.0))
