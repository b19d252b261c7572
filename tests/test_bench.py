"""`python -m course bench` on a few hundred digits: both loops train the same model on the same images."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from course.tools import bench
from course.tools.bench import BenchResult, SeedStyleImages, course_fit, format_result, seed_style_fit


def test_seed_style_dataset_serves_the_same_pixels(tiny):
    images = (tiny.train.x[:5] * 255).round().to(torch.uint8).view(-1, 28, 28)
    served = torch.stack([SeedStyleImages(images)[i] for i in range(5)])
    assert served.shape == (5, 1, 28, 28)
    assert torch.allclose(served.view(5, -1), tiny.train.x[:5], atol=1 / 255)


def images(batches: list[torch.Tensor]) -> Counter:
    """The images in some batches as a multiset of their uint8 pixels, whatever the order and batching."""
    return Counter(bytes(row) for batch in batches for row in (batch * 255).round().to(torch.uint8).view(-1, 784))


@pytest.fixture
def spied(monkeypatch):
    """Every model the bench builds, with its initial weights and the inputs it saw in training and eval mode."""
    built = []

    def deep_autoencoder():
        model = original()
        seen = {"initial": {k: v.clone() for k, v in model.state_dict().items()}, True: [], False: []}
        model.register_forward_pre_hook(lambda m, args: seen[m.training].append(args[0].detach().cpu().clone()))
        built.append(seen)
        return model

    original = bench.deep_autoencoder
    monkeypatch.setattr(bench, "deep_autoencoder", deep_autoencoder)
    return built


def test_both_loops_train_the_same_model_on_the_same_images(make_subset, tiny, spied):
    data = make_subset(tiny, 128, 32, 32)
    seed_style_fit(data, 1, torch.device("cpu"), seed=0)
    course_fit(data, 1, torch.device("cpu"), seed=0)
    seed, course = spied
    # the same architecture from the same initial weights
    assert seed["initial"].keys() == course["initial"].keys()
    assert all(torch.equal(seed["initial"][k], course["initial"][k]) for k in seed["initial"])
    # one epoch: every training image once, in batches of 64, so the same number of optimizer steps
    assert [len(b) for b in seed[True]] == [len(b) for b in course[True]] == [64, 64]
    assert images(seed[True]) == images(course[True]) == images([data.train.x])
    # the validation pass covers the validation images (the course trainer may look at them more than once)
    assert images(seed[False]) == images([data.val.x])
    assert set(images(course[False])) == set(images([data.val.x]))


@pytest.mark.parametrize("seed_seconds, course_seconds, ratio", [(6.0, 2.0, "3.00x"), (5.0, 4.0, "1.25x"),
                                                                 (1.0, 4.0, "0.25x")])
def test_report_prints_each_time_on_its_line_and_their_ratio(seed_seconds, course_seconds, ratio):
    text = format_result(BenchResult(seed_seconds, course_seconds, 1, 50_000, 10_000, "debian-package",
                                     "fashion-mnist", "cpu"))
    lines = {line.split(" (")[0]: line for line in text.splitlines()}
    assert f"{seed_seconds:7.2f} s for 1 epoch" in lines["seed-style loop"]
    assert f"{course_seconds:7.2f} s for 1 epoch" in lines["course trainer"]
    assert text.splitlines()[-1] == f"speed-up: {ratio}"
    assert "fashion-mnist from debian-package, 50,000 training and 10,000 validation images" in text
