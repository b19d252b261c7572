"""Helpers for the checks of models: building one, its gradients, a short training, its layer sizes."""
from __future__ import annotations

import torch
from torch import nn

from course import models, training
from course.exercises.core import _Wrong, _brief, _call, _device, _device_hint
from course.exercises.inputs import _generator, _real


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


def _device_probe(what: str, fn, *args) -> None:
    """fn(*args) once on the check's device (tensors, generators and models moved there): an error that mixes
    devices, or a result on another device, is a hint; any other error is left to the detailed checks after."""
    args = tuple(arg.to(_device()) if isinstance(arg, nn.Module) else arg for arg in args)
    if isinstance(fn, nn.Module):
        fn = fn.to(_device())
    what = f"{what} on {_device()}"
    try:
        out = _call(fn, *args, what=what)
    except _Wrong as wrong:
        if wrong.__cause__ is not None and "device" in str(wrong.__cause__):
            raise
        return
    except NotImplementedError:
        raise
    except Exception:  # an error the checks on the CPU name better
        return
    for value in out if isinstance(out, (tuple, list)) else (out,):
        hint = _device_hint(what, value.device) if isinstance(value, torch.Tensor) else None
        if hint:
            raise _Wrong(hint)


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
