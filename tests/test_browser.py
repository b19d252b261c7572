"""A student's first launch, in a real browser: JupyterLab runs notebooks 04 and 05 and their sliders redraw.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; skipped without them.
Select with `pytest -m browser`, leave out with `-m "not browser"`.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from course.config import repo_root

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download is not used: Debian's chromium, headless, and silent on the network
# (without the background-networking flags its connections are refused on a closed network).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOKS = {"04_denoising_autoencoder.ipynb": "corruption level", "05_manifold_learning.ipynb": "latent noise"}
# JupyterLab settings overrides (what binder/ installs as <sys.prefix>/share/jupyter/lab/settings/overrides.json).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
SLIDER = "noise_std"   # the description of the slider moved in both explorers
KEY_PRESSES = 5        # ArrowRight presses on its handle: 5 steps of 0.05
# Generous but bounded, in seconds: each step fails with its name and a screenshot instead of hanging.
SERVER_START_S = 60
KERNEL_IDLE_S = 90
RUN_ALL_S = 300
SAVE_S = 30
REDRAW_S = 30

# Every code cell of the open notebook, as the student sees it: its prompt, e.g. "[3]:", "[*]:" or "[ ]:".
PROMPTS_JS = """panel => [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                         .map(p => p.textContent.trim())"""
KERNEL_STATUS_JS = """panel => panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? null"""
# The PNG bytes behind the widget's <img> (a blob: URL), base64-encoded.
IMAGE_BYTES_JS = """async img => {
    if (!img.src || !img.complete || img.naturalWidth === 0) return null;
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
}"""


@dataclass
class Lab:
    """A running JupyterLab: where it answers, its token, the folder it serves and its log."""
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def address(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}/{path}{sep}token={self.token}"

    def api(self, path: str):
        request = urllib.request.Request(f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebook(name: str, folder: Path, output_dir: Path) -> None:
    """Copy a course notebook into `folder`, its metrics sent to `output_dir` instead of <repo>/runs/latest."""
    nb = json.loads((repo_root() / "notebooks" / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = re.sub(r"(?m)^output_dir\s*=\s*None\b", f"output_dir = {str(output_dir)!r}",
                            "".join(cell["source"]))
            cell["source"] = source.splitlines(keepends=True)
    (folder / name).write_text(json.dumps(nb, indent=1))


def lab_environment(tmp: Path) -> dict[str, str]:
    """The server's (and so the kernels') environment: smoke run, offline data, a fresh cache, no user settings."""
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DATA"}
    env.update(COURSE_SMOKE="1", COURSE_OFFLINE="1", COURSE_CACHE=str(tmp / "cache"), MPLBACKEND="Agg",
               # A fresh Jupyter configuration, settings and workspace: nothing from the machine's user.
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"))
    return env


def stop_server(lab: Lab) -> None:
    """Stop the server (SIGTERM: it shuts its kernels down), then end whatever of its process tree is left."""
    try:
        import psutil
        family = psutil.Process(lab.process.pid).children(recursive=True)  # the kernels, before they detach
    except Exception:  # psutil missing or the server already gone: the server itself is still stopped
        family = []
    if lab.process.poll() is None:
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait(timeout=10)
    for process in family:
        with contextlib.suppress(Exception):
            process.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab from this environment, serving copies of notebooks 04 and 05, shut down however the tests end."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    root.mkdir()
    for name in NOTEBOOKS:
        copy_notebook(name, root, tmp / "runs")
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / "jupyterlab.log"
    app_settings = tmp / "lab-app-settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=2))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--allow-root",
               # No news feed, no update check, no "official Jupyter news?" pop-up over the notebook.
               "--LabApp.news_url=None", f"--LabApp.app_settings_dir={app_settings}"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=lab_environment(tmp),
                                   cwd=root, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode} at start; log: {log}\n"
                            f"{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                server.api("status")
                break
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s; log: {log}")
            time.sleep(0.5)
        print(f"JupyterLab at {server.url}, serving {root}, log {log}")
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright; skipped where either is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Student:
    """One browser tab on a notebook, driven as a student would; every wait is a named, bounded step."""

    def __init__(self, page, lab: Lab, notebook: str, shots: Path):
        self.page, self.lab, self.notebook, self.shots = page, lab, notebook, shots
        self.panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        self.started = time.monotonic()
        self.console: list[str] = []  # the page's errors and warnings, shown when a step fails
        page.on("console", self._log)

    def _log(self, message) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{time.monotonic() - self.started:6.1f} s {message.type}: {message.text[:300]}")

    def screenshot(self, name: str, element=None) -> Path:
        """The whole page (JupyterLab fills the window), or only `element`, saved under the test's tmp_path."""
        path = self.shots / f"{Path(self.notebook).stem}-{name}.png"
        (element or self.page).screenshot(path=str(path), **({} if element else {"full_page": True}))
        print(f"screenshot: {path}")
        return path

    def dialogs(self) -> list[str]:
        """The text of every JupyterLab dialog on screen (a kernel choice, a dead kernel...)."""
        return [" ".join(text.split()) for text in self.page.locator(".jp-Dialog").all_inner_texts()]

    def fail_step(self, name: str, seconds: float, detail: str = "") -> None:
        shot = self.screenshot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', name.lower())}")
        dialogs = "".join(f"\ndialog on screen: {text}" for text in self.dialogs())
        message = (f"{self.notebook}: step '{name}' timed out after {seconds:.0f} s; screenshot {shot}; "
                   f"server log {self.lab.log}{dialogs}\n{detail}\nbrowser console:\n" + "\n".join(self.console[-20:]))
        raise pytest.fail.Exception(message, pytrace=False) from None  # not chained to Playwright's timeout

    @contextlib.contextmanager
    def step(self, name: str, seconds: float, detail: Callable[[], str] = lambda: ""):
        """Fail with the step's name, its limit, `detail()` and a screenshot when it times out."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        try:
            yield seconds * 1000
        except PlaywrightTimeout as error:
            self.fail_step(name, seconds, f"{str(error).splitlines()[0]}\n{detail()}".strip())

    def wait(self, condition_js: str, name: str, seconds: float) -> None:
        with self.step(name, seconds) as ms:
            self.page.wait_for_function(condition_js, arg=self.panel.element_handle(timeout=ms),
                                        timeout=ms, polling=500)

    def open(self) -> None:
        # A workspace of its own, so the other notebook's tab is not restored next to this one.
        self.page.goto(self.lab.address(f"lab/workspaces/{Path(self.notebook).stem}/tree/{self.notebook}"))
        # The toolbar reads "idle" before any kernel exists ("No Kernel"), and Run All then asks for one: first
        # wait for the page's websocket to the notebook's kernel, then for the kernel to be idle.
        deadline = time.monotonic() + KERNEL_IDLE_S
        while not self.kernel_connected():
            if time.monotonic() > deadline:
                self.fail_step("kernel started and connected", KERNEL_IDLE_S)
            self.page.wait_for_timeout(250)
        self.wait(f"panel => ({KERNEL_STATUS_JS})(panel) === 'idle'", "kernel idle after opening", KERNEL_IDLE_S)

    def kernel_connected(self) -> bool:
        sessions = self.lab.api("sessions")
        return any(s["path"] == self.notebook and s["kernel"] and s["kernel"].get("connections", 0) > 0
                   for s in sessions)

    def run_all(self) -> None:
        """Run > Run All Cells, then wait for every queued cell to finish."""
        with self.step("Run > Run All Cells", 30) as ms:
            self.page.get_by_role("menuitem", name="Run", exact=True).click(timeout=ms)
            self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click(timeout=ms)
        # The click queues every cell at once ([*]); the run is over when none is left and the kernel is idle.
        # A dialog (no kernel, kernel died) stops the wait at once: the student is stuck there too.
        self.wait(f"panel => ({PROMPTS_JS})(panel).some(p => p.includes('*'))", "cells queued", 30)
        self.wait(f"""panel => document.querySelector('.jp-Dialog') !== null
                              || (({KERNEL_STATUS_JS})(panel) === 'idle'
                                  && !({PROMPTS_JS})(panel).some(p => p.includes('*')))""",
                  "Run All Cells finished", RUN_ALL_S)
        if self.dialogs():
            shot = self.screenshot("dialog")
            pytest.fail(f"{self.notebook}: a dialog interrupted Run All Cells: {self.dialogs()}; screenshot {shot}",
                        pytrace=False)

    def wait_idle(self, name: str, seconds: float = REDRAW_S) -> None:
        self.wait(f"panel => ({KERNEL_STATUS_JS})(panel) === 'idle'", name, seconds)

    def save(self) -> dict:
        """File > Save Notebook (the file is our copy), then the notebook as written to disk."""
        path = self.lab.root / self.notebook
        before = path.stat().st_mtime_ns
        with self.step("File > Save Notebook", SAVE_S) as ms:
            self.page.get_by_role("menuitem", name="File", exact=True).click(timeout=ms)
            self.page.locator('.lm-Menu-item[data-command="docmanager:save"]').click(timeout=ms)
        deadline = time.monotonic() + SAVE_S
        while True:  # a new mtime and a whole JSON document: the server may still be writing the file
            if path.stat().st_mtime_ns != before:
                with contextlib.suppress(json.JSONDecodeError):
                    return json.loads(path.read_text())
            if time.monotonic() > deadline:
                self.fail_step("notebook saved to disk", SAVE_S)
            time.sleep(0.2)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def errors_and_skipped(nb: dict) -> tuple[list[str], list[str]]:
    """The saved notebook's error outputs (ename: evalue and the traceback's end), and its code cells never run."""
    errors, skipped = [], []
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        head = "".join(cell["source"]).strip().splitlines()[:1] or [""]
        if cell.get("execution_count") is None:
            skipped.append(f"code cell {i + 1}: {head[0][:80]}")
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                tail = ANSI.sub("", "\n".join(out.get("traceback", [])))[-1500:]
                errors.append(f"code cell {i + 1} ({head[0][:60]}): {out['ename']}: {out['evalue']}\n{tail}")
    return errors, skipped


def image_bytes(image) -> bytes:
    data = image.evaluate(IMAGE_BYTES_JS)
    return base64.b64decode(data) if data else b""


def panels_changed(png_a: bytes, png_b: bytes) -> bool:
    """Whether the lower half of two renderings differs: the image panels, not only the titles above them."""
    from PIL import Image

    a, b = (np.asarray(Image.open(io.BytesIO(png)).convert("L")) for png in (png_a, png_b))
    return a.shape != b.shape or bool(np.any(a[a.shape[0] // 2:] != b[b.shape[0] // 2:]))


@pytest.mark.parametrize("notebook", list(NOTEBOOKS), ids=lambda name: name[:2])
def test_notebook_runs_and_its_slider_redraws_the_image(notebook, browser, lab, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    # The page never leaves this server (the notebooks' Colab badge, say): the same run with or without network.
    page.route(re.compile(rf"^https?://(?!{re.escape(lab.url[len('http://'):])}/)"), lambda route: route.abort())
    student = Student(page, lab, notebook, tmp_path)
    try:
        started = time.monotonic()
        student.open()
        student.run_all()
        print(f"{notebook}: opened and ran in {time.monotonic() - started:.0f} s")
        saved = student.save()
        errors, skipped = errors_and_skipped(saved)
        if errors or skipped:
            shot = student.screenshot("after-run-all")
            pytest.fail(f"{notebook} under COURSE_SMOKE=1 in JupyterLab: {len(errors)} error output(s), "
                        f"{len(skipped)} code cell(s) never run (Run All stops at an error); screenshot {shot}\n"
                        + "\n\n".join(errors + skipped), pytrace=False)

        # The explorer: the output holding the slider described "noise_std", and its rendered image. The widget
        # manager renders the views after the kernel is idle, so wait for them.
        label = page.locator(".widget-label").filter(has_text=re.compile(rf"^\s*{SLIDER}\s*$"))
        explorer = student.panel.locator(".jp-OutputArea-output").filter(
            has=page.locator(".widget-slider").filter(has=label))
        image = explorer.locator("img.widget-image")
        def labels() -> str:
            return f"widget labels in the notebook: {student.panel.locator('.widget-label').all_inner_texts()}"

        with student.step(f"explorer with a {SLIDER} slider and an image rendered", REDRAW_S, labels) as ms:
            image.first.wait_for(state="attached", timeout=ms)
        assert explorer.count() == 1, \
            f"{notebook}: expected one output holding a slider described {SLIDER!r}, found {explorer.count()}"
        assert image.count() == 1, (f"{notebook}: expected one widget image next to the {SLIDER} slider, found "
                                    f"{image.count()}; the explorer's HTML begins {explorer.inner_html()[:3000]}")
        slider = explorer.locator(".widget-slider").filter(has=label)
        for _ in range(2):  # its controls and image in view; again once the cells above have laid out
            explorer.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)
        with student.step("explorer image rendered", REDRAW_S) as ms:
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                   timeout=ms)
        readout = slider.locator(".widget-readout")
        value_before, png_before = readout.inner_text(), image_bytes(image)
        student.screenshot("before")
        student.screenshot("explorer-before", explorer)

        # Move the slider from the keyboard: focus its handle, step it to the right.
        handle = slider.locator(".noUi-handle")
        handle.focus()
        for _ in range(KEY_PRESSES):
            handle.press("ArrowRight")
        # Each step redraws in the kernel: wait for a new image, then for the kernel to finish the last one.
        deadline = time.monotonic() + REDRAW_S
        while image_bytes(image) in (png_before, b"") and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        student.wait_idle(f"kernel idle after moving the {NOTEBOOKS[notebook]} slider")
        page.wait_for_timeout(500)  # the widget swaps the last image in asynchronously, after the idle status
        value_after, png_after = readout.inner_text(), image_bytes(image)
        student.screenshot("after")
        student.screenshot("explorer-after", explorer)

        assert float(value_after) > float(value_before), \
            f"{notebook}: the {SLIDER} slider did not move ({value_before} -> {value_after})"
        assert png_after and png_after != png_before, (
            f"{notebook}: the {NOTEBOOKS[notebook]} slider moved ({value_before} -> {value_after}) but the image did "
            f"not change within {REDRAW_S} s; explorer text: {explorer.inner_text()[:500]!r}")
        assert panels_changed(png_before, png_after), \
            f"{notebook}: moving the {NOTEBOOKS[notebook]} slider changed the image's titles but none of its panels"
        print(f"{notebook}: {SLIDER} {value_before} -> {value_after}, image "
              f"{hashlib.sha256(png_before).hexdigest()[:12]} -> {hashlib.sha256(png_after).hexdigest()[:12]}")
    except AssertionError:
        student.screenshot("failed")
        raise
    finally:
        page.close()
