"""The batch report: each notebook's results beside the syllabus' reference numbers, as JSON and Markdown."""
from __future__ import annotations

import json
import os
from pathlib import Path

from course import references as ref

# Scalar results, by notebook stem and key: {reference label: value}.
SCALAR_REFERENCES = {
    "01_pca_vs_autoencoder": {
        "pca_test_mse": {r.label: r.value for r in ref.PCA_30.values()},
        "autoencoder_test_mse": {r.label: r.value for r in ref.AUTOENCODER_30.values()},
    },
    "05_manifold_learning": {
        "manifold_test_mse": {ref.MANIFOLD_VALIDATION_MSE.label: ref.MANIFOLD_VALIDATION_MSE.value},
    },
    "07_variational_autoencoder": {
        "vae_test_neg_elbo_nats": {
            f"literature range, nats/image ({ref.VAE_LITERATURE})": "{:g} to {:g}".format(*ref.VAE_NEG_ELBO_NATS)},
    },
}

# Row results, by notebook stem and key: (column to match, reference label, {match value: reference}).
ROW_REFERENCES = {
    "02_standard_autoencoder": {
        "hidden_sizes": ("hidden_dim", ref.ORIGINAL_VALIDATION, dict(ref.SHALLOW_VALIDATION_MSE)),
    },
}

# References that do not line up with the course's rows: shown as their own table under the results.
ORIGINAL_TABLES = {
    "03_sparse_autoencoder": {
        "caption": "Original assignment (penalty = lambda * SUM of |h| over units and batch, so not comparable "
                   "lambda for lambda; from 1e-4 every unit died and the output was the mean digit):",
        "columns": ["lambda", "average activation", "MSE"],
        "rows": [list(row) for row in ref.SPARSE_ORIGINAL],
    },
    "06_convolutional_autoencoder": {
        "caption": "Original assignment (decoder with the encoder's unpooling indices, 16-number code, 20 epochs):",
        "columns": ["measured on", "MSE"],
        "rows": [[r.measured_on, r.value] for r in ref.CONV_UNPOOL.values()],
    },
}

# Keys every metrics file carries about the run itself rather than its results.
RUN_KEYS = ("notebook", "dataset", "data_source", "data_description", "train_size", "val_size", "test_size",
            "split", "smoke", "device", "seed", "wall_seconds", "memory")
# The memory figures of summary.json and the overview table's heading for each, in MB.
MEMORY_COLUMNS = {"after_imports_mb": "MB after imports", "peak_mb": "peak MB",
                  "peak_above_imports_mb": "peak above imports MB"}


def memory_of(metrics: dict | None) -> dict:
    """MB after imports, peak MB and their difference, from a metrics record's "memory" (the kernel's own
    resident set); None for each figure the record lacks."""
    memory = (metrics or {}).get("memory") or {}
    figures = [memory.get("rss_after_imports_mb"), memory.get("rss_peak_mb")]
    after, peak = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in figures]
    above = peak - after if after is not None and peak is not None else None
    return {key: None if v is None else round(v, 1) for key, v in zip(MEMORY_COLUMNS, (after, peak, above))}


def references(stem: str) -> dict:
    """Every reference number the syllabus gives for one notebook, as plain data for summary.json."""
    rows = {key: {"match": match, "label": label, "values": values}
            for key, (match, label, values) in ROW_REFERENCES.get(stem, {}).items()}
    found = {"results": SCALAR_REFERENCES.get(stem), "rows": rows, "original": ORIGINAL_TABLES.get(stem)}
    return {kind: value for kind, value in found.items() if value}


def fmt(value) -> str:
    """A table cell: floats to 4 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(columns: list[str], rows: list[list]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _compact(value) -> str:
    """JSON of a nested value with its floats rounded like table cells."""
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_compact(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def results_of(metrics: dict) -> dict:
    """The results part of a metrics record: its "results" entry if it has one, else every non-run key."""
    if isinstance(metrics.get("results"), dict):
        return metrics["results"]
    return {key: value for key, value in metrics.items() if key not in RUN_KEYS}


def _scalar_table(stem: str, scalars: dict) -> list[str]:
    refs = SCALAR_REFERENCES.get(stem, {})
    labels = list(dict.fromkeys(label for key in scalars for label in refs.get(key, {})))
    rows = [[key, value] + [refs.get(key, {}).get(label) for label in labels] for key, value in scalars.items()]
    return markdown_table(["result", "this run"] + labels, rows)


def _row_table(stem: str, key: str, rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    match, label, refs = ROW_REFERENCES.get(stem, {}).get(key, (None, None, {}))
    cells = [[row.get(column) for column in columns] + ([refs.get(row.get(match))] if label else []) for row in rows]
    return [f"{key}:", ""] + markdown_table(columns + ([label] if label else []), cells)


def results_markdown(stem: str, metrics: dict) -> list[str]:
    """Markdown lines of one notebook's results beside its references."""
    results = results_of(metrics)
    scalars = {k: v for k, v in results.items() if not isinstance(v, (list, dict))}
    lines: list[str] = []
    if scalars:
        lines += _scalar_table(stem, scalars) + [""]
    for key, value in results.items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            lines += _row_table(stem, key, value) + [""]
        elif isinstance(value, dict) and not any(isinstance(v, (list, dict)) for v in value.values()):
            lines += [f"{key}:", ""] + markdown_table(["", "value"], [[k, v] for k, v in value.items()]) + [""]
        elif isinstance(value, (list, dict)):
            lines += [f"{key}: `{_compact(value)}`", ""]
    return lines + _original_table(stem)


def _original_table(stem: str) -> list[str]:
    original = ORIGINAL_TABLES.get(stem)
    if not original:
        return []
    return [original["caption"], ""] + markdown_table(original["columns"], original["rows"]) + [""]


def references_markdown(stem: str) -> list[str]:
    """Markdown lines of a notebook's reference numbers alone, for a notebook that produced no results."""
    rows = [[key, label, value] for key, refs in SCALAR_REFERENCES.get(stem, {}).items()
            for label, value in refs.items()]
    rows += [[f"{key}: {match} {value}", label, reference]
             for key, (match, label, values) in ROW_REFERENCES.get(stem, {}).items()
             for value, reference in values.items()]
    table = markdown_table(["result", "reference", "value"], rows) + [""] if rows else []
    return table + _original_table(stem)


def _run_line(entry: dict) -> str:
    metrics = entry.get("metrics") or {}
    data = f"{metrics.get('dataset', '?')} from {metrics.get('data_source', '?')}"
    if "train_size" in metrics:
        data += f" ({metrics['train_size']:,} train / {metrics.get('test_size', 0):,} test)"
    return f"Data: {data}; device: {metrics.get('device', entry.get('device'))}; wall time {entry['wall_seconds']:.1f} s."


def error_text(error: dict) -> str:
    """One line naming the failing cell and the exception."""
    cell = f"cell [{error['cell']}]" if error.get("cell") is not None else "before any cell"
    return f"{cell}: {error.get('ename')}: {error.get('evalue')}"


def _header(summary: dict) -> str:
    """The paragraph under the title: when, where, with what, how long."""
    params = ", ".join(f"{k}={v!r}" for k, v in summary["parameters"].items()) or "none"
    if summary.get("merged_from"):
        text = (f"Merged from {len(summary['merged_from'])} runs ({', '.join(summary['merged_from'])}), the first "
                f"started {summary['started']}; devices: {', '.join(summary['devices']) or 'none'}; smoke: "
                f"{summary['smoke']}; parameters common to all runs: {params}; notebook time "
                f"{summary['notebook_seconds']:.1f} s in all, over {summary['span_seconds']:.1f} s from the first "
                "start to the last finish.")
    else:
        text = (f"Started {summary['started']}; device {summary['device']} (asked: {summary['requested_device']}); "
                f"smoke: {summary['smoke']}; parameters: {params}; total wall time {summary['wall_seconds']:.1f} s.")
        if summary.get("jobs", 1) > 1:
            threads = summary.get("threads_per_kernel")
            text += (f" Up to {summary['jobs']} notebooks at once"
                     f"{f', {threads} CPU thread(s) each' if threads else ''}: a notebook's wall time includes "
                     "waiting for the cores the others use.")
    if summary.get("solved"):
        text += " These are the solved copies (solved-notebooks/), not the exercises."
    if summary.get("run_log"):
        text += f" Warnings logged by papermill and nbconvert: {summary['run_log']}."
    if summary.get("stopped"):
        text += " **Stopped by Ctrl-C**: interrupted notebooks stop where they were; skipped ones never started."
    return text


def _overview_row(entry: dict) -> list:
    metrics = entry.get("metrics") or {}
    memory = entry.get("memory") or memory_of(metrics)
    megabytes = [None if memory.get(key) is None else round(memory[key]) for key in MEMORY_COLUMNS]
    device = metrics.get("device") or entry.get("device")
    return [entry["notebook"], entry["status"], metrics.get("data_source"), device, entry["wall_seconds"],
            *megabytes, entry.get("html")]


def summary_markdown(summary: dict) -> str:
    """The whole summary.md."""
    lines = ["# Autoencoder course: batch report", "", _header(summary), ""]
    columns = ["notebook", "status", "data source", "device", "wall s", *MEMORY_COLUMNS.values(), "report"]
    lines += markdown_table(columns, [_overview_row(e) for e in summary["notebooks"]]) + [""]
    for entry in summary["notebooks"]:
        lines += [f"## {entry['notebook']}: {entry['status']}", ""]
        if entry.get("error"):
            how = "Interrupted" if entry["status"] == "interrupted" else "Failed"
            lines += [f"**{how}** at {error_text(entry['error'])}", ""]
        if entry.get("note"):
            lines += [f"Note: {entry['note']}.", ""]
        if entry.get("metrics"):
            lines += [_run_line(entry), ""] + results_markdown(entry["notebook"], entry["metrics"])
        else:
            lines += ["(no metrics file written)", ""] + references_markdown(entry["notebook"])
    return "\n".join(lines)


def write_summary(summary: dict, out: Path) -> tuple[Path, Path]:
    """Write summary.json and summary.md into `out`; return their paths."""
    json_path, md_path = out / "summary.json", out / "summary.md"
    # both texts made before either file is touched, each file replaced whole: never a half-written summary
    texts = {json_path: json.dumps(summary, indent=2) + "\n", md_path: summary_markdown(summary) + "\n"}
    for path, text in texts.items():
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text)
        os.replace(partial, path)
    return json_path, md_path
