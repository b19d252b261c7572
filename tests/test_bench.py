"""`python -m course bench` on a few hundred digits: both loops run on the same images."""
from __future__ import annotations

import torch

from course.tools.bench import BenchResult, SeedStyleImages, course_fit, format_result, seed_style_fit


def test_seed_style_dataset_serves_the_same_pixels(tiny):
    images = (tiny.train.x[:5] * 255).round().to(torch.uint8).view(-1, 28, 28)
    served = torch.stack([SeedStyleImages(images)[i] for i in range(5)])
    assert served.shape == (5, 1, 28, 28)
    assert torch.allclose(served.view(5, -1), tiny.train.x[:5], atol=1 / 255)


def test_both_loops_train_and_time(make_subset, tiny):
    data = make_subset(tiny, 128, 32, 32)
    assert seed_style_fit(data, 1, torch.device("cpu"), 0) > 0
    assert course_fit(data, 1, torch.device("cpu"), 0) > 0


def test_report_names_both_times_the_ratio_and_the_data():
    text = format_result(BenchResult(6.0, 2.0, 1, 50_000, 10_000, "debian-package", "fashion-mnist", "cpu"))
    assert "6.00 s" in text and "2.00 s" in text and "3.00x" in text and "debian-package" in text
