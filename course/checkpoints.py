"""Train-or-load cache: a model is trained once per setting and reused by every notebook."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import torch
from torch import nn

from course.config import cache_dir, resolve_device, set_seed
from course.data import DigitData
from course.models import build_model
from course.training import History, fit

FORMAT_VERSION = 1


@dataclass
class Trained:
    """A trained model, its History, and whether it came from the cache."""

    model: nn.Module
    history: History
    from_cache: bool
    path: Path


def _hook_config(hook) -> dict | None:
    if hook is None:
        return None
    fields = asdict(hook) if is_dataclass(hook) else {"repr": repr(hook)}
    return {"kind": type(hook).__name__, **fields}


def run_config(model: str, model_args: dict, data: DigitData, epochs: int, lr: float, batch_size: int,
               seed: int, corruption=None, penalty=None) -> dict:
    """The plain-dict settings that decide a trained model; their hash is its cache key.

    Normalised through JSON (tuples become lists), so settings that hash alike also compare equal.
    """
    info = data.info()
    return _plain({
        "format": FORMAT_VERSION,
        "model": model,
        "model_args": dict(model_args),
        "training": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                     "corruption": _hook_config(corruption), "penalty": _hook_config(penalty)},
        "data": {key: info[key] for key in ("dataset", "data_source", "train_size", "val_size", "test_size", "split")},
    })


def _plain(config: dict) -> dict:
    return json.loads(json.dumps(config, sort_keys=True))


def cache_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


def save_checkpoint(path: Path, model: nn.Module, config: dict, history: History) -> None:
    """Write state_dict, config and history atomically: a crash leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"config": config, "state_dict": state, "history": history.to_dict()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, config: dict) -> tuple[nn.Module, History]:
    """Rebuild the model of `config` and load its weights; raise if the file does not match."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    if record.get("config") != config:
        raise ValueError("its settings differ from the ones asked for")
    model = build_model(config["model"], **config["model_args"])
    model.load_state_dict(record["state_dict"])
    return model, History.from_dict(record["history"])


def train_or_load(model: str, data: DigitData, epochs: int, model_args: dict | None = None,
                  lr: float = 1e-3, batch_size: int = 64, seed: int = 0, corruption=None, penalty=None,
                  device: str | torch.device = "auto", cache: str | os.PathLike | None = None,
                  retrain: bool = False, progress: bool = True) -> Trained:
    """Load the model trained with these settings from the cache, or train it and cache it.

    The cache key hashes the model, its arguments, the training settings and the data (source,
    sizes and split), not the device. A corrupt or mismatched file is retrained with a warning.
    """
    model_args = dict(model_args or {})
    config = run_config(model, model_args, data, epochs, lr, batch_size, seed, corruption, penalty)
    path = cache_dir(cache) / f"{model}-{cache_key(config)}.pt"
    if path.is_file() and not retrain:
        try:
            net, history = load_checkpoint(path, config)
            return Trained(net.to(resolve_device(device)).eval(), history, True, path)
        except Exception as err:  # any unreadable or foreign file is replaced, never fatal
            warnings.warn(f"Cached model {path} could not be used ({err}); retraining it.")
    set_seed(seed)
    net = build_model(model, **model_args)
    history = fit(net, data, epochs=epochs, lr=lr, batch_size=batch_size, device=device, seed=seed,
                  corruption=corruption, penalty=penalty, progress=progress)
    save_checkpoint(path, net, config, history)
    return Trained(net, history, False, path)
