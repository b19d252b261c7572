"""The exercises' shared machinery: references pass, stubs, fallbacks, strict mode, solutions, and the hints
for answers of the wrong kind (NaN, another dtype or device, a value that claims equality)."""
from __future__ import annotations

import math
import re

import pytest
import torch

from course import metrics, models, training
from course.exercises import EXERCISES, check, core, inputs, solution, solution_source, use
from exercise_helpers import NOTEBOOK_IMPORTS, stub_for, verdict


def l1_sum_over_batch(z, weight):
    return weight * z.abs().sum(0).mean()


def l1_no_abs(z, weight):
    return weight * z.mean()


def corrupt_no_clip(x, noise_std, generator):
    return x + noise_std * torch.randn(x.shape, generator=generator)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_passes_its_own_check(name):
    status, line = core._run_checker(EXERCISES[name], solution(name), credit_reference=True)
    assert status == core.PASSED, line
    assert line.startswith(f"✓ {name}: correct")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_is_never_credited_as_the_students_answer(capsys, name):
    # issue 17 item 8: after a Run All, use() has rebound the name to the reference; checking it again said
    # "✓ correct", and use() "using your ...", for an exercise never attempted.
    stub = stub_for(name)
    assert use(name, stub) is solution(name)
    capsys.readouterr()
    passed, line = verdict(capsys, name, solution(name))
    assert not passed
    assert line.startswith(f"○ {name}: not attempted yet: this is the course's reference")
    assert "✓" not in line and "correct" not in line
    assert use(name, solution(name)) is solution(name)
    assert capsys.readouterr().out == f"using the course's reference {name} (not attempted yet)\n"
    assert check(name, solution(name), strict=True) is False  # strict mode never raises for the reference
    assert "this is the course's reference" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(EXERCISES))
def test_strict_mode_raises_the_same_hint_for_a_stub(capsys, name):
    line = verdict(capsys, name, stub_for(name))[1]
    with pytest.raises(AssertionError) as raised:
        check(name, stub_for(name), strict=True)
    assert str(raised.value) == line
    assert capsys.readouterr().out == ""  # the message is the line; nothing printed twice


def test_strict_mode_returns_true_for_a_correct_answer(capsys):
    def l1_penalty(z, weight):
        return weight * z.abs().mean()

    assert check("03.l1_penalty", l1_penalty, strict=True) is True
    assert capsys.readouterr().out.startswith("✓ 03.l1_penalty: correct")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_a_stub_is_not_attempted_yet(capsys, name):
    passed, line = verdict(capsys, name, stub_for(name))
    assert not passed
    assert line == f"○ {name}: not attempted yet. Task: {EXERCISES[name].task}"
    assert verdict(capsys, name, None) == (False, line)


def test_a_crash_in_student_code_is_a_hint_quoting_the_error(capsys):
    def broken(z, weight):
        return weight * z.view(3, -1).abs().mean()  # a shape error

    passed, line = verdict(capsys, "03.l1_penalty", broken)
    assert not passed
    assert "l1_penalty(z, weight=0.3) with z of shape (8, 32) raised RuntimeError: shape '[3, -1]' is invalid" in line


def test_use_falls_back_to_the_reference_with_one_line(capsys):
    assert use("03.l1_penalty", l1_sum_over_batch) is training.l1_penalty
    assert capsys.readouterr().out == \
        "using the course's reference 03.l1_penalty (your version did not pass its check)\n"
    assert use("03.l1_penalty", stub_for("03.l1_penalty")) is training.l1_penalty
    assert capsys.readouterr().out == "using the course's reference 03.l1_penalty (not attempted yet)\n"
    assert use("03.dead_fraction", None) is metrics.dead_fraction
    assert capsys.readouterr().out == "using the course's reference 03.dead_fraction (not attempted yet)\n"


def test_use_returns_a_passing_answer_itself(capsys):
    def l1_penalty(z, weight):
        return weight * torch.mean(torch.abs(z))

    assert use("03.l1_penalty", l1_penalty) is l1_penalty
    assert capsys.readouterr().out == "using your 03.l1_penalty (it passed its check)\n"


def test_use_after_check_prints_only_its_own_line(capsys):
    check("03.l1_penalty", l1_no_abs)
    capsys.readouterr()
    use("03.l1_penalty", l1_no_abs)
    assert capsys.readouterr().out.splitlines() == [
        "using the course's reference 03.l1_penalty (your version did not pass its check)"]


@pytest.mark.parametrize("call", [check, use])
def test_unknown_names_raise_listing_the_exercises(call):
    with pytest.raises(ValueError, match="01.pca_reconstruct, 01.train_on_batch, 02.ShallowAutoencoder"):
        call("03.l2_penalty", l1_no_abs)
    for lookup in (solution, solution_source):
        with pytest.raises(ValueError, match="07.kl_divergence"):
            lookup("l1_penalty")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_source_runs_alone_and_passes_its_check(capsys, name):
    source = solution_source(name)
    namespace: dict = {}
    exec(compile(NOTEBOOK_IMPORTS + source, f"<solution {name}>", "exec"), namespace)
    answer = namespace[EXERCISES[name].answer_name]
    assert answer is not solution(name)
    passed, line = verdict(capsys, name, answer)
    assert passed, line


def test_show_solution_displays_the_highlighted_source(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    core.show_solution("05.interpolate")
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Code)
    assert shown[0].data == solution_source("05.interpolate") and "def interpolate(" in shown[0].data


def test_checks_leave_the_random_streams_and_thread_count_alone(capsys):
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    check("04.gaussian_corrupt", corrupt_no_clip)
    check("07.reparameterize", lambda mu, logvar, generator: models.reparameterize(mu, logvar, generator))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_a_statistical_check_gives_the_same_line_every_time(capsys):
    # Two equal answers (distinct objects, so neither verdict is remembered): the same seeded draws, the same line.
    lines = {verdict(capsys, "04.gaussian_corrupt", lambda x, s, g: (x + s * torch.randn(x.shape, generator=g))
                     .clamp(0, 1))[1] for _ in range(2)}
    assert len(lines) == 1


def test_an_answer_drawing_noise_differently_but_correctly_passes(capsys):
    def gaussian_corrupt(x, noise_std, generator):
        return torch.normal(x, noise_std, generator=generator).clamp(0, 1)

    def reparameterize(mu, logvar, generator):
        return mu - torch.exp(0.5 * logvar) * torch.empty_like(mu).normal_(generator=generator)  # -eps ~ N(0, 1)

    def perturb_code(z, noise_std, code_std, generator):
        return z - noise_std * code_std * torch.empty_like(z).normal_(generator=generator)  # -eps ~ N(0, 1)

    assert verdict(capsys, "04.gaussian_corrupt", gaussian_corrupt)[0]
    assert verdict(capsys, "07.reparameterize", reparameterize)[0]
    assert verdict(capsys, "05.perturb_code", perturb_code)[0]


def test_exercise_specs_name_their_notebook_and_reference():
    for name, exercise in EXERCISES.items():
        number, answer_name = name.split(".")
        assert exercise.notebook.startswith(number + "_"), name
        assert exercise.reference.__name__ == answer_name
        assert exercise.task.endswith(".") and exercise.task.count(". ") == 0, exercise.task
        assert answer_name in exercise.signature
        assert exercise.minutes > 0


def test_the_real_inputs_are_mlxtends_digits(sample):
    # The checks' fast reader and course.data's loader see the same 5,000 digits (sums per pixel compared).
    everything = torch.cat([sample.train.x, sample.val.x, sample.test.x])
    digits = inputs._digits()
    assert digits.shape == everything.shape == (5000, 784)
    assert torch.allclose(digits.double().sum(0), everything.double().sum(0), atol=1e-6)


def _float64_corrupt(x, noise_std, generator=None):
    return (x.double() + noise_std * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)


def _float64_perturb(z, noise_std, code_std, generator=None):
    return z.double() + noise_std * code_std * torch.randn(z.shape, generator=generator, dtype=torch.float64)


def _float64_reparameterize(mu, logvar, generator=None):
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float64)
    return mu.double() + torch.exp(0.5 * logvar.double()) * eps


def _half_reparameterize(mu, logvar, generator=None):
    return solution("07.reparameterize")(mu, logvar, generator).half()


@pytest.mark.parametrize("name, answer, dtype", [("04.gaussian_corrupt", _float64_corrupt, "float64"),
                                                 ("05.perturb_code", _float64_perturb, "float64"),
                                                 ("07.reparameterize", _float64_reparameterize, "float64"),
                                                 ("07.reparameterize", _half_reparameterize, "float16")])
def test_an_answer_of_another_dtype_is_refused_before_the_notebook_uses_it(capsys, name, answer, dtype):
    """Issue 17.4: a float64 answer got ✓, then the notebook's next cell failed on mixed dtypes."""
    passed, line = verdict(capsys, name, answer)
    assert not passed
    assert f"returned a {dtype} tensor; return float32" in line


# Issue 17, misleading hints: NaN, dtype and device named for what they are; plain values compared.
def _nan_penalty(z, weight):
    return weight * z.abs().mean() * float("nan")


def _nan_pixel_corrupt(x, noise_std, generator):
    noisy = (x + noise_std * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    noisy[0, 0] = float("nan")
    return noisy


def _nan_kl(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.sqrt()).sum(1).mean()  # the square root of negative logvars


@pytest.mark.parametrize("name, answer", [("03.l1_penalty", _nan_penalty), ("04.gaussian_corrupt", _nan_pixel_corrupt),
                                          ("07.kl_divergence", _nan_kl),
                                          ("03.dead_fraction", lambda z: float("nan")),
                                          ("01.train_on_batch", lambda model, optimizer, x:
                                           float(solution("01.train_on_batch")(model, optimizer, x)) * math.nan)])
def test_a_nan_answer_gets_a_hint_that_says_nan(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed and "NaN" in line, line
    assert "changes sign" not in line and "generator is ignored" not in line


def test_a_half_precision_interpolate_gets_the_dtype_hint(capsys):
    passed, line = verdict(capsys, "05.interpolate", lambda z0, z1, steps: models.interpolate(z0, z1, steps).half())
    assert not passed and "returned a float16 tensor; return float32" in line and "evenly" not in line


@pytest.mark.parametrize("name, answer", [
    ("03.l1_penalty", lambda z, weight: (weight * z.abs().mean()).to("meta")),
    ("05.interpolate", lambda z0, z1, steps: models.interpolate(z0, z1, steps).to("meta")),
    ("03.dead_fraction", lambda z: torch.tensor(0.25, device="meta")),
])
def test_an_answer_on_another_device_gets_a_hint_naming_the_device(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed and "on meta" in line and "on cpu" in line, line
    assert "your code raised" not in line


class _AlwaysEqualInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class _AlwaysEqualFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class _AlwaysEqualTensor(torch.Tensor):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("name, answer", [
    ("06.conv_output_size", lambda size, kernel, stride=1, padding=0: _AlwaysEqualInt(0)),
    ("03.dead_fraction", lambda z: _AlwaysEqualFloat(0.0)),
    ("05.interpolate", lambda z0, z1, steps: torch.zeros(steps, z0.shape[0]).as_subclass(_AlwaysEqualTensor)),
])
def test_an_answer_that_claims_equality_is_compared_by_its_plain_value(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed, line


def test_a_plain_numpy_integer_size_still_passes(capsys):
    import numpy as np

    assert verdict(capsys, "06.conv_output_size", lambda size, kernel, stride=1, padding=0:
                   np.int64(models.conv_output_size(size, kernel, stride, padding)))[0]


# What reads as a formula or as code in a line: an operator, a call, or a dotted name such as torch.randn.
FORMULA_OR_CODE = re.compile(r"[*/=^+]|\s-\s|\w\(|\b[A-Za-z_]\w*\.[A-Za-z_]")


@pytest.mark.parametrize("name", [*EXERCISES, *core.ALIASES])
def test_the_line_for_an_untouched_stub_holds_no_formula_or_code(capsys, name):
    # Issue 19: seven of the fourteen "not attempted" lines gave the formula or the code away.
    passed, line = verdict(capsys, name, stub_for(name))
    assert not passed and line.startswith(f"○ {name}: not attempted yet. Task: ")
    task = line.split(" Task: ", 1)[1]
    assert FORMULA_OR_CODE.search(task) is None, f"{name}: {FORMULA_OR_CODE.search(task).group()!r} in {task!r}"


@pytest.mark.parametrize("text", ["z = mu + sigma * eps", "floor((size + 2 * padding - kernel) / stride) + 1",
                                  "use torch.linalg.svd", "call loss.backward()", "x - mean", "mu^2"])
def test_the_formula_detector_sees_formulas_and_code(text):
    assert FORMULA_OR_CODE.search(text)
