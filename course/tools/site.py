"""`python -m course site`: a static website of a run's executed notebooks (Sphinx and myst-nb; nothing executed)."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from course.config import repo_root
from course.tools.report import error_text, references_markdown, results_markdown
from course.tools.solutions import BEGIN, END, SOLVED_DIR

# A file in every site this command builds: an existing --out without it is never replaced.
SITE_MARK = ".course-site"
MARKERS = (BEGIN.strip(), END.strip())
STUB = "raise NotImplementedError"  # every committed exercise stub raises it
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_WIDGET_TEXT = "(a live widget: open the notebook in Binder, Colab or JupyterLab to use it)"
# A badge image inside a link, [![alt](image)](target): the image lives on another site, the link is kept.
BADGE = re.compile(r"\[!\[([^\]]*)\]\([^)]*\)\]\(([^)]*)\)")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/(\S+?\.ipynb)")
TIME = re.compile(r"^\*\*Time\b.*?(?=\n[ \t]*\n|\Z)", re.S | re.M)
SPHINX_TIMEOUT = 900  # seconds; a build of the seven pages takes well under a minute

CONF = '''\
project = {title!r}
html_title = {title!r}
extensions = ["myst_nb", "sphinx.ext.githubpages"]  # the latter writes .nojekyll for GitHub Pages
root_doc = "index"
html_theme = "furo"  # its CSS and JS ship in the package: nothing is fetched at build or view time
html_copy_source = False
html_show_sourcelink = False
nb_execution_mode = "off"  # the pages show the outputs the run stored; nothing runs here
nb_merge_streams = True
# The explorers' static PNG, not the widget view: no kernel serves it here, and its viewer loads from a CDN.
nb_mime_priority_overrides = [("html", {widget!r}, None)]
nb_ipywidgets_js = {{}}
myst_enable_extensions = ["colon_fence"]  # the home page's toctree and the pages' notes are ::: fences
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
'''


class SiteError(ValueError):
    """A run folder the site cannot be built from, or an --out it cannot be built into."""


def _notebook(path: Path, given) -> dict:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # any unreadable notebook: name it and stop
        raise SiteError(f"RUN_DIR {given}: {path.name} is not a readable notebook ({err})") from None


def check_no_solutions(nb, name: str, given) -> None:
    """SiteError when a cell holds nbgrader's solution markers or an exercise cell is not a stub."""
    for index, cell in enumerate(nb.cells):
        marker = next((m for m in MARKERS if m in cell.source), None)
        if marker:
            raise SiteError(f"RUN_DIR {given}: {name}, cell {index}, holds a solution ({marker!r}); build the site "
                            "from a run of the committed notebooks (course run without --solved)")
        if cell.metadata.get("exercise") and STUB not in cell.source:
            raise SiteError(f"RUN_DIR {given}: {name}, cell {index}: exercise {cell.metadata['exercise']!r} is "
                            f"not the committed stub (no `{STUB}`), so it may hold a solution; build the site "
                            "from a run of the committed notebooks")


def read_run(run_dir) -> tuple[Path, dict, list[dict]]:
    """The run folder, its summary, and for each executed notebook {record, nb}; SiteError for anything else."""
    given = run_dir
    run = Path(run_dir).expanduser().resolve()
    if not run.exists():
        raise SiteError(f"RUN_DIR {given}: no such folder")
    if not run.is_dir():
        raise SiteError(f"RUN_DIR {given}: is a file, not a run folder")
    try:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"RUN_DIR {given}: not the output folder of `python -m course run` (no summary.json)") from None
    except (OSError, ValueError) as err:
        raise SiteError(f"RUN_DIR {given}: its summary.json is unreadable ({err})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("notebooks"), list):
        raise SiteError(f"RUN_DIR {given}: summary.json is not a course run's summary (no list of notebooks)")
    if summary.get("solved") or (run / SOLVED_DIR).exists():
        raise SiteError(f"RUN_DIR {given}: a run of the solved notebooks (--solved); the site never shows "
                        "solutions: build it from a run of the committed notebooks")
    pages = []
    for record in summary["notebooks"]:
        if isinstance(record, dict) and record.get("output") and (run / record["output"]).is_file():
            nb = _notebook(run / record["output"], given)
            check_no_solutions(nb, record["output"], given)
            pages.append({"record": record, "nb": nb})
    if not pages:
        raise SiteError(f"RUN_DIR {given}: holds no executed notebook (summary.json lists none that ran)")
    return run, summary, pages


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(out, run: Path, summary: dict) -> Path:
    """The resolved --out; SiteError when it lies in (or holds) RUN_DIR or the notebooks, or is not ours to replace."""
    given = out
    out = Path(out).expanduser().resolve()
    folders = {"RUN_DIR": run, "the notebooks' folder": repo_root() / "notebooks"}
    if summary.get("notebook_dir"):
        folders["the run's notebook folder"] = Path(summary["notebook_dir"]).resolve()
    for what, folder in folders.items():
        if _inside(out, folder):
            raise SiteError(f"--out {given}: lies inside {what} ({folder}); choose a folder outside it")
        if _inside(folder, out):
            raise SiteError(f"--out {given}: holds {what} ({folder}), which building the site would replace; "
                            "choose another folder")
    if out.exists():
        if not out.is_dir():
            raise SiteError(f"--out {given}: is a file, not a folder")
        if any(out.iterdir()) and not (out / SITE_MARK).is_file():
            raise SiteError(f"--out {given}: holds files and is not a site built by `python -m course site` "
                            f"(no {SITE_MARK}); choose a new or empty folder")
    return out


def _title(nb, stem: str) -> str:
    heading = re.search(r"^#\s+(.+)$", nb.cells[0].source if nb.cells else "", re.M)
    return heading.group(1).strip() if heading else stem


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def launch_links(nb) -> dict[str, str]:
    """{"Binder": url, "Colab": url} from the notebook's own Colab badge; empty when it has none."""
    found = COLAB.search(nb.cells[0].source if nb.cells else "")
    if not found:
        return {}
    repo, branch, path = found.groups()
    return {"Binder": f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/{path}", "Colab": found.group(0)}


def _links(links: dict[str, str]) -> str:
    return " · ".join(f"[{name}]({url})" for name, url in links.items())


def data_line(record: dict, summary: dict) -> str:
    """When, on which data and device one notebook ran, how long it took and how it ended."""
    metrics = record.get("metrics") or {}
    data = f"{metrics.get('dataset', '?')} from {metrics.get('data_source', '?')}"
    if "train_size" in metrics:
        data += f" ({metrics['train_size']:,} training / {metrics.get('test_size', 0):,} test images)"
    return (f"Run {record.get('started') or summary.get('started')}; data: {data}; device: "
            f"{metrics.get('device') or record.get('device')}; wall time {record.get('wall_seconds', 0):.1f} s; "
            f"status: {record.get('status')}.")


def run_note(record: dict, summary: dict, links: dict[str, str]) -> str:
    """The note under a page's title: which data, device and date this record of a run comes from."""
    smoke = (record.get("metrics") or {}).get("smoke", summary.get("smoke"))
    text = f"**A record of one run, not a live notebook.** {data_line(record, summary)}"
    if smoke:
        text += (" A smoke run (COURSE_SMOKE=1): tiny data and training budgets, so its numbers and figures show "
                 "that the notebook runs, not what the method achieves.")
    if record.get("error"):
        text += f" It stopped at {error_text(record['error'])}."
    text += " Exercise cells show the stub a student meets; the cells after them ran on the course's reference."
    if links:
        text += f" Run it yourself: {_links(links)}, or in your own JupyterLab (see the home page)."
    return f":::{{note}}\n{text}\n:::"


def page_notebook(page: dict, summary: dict):
    """A copy of the executed notebook as its page shows it: the run note, local-only images, widget notes."""
    import nbformat

    nb = copy.deepcopy(page["nb"])
    nb.metadata.pop("widgets", None)  # saved widget state: no kernel behind it here, and its viewer needs a CDN
    links = launch_links(nb)
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub(r"[\1](\2)", cell.source)  # the badge images would be fetched from elsewhere
        if index == 0:  # the note right under the title: a reader sees first where the page comes from
            note = run_note(page["record"], summary, links)
            found = 0
            if cell.cell_type == "markdown":
                cell.source, found = re.subn(r"^(#\s+.+)$", lambda m: f"{m.group(1)}\n\n{note}", cell.source, 1, re.M)
            if not found:
                cells.append(nbformat.v4.new_markdown_cell(note))
        cells.append(cell)
        widgets = [o for o in cell.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
        for output in widgets:
            if "image/png" not in output["data"]:  # never the text VBox(children=...)
                output["data"]["text/plain"] = LIVE_WIDGET_TEXT
        if widgets:
            where = f"open the notebook in {_links(links)} or" if links else "run the notebook in"
            cells.append(nbformat.v4.new_markdown_cell(
                f"*The explorer as the run left it, a still picture. To move its sliders live, {where} your own "
                "JupyterLab.*"))
    nb.cells = cells
    return nb


def _readme() -> tuple[str, str]:
    """The course's title and the README's paragraphs that say what it teaches."""
    try:
        text = (repo_root() / "README.md").read_text(encoding="utf-8")
    except OSError:
        return "Autoencoder course", ""
    head = text.split("\n## ", 1)[0]
    title = re.search(r"^#\s+(.+)$", head, re.M)
    head = re.sub(r"<!--.*?-->", "", head, flags=re.S)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", head)]
    keep = [p for p in paragraphs if p and not p.startswith(("#", "[![", "|"))]
    return (title.group(1).strip() if title else "Autoencoder course"), "\n\n".join(keep)


def _exercises(nb) -> str:
    names = [cell.metadata["exercise"].split(".", 1)[-1] for cell in nb.cells if cell.metadata.get("exercise")]
    return ", ".join(f"`{name}`" for name in names) or "none"


def _time(nb) -> str:
    found = TIME.search(nb.cells[0].source if nb.cells else "")
    return _one_line(re.sub(r"^\*\*Time\b:?\*\*:?\s*", "", found.group(0))) if found else ""


def home_page(summary: dict, pages: list[dict], stems: dict[str, str]) -> str:
    """index.md: what the course teaches, the notebooks, how to launch them, the run's results and references."""
    title, intro = _readme()
    lines = [f"# {title}", "", intro, "", ":::{toctree}", ":hidden:", ":maxdepth: 1", ""]
    lines += [f"notebooks/{stem}" for stem in stems.values()] + [":::", ""]
    lines += ["## The notebooks", "", "| notebook | exercises | time (as the notebook says) | this run | open in |",
              "|---|---|---|---|---|"]
    for page in pages:
        record, nb = page["record"], page["nb"]
        stem = stems[record["notebook"]]
        ran = f"{record.get('status')}, {record.get('wall_seconds', 0):.1f} s"
        lines.append(f"| [{_one_line(_title(nb, stem))}](notebooks/{stem}.ipynb) | {_exercises(nb)} | {_time(nb)} | "
                     f"{ran} | {_links(launch_links(nb))} |")
    first = launch_links(pages[0]["nb"])
    lines += ["", "## How to launch the notebooks", "",
              f"- **Binder**: {_links({'JupyterLab on Binder': first['Binder']}) if first else 'see the README'}: "
              "every notebook of the course in JupyterLab in your browser, nothing to install.",
              "- **Colab or Kaggle**: a notebook's Colab link above. Its first code cell installs the course with pip.",
              "- **Your own JupyterLab**: clone the repository, then `make lab` (or `.venv/bin/jupyter lab "
              "notebooks/`); with conda: `conda env create -f environment.yml && conda activate autoencoder-course "
              "&& jupyter lab notebooks/`.", "",
              "Each page of this site is a record of one run of the notebooks as committed: exercise cells hold "
              "the stubs a student meets, never their solutions; the search box finds any word of any page.", "",
              "## Results of this run beside the references", "", _run_header(summary), ""]
    for page in pages:
        record = page["record"]
        lines += [f"### [{record['notebook']}](notebooks/{stems[record['notebook']]}.ipynb): {record['status']}", "",
                  data_line(record, summary), ""]
        if record.get("error"):
            lines += [f"**Stopped** at {error_text(record['error'])}", ""]
        if record.get("metrics"):
            lines += results_markdown(record["notebook"], record["metrics"])
        else:
            lines += ["(no metrics written)", ""] + references_markdown(record["notebook"])
    return "\n".join(lines) + "\n"


def _run_header(summary: dict) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in (summary.get("parameters") or {}).items()) or "none"
    devices = summary.get("device") or ", ".join(summary.get("devices") or []) or "?"
    text = (f"Started {summary.get('started')}; device {devices}; smoke: {summary.get('smoke')}; parameters: "
            f"{params}.")
    if summary.get("smoke"):
        text += " A smoke run: tiny data and budgets, so these numbers only show that everything ran."
    return text


def write_sources(src: Path, summary: dict, pages: list[dict]) -> None:
    """conf.py, index.md and one notebook per page into `src`."""
    import nbformat

    stems = {page["record"]["notebook"]: Path(page["record"]["output"]).stem for page in pages}
    (src / "notebooks").mkdir(parents=True)
    title, _ = _readme()
    (src / "conf.py").write_text(CONF.format(title=title, widget=WIDGET_VIEW), encoding="utf-8")
    (src / "index.md").write_text(home_page(summary, pages, stems), encoding="utf-8")
    for page in pages:
        nbformat.write(page_notebook(page, summary), src / "notebooks" / f"{stems[page['record']['notebook']]}.ipynb")


def check_site(site: Path, stems: list[str]) -> None:
    """SiteError when a page is missing or shows a widget's text or a solution marker."""
    for page in ["index", *(f"notebooks/{stem}" for stem in stems)]:
        path = site / f"{page}.html"
        if not path.is_file():
            raise SiteError(f"the build wrote no {page}.html")
        text = path.read_text(encoding="utf-8")
        for bad in ("VBox(", *MARKERS):
            if bad in text:
                raise SiteError(f"{page}.html shows {bad!r}; the site is not written")


def build_site(run_dir, out) -> Path:
    """Build the site of `run_dir` into `out` (a temp folder moved into place); return `out`."""
    run, summary, pages = read_run(run_dir)
    out = check_out(out, run, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside --out and renamed into place: never a half-written site. myst-nb also writes a
    # jupyter_execute/ beside Sphinx's output folder, so that folder lies one level down.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    html = staging / "html"
    try:
        with tempfile.TemporaryDirectory(prefix="course-site-") as work:
            src = Path(work) / "src"
            write_sources(src, summary, pages)
            command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-d", str(Path(work) / "doctrees"),
                       str(src), str(html)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=SPHINX_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise SiteError(f"Sphinx took over {SPHINX_TIMEOUT} s; nothing was written") from None
            if done.stderr.strip():
                print(done.stderr.strip(), file=sys.stderr)  # Sphinx's warnings, if any
            if done.returncode != 0:
                raise SiteError(f"Sphinx failed (exit {done.returncode}); its last lines are above")
        check_site(html, [Path(page["record"]["output"]).stem for page in pages])
        (html / SITE_MARK).write_text(f"built by python -m course site from {run}\n", encoding="utf-8")
        old = staging / "old"
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(html, out)
        except OSError:
            if old.exists():
                os.replace(old, out)  # the earlier site back in place
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
