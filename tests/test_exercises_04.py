"""Notebook 04's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from exercise_helpers import answer_id, notebook_tests, verdict


def notebook_hint(notebook: str, exercise: str, number: int) -> str:
    """The text of Hint `number` of the exercise whose code cell defines `exercise` in notebooks/<notebook>.ipynb."""
    path = Path(__file__).resolve().parents[1] / "notebooks" / f"{notebook}.ipynb"
    cells = ["".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    start = next(i for i, text in enumerate(cells) if text.startswith(f"def {exercise}("))
    hints = next(text for text in cells[start + 1:] if "<summary>Hint 1</summary>" in text)
    match = re.search(rf"<summary>Hint {number}</summary>(.*?)</details>", hints, re.S)
    assert match, f"no Hint {number} after def {exercise}"
    return match.group(1)


# 04.gaussian_corrupt
def corrupt_no_clip(x, noise_std, generator):
    return x + noise_std * torch.randn(x.shape, generator=generator)


def corrupt_std_as_variance(x, noise_std, generator):
    return (x + math.sqrt(noise_std) * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def corrupt_std_squared(x, noise_std, generator):
    return (x + noise_std ** 2 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def corrupt_ignores_generator(x, noise_std, generator):
    return (x + noise_std * torch.randn_like(x)).clamp(0, 1)


def corrupt_multiplicative(x, noise_std, generator):
    return (x * (1 + noise_std * torch.randn(x.shape, generator=generator))).clamp(0, 1)


def corrupt_per_image(x, noise_std, generator):
    return (x + noise_std * torch.randn(x.shape[0], 1, generator=generator)).clamp(0, 1)


def corrupt_same_pattern(x, noise_std, generator):
    return (x + noise_std * torch.randn(x.shape[1], generator=generator)).clamp(0, 1)


def corrupt_in_place(x, noise_std, generator):
    return x.add_(noise_std * torch.randn(x.shape, generator=generator)).clamp_(0, 1)


def corrupt_uniform(x, noise_std, generator):
    return (x + noise_std * torch.rand(x.shape, generator=generator)).clamp(0, 1)


# 04.denoising_loss
def denoise_noisy_target(model, x, corrupt):
    noisy = corrupt(x)
    return F.mse_loss(model(noisy)[1], noisy)


def denoise_clean_input(model, x, corrupt):
    return F.mse_loss(model(x)[1], x)


def denoise_corrupt_unused(model, x, corrupt):
    noisy = corrupt(x)  # noqa: F841 (made, then forgotten)
    return F.mse_loss(model(x)[1], x)


def denoise_sum(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], x, reduction="sum")


def denoise_second_draw_target(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], corrupt(x))


def denoise_model_sees_second_draw(model, x, corrupt):
    corrupt(x)  # a stray first draw: the model then sees the second
    return F.mse_loss(model(corrupt(x))[1], x)


def denoise_scaled(model, x, corrupt):  # matches no named slip; corrupt called twice
    corrupt(x)
    return 0.5 * F.mse_loss(model(corrupt(x))[1], x)


def denoise_item(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], x).item()


WRONG = [
    ("04.gaussian_corrupt", corrupt_no_clip, "outside [0, 1], the range of a pixel"),
    ("04.gaussian_corrupt", corrupt_std_as_variance, "used noise_std as the variance"),
    ("04.gaussian_corrupt", corrupt_std_squared, "used noise_std ** 2 as the std"),
    ("04.gaussian_corrupt", corrupt_ignores_generator, "the generator is ignored"),
    ("04.gaussian_corrupt", corrupt_multiplicative, "multiplicative"),
    ("04.gaussian_corrupt", corrupt_per_image, "every pixel of an image gets the same noise"),
    ("04.gaussian_corrupt", corrupt_same_pattern, "every image gets the same noise pattern"),
    ("04.gaussian_corrupt", corrupt_in_place, "in place"),
    ("04.gaussian_corrupt", corrupt_uniform, "torch.rand draws U(0, 1)"),
    ("04.denoising_loss", denoise_noisy_target, "scored against the corrupted images"),
    ("04.denoising_loss", denoise_clean_input, "corrupt was never called"),
    ("04.denoising_loss", denoise_corrupt_unused, "the model saw the clean x"),
    ("04.denoising_loss", denoise_sum, "summed the squared errors"),
    ("04.denoising_loss", denoise_second_draw_target, "second corruption"),
    ("04.denoising_loss", denoise_model_sees_second_draw, "how many calls does one loss need"),
    ("04.denoising_loss", denoise_scaled, "corrupt was called 2 times"),
    ("04.denoising_loss", denoise_item, "returned a Python float"),
]


CORRECT = [
    ("04.gaussian_corrupt", lambda x, noise_std, generator:
        torch.clip(x + torch.normal(0.0, noise_std, size=x.shape, generator=generator), 0, 1)),
    ("04.denoising_loss", lambda model, x, corrupt: ((model(corrupt(x))[1] - x) ** 2).mean()),
]

# Code or formulas of the fix, which a hint must not print (issue 19: it names the mistake, not the answer).
FIX_CODE = ("torch.randn(", ".clamp(", "clamp(0", "generator=generator", "x + noise_std", "noise_std * eps",
            "noise_std * torch", "model(corrupt(x))")


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(n, a) for n, a, _ in WRONG])
def test_a_hint_names_the_mistake_without_printing_the_fix(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    assert not [code for code in FIX_CODE if code in line], line


def test_gaussian_corrupt_hint_1_gives_the_idea_not_the_expression():
    hint = notebook_hint("04_denoising_autoencoder", "gaussian_corrupt", 1)
    assert "standard deviation" in hint and "[0, 1]" in hint and "torch.randn" in hint
    assert "σ times" not in hint and "times standard normal" not in hint


(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("04", WRONG, CORRECT)
