"""`python -m course models export --out DIR`: the local cache's models as a store to publish (course.store)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _check_out(out: Path, cache: Path, force: bool) -> Path:
    """Refuse an output folder that is, holds or lies in the cache, or that already holds a store (unless force)."""
    try:
        from course.tools.checks import safe_out_dir
    except ImportError:  # an older checkout without it: the same rules, checked here
        safe_out_dir = None
    if safe_out_dir is not None:
        out = safe_out_dir(out, [cache], force=force)
    out = Path(out).expanduser().resolve()
    cache = cache.expanduser().resolve()
    if out == cache or out.is_relative_to(cache) or cache.is_relative_to(out):
        raise ValueError(f"--out {out}: is, holds or lies inside the model cache {cache} being exported; "
                         "choose another folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"--out {out}: is not empty; choose an empty folder, or give --force to write over it")
    return out


def export_store(out: str | os.PathLike, cache: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Copy every current model of the cache into `out` and write its manifest; return the manifest.

    A file whose settings do not hash to the key in its name, or written by another key format (an
    older course), is left out with a line: a store holds only models this code would ask for.
    """
    import torch

    from course.checkpoints import FORMAT_VERSION, cache_key
    from course.config import cache_dir
    from course.store import readable_settings, sha256_of, write_manifest

    folder = cache_dir(cache)
    if not folder.is_dir():
        raise ValueError(f"the model cache {folder} does not exist: train the models first (python -m course run)")
    target = _check_out(Path(out), folder, force)
    target.mkdir(parents=True, exist_ok=True)
    models, skipped = [], []
    for path in sorted(folder.glob("*.pt")):
        try:
            config = torch.load(path, map_location="cpu", weights_only=True)["config"]
        except Exception as err:  # an unreadable file is not published
            skipped.append(f"{path.name} (unreadable: {err})")
            continue
        key = cache_key(config)
        if config.get("format") != FORMAT_VERSION or not path.stem.endswith(f"-{key}"):
            skipped.append(f"{path.name} (another key format or a renamed file)")
            continue
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{path.name}.")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target / path.name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        models.append({"key": key, "file": path.name, "sha256": sha256_of(target / path.name),
                       "size": (target / path.name).stat().st_size, "settings": readable_settings(config)})
    for line in skipped:
        print(f"left out: {line}")
    manifest_path = write_manifest(target, models)
    print(f"{len(models)} model(s) exported to {target}; manifest: {manifest_path}")
    return {"models": models, "skipped": skipped, "manifest": str(manifest_path)}
