"""Train-or-load cache: a model is trained once per setting and reused by every notebook.

A cached model is found by a key that hashes everything that decides its weights: the model's
code and layers, its arguments, the training settings, the code and values of every hook
(corruption, penalty, objective) and the content of the data. Never a memory address: the same
code gives the same key in every process, and other code or other data gives another key.
"""
from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import inspect
import json
import linecache
import math
import os
import re
import site
import sys
import sysconfig
import tempfile
import types
import warnings
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from course.config import cache_dir, resolve_device, set_seed
from course.data import DigitData
from course.models import MODELS, build_model
from course.training import History, Reconstruction, fit

FORMAT_VERSION = 2
KEY_LENGTH = 20
NAME_LENGTH = 60  # the readable part of a cache file's name, before its key
PLAIN = (bool, int, float, str, type(None))
# Packages whose code is keyed by name only: their version is the user's environment, not the course.
LIBRARY_PACKAGES = {"torch", "torchvision", "numpy"}
# Short names of the course's hooks in cache file names: shallow-h1024-l1-0.001-<key>.pt
HOOK_NAMES = {"GaussianNoise": "noise", "MaskingNoise": "mask", "SaltAndPepper": "saltpepper",
              "L1Penalty": "l1", "KLSparsity": "kl", "NegativeELBO": "elbo", "Reconstruction": ""}
ARG_NAMES = {"hidden_dim": "h", "hidden_dims": "h", "latent_dim": "z", "decoder_dims": "d", "channels": "c",
             "input_dim": "in"}
# What to pass instead of a hook whose values cannot be keyed.
HOOK_ADVICE = {
    "corruption": "a dataclass hook such as GaussianNoise(noise_std) (or MaskingNoise, SaltAndPepper) "
                  "from course.training",
    "penalty": "a dataclass hook such as L1Penalty(weight) (or KLSparsity(weight, target)) from course.training",
    "objective": "a dataclass hook such as Reconstruction(penalty=L1Penalty(weight)) or NegativeELBO(beta) "
                 "from course.training",
    "model": "the model's class itself, with its arguments in model_args",
}

_WARNED_FOLDERS: set[str] = set()  # unwritable cache folders already named in a warning, once per process


@dataclass
class Trained:
    """A trained model, its History, whether it came from the cache, and its cache file (None if unsaved)."""

    model: nn.Module
    history: History
    from_cache: bool
    path: Path | None


# --- keys: code and values, never addresses --------------------------------------------------------

class _Unkeyable(Exception):
    """A value that cannot be part of a key; `name` is the variable or field that holds it."""

    def __init__(self, name: str, value):
        super().__init__(name)
        self.name, self.value = name, value


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


def _is_library(obj) -> bool:
    """Whether `obj` (a function or class) comes from torch, an installed package or the standard library."""
    top = (getattr(obj, "__module__", None) or "").split(".")[0]
    if top == "course":  # the course's own code is keyed by its code, even when installed as a package
        return False
    if top in LIBRARY_PACKAGES:
        return True
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return _in_library_folder(code.co_filename)
    if not isinstance(obj, type):
        return True  # a function written in C
    name = obj.__module__
    if name == "builtins":  # exec'd code without __name__ claims builtins too
        return getattr(builtins, obj.__qualname__, None) is obj
    module = sys.modules.get(name)
    if module is None or name == "__main__":
        return False
    file = getattr(module, "__file__", None)
    return name in sys.builtin_module_names if file is None else _in_library_folder(file)


def _in_library_folder(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path.is_relative_to(folder) for folder in _library_folders())


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    folders.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    folders.add(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in folders)


def _code_key(code: types.CodeType) -> list:
    """The bytecode of `code`, its constants (nested functions' code included) and the names it uses."""
    def const(value):
        if isinstance(value, types.CodeType):
            return _code_key(value)
        if isinstance(value, frozenset):  # `x in {"a", "b"}`: its order changes with the hash seed
            return sorted(repr(v) for v in value)
        if isinstance(value, tuple):
            return [const(v) for v in value]
        return repr(value)

    return [code.co_code.hex(), [const(c) for c in code.co_consts], list(code.co_names), code.co_argcount,
            code.co_kwonlyargcount]


def _global_names(code: types.CodeType) -> set[str]:
    """The global names `code` (and the functions nested in it) reads."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _class_key(cls: type) -> str:
    """A hash of a class's code: the source (where Python can find it) and the methods' bytecode of each
    class in its MRO outside torch and the standard library."""
    parts = []
    for klass in cls.__mro__:
        if _is_library(klass):
            continue
        source = _class_source(klass)
        methods = {}
        for name, attr in sorted(vars(klass).items()):
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, property):
                attr = attr.fget
            if isinstance(attr, types.FunctionType):
                methods[name] = _code_key(attr.__code__)
            elif isinstance(attr, PLAIN) and not name.startswith("__"):
                methods[name] = repr(attr)
        parts.append([klass.__qualname__, source, methods])
    return _digest(parts)


def _class_source(cls: type) -> str | None:
    """The source of a class, found through its methods' code (which knows its file and line, even for a
    notebook cell that IPython keeps in linecache), else by inspect; None when neither can."""
    for attr in vars(cls).values():
        code = getattr(getattr(attr, "__func__", attr), "__code__", None)
        lines = linecache.getlines(code.co_filename) if isinstance(code, types.CodeType) else []
        if not lines:
            continue
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.ClassDef) and node.name == cls.__name__
                    and node.lineno <= code.co_firstlineno <= node.end_lineno):
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                return "".join(lines[start - 1:node.end_lineno])
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # no method with a file, and a class from a notebook cell or exec'd text
        return None


class _Keyer:
    """Turns hooks, functions, classes and their values into plain data that is the same in every process."""

    def __init__(self):
        self.seen: set[int] = set()  # functions being keyed: a recursive function is keyed once

    def value(self, value, name: str):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, PLAIN):
            return value
        if isinstance(value, (list, tuple)):
            return [self.value(v, name) for v in value]
        if isinstance(value, (set, frozenset)):
            return sorted((self.value(v, name) for v in value), key=repr)
        if isinstance(value, dict) and all(isinstance(k, PLAIN) for k in value):
            return {str(k): self.value(v, name) for k, v in value.items()}
        if isinstance(value, (torch.dtype, torch.device)):
            return {"torch": str(value)}
        if inspect.ismodule(value):
            return {"module": value.__name__}
        if isinstance(value, type):
            qualname = f"{value.__module__}.{value.__qualname__}"
            return {"class": qualname} if _is_library(value) else {"class": qualname, "code": _class_key(value)}
        if is_dataclass(value):
            return self.hook(value)
        if isinstance(value, functools.partial):
            return {"partial": self.value(value.func, name), "args": self.value(value.args, name),
                    "keywords": self.value(value.keywords, name)}
        if inspect.ismethod(value):
            return {"method": self.value(value.__func__, name), "self": self.value(value.__self__, name)}
        if isinstance(value, types.FunctionType):
            return self.function(value)
        if isinstance(value, types.BuiltinFunctionType) or (callable(value) and _is_library(value)
                                                            and hasattr(value, "__qualname__")):
            return {"function": f"{getattr(value, '__module__', None)}.{value.__qualname__}"}
        raise _Unkeyable(name, value)

    def hook(self, hook) -> dict:
        """A dataclass hook: its class's name and code, and its fields (which may be hooks themselves)."""
        cls = type(hook)
        return {"kind": cls.__qualname__, "code": _class_key(cls),
                "fields": {f.name: self.value(getattr(hook, f.name), f.name) for f in fields(hook)}}

    def function(self, fn: types.FunctionType) -> dict:
        """A function or lambda: its bytecode, defaults, closed-over values and the globals it reads."""
        label = {"function": fn.__qualname__}
        if _is_library(fn):
            return {"function": f"{fn.__module__}.{fn.__qualname__}"}
        if id(fn) in self.seen:
            return label
        self.seen.add(id(fn))
        code = fn.__code__
        closure = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a variable not yet assigned
                closure[name] = "<empty>"
                continue
            closure[name] = self.value(contents, name)
        reads = {name: self.value(fn.__globals__[name], name)
                 for name in sorted(_global_names(code)) if name in fn.__globals__}
        whole = [_code_key(code), self.value(fn.__defaults__ or (), "its defaults"),
                 self.value(fn.__kwdefaults__ or {}, "its defaults"), closure, reads]
        return {**label, "code": _digest(whole)}


def hook_config(hook, role: str = "hook") -> dict | None:
    """The plain-data key of a hook (a dataclass hook, a function or a lambda); None for None.

    Raises ValueError, saying what to pass instead, when the hook holds or reads a value that
    cannot be keyed (a tensor, a module, an arbitrary object).
    """
    if hook is None:
        return None
    try:
        if is_dataclass(hook) and not isinstance(hook, type):
            return _Keyer().hook(hook)
        if isinstance(hook, (types.FunctionType, types.BuiltinFunctionType, functools.partial, types.MethodType)):
            return _Keyer().value(hook, role)
    except _Unkeyable as err:
        raise ValueError(
            f"{role}={_label(hook)} uses `{err.name}`, a "
            f"{type(err.value).__module__}.{type(err.value).__qualname__} object, which cannot be part of the "
            "model cache key (numbers, strings, bools, None, and lists, tuples and dicts of these can; so can "
            f"dataclass hooks and functions over such values). Pass {HOOK_ADVICE.get(role, 'a dataclass hook')} "
            f"instead, or make `{err.name}` a plain number.") from None
    raise ValueError(
        f"{role}={_label(hook)} is a {type(hook).__qualname__} object, which cannot be part of the model cache "
        f"key. Pass {HOOK_ADVICE.get(role, 'a dataclass hook')}, or a plain function.")


def _label(hook) -> str:
    if isinstance(hook, (types.FunctionType, functools.partial, types.MethodType)):
        return _name(hook)
    text = repr(hook)
    return text if len(text) <= 60 and " at 0x" not in text else type(hook).__qualname__


def model_code(model, net: nn.Module) -> str:
    """A hash of the code that builds `net`: its class (and bases outside torch) and the factory, if any."""
    factory = MODELS.get(model) if isinstance(model, str) else model
    parts = [_class_key(type(net))]
    if isinstance(factory, types.FunctionType):  # a registry factory (deep_autoencoder) or a student's own
        parts.append(hook_config(factory, "model")["code"])
    elif isinstance(factory, type) and factory is not type(net):
        parts.append(_class_key(factory))
    return _digest(parts)


def run_config(model, model_args: dict, data: DigitData, epochs: int, lr: float, batch_size: int, seed: int,
               corruption=None, penalty=None, objective=None, net: nn.Module | None = None) -> dict:
    """The plain-dict settings that decide a trained model; their hash is its cache key.

    `model` is a registry name, an nn.Module class or a function returning a model; `net` the model
    built from it with `model_args` (built here, without touching the random state, when None).
    Normalised through JSON (tuples become lists), so settings that hash alike also compare equal.
    """
    if objective is not None and penalty is not None:
        raise ValueError("give penalty inside the objective (Reconstruction(penalty)), not both")
    if net is None:
        with torch.random.fork_rng(devices=[]):
            net = _build(model, model_args)
    if objective is None:
        hook_config(penalty, "penalty")  # refuses an unkeyable penalty under its own name
    effective = objective if objective is not None else Reconstruction(penalty)  # what fit will minimise
    try:
        keyer = _Keyer()
        args = {str(name): keyer.value(value, name) for name, value in model_args.items()}
    except _Unkeyable as err:
        raise ValueError(f"model_args[{err.name!r}] is a {type(err.value).__qualname__}, which cannot be part "
                         "of the model cache key: pass numbers, strings, bools or lists of these") from None
    return _plain({
        "format": FORMAT_VERSION,
        "model": _name(model),
        "registry": isinstance(model, str),
        "model_args": args,
        "model_code": model_code(model, net),
        "layers": repr(net),
        "training": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                     "corruption": hook_config(corruption, "corruption"),
                     "objective": hook_config(effective, "objective")},
        "data": {"dataset": data.dataset, "fingerprint": data.fingerprint, "train_size": len(data.train),
                 "val_size": len(data.val), "test_size": len(data.test)},
    })


def _plain(config: dict) -> dict:
    return json.loads(json.dumps(config, sort_keys=True))


def cache_key(config: dict) -> str:
    """The hash of a run_config: the same settings, the same key, in every process."""
    return _digest(config)


# --- readable file names ---------------------------------------------------------------------------

def _name(obj) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, functools.partial):
        return _name(obj.func)
    name = getattr(obj, "__name__", None) or type(obj).__name__
    return "lambda" if name == "<lambda>" else name


def _short(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return "x".join(_short(v) for v in value)
    return ""


def _hook_summary(hook) -> str:
    if hook is None:
        return ""
    if is_dataclass(hook) and not isinstance(hook, type):
        name = type(hook).__name__
        parts = [HOOK_NAMES.get(name, name.lower())]
        parts += [_hook_summary(v) if is_dataclass(v) or callable(v) else _short(v)
                  for v in (getattr(hook, f.name) for f in fields(hook))]
        return "-".join(p for p in parts if p)
    return _name(hook)


def cache_file_name(config: dict, model_args: dict, corruption=None, objective=None) -> str:
    """`shallow-h64-<key>.pt`: the model, its telling arguments and hooks, then the key; filesystem-safe."""
    words = [config["model"]]
    words += [f"{ARG_NAMES.get(k, k.replace('_', ''))}{_short(v)}" for k, v in model_args.items() if _short(v)]
    words += [_hook_summary(corruption), _hook_summary(objective)]
    readable = re.sub(r"[^A-Za-z0-9._+-]", "", "-".join(w for w in words if w))[:NAME_LENGTH].strip("-.")
    return f"{readable or 'model'}-{cache_key(config)}.pt"


# --- files -----------------------------------------------------------------------------------------

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: Path, model: nn.Module, config: dict, history: History) -> None:
    """Write state_dict, config and history atomically (a crash leaves no half-written file), mode 0666 & ~umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files: others on a shared hub could not read them
        torch.save({"config": config, "state_dict": state, "history": history.to_dict()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, config: dict, model: nn.Module | None = None) -> tuple[nn.Module, History]:
    """Load the weights saved with `config` into `model` (rebuilt from the registry when None); raise if they differ."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("config") != config:
        raise ValueError("its settings differ from the ones asked for")
    if model is None:
        if not config.get("registry"):
            raise ValueError(f"it holds a model built by {config['model']}, not a registry model: "
                             "pass model= (built the same way) to load its weights into")
        model = build_model(config["model"], **config["model_args"])
    model.load_state_dict(record["state_dict"])
    return model, History.from_dict(record["history"])


def _unwritable(folder: Path) -> OSError | None:
    """Why `folder` cannot hold cache files (it is created if missing), or None if it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return err
    return None


def _warn_unwritable(folder: Path, err: OSError) -> None:
    key = os.path.abspath(folder)
    if key in _WARNED_FOLDERS:
        return
    _WARNED_FOLDERS.add(key)
    warnings.warn(
        f"The model cache folder {folder} is not writable ({err}): models are trained but not saved, so "
        "every run trains them again. Set COURSE_CACHE to a folder you can write (for example "
        "`export COURSE_CACHE=$HOME/.cache/course-models`) or pass cache= to train_or_load.",
        UserWarning, stacklevel=3)


def _build(model, model_args: dict) -> nn.Module:
    if isinstance(model, str):
        return build_model(model, **model_args)
    if isinstance(model, nn.Module):
        raise TypeError(f"model must be a registry name, an nn.Module class or a function returning a model, "
                        f"not a built {type(model).__name__}: pass its class, with its arguments in model_args")
    if not callable(model):
        raise TypeError(f"model must be a registry name ({', '.join(MODELS)}), an nn.Module class or a function "
                        f"returning a model, got {model!r}")
    net = model(**model_args)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model={_name(model)} returned a {type(net).__name__}, not an nn.Module")
    return net


def train_or_load(model: str | type[nn.Module] | Callable[..., nn.Module], data: DigitData, epochs: int,
                  model_args: dict | None = None, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                  corruption=None, penalty=None, objective=None, device: str | torch.device = "auto",
                  cache: str | os.PathLike | None = None, retrain: bool = False, progress: bool = True) -> Trained:
    """Load the model trained with these settings from the cache, or train it and cache it.

    `model` is a registry name ("shallow", ...), an nn.Module class or a function returning a model
    (a student's own class from a notebook), built as model(**model_args). The cache key hashes the
    model's code and layers, its arguments, the training settings, the hooks' code and values and
    the data's content, not the device. A corrupt or mismatched file is retrained with a warning;
    an unwritable cache folder is found before training: the model is trained, not saved, with a warning.
    """
    model_args = dict(model_args or {})
    target = resolve_device(device)  # a bad device fails before any work
    set_seed(seed)
    net = _build(model, model_args)
    config = run_config(model, model_args, data, epochs, lr, batch_size, seed, corruption, penalty, objective, net)
    folder = cache_dir(cache)
    effective = objective if objective is not None else Reconstruction(penalty)
    path = folder / cache_file_name(config, model_args, corruption, effective)
    if path.is_file() and not retrain:
        try:
            _, history = load_checkpoint(path, config, net)
            return Trained(net.to(target).eval(), history, True, path)
        except Exception as err:  # any unreadable or foreign file is replaced, never fatal
            warnings.warn(f"Cached model {path} could not be used ({err}); retraining it.")
            set_seed(seed)
            net = _build(model, model_args)  # a failed load may have overwritten some weights
    problem = _unwritable(folder)
    if problem is not None:
        _warn_unwritable(folder, problem)
    history = fit(net, data, epochs=epochs, lr=lr, batch_size=batch_size, device=target, seed=seed,
                  corruption=corruption, penalty=penalty, objective=objective, progress=progress)
    if problem is not None:
        return Trained(net, history, False, None)
    try:
        save_checkpoint(path, net, config, history)
    except OSError as err:
        warnings.warn(f"The trained model could not be saved to {path} ({err}); it is used now but will be "
                      "trained again next time.", UserWarning, stacklevel=2)
        return Trained(net, history, False, None)
    return Trained(net, history, False, path)
