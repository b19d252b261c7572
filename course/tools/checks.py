"""Checks a batch makes before any kernel starts: the device, the output folder, the notebook files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import course

# Resolves the device in a child process: torch costs this process ~770 MB, and only the kernels use it.
_RESOLVE = """\
import sys
from course.config import resolve_device
try:
    print(resolve_device(sys.argv[1]))
except (ValueError, RuntimeError) as err:
    sys.exit(str(err))
"""
# Importing torch cold from a slow disk can take a while; a hung import must not hang the batch.
DEVICE_CHECK_TIMEOUT = 300


class CheckError(ValueError):
    """A request that cannot run: no such device, an output folder that cannot be written, a broken notebook."""


class UnsafeOutDir(CheckError):
    """An output folder that would overwrite what the command reads, or notebooks already there."""


def _same(a: Path, b: Path) -> bool:
    """Whether two resolved paths are one folder (also through bind mounts and hard-to-spot aliases)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: resolved and different, so not the same
        return False


def _notebooks_in(folder: Path) -> list[Path]:
    """The .ipynb files in `folder` and its direct subfolders (say a solved-notebooks/ of an earlier run)."""
    if not folder.is_dir():
        return []
    try:
        return sorted([*folder.glob("*.ipynb"), *folder.glob("*/*.ipynb")])
    except OSError:
        return []  # unreadable: prepare_out_dir says so when it tries to write there


def safe_out_dir(out, reads, force: bool = False, what: str = "--out") -> Path:
    """The resolved output folder; UnsafeOutDir when it is, lies inside or contains a folder in `reads`
    (symlinks resolved), or, unless `force`, already holds notebooks that writing there could overwrite.

    A file in `reads` stands for the folder holding it. Nothing is created: call prepare_out_dir after.
    """
    given = out
    out = Path(out).expanduser().resolve()
    for read in reads:
        read = Path(read).expanduser().resolve()
        folder = read.parent if read.is_file() else read
        if _same(out, folder):
            raise UnsafeOutDir(f"{what} {given}: is {folder}, the folder of notebooks being read; "
                               f"writing there would overwrite them, choose another folder")
        if any(_same(parent, folder) for parent in out.parents):
            raise UnsafeOutDir(f"{what} {given}: lies inside {folder}, the folder of notebooks being read; "
                               f"choose a folder outside it")
        if any(_same(out, parent) for parent in folder.parents):
            raise UnsafeOutDir(f"{what} {given}: contains {folder}, the folder of notebooks being read; "
                               f"choose a folder that does not hold it")
    if not force:
        found = _notebooks_in(out)
        if found:
            names = ", ".join(str(path.relative_to(out)) for path in found[:3]) + (", ..." if len(found) > 3 else "")
            raise UnsafeOutDir(f"{what} {given}: already holds {len(found)} notebook(s) ({names}) that writing "
                               f"there could overwrite; give --force to allow it, or choose an empty folder")
    return out


def resolve_device_name(device: str) -> str:
    """What `device` resolves to ("auto" -> "cuda", "mps" or "cpu"); CheckError when it is not available."""
    if device == "cpu":
        return device  # nothing to look up, so no child process
    # cwd: the folder `course` is imported from here, so the child imports the same package
    root = Path(course.__file__).resolve().parent.parent
    try:
        done = subprocess.run([sys.executable, "-c", _RESOLVE, device], cwd=root, capture_output=True, text=True,
                              timeout=DEVICE_CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckError(f"--device {device}: looking it up took over {DEVICE_CHECK_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise CheckError(lines[-1])  # resolve_device's message, or the last line of a traceback
    return done.stdout.strip()


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def prepare_out_dir(out: Path) -> Path:
    """Create `out` (it may exist) and prove a file can be written there; CheckError otherwise, leaving nothing."""
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise CheckError(f"--out {out}: is a file, not a folder")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker:
        raise CheckError(f"--out {out}: {blocker} is a file, not a folder")
    created = _missing_folders(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        for folder in created:  # deepest first: each is empty once the one below is gone
            try:
                folder.rmdir()
            except OSError:
                break
        raise CheckError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return out


def new_run_dir(runs: Path) -> Path:
    """Create and return a fresh runs/<timestamp> folder; a second run in the same second gets <timestamp>-2."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True, exist_ok=False)  # atomic: of two runs, exactly one creates it
            return folder
        except FileExistsError:
            continue
        except OSError as err:
            raise CheckError(f"cannot create a run folder in {runs} ({err.strerror or err}); give --out") from None
    raise CheckError(f"--out: 999 runs already started in {runs} at {stamp}; give --out")


def check_notebook(path: Path) -> None:
    """CheckError naming the file when it is not a readable notebook (JSON with a list of cells)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise CheckError(f"notebook {path}: cannot be read ({err})") from None
    except ValueError as err:
        raise CheckError(f"notebook {path}: is not valid JSON ({err})") from None
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        raise CheckError(f"notebook {path}: is JSON but not a notebook (no list of cells)")
