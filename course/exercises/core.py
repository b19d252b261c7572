"""The exercises' shared machinery: the registry, check/use/solution, and reading an answer for a hint.

The helpers with a leading underscore are the package's own, shared by the notebooks' modules (nb01 ... nb07).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import numbers
import textwrap
import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


PASSED, FAILED, NOT_ATTEMPTED = "✓", "✗", "○"
REFERENCE = "reference"  # the status of the course's own reference: never credited as the student's answer


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is taught, what to write, how long it takes, and the course's reference answer."""

    name: str  # "<notebook number>.<name of the function or class>", e.g. "03.l1_penalty"
    notebook: str  # the notebook's stem, e.g. "03_sparse_autoencoder"
    task: str  # what to write, in one sentence
    signature: str
    minutes: int
    reference: object
    checker: Callable = field(repr=False, compare=False)  # checker(answer) -> detail of a pass; raises _Wrong
    # The function or class shown as the solution when the reference is not self-contained (its source is read).
    shown: object = field(default=None, repr=False, compare=False)
    alias_of: str | None = None  # an older name of the exercise: the name it now has

    @property
    def answer_name(self) -> str:
        """The name the student's function or class has: "l1_penalty" for "03.l1_penalty"."""
        return self.name.split(".", 1)[1]


EXERCISES: dict[str, Exercise] = {}
ALIASES: dict[str, Exercise] = {}  # older names that still work: {old name: the exercise under that name}


def _add(exercise: Exercise) -> None:
    EXERCISES[exercise.name] = exercise


def _alias(old: str, name: str) -> None:
    """Let `old` keep working for exercise `name`: check, use and the solution under the old name."""
    ALIASES[old] = dataclasses.replace(EXERCISES[name], name=old, alias_of=name)


class _Wrong(Exception):
    """A mistake the check found; its message is the hint the student reads."""


# ---------------------------------------------------------------------------------------------
# Public API


def check(name: str, answer, verbose: bool = True, strict: bool = False, device=None) -> bool:
    """Check a student's answer against the reference; print one line (pass, hint, or not attempted).

    The answer runs on `device`, by default the notebook's (what setup() chose, see set_device).
    strict=True (for graders): a wrong or unattempted answer raises AssertionError whose message is that line.
    The course's own reference (put in place by use()) is never credited: check says so and returns False,
    and strict mode does not raise for it.
    """
    exercise = _exercise(name)
    status, line = _verdict(exercise, answer, _resolve(device))
    if strict and status in (FAILED, NOT_ATTEMPTED):
        raise AssertionError(line)
    if verbose:
        print(line)
    return status == PASSED


def use(name: str, answer, device=None):
    """The student's answer when it passes its check (on `device`, as check), else the course's reference;
    print which, in one line."""
    exercise = _exercise(name)
    status, _ = _verdict(exercise, answer, _resolve(device))
    if status == PASSED:
        print(f"using your {name} (it passed its check)")
        return answer
    why = "not attempted yet" if status in (NOT_ATTEMPTED, REFERENCE) else "your version did not pass its check"
    print(f"using the course's reference {name} ({why})")
    return exercise.reference


def solution(name: str):
    """The course's reference function or class for an exercise."""
    return _exercise(name).reference


def solution_source(name: str) -> str:
    """Self-contained code defining the answer under the exercise's name (after the notebook's usual imports)."""
    exercise = _exercise(name)
    source = textwrap.dedent(inspect.getsource(exercise.shown or exercise.reference))
    if exercise.alias_of is None:
        return source
    new_name, old_name = _exercise(exercise.alias_of).answer_name, exercise.answer_name
    return f"{source}\n\n{old_name} = {new_name}  # the exercise's older name, {exercise.name}\n"


def show_solution(name: str) -> None:
    """Display the solution's code, syntax-highlighted, in the notebook."""
    from IPython.display import Code, display

    display(Code(solution_source(name), language="python"))


# The device the checks run the answers on: the notebook's, which setup() sets; the CPU until then.
_DEVICE = torch.device("cpu")
_CHECKING: list[torch.device] = []  # the device of the check now running (a stack: a check may call another)


def set_device(device) -> torch.device:
    """Run the checks on `device` from now on (setup() calls this with the notebook's device); return it."""
    global _DEVICE
    _DEVICE = _resolve(device)
    return _DEVICE


def _resolve(device) -> torch.device:
    """`device` as a torch.device (None: the notebook's), or a ValueError naming the parameter."""
    if device is None:
        return _DEVICE
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device: {device!r} is not a device; give a torch.device or a name such as 'cpu' or 'cuda'")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device: {device!r} is not a device name ({error})") from None
    if resolved.type == "cuda" and resolved.index is None and torch.cuda.is_available():
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def _device() -> torch.device:
    """The device the running check uses."""
    return _CHECKING[-1] if _CHECKING else _DEVICE


@contextlib.contextmanager
def _on_cpu():
    """Run the rest of a check on the CPU (the detailed checks of models, once _device_probe ran on the device)."""
    _CHECKING.append(torch.device("cpu"))
    try:
        yield
    finally:
        _CHECKING.pop()


def _exercise(name: str) -> Exercise:
    if isinstance(name, str) and name in ALIASES:
        return ALIASES[name]
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name]


# ---------------------------------------------------------------------------------------------
# Shared plumbing

# Verdicts of answers already checked, so use() right after check() does not train a model twice.
_VERDICTS: "weakref.WeakKeyDictionary[object, dict[tuple[str, str], tuple[str, str]]]" = weakref.WeakKeyDictionary()


def _verdict(exercise: Exercise, answer, device: torch.device) -> tuple[str, str]:
    """(status, the line to print) for an answer on `device`: status is PASSED, FAILED or NOT_ATTEMPTED."""
    key = (exercise.name, str(device))
    try:
        cached = _VERDICTS.get(answer, {}).get(key)
    except TypeError:  # not hashable or not weak-referenceable: check it every time
        cached = None
    if cached is not None:
        return cached
    result = _run_checker(exercise, answer, device=device)
    with contextlib.suppress(TypeError):
        _VERDICTS.setdefault(answer, {})[key] = result
    return result


def _is_reference(answer) -> bool:
    """Whether answer is one of the course's own reference objects (what use() and solution() hand out)."""
    return any(answer is e.reference for e in EXERCISES.values())


def _run_checker(exercise: Exercise, answer, credit_reference: bool = False, device=None) -> tuple[str, str]:
    """(status, line) on `device` (None: the notebook's); credit_reference=True checks the course's reference like
    any answer (for the tests)."""
    device = _resolve(device)
    todo = (NOT_ATTEMPTED, f"{NOT_ATTEMPTED} {exercise.name}: not attempted yet. Task: {exercise.task}")
    if answer is None:
        return todo
    if not credit_reference and _is_reference(answer):
        return REFERENCE, (f"{NOT_ATTEMPTED} {exercise.name}: not attempted yet: this is the course's reference "
                           f"(use() put it in place of yours), not your answer; write your own in the exercise "
                           f"cell and run it again. Task: {exercise.task}")
    try:
        with _quiet_torch(device):
            detail = exercise.checker(answer)
    except NotImplementedError:
        return todo
    except _Wrong as wrong:
        return FAILED, f"{FAILED} {exercise.name}: {wrong}"
    except Exception as error:  # a crash outside the places the checker expects one: still only a hint
        return FAILED, f"{FAILED} {exercise.name}: your code raised {_brief(error)}{_device_note(error)}"
    return PASSED, f"{PASSED} {exercise.name}: correct: {detail}"


@contextlib.contextmanager
def _quiet_torch(device: torch.device):
    """On `device`, seeded, with gradients on and one thread, leaving the notebook's random streams (the CPU's and
    the device's) and settings as they were.

    The check's tensors are tiny: one thread avoids the threading overhead (and contention on a shared CPU).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _CHECKING.append(device)
    try:
        with torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []), torch.enable_grad():
            torch.manual_seed(0)
            yield
    finally:
        _CHECKING.pop()
        torch.set_num_threads(threads)


def _brief(error: BaseException) -> str:
    """'TypeError: first line of the message', at most ~160 characters."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _on_device(value):
    """A tensor argument copied to the check's device (gradients still flow back), a generator replaced by one
    there with the same seed, a module moved there; anything else as it is."""
    device = _device()
    if isinstance(value, torch.Tensor):
        return value.to(device, copy=True)
    if isinstance(value, torch.Generator) and value.device != device:
        return torch.Generator(device=device).manual_seed(value.initial_seed())
    if isinstance(value, nn.Module):
        return value.to(device)
    return value


def _call(fn, *args, what: str, **kwargs):
    """fn(*args, **kwargs) on the check's device, on copies of the tensor arguments; a crash or an in-place change
    becomes a hint."""
    copies = [_on_device(a) for a in args]
    kwargs = {key: _on_device(value) for key, value in kwargs.items()}
    try:
        result = fn(*copies, **kwargs)
    except (NotImplementedError, _Wrong):
        raise
    except Exception as error:
        raise _Wrong(f"{what} raised {_brief(error)}{_device_note(error)}") from error
    for original, copy in zip(args, copies):
        if isinstance(original, torch.Tensor) and not torch.equal(original.detach(), copy.detach().to(original.device)):
            raise _Wrong(f"{what} changed its input tensor in place (x += ..., x.clamp_(), x[...] = ...): "
                         "the caller still needs it, so compute a new tensor (y = x + ...) instead")
    return result


def _device_note(error: BaseException) -> str:
    """A note for an error that comes from mixing devices, else ''."""
    if "device" not in str(error):
        return ""
    return (f" (tensors on different devices: the inputs are on {_device()}; make every new tensor on "
            "the inputs' device, device=x.device, and draw with the generator you are given)")


def _described(value) -> str:
    """What a wrong return value is, for a hint: 'None (no return statement?)', 'a numpy.ndarray', ..."""
    if value is None:
        return "None (a missing return statement?)"
    if value is Ellipsis:
        return "... (a placeholder of the stub is still there)"
    module = type(value).__module__.split(".")[0]
    return f"a {type(value).__name__}" if module == "builtins" else f"a {module}.{type(value).__name__}"


def _device_hint(what: str, got: torch.device) -> str | None:
    """The hint for a tensor on another device than the check's inputs, or None."""
    expected = _device()
    if got.type == expected.type and (got.index is None or expected.index is None or got.index == expected.index):
        return None
    return (f"{what} returned a tensor on {got}, but its inputs are on {expected}: make every new tensor on the "
            f"inputs' device (device=x.device, or the *_like functions), and do not move the result")


def _plain_tensor(value, what: str) -> torch.Tensor:
    """value when it is a plain torch tensor on the check's device; otherwise a hint."""
    if type(value) not in (torch.Tensor, nn.Parameter):
        if isinstance(value, torch.Tensor):  # a subclass may redefine ==, allclose, ...: compare plain values only
            raise _Wrong(f"{what} returned a {type(value).__name__}, a subclass of torch.Tensor; return a plain "
                         "torch tensor")
        extra = " (torch.from_numpy converts an array; better, stay in torch)" if type(value).__module__ == "numpy" \
            else ""
        raise _Wrong(f"{what} returned {_described(value)}; return a torch tensor{extra}")
    hint = _device_hint(what, value.device)
    if hint:
        raise _Wrong(hint)
    return value


def _not_finite_hint(what: str, value: torch.Tensor) -> str | None:
    """The hint for a tensor holding NaN or infinite entries, or None."""
    values = value.detach()
    if not values.is_floating_point() or bool(torch.isfinite(values).all()):
        return None
    nan, total = int(torch.isnan(values).sum()), values.numel()
    if nan:
        return (f"{what} returned NaN (not a number) in {nan:,} of its {total:,} entries: an undefined step such as "
                "0 / 0, or the log or square root of a negative number, is somewhere in your computation")
    return (f"{what} returned infinite values in {total - int(torch.isfinite(values).sum()):,} of its {total:,} "
            "entries: a division by 0 or the exp of a large number is somewhere in your computation")


def _tensor(value, what: str, finite: bool = True) -> torch.Tensor:
    """A float32 tensor on the check's device (without NaN when finite), brought to the CPU to be compared with the
    references (gradients still flow back); anything else is a hint."""
    value = _plain_tensor(value, what)
    if value.is_floating_point() and value.dtype != torch.float32:
        # the course's models and data are float32: a float64 or half answer passes nowhere downstream
        raise _Wrong(f"{what} returned a {str(value.dtype).replace('torch.', '')} tensor; return float32, the "
                     "dtype of the inputs (a new tensor made without dtype=..., or .double()/.half(), changes it)")
    hint = _not_finite_hint(what, value) if finite else None
    if hint:
        raise _Wrong(hint)
    return value.cpu()


def _scalar(value, what: str, how: str) -> torch.Tensor:
    """A 0-d tensor that carries gradients (a loss or a penalty), or a hint."""
    if isinstance(value, numbers.Number):
        raise _Wrong(f"{what} returned a Python {type(value).__name__}; return the 0-d tensor itself "
                     "(no .item() or float()): it is added to the loss and must carry gradients")
    value = _tensor(value, what)
    if value.dim() != 0:
        raise _Wrong(f"{what} returned a tensor of shape {tuple(value.shape)}; return one number, a 0-d tensor: {how}")
    return value


def _number(value, what: str) -> float:
    """A Python number or a one-element tensor, as a plain float; anything else is a hint."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        number = float(_plain_tensor(value, what).detach().cpu())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float.__float__(float(value))  # a plain float: a subclass's == is never consulted
    else:
        kind = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else _described(value)
        raise _Wrong(f"{what} returned {kind}; return one number (a float)")
    if math.isnan(number):
        raise _Wrong(f"{what} returned NaN (not a number): an undefined step such as 0 / 0 is somewhere in your "
                     "computation")
    if math.isinf(number):
        raise _Wrong(f"{what} returned {number}: a division by 0 is somewhere in your computation")
    return number


def _same(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Same shape and the same values up to float rounding."""
    return a.shape == b.shape and torch.allclose(a.detach().double(), b.detach().double(), rtol=rtol, atol=atol)


def _near(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-7) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
