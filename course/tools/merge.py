"""`python -m course report`: one report from the output folders of several `course run` calls."""
from __future__ import annotations

import json
import shutil
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
    runs = [(Path(folder).resolve(), read_run(Path(folder))) for folder in folders]
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
    target = prepare_out_dir(target)
    records = []
    for stem in sorted(kept):
        folder, entry = kept[stem]
        for key in FILE_KEYS:
            name = entry.get(key)
            if name and (folder / name).is_file():
                shutil.copy2(folder / name, target / name)
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
    write_summary(summary, target)
    return summary
