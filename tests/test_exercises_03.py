"""Notebook 03's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import pytest
import torch

from exercise_helpers import answer_id, notebook_tests, verdict


# 03.l1_penalty
def l1_sum_over_batch(z, weight):
    return weight * z.abs().sum(0).mean()


def l1_sum_everything(z, weight):
    return weight * z.abs().sum()


def l1_sum_over_units(z, weight):
    return weight * z.abs().sum(1).mean()


def l1_no_abs(z, weight):
    return weight * z.mean()


def l1_no_weight(z, weight):
    return z.abs().mean()


def l1_per_image(z, weight):
    return weight * z.abs().mean(1)


def l1_item(z, weight):
    return (weight * z.abs().mean()).item()


def l1_squared(z, weight):
    return weight * z.pow(2).mean()


# 03.dead_fraction
def dead_zero_entries(z):
    return float((z == 0).float().mean())


def dead_on_any_image(z):
    return float((z == 0).any(dim=0).float().mean())


def dead_count(z):
    return int((z == 0).all(dim=0).sum())


def dead_transposed(z):
    return float((z == 0).all(dim=1).float().mean())


def dead_alive_fraction(z):
    return float((z > 0).any(dim=0).float().mean())


def dead_mean_below_threshold(z):
    return float((z.mean(0) < 1e-3).float().mean())


def dead_max_below_threshold(z):
    return float((z.max(0).values < 0.01).float().mean())


def dead_as_tensor(z):
    return (z == 0).all(dim=0).float().mean()  # the right value, as a 0-d tensor


def dead_no_return(z):
    float((z == 0).all(dim=0).float().mean())  # computed, never returned



L1_BATCH_HINT = "your penalty grows with the batch size: you summed over the batch, which breaks"

WRONG = [
    ("03.l1_penalty", l1_sum_over_batch, L1_BATCH_HINT),
    ("03.l1_penalty", l1_sum_everything, L1_BATCH_HINT),  # the original's flaw: the same hint
    ("03.l1_penalty", l1_sum_over_units, "grows with the number of units"),
    ("03.l1_penalty", l1_no_abs, "absolute value"),
    ("03.l1_penalty", l1_no_weight, "does not change with weight"),
    ("03.l1_penalty", l1_per_image, "of shape (8,)"),
    ("03.l1_penalty", l1_item, "returned a Python float"),
    ("03.l1_penalty", l1_squared, "L2 penalty"),
    ("03.dead_fraction", dead_zero_entries, "fraction of zero ENTRIES"),
    ("03.dead_fraction", dead_on_any_image, "0 on ANY image"),
    ("03.dead_fraction", dead_count, "return the fraction"),
    ("03.dead_fraction", dead_transposed, "wrong axis"),
    ("03.dead_fraction", dead_alive_fraction, "ALIVE"),
    ("03.dead_fraction", dead_no_return, "returned None (a missing return statement?)"),
    ("03.dead_fraction", dead_mean_below_threshold, "dead means exactly 0 for every image"),
    ("03.dead_fraction", dead_max_below_threshold, "dead means exactly 0 for every image"),
    ("03.dead_fraction", dead_as_tensor, "return a Python float"),
]


CORRECT = [
    ("03.l1_penalty", lambda z, weight: weight * z.abs().sum() / z.numel()),
    ("03.dead_fraction", lambda z: float((z.sum(dim=0) == 0).float().mean())),
]

(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("03", WRONG, CORRECT)


def test_any_threshold_above_zero_calls_a_living_unit_dead(capsys):
    for threshold in (1e-6, 1e-3, 0.05):
        passed, line = verdict(capsys, "03.dead_fraction",
                               lambda z: float((z.max(0).values <= threshold).float().mean()))
        assert not passed and "dead means exactly 0 for every image" in line, (threshold, line)
    passed, line = verdict(capsys, "03.dead_fraction",  # isclose's default atol, 1e-8
                           lambda z: float(torch.isclose(z, torch.zeros(())).all(dim=0).float().mean()))
    assert not passed and "dead means exactly 0 for every image" in line, line


def test_a_one_element_tensor_is_refused_whatever_its_shape(capsys):
    passed, line = verdict(capsys, "03.dead_fraction", lambda z: (z == 0).all(dim=0).float().mean().reshape(1))
    assert not passed and "return a Python float" in line and "shape (1,)" in line


# Issue 19: a wrong answer's line names the mistake and asks; it does not print the fix as code.
@pytest.mark.parametrize("answer", [l1_no_weight, l1_no_abs, l1_sum_over_batch, l1_squared])
def test_an_l1_penalty_line_does_not_print_the_fix_as_code(capsys, answer):
    passed, line = verdict(capsys, "03.l1_penalty", answer)
    assert not passed and "weight * mean" not in line and "z.abs()" not in line, line


# The fix, as code or as the one decision the exercise asks for, which a hint must not print (issue 19).
FIX_CODE = ("mean over images and units", "dim=0", ".abs()", ".all(", "mean()")


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(n, a) for n, a, _ in WRONG])
def test_a_hint_names_the_mistake_without_printing_the_fix(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    assert not [code for code in FIX_CODE if code in line], line
