"""`python -m course report`: one report from the output folders of several `course run` calls."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from course.tools.checks import prepare_out_dir
from course.tools.report import write_summary

# The files of a notebook's record that are copied along with it.
FILE_KEYS = ("output", "html", "metrics_file", "kernel_log")


class MergeError(ValueError):
    """A folder that is not the output of `course run`, or an --out that would overwrite one."""


def read_run(folder: Path) -> dict:
    """The summary.json of a `course run` output folder; MergeError naming the folder when there is none."""
    path = folder / "summary.json"
    if not path.is_file():
        raise MergeError(f"{folder}: no summary.json there (give the output folders of `python -m course run`)")
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:
        raise MergeError(f"{path}: is not valid JSON ({err})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("notebooks"), list):
        raise MergeError(f"{path}: has no list of notebooks, so it is not a `course run` summary")
    return check_summary(summary, folder, path)


STATUSES = ("ok", "failed", "interrupted", "skipped")


def _field_error(path: Path, where: str, field: str, allowed: str, value) -> MergeError:
    return MergeError(f"{path}: {where}field {field!r} must be {allowed}, not {value!r}")


def _plain_name(folder: Path, name, path: Path, where: str, field: str) -> str | None:
    """A file name of a record: None, or a plain name (no folder part) of a file inside `folder`."""
    if name is None:
        return None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise _field_error(path, where, field, "a plain file name inside the run folder (or null)", name)
    if (folder / name).exists() and not (folder / name).resolve().is_relative_to(folder.resolve()):
        raise MergeError(f"{path}: {where}field {field!r}: {name!r} leads outside the run folder (a link); "
                         "refusing to copy it")
    return name


def check_summary(summary: dict, folder: Path, path: Path) -> dict:
    """The fields `report` reads, checked: MergeError naming the file, the notebook and the field otherwise."""
    for field in ("started",):
        if summary.get(field) is not None and not isinstance(summary[field], str):
            raise _field_error(path, "", field, "an ISO date text (or null)", summary[field])
    for i, entry in enumerate(summary["notebooks"]):
        if not isinstance(entry, dict):
            raise MergeError(f"{path}: notebooks[{i}] must be an object, not {entry!r}")
        stem = entry.get("notebook")
        if not isinstance(stem, str) or not stem or Path(stem).name != stem:
            raise _field_error(path, f"notebooks[{i}]: ", "notebook", "a notebook name", stem)
        where = f"notebook {stem}: "
        if entry.get("status") not in STATUSES:
            raise _field_error(path, where, "status", " or ".join(STATUSES), entry.get("status"))
        if entry.get("started") is not None and not isinstance(entry["started"], str):
            raise _field_error(path, where, "started", "an ISO date text (or null)", entry["started"])
        wall = entry.get("wall_seconds")
        if wall is not None and (isinstance(wall, bool) or not isinstance(wall, (int, float))):
            raise _field_error(path, where, "wall_seconds", "a number", wall)
        for key in FILE_KEYS:
            _plain_name(folder, entry.get(key), path, where, key)
    return summary


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _rank(entry: dict) -> tuple:
    """Orders a notebook's records from different runs: run before skipped, then by start time."""
    started = _when(entry.get("started"))
    return entry["status"] != "skipped", started or datetime.min


def _distinct(values) -> list:
    return list(dict.fromkeys(v for v in values if v is not None))


def _common(dicts: list[dict]) -> dict:
    """The items every dict has with the same value."""
    first = dicts[0] if dicts else {}
    return {k: v for k, v in first.items() if all(k in d and d[k] == v for d in dicts[1:])}


def merge_runs(folders: list[str | Path], out: str | Path, progress: Callable[[str], None] = print) -> dict:
    """Merge several run folders into `out`: their notebooks' files copied, one summary.json and summary.md.

    A notebook found in several runs is taken from the run where it started last (one printed line says
    so). The merged summary lists every device and both the notebooks' total time and the overall span.
    """
    resolved = [Path(folder).resolve() for folder in folders]
    twice = sorted({str(f) for f in resolved if resolved.count(f) > 1})
    if twice:
        raise MergeError(f"{', '.join(twice)}: given more than once; name each run folder once")
    runs = [(folder, read_run(folder)) for folder in resolved]
    target = Path(out).expanduser().resolve()
    if any(target == folder for folder, _ in runs):
        raise MergeError(f"--out {target}: is one of the folders being merged; give a new folder")
    kept: dict[str, tuple[Path, dict]] = {}
    for folder, summary in runs:
        for entry in summary["notebooks"]:
            # records written before notebooks had their own start time: the run's, unless never started
            started = entry.get("started") or (summary.get("started") if entry["status"] != "skipped" else None)
            entry = {**entry, "started": started}
            stem, other = entry["notebook"], kept.get(entry["notebook"])
            if other is None:
                kept[stem] = (folder, entry)
                continue
            # a run that never started it does not count; on a tie the folder named later wins
            newer = _rank(entry) >= _rank(other[1])
            kept[stem], dropped = ((folder, entry), other) if newer else (other, (folder, entry))
            progress(f"{stem}: kept the run started {kept[stem][1]['started']} in {kept[stem][0]}, not the one "
                     f"started {dropped[1]['started']} in {dropped[0]}")
    existed = target.exists()
    target = prepare_out_dir(target)
    # Everything is written into a staging folder beside `out` first, then moved in: a failure part-way
    # leaves `out` as it was, never a half-written report.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        summary = _write_merged(runs, kept, target, staging)
        for item in staging.iterdir():
            os.replace(item, target / item.name)
    except BaseException:
        if not existed and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _write_merged(runs: list[tuple[Path, dict]], kept: dict, target: Path, staging: Path) -> dict:
    """Copy the kept notebooks' files and write the merged summary into `staging`; return the summary."""
    records = []
    for stem in sorted(kept):
        folder, entry = kept[stem]
        for key in FILE_KEYS:
            name = entry.get(key)
            if name and (folder / name).is_file():
                shutil.copy2(folder / name, staging / name)
            elif name:
                entry[key] = None  # named in its summary but gone: say so rather than link to nothing
        records.append(entry)
    summaries = [summary for _, summary in runs]
    starts = [_when(s.get("started")) for s in summaries]
    ends = [start + timedelta(seconds=s.get("wall_seconds") or 0) for start, s in zip(starts, summaries) if start]
    first = min((start for start in starts if start), default=None)
    span = (max(ends) - first).total_seconds() if first else 0.0
    smoke = _distinct(s.get("smoke") for s in summaries)
    summary = {
        "merged_from": [str(folder) for folder, _ in runs],
        "started": first.isoformat() if first else None,
        "output_dir": str(target),
        "notebook_dir": ", ".join(_distinct(s.get("notebook_dir") for s in summaries)),
        "solved": any(s.get("solved") for s in summaries),
        "requested_device": ", ".join(_distinct(s.get("requested_device") for s in summaries)),
        "device": ", ".join(_distinct(s.get("device") for s in summaries)),
        "devices": _distinct((e.get("metrics") or {}).get("device") or e.get("device") for e in records),
        "smoke": smoke[0] if len(smoke) == 1 else "mixed",
        "parameters": _common([s.get("parameters") or {} for s in summaries]),
        "notebook_seconds": round(sum(e.get("wall_seconds") or 0 for e in records), 2),
        "span_seconds": round(span, 2),
        "wall_seconds": round(span, 2),
        "stopped": any(s.get("stopped") for s in summaries),
        "failed": [e["notebook"] for e in records if e["status"] == "failed"],
        "interrupted": [e["notebook"] for e in records if e["status"] == "interrupted"],
        "skipped": [e["notebook"] for e in records if e["status"] == "skipped"],
        "notebooks": records,
    }
    write_summary(summary, staging)
    return summary
