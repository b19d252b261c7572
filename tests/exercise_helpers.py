"""What the exercise tests share: check's one line, a student's stub, and the tests each notebook's exercises get."""
from __future__ import annotations

import pytest
from torch import nn

from course.exercises import EXERCISES, check, solution

# The imports a notebook has before its exercises: every solution_source must run after exactly these.
NOTEBOOK_IMPORTS = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"


def verdict(capsys, name, answer) -> tuple[bool, str]:
    """check()'s result and the one line it printed."""
    passed = check(name, answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"check printed {out!r}, not one line"
    return passed, out.strip()


def stub_for(name: str):
    """What a student starts from: the Neuromatch-style stub that raises NotImplementedError."""
    reference = solution(name)
    if isinstance(reference, type):
        class Stub(nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                raise NotImplementedError("Student exercise: define the layers")
        return Stub

    def stub(*args, **kwargs):
        raise NotImplementedError("Student exercise: write this function")
    return stub


def answer_id(name, answer) -> str:
    return f"{name}-{getattr(answer, '__name__', type(answer).__name__)}"


def notebook_tests(number: str, wrong: list, correct: list) -> tuple:
    """The tests of one notebook's exercises, from its typical mistakes (name, answer, phrase of the hint) and
    its correct answers written differently from the reference (name, answer)."""
    names = [name for name in EXERCISES if name.startswith(number + ".")]

    @pytest.mark.parametrize("name, answer, phrase", wrong, ids=[answer_id(n, a) for n, a, _ in wrong])
    def test_a_typical_mistake_fails_with_its_own_hint(capsys, name, answer, phrase):
        passed, line = verdict(capsys, name, answer)
        assert not passed
        assert line.startswith(f"✗ {name}: ")
        assert phrase in line

    def test_every_exercise_detects_at_least_two_typical_mistakes():
        counts = {name: sum(1 for n, _, _ in wrong if n == name) for name in names}
        assert names and min(counts.values()) >= 2, counts

    def test_different_mistakes_of_one_exercise_get_different_hints(capsys):
        for name in names:
            lines = {verdict(capsys, n, answer)[1] for n, answer, _ in wrong if n == name}
            assert len(lines) == len({phrase for n, _, phrase in wrong if n == name}), name

    @pytest.mark.parametrize("name, answer", correct, ids=[name for name, _ in correct])
    def test_a_correct_answer_written_differently_passes(capsys, name, answer):
        passed, line = verdict(capsys, name, answer)
        assert passed, line

    sampled = wrong[::7]

    @pytest.mark.parametrize("name, answer, phrase", sampled, ids=[answer_id(n, a) for n, a, _ in sampled])
    def test_strict_mode_raises_the_same_hint_for_a_wrong_answer(capsys, name, answer, phrase):
        line = verdict(capsys, name, answer)[1]
        with pytest.raises(AssertionError) as raised:
            check(name, answer, strict=True)
        assert str(raised.value) == line and phrase in line

    return (test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
            test_different_mistakes_of_one_exercise_get_different_hints,
            test_a_correct_answer_written_differently_passes, test_strict_mode_raises_the_same_hint_for_a_wrong_answer)
