"""`python -m course site`: a static website of a run's executed notebooks, its refusals, and a browser reading it.

The site tests build from the smoke run of the seven notebooks (conftest's session fixtures); the refusals and
the page copies use a throwaway run folder and take no kernel.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import html
import http.server
import io
import json
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from matplotlib.figure import Figure

from course.config import repo_root
from course.references import PCA_30
from course.tools.cli import main
from course.tools.report import fmt, results_of
from course.tools.site import LIVE_WIDGET_TEXT, SITE_MARK, SiteError, build_site, page_notebook, read_run

COLAB = "https://colab.research.google.com/github/autoencoder-course/autoencoder-course/blob/main/notebooks/{}.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def png_bytes(colour: str = "black") -> bytes:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().imshow([[0, 1], [1, 0]], cmap="gray" if colour == "black" else "viridis")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def throwaway_run(folder: Path, stem: str = "04_denoising_autoencoder", exercise_source: str | None = None,
                  widget_png: bool = True, solved: bool = False) -> Path:
    """A run folder as `course run` leaves it, for one small notebook: a figure, an explorer, an exercise stub."""
    folder.mkdir(parents=True)
    figure = {"image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure size 100x100>"}
    widget = {WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
              "text/plain": "VBox(children=(HBox(children=(IntSlider(value=0),)),))"}
    if widget_png:
        widget["image/png"] = base64.b64encode(png_bytes("colour")).decode()
    stub = exercise_source or "def gaussian_corrupt(x):\n    # YOUR CODE HERE\n    raise NotImplementedError('Student exercise')"
    cells = [nbformat.v4.new_markdown_cell(f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                                           f"({COLAB.format(stem)})\n\n# 04 · A throwaway notebook\n\nWords.\n\n"
                                           "**Time:** about 5 minutes."),
             nbformat.v4.new_code_cell(stub, metadata={"exercise": "04.gaussian_corrupt", "tags": ["exercise"]}),
             nbformat.v4.new_code_cell("plt.show()", outputs=[nbformat.v4.new_output("display_data", data=figure)]),
             nbformat.v4.new_code_cell("corruption_explorer(...)",
                                       outputs=[nbformat.v4.new_output("display_data", data=widget)])]
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python", "pygments_lexer": "ipython3"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), folder / f"{stem}.ipynb")
    metrics = {"dataset": "mnist", "data_source": "throwaway sample", "device": "cpu", "train_size": 10, "test_size": 5,
               "smoke": True, "results": {"denoising_test_mse": 0.0123}}
    record = {"notebook": stem, "status": "ok", "started": "2030-01-02T03:04:05", "wall_seconds": 1.5, "device": "cpu",
              "output": f"{stem}.ipynb", "metrics": metrics, "error": None}
    summary = {"started": "2030-01-02T03:04:00", "device": "cpu", "requested_device": "cpu", "smoke": True,
               "solved": solved, "parameters": {}, "notebooks": [record]}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


class Text(HTMLParser):
    """The visible text of an HTML page and the src of its images, scripts and stylesheets."""

    def __init__(self):
        super().__init__()
        self.parts, self.images, self.assets, self._skip = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("img", "script") and attrs.get("src"):
            self.assets.append(attrs["src"])
        if tag == "link" and attrs.get("rel") in ("stylesheet", "preload", "icon") and attrs.get("href"):
            self.assets.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())

    @property
    def compact(self) -> str:
        """The text without any white space: highlighted code is split into many spans."""
        return "".join("".join(self.parts).split())


def parse(path: Path) -> Text:
    page = Text()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def executed(run: Path) -> dict[str, nbformat.NotebookNode]:
    summary = json.loads((run / "summary.json").read_text())
    return {r["notebook"]: nbformat.read(run / r["output"], as_version=4) for r in summary["notebooks"]}


# --- the site of the smoke run --------------------------------------------------------------------------------

def test_home_page_lists_every_notebook_with_exercises_time_launch_and_results(smoke_run, smoke_site):
    summary = json.loads((smoke_run / "summary.json").read_text())
    home = parse(smoke_site / "index.html").text
    assert len(summary["notebooks"]) == 7
    for stem, nb in executed(smoke_run).items():
        title = re.search(r"^# (.+)$", nb.cells[0].source, re.M).group(1)
        assert " ".join(title.split()) in home, f"{stem}'s title is not on the home page"
        for cell in nb.cells:
            if cell.metadata.get("exercise"):
                assert cell.metadata["exercise"].split(".")[1] in home
        time = re.search(r"^\*\*Time\b\W*(.+)$", nb.cells[0].source, re.M).group(1)  # the notebook's own words
        assert " ".join(time.split()[:8]) in home, f"{stem}'s time is not on the home page"
        assert f'href="notebooks/{stem}.html"' in (smoke_site / "index.html").read_text()
    for words in ("Binder", "Colab", "make lab", "conda env create"):
        assert words in home
    pca = next(r for r in summary["notebooks"] if r["notebook"] == "01_pca_vs_autoencoder")
    assert fmt(results_of(pca["metrics"])["pca_test_mse"]) in home  # this run's number
    assert fmt(PCA_30["hinton_2006"].value) in home and PCA_30["hinton_2006"].label in home  # beside the reference
    assert "smoke" in home.lower()
    assert (smoke_site / "search.html").is_file() and (smoke_site / "searchindex.js").is_file()
    assert "autoencoder" in (smoke_site / "searchindex.js").read_text().lower()


def test_each_page_shows_its_run_outputs_figures_and_where_it_ran(smoke_run, smoke_site):
    summary = json.loads((smoke_run / "summary.json").read_text())
    pngs = {path.read_bytes() for path in (smoke_site / "_images").glob("*.png")}
    for record in summary["notebooks"]:
        nb = nbformat.read(smoke_run / record["output"], as_version=4)
        page = parse(smoke_site / "notebooks" / f"{record['notebook']}.html")
        figures = [base64.b64decode(o["data"]["image/png"]) for cell in nb.cells for o in cell.get("outputs", [])
                   if "image/png" in o.get("data", {})]
        assert figures, f"{record['notebook']}: the run drew no figure"
        assert all(figure in pngs for figure in figures), f"{record['notebook']}: a figure of the run is not on the site"
        shown = [src for src in page.images if "_images/" in src]
        assert len(shown) >= len(figures), record["notebook"]
        printed = next(o["text"] for cell in nb.cells for o in cell.get("outputs", []) if o.get("name") == "stdout")
        assert " ".join(printed.split()[:6]) in page.text, f"{record['notebook']}: its printed output is missing"
        metrics = record["metrics"]
        for fact in (record["started"], f"device: {metrics['device']}", metrics["data_source"], "smoke run"):
            assert fact in page.text, f"{record['notebook']}: its page does not say {fact!r}"


def test_no_solution_no_widget_text_and_the_stubs_as_committed(smoke_run, smoke_site):
    committed = {p.stem: nbformat.read(p, as_version=4) for p in (repo_root() / "notebooks").glob("0*.ipynb")}
    for path in smoke_site.rglob("*.html"):
        text = html.unescape(path.read_text(encoding="utf-8"))
        assert "VBox(" not in text and "HBox(" not in text, f"{path.name} shows a widget as text"
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, path.name
    for stem, nb in committed.items():
        page = parse(smoke_site / "notebooks" / f"{stem}.html").compact
        stubs = [cell.source for cell in nb.cells if cell.metadata.get("exercise")]
        assert stubs, stem
        for stub in stubs:
            assert "".join(stub.split()) in page, f"{stem}: an exercise stub is not shown as committed"


def test_explorers_show_their_png_and_say_where_to_move_the_sliders(smoke_run, smoke_site):
    pngs = {path.read_bytes() for path in (smoke_site / "_images").glob("*.png")}
    found = 0
    for stem, nb in executed(smoke_run).items():
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if WIDGET_VIEW in output.get("data", {}):
                    found += 1
                    assert base64.b64decode(output["data"]["image/png"]) in pngs, f"{stem}: the explorer's PNG is missing"
                    page = parse(smoke_site / "notebooks" / f"{stem}.html").text
                    assert "To move its sliders live" in page and "Binder" in page and "Colab" in page
    assert found >= 3, "notebooks 04, 05 and 07 each show an explorer"


def test_nothing_is_loaded_from_elsewhere(smoke_site):
    for path in smoke_site.rglob("*.html"):
        page = parse(path)
        outside = [src for src in page.assets if re.match(r"(https?:)?//", src)]
        assert not outside, f"{path.relative_to(smoke_site)} loads {outside}"


# --- refusals and the copies the pages are made of (no kernel) ------------------------------------------------

def test_refuses_a_missing_or_foreign_run_dir(tmp_path, capsys):
    assert main(["site", str(tmp_path / "nope"), "--out", str(tmp_path / "site")]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SiteError, match=r"RUN_DIR .*no summary\.json"):
        build_site(tmp_path / "empty", tmp_path / "site")
    (tmp_path / "empty" / "summary.json").write_text("{not json")
    with pytest.raises(SiteError, match="RUN_DIR .*unreadable"):
        build_site(tmp_path / "empty", tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_refuses_a_solved_run_and_solution_markers(tmp_path):
    with pytest.raises(SiteError, match="RUN_DIR .*--solved"):
        read_run(throwaway_run(tmp_path / "solved", solved=True))
    marked = throwaway_run(tmp_path / "marked", exercise_source="def f(x):\n    ### BEGIN SOLUTION\n    return x\n"
                                                                  "    ### END SOLUTION")
    with pytest.raises(SiteError, match="RUN_DIR .*cell 1.*BEGIN SOLUTION"):
        read_run(marked)
    filled = throwaway_run(tmp_path / "filled", exercise_source="def gaussian_corrupt(x):\n    return x")
    with pytest.raises(SiteError, match="not the committed stub"):
        read_run(filled)


@pytest.mark.parametrize("where", ["inside the run", "the run itself", "around the run", "the notebooks"])
def test_refuses_an_out_inside_or_around_what_it_reads(tmp_path, where, capsys):
    run = throwaway_run(tmp_path / "run")
    out = {"inside the run": run / "site", "the run itself": run, "around the run": tmp_path,
           "the notebooks": repo_root() / "notebooks" / "site"}[where]
    assert main(["site", str(run), "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (run / "site").exists() and not (repo_root() / "notebooks" / "site").exists()


def test_refuses_to_replace_a_folder_that_is_not_a_site(tmp_path):
    run = throwaway_run(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(SiteError, match=f"--out .*not a site.*{re.escape(SITE_MARK)}"):
        build_site(run, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_page_copy_links_instead_of_badges_and_never_shows_widget_text(tmp_path):
    _, summary, pages = read_run(throwaway_run(tmp_path / "run", widget_png=False))
    nb = page_notebook(pages[0], summary)
    text = json.dumps(nb)
    assert "colab-badge.svg" not in text and "VBox(" not in text and LIVE_WIDGET_TEXT in text
    assert "[Open In Colab](https://colab.research.google.com/github/" in nb.cells[0].source
    note = nb.cells[0].source.split("# 04 · A throwaway notebook", 1)[1]  # right under the title
    assert "2030-01-02T03:04:05" in note and "device: cpu" in note and "throwaway sample" in note
    assert "mybinder.org/v2/gh/autoencoder-course/autoencoder-course/main?urlpath=lab/tree/notebooks/" in note
    assert any("To move its sliders live" in cell.source for cell in nb.cells)
    assert pages[0]["nb"].cells[0].source.count("colab-badge.svg") == 1  # the run's own copy is left alone


def test_builds_whole_or_not_at_all_and_replaces_its_own_site(tmp_path, monkeypatch, capsys):
    run = throwaway_run(tmp_path / "run")
    assert main(["site", str(run), "--out", str(tmp_path / "site")]) == 0, capsys.readouterr().err
    index = (tmp_path / "site" / "index.html").read_text()
    assert "0.0123" in index and "04 · A throwaway notebook" in index
    assert (tmp_path / "site" / SITE_MARK).is_file()
    import course.tools.site as site

    def broken(*args):
        raise SiteError("a check failed")

    monkeypatch.setattr(site, "check_site", broken)
    with pytest.raises(SiteError, match="a check failed"):
        build_site(run, tmp_path / "site")
    assert (tmp_path / "site" / "index.html").read_text() == index  # the earlier site is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "site"]  # no half-written folder left
    monkeypatch.undo()
    build_site(run, tmp_path / "site")  # its own earlier site is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "site"]


# --- a reader's browser ---------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IMAGES_JS = "() => [...document.images].map(i => ({src: i.src, done: i.complete, width: i.naturalWidth}))"


@contextlib.contextmanager
def serve(folder: Path):
    """A real HTTP server on 127.0.0.1 serving `folder`; yields its address."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_a_reader_follows_every_notebook_link_and_sees_the_figures(smoke_run, smoke_site, tmp_path):
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    stems = sorted(executed(smoke_run))
    with serve(smoke_site) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.on("requestfailed", lambda request: problems.append(f"failed request: {request.url}"))
            # a resource that fails is reported with its address by the two handlers below, not by the console
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)  # the browser's own guess
            page.goto(f"{url}/index.html", wait_until="load")
            links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            pages = sorted({link.split("#")[0] for link in links if "/notebooks/" in link and link.startswith(url)})
            assert [p.rsplit("/", 1)[1] for p in pages] == [f"{stem}.html" for stem in stems]
            for address in pages:
                page.goto(address, wait_until="load")
                images = page.evaluate(IMAGES_JS)
                figures = [i for i in images if "/_images/" in i["src"]]
                assert figures, f"{address}: no figure"
                assert all(i["done"] and i["width"] > 0 for i in images), f"{address}: images not loaded: {images}"
                assert "VBox(" not in page.inner_text("body"), address
            page.goto(f"{url}/search.html?q=autoencoder", wait_until="load")
            results = page.locator("#search-results a[href*='notebooks/']")
            results.first.wait_for(timeout=30_000)  # Sphinx's search runs in the page, on its own index
            assert results.count() >= 1
            assert not problems, problems
        except Exception:
            page.screenshot(path=str(tmp_path / "site.png"))
            raise
        finally:
            browser.close()
