"""Train-or-load cache: a model is trained once per setting and reused by every notebook.

A cached model is found by a key that hashes everything that decides its weights: the model's
code and layers, its arguments, the training settings, the code and values of every hook
(corruption, penalty, objective) and the content of the data (course.cachekeys). Never a memory
address or a Python version: the same code gives the same key in every process, and other code or
other data gives another key.
"""
from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import types
import warnings
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from course.cachekeys import (Keyer, UnkeyableError, _Unkeyable, cache_key, fold, hook_config,
                              hook_tree, unkeyable_error)
from course.config import cache_dir, resolve_device, set_seed
from course.data import DigitData
from course.models import MODELS, build_model
from course.store import fetch_published, readable_settings
from course.training import History, fit, resolve_objective

__all__ = ["Trained", "UnkeyableError", "cache_file_name", "cache_key", "hook_config", "load_checkpoint",
           "model_code", "model_records", "run_config", "run_config_tree", "save_checkpoint", "train_or_load"]

FORMAT_VERSION = 3  # 3: code keyed by its source tokens and what it reads, not by bytecode
NAME_LENGTH = 60  # the readable part of a cache file's name, before its key
# Short names of the course's hooks in cache file names: shallow-h1024-l1-0.001-<key>.pt
HOOK_NAMES = {"GaussianNoise": "noise", "MaskingNoise": "mask", "SaltAndPepper": "saltpepper",
              "L1Penalty": "l1", "KLSparsity": "kl", "NegativeELBO": "elbo", "Reconstruction": ""}
ARG_NAMES = {"hidden_dim": "h", "hidden_dims": "h", "latent_dim": "z", "decoder_dims": "d", "channels": "c",
             "input_dim": "in"}

_WARNED_FOLDERS: set[str] = set()  # unwritable cache folders already named in a warning, once per process


SOURCES = ("trained", "cache", "published")


@dataclass
class Trained:
    """A trained model, its History, whether it was loaded (not trained), its cache file (None if unsaved)
    and where it came from: "trained" now, the local "cache", or the "published" store."""

    model: nn.Module
    history: History
    from_cache: bool
    path: Path | None
    source: str = "trained"

    def describe(self) -> str:
        """How the model came to be, for a printout: trained now and how long it took, or loaded and where from."""
        took = f"{self.history.total_seconds:.0f} s"
        if not self.from_cache:
            return f"trained now in {took}"
        where = "the published model store" if self.source == "published" else "the model cache"
        return f"loaded from {where} (its training took {took}, measured on the machine that trained it)"


_RECORDS: dict[str, dict] = {}  # this process' models, by cache file (or model name when uncached)


def model_records() -> list[dict]:
    """What this process' train_or_load calls gave: each model's file, key, source and readable settings."""
    return [dict(record) for record in _RECORDS.values()]


def _record(trained: Trained, config: dict | None, model) -> Trained:
    name = trained.path.name if trained.path is not None else f"{_name(model)} (not cached)"
    _RECORDS[name] = {"file": trained.path.name if trained.path is not None else None,
                      "key": cache_key(config) if config is not None else None, "source": trained.source,
                      "train_seconds": round(trained.history.total_seconds, 2),
                      "settings": readable_settings(config) if config is not None else {"model": _name(model)}}
    return trained


# --- keys ------------------------------------------------------------------------------------------

def _model_tree(model, net: nn.Module, keyer: Keyer):
    """The raw key of the code that builds `net`: its class (and bases outside torch) and the factory, if any."""
    factory = MODELS.get(model) if isinstance(model, str) else model
    try:
        parts = [keyer.cls(type(net))]
        if isinstance(factory, types.FunctionType):  # a registry factory (deep_autoencoder) or a student's own
            parts.append(keyer.function(factory))
        elif isinstance(factory, type) and factory is not type(net):
            parts.append(keyer.cls(factory))
    except _Unkeyable as err:
        raise unkeyable_error("model", model, err) from None
    return {"$digest": parts}


def model_code(model, net: nn.Module) -> str:
    """A hash of the code that builds `net`: its class, what its code reads, and the factory, if any."""
    return fold(_model_tree(model, net, Keyer()))


def run_config_tree(model, model_args: dict, data: DigitData, epochs: int, lr: float, batch_size: int, seed: int,
                    corruption=None, penalty=None, objective=None, net: nn.Module | None = None) -> dict:
    """run_config before its code parts are hashed: source texts in place of their hashes (see cachekeys.fold).

    Any Python, torch or not, folds it into the same run_config, which is how the keys are shown to travel.
    """
    effective = resolve_objective(penalty, objective)  # what fit will minimise
    if net is None:
        with torch.random.fork_rng(devices=[]):
            net = _build(model, model_args)
    keyer = Keyer()
    if objective is None:
        hook_tree(penalty, "penalty", keyer)  # refuses an unkeyable penalty under its own name
    try:
        args = {str(name): keyer.value(value, name) for name, value in model_args.items()}
    except _Unkeyable as err:
        raise UnkeyableError(f"model_args[{err.name!r}] is a {type(err.value).__qualname__}, which cannot be "
                             "part of the model cache key: pass numbers, strings, bools or lists of these") from None
    return {
        "format": FORMAT_VERSION,
        "model": _name(model),
        "registry": isinstance(model, str),
        "model_args": args,
        "model_code": _model_tree(model, net, keyer),
        "layers": repr(net),
        "training": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                     "corruption": hook_tree(corruption, "corruption", keyer),
                     "objective": hook_tree(effective, "objective", keyer)},
        "data": {"dataset": data.dataset, "fingerprint": data.fingerprint, "train_size": len(data.train),
                 "val_size": len(data.val), "test_size": len(data.test)},
    }


def run_config(model, model_args: dict, data: DigitData, epochs: int, lr: float, batch_size: int, seed: int,
               corruption=None, penalty=None, objective=None, net: nn.Module | None = None) -> dict:
    """The plain-dict settings that decide a trained model; their hash is its cache key.

    `model` is a registry name, an nn.Module class or a function returning a model; `net` the model
    built from it with `model_args` (built here, without touching the random state, when None).
    Normalised through JSON (tuples become lists), so settings that hash alike also compare equal.
    Raises UnkeyableError when a hook, the model's code or an argument uses a value no key can describe.
    """
    return _plain(fold(run_config_tree(model, model_args, data, epochs, lr, batch_size, seed, corruption, penalty,
                                       objective, net)))


def _plain(config: dict) -> dict:
    return json.loads(json.dumps(config, sort_keys=True))


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
    """Load the model trained with these settings from the local cache, else from the published store
    (course.store: $COURSE_MODELS_URL, else the course's release), else train it and cache it.

    `model` is a registry name ("shallow", ...), an nn.Module class or a function returning a model
    (a student's own class from a notebook), built as model(**model_args). The cache key hashes the
    model's code and layers, its arguments, the training settings, the hooks' code and values and
    the data's content, not the device. A corrupt or mismatched file is retrained with a warning;
    an unwritable cache folder is found before training: the model is trained, not saved, with a warning.
    """
    model_args = dict(model_args or {})
    target = resolve_device(device)  # a bad device fails before any work
    effective = resolve_objective(penalty, objective)
    set_seed(seed)
    net = _build(model, model_args)
    train = functools.partial(fit, data=data, epochs=epochs, lr=lr, batch_size=batch_size, device=target, seed=seed,
                              corruption=corruption, objective=effective, progress=progress)
    try:
        config = run_config(model, model_args, data, epochs, lr, batch_size, seed, corruption, penalty, objective,
                            net)
    except UnkeyableError as err:  # a correct answer over a tensor: the notebook goes on, uncached
        print(f"not cached (trained each run): {err}")
        return _record(Trained(net, train(net), False, None), None, model)
    folder = cache_dir(cache)
    path = folder / cache_file_name(config, model_args, corruption, effective)
    source = "cache" if path.is_file() else "published"
    if not retrain and (path.is_file() or fetch_published(cache_key(config), path, progress)):
        try:
            _, history = load_checkpoint(path, config, net)
            return _record(Trained(net.to(target).eval(), history, True, path, source), config, model)
        except Exception as err:  # any unreadable or foreign file is replaced, never fatal
            warnings.warn(f"Cached model {path} could not be used ({err}); retraining it.")
            set_seed(seed)
            net = _build(model, model_args)  # a failed load may have overwritten some weights
    problem = _unwritable(folder)
    if problem is not None:
        _warn_unwritable(folder, problem)
    history = train(net)
    if problem is not None:
        return _record(Trained(net, history, False, None), config, model)
    try:
        save_checkpoint(path, net, config, history)
    except OSError as err:
        warnings.warn(f"The trained model could not be saved to {path} ({err}); it is used now but will be "
                      "trained again next time.", UserWarning, stacklevel=2)
        return _record(Trained(net, history, False, None), config, model)
    return _record(Trained(net, history, False, path), config, model)
