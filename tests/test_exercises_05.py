"""Notebook 05's exercises (manifold learning): each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from exercise_helpers import answer_id, notebook_tests, verdict


def notebook_cell(notebook: str, *phrases: str) -> str:
    """The first cell of notebooks/<notebook>.ipynb holding all the phrases, its whitespace collapsed."""
    path = Path(__file__).resolve().parents[1] / "notebooks" / f"{notebook}.ipynb"
    # A line break in markdown is a space, so phrases are matched across them.
    cells = [" ".join("".join(cell["source"]).split()) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    return next(text for text in cells if all(phrase in text for phrase in phrases))


# 05.interpolate
def interp_without_ends(z0, z1, steps):
    t = torch.linspace(0, 1, steps + 2)[1:-1].unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_without_end(z0, z1, steps):
    t = (torch.arange(steps) / steps).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_flat_weights(z0, z1, steps):
    t = torch.linspace(0, 1, steps)  # (steps,): meets the (d,) codes on their one axis
    return (1 - t) * z0 + t * z1


def interp_row_weights(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(0)  # (1, steps): still along the last axis
    return (1 - t) * z0 + t * z1


def interp_forgot_difference(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return z0 + t * z1


def interp_reversed(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return (1 - t) * z1 + t * z0


def interp_transposed(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return ((1 - t) * z0 + t * z1).T


def interp_uneven(z0, z1, steps):
    t = torch.linspace(0, 1, steps).pow(2).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_numpy(z0, z1, steps):
    import numpy as np

    t = np.linspace(0, 1, steps)[:, None]
    return (1 - t) * z0.numpy() + t * z1.numpy()


def interp_placeholder(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # noqa: F841 (the student stopped here)
    return ...


# 05.perturb_code
def perturb_raw_units(z, noise_std, code_std, generator):
    return z + noise_std * torch.randn(z.shape, generator=generator)


def perturb_variance_scale(z, noise_std, code_std, generator):
    return z + noise_std * code_std ** 2 * torch.randn(z.shape, generator=generator)


def perturb_std_as_variance(z, noise_std, code_std, generator):
    return z + math.sqrt(noise_std) * code_std * torch.randn(z.shape, generator=generator)


def perturb_same_eps_for_all_images(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn(z.shape[1], generator=generator)


def perturb_same_eps_for_all_dimensions(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn(z.shape[0], 1, generator=generator)


def perturb_ignores_generator(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn_like(z)


def perturb_reseeds(z, noise_std, code_std, generator):
    generator = torch.Generator().manual_seed(0)
    return z + noise_std * code_std * torch.randn(z.shape, generator=generator)


def perturb_in_place(z, noise_std, code_std, generator):
    z += noise_std * code_std * torch.randn(z.shape, generator=generator)
    return z


def perturb_uniform(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.rand(z.shape, generator=generator)


def perturb_noise_only(z, noise_std, code_std, generator):
    return noise_std * code_std * torch.randn(z.shape, generator=generator)


def perturb_draw_per_level(z, noise_std, code_std, generator):
    torch.randn(int(noise_std * 10), generator=generator)  # skips a level-dependent number of draws
    return z + noise_std * code_std * torch.randn(z.shape, generator=generator)


def perturb_one_spread(z, noise_std, code_std, generator):
    return z + noise_std * code_std.mean() * torch.randn(z.shape, generator=generator)


WRONG = [
    ("05.interpolate", interp_without_ends, "both ends must be included"),
    ("05.interpolate", interp_without_end, "your t runs [0.00, 0.20, 0.40, 0.60, 0.80]"),
    ("05.interpolate", interp_flat_weights, "your weights have shape (steps,) = (5,)"),
    ("05.interpolate", interp_forgot_difference, "not on the straight line from z0 to z1"),
    ("05.interpolate", interp_reversed, "runs backwards"),
    ("05.interpolate", interp_transposed, "transposed"),
    ("05.interpolate", interp_uneven, "not evenly spaced"),
    ("05.interpolate", interp_numpy, "returned a numpy.ndarray; return a torch tensor"),
    ("05.interpolate", interp_placeholder, "a placeholder of the stub is still there"),
    ("05.perturb_code", perturb_raw_units, "in the codes' raw units"),
    ("05.perturb_code", perturb_variance_scale, "code_std squared"),
    ("05.perturb_code", perturb_std_as_variance, "used noise_std as a variance"),
    ("05.perturb_code", perturb_same_eps_for_all_images, "every image gets the same noise"),
    ("05.perturb_code", perturb_same_eps_for_all_dimensions, "every code dimension of an image gets the same eps"),
    ("05.perturb_code", perturb_ignores_generator, "the generator is ignored"),
    ("05.perturb_code", perturb_reseeds, "do not reseed"),
    ("05.perturb_code", perturb_draw_per_level, "exactly twice the noise"),
    ("05.perturb_code", perturb_in_place, "changed its input tensor in place"),
    ("05.perturb_code", perturb_uniform, "torch.rand draws U(0, 1)"),
    ("05.perturb_code", perturb_noise_only, "the codes must come back unchanged"),
    ("05.perturb_code", perturb_one_spread, "the spread of your noise is wrong"),
]


CORRECT = [
    ("05.interpolate", lambda z0, z1, steps: torch.stack([z0 + (z1 - z0) * i / (steps - 1) for i in range(steps)])),
    ("05.perturb_code", lambda z, noise_std, code_std, generator:
        torch.normal(z, noise_std * code_std.expand_as(z), generator=generator)),
]

# Code or formulas of the fix, which a hint must not print (issue 19: it names the mistake, not the answer).
FIX_CODE = ("linspace(", "(1 - t)", "t * z1", "noise_std * code_std", "* eps", "torch.randn(", "generator=generator")


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(n, a) for n, a, _ in WRONG])
def test_a_hint_names_the_mistake_without_printing_the_fix(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    assert not [code for code in FIX_CODE if code in line], line


def test_weights_along_the_last_axis_get_the_shape_question_not_the_raw_broadcasting_error(capsys):
    for answer in (interp_flat_weights, interp_row_weights):
        line = verdict(capsys, "05.interpolate", answer)[1]
        assert "must match the size of tensor" not in line, line
        assert "what shape must they have so that each row gets one weight?" in line, line


def test_the_perturb_code_statement_gives_the_units_not_the_scaling_rule():
    statement = notebook_cell("05_manifold_learning", "Write `perturb_code(")
    assert "in units of" in statement and "standard deviation" in statement
    assert "times that dimension's spread" not in statement and "s times" not in statement


(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("05", WRONG, CORRECT)
