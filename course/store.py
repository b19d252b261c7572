"""The published model store: trained models exported once, fetched by their sha256, used only when their key matches.

A store is a folder (or the same files behind an https or file URL) holding one file per model and
manifest.json: the course version, and for each model its cache key, file name, sha256, size and
readable settings. `python -m course models export --out DIR` writes one from the local cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from course import __version__
from course.config import is_offline

MANIFEST = "manifest.json"
STORE_FORMAT = 1
# The course's own release for its version: an instructor attaches the exported store to it.
RELEASE_URL = "https://github.com/autoencoder-course/autoencoder-course/releases/download/v{version}/"
MANIFEST_TIMEOUT_S = 5.0

_MANIFESTS: dict[str, dict | str] = {}  # store -> its manifest, or why there is none: asked once per process
_SAID: set[str] = set()  # store-wide reasons already printed, once per process


def store_location() -> str:
    """$COURSE_MODELS_URL (an https or file URL, or a folder), else the course's release for its version."""
    return os.environ.get("COURSE_MODELS_URL", "").strip() or RELEASE_URL.format(version=__version__)


def _join(store: str, name: str) -> str:
    if "://" in store:
        return store.rstrip("/") + "/" + urllib.parse.quote(name)
    return str(Path(store).expanduser() / name)


def _local_path(location: str) -> Path | None:
    """The file a folder path or file:// URL names; None for a web URL."""
    if location.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    return None if "://" in location else Path(location).expanduser()


def _read_manifest(store: str) -> dict | str:
    """The store's manifest, or a reason why it cannot be used."""
    location = _join(store, MANIFEST)
    try:
        local = _local_path(location)
        if local is not None:
            text = local.read_text()
        else:
            with urllib.request.urlopen(location, timeout=MANIFEST_TIMEOUT_S) as response:
                text = response.read().decode()
        manifest = json.loads(text)
    except FileNotFoundError:
        return f"no {MANIFEST} at {store}"
    except urllib.error.HTTPError as err:
        return f"{location} answered {err.code}"
    except (OSError, urllib.error.URLError) as err:
        # The reason in plain words: a student offline should not read an errno as a failure of theirs.
        return f"{store} is unreachable from here, e.g. without internet: {getattr(err, 'reason', err)}"
    except ValueError as err:
        return f"{location} is not JSON ({err})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        return f"{location} is not a model store manifest"
    version = manifest.get("course_version")
    if version != __version__:
        return f"the store at {store} is for course version {version}, this is {__version__}: ignored"
    return manifest


def manifest_of(store: str | None = None) -> dict | str:
    """The manifest of `store` (default store_location()), read once per process; a str says why there is none."""
    store = store or store_location()
    if store not in _MANIFESTS:
        _MANIFESTS[store] = _read_manifest(store)
    return _MANIFESTS[store]


def forget_manifests() -> None:
    """Read every store's manifest again on next use (after publishing a store, and in tests)."""
    _MANIFESTS.clear()
    _SAID.clear()


def _say_once(reason: str) -> None:
    if reason not in _SAID:
        _SAID.add(reason)
        print(f"note: no published models to load ({reason}), so models are trained here; nothing is wrong")


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_published(key: str, path: Path, progress: bool = True) -> bool:
    """Put the published model with `key` at `path` (in the local cache), checked by its sha256.

    Returns False, after one line saying why, when there is none to use: offline (COURSE_OFFLINE=1), a
    missing or unreachable store, a store of another course version, no model with this key, or a file
    whose hash differs (nothing is left behind then).
    """
    if is_offline():
        _say_once("COURSE_OFFLINE=1")
        return False
    store = store_location()
    manifest = manifest_of(store)
    if isinstance(manifest, str):
        _say_once(manifest)
        return False
    entry = next((m for m in manifest["models"] if isinstance(m, dict) and m.get("key") == key), None)
    if entry is None or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        print(f"{path.name} is not in the published store at {store}: training it")
        return False
    name = Path(entry["file"]).name  # a name inside the store, never a path out of it
    try:
        _download(_join(store, name), entry["sha256"], path, progress)
    except ValueError as err:  # pooch's hash mismatch, or ours
        print(f"published {name} refused ({err}); training it")
        return False
    except (OSError, urllib.error.URLError, RuntimeError) as err:
        reason = getattr(err, "reason", None) or err
        print(f"published {name} could not be fetched ({reason}); training it")
        return False
    return True


def _download(location: str, sha256: str, path: Path, progress: bool) -> None:
    """Copy or download `location` to `path` through a temporary file; only a file with `sha256` arrives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    local = _local_path(location)
    if local is None:
        import pooch

        # pooch downloads to a temporary file and moves it into place only when its hash matches
        pooch.retrieve(location, known_hash=f"sha256:{sha256}", fname=path.name, path=path.parent,
                       progressbar=progress)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(local, tmp)
        found = sha256_of(Path(tmp))
        if found != sha256:
            raise ValueError(f"its sha256 is {found}, the manifest says {sha256}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def readable_settings(config: dict) -> dict:
    """What a student reads in a manifest: the model, its arguments, the training budget, hooks and data."""
    training, data = config.get("training", {}), config.get("data", {})

    def hook(tree):
        return None if tree is None else {"kind": tree.get("kind") or tree.get("function"),
                                          "fields": {k: v for k, v in (tree.get("fields") or {}).items()
                                                     if not isinstance(v, dict)}}

    return {"model": config.get("model"), "model_args": config.get("model_args"),
            **{k: training.get(k) for k in ("epochs", "lr", "batch_size", "seed")},
            "corruption": hook(training.get("corruption")), "objective": hook(training.get("objective")),
            "dataset": data.get("dataset"), "train_size": data.get("train_size"),
            "data_fingerprint": data.get("fingerprint")}


def write_manifest(out: Path, models: list[dict]) -> Path:
    """Write <out>/manifest.json atomically."""
    record = {"store_format": STORE_FORMAT, "course_version": __version__, "models": models}
    path = out / MANIFEST
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{MANIFEST}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
