"""A real browser: JupyterLab headless, Debian's Chromium via playwright, the threshold explorer.

The executed trade-offs notebook (hand-made rows, so it runs in seconds) is opened in
JupyterLab, all its cells are run on a live kernel, the threshold is set through the
slider's readout, and the rendered summary must change. A screenshot goes to
``build/browser/``. Needs ``.ci/install_browser.sh`` (apt chromium) and the playwright package;
playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mccom_core.paths import PROJECT_ROOT
from tests.notebook_helpers import TOY_MODELS, cascade_rows, run_notebook, write_jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = PROJECT_ROOT / "build" / "browser"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a random local port with a token, serving a folder with the executed notebook."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run .ci/install_browser.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    root = tmp_path_factory.mktemp("lab")
    rows = write_jsonl(cascade_rows(), root / "cascade_rows.jsonl")
    executed = run_notebook("03_cascade_tradeoffs", root, cascade_rows=str(rows), compute=False, **TOY_MODELS,
                            threshold=0.5, results_dir=str(root / "results"), figures_dir=str(root / "figures"))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel inherits it
    env["JUPYTER_CONFIG_DIR"] = str(root / ".jupyter")  # no user settings
    labconfig = root / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True)
    # No "get notified about Jupyter news?" toast over the screenshot.
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"url": f"{base}/lab/tree/{executed.name}?token={token}", "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _summary_text(page) -> str:
    return page.locator("table.mccom-summary").first.inner_text()


def _threshold_shown(summary: str) -> str:
    """The threshold column of the summary's ``mccom`` row."""
    rows = [line.split("\t") for line in summary.splitlines()]
    col = rows[0].index("threshold")
    return next(r[col] for r in rows[1:] if r[0] == "mccom")


def test_moving_the_threshold_slider_changes_the_summary(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        # A fresh profile directory (playwright passes it as --user-data-dir).
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(lab["url"])
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=90_000)
            # Live kernel: clear the stored outputs, then run every cell.
            page.evaluate("async () => { const c = window.jupyterapp.commands;"
                          " await c.execute('notebook:clear-all-cell-outputs');"
                          " await c.execute('notebook:run-all-cells'); }")
            page.locator("table.mccom-summary").first.wait_for(timeout=120_000)
            before = _summary_text(page)
            assert _threshold_shown(before) == "0.500"
            # Drag the threshold slider's handle to 90 % of its track, with the mouse.
            slider = page.locator(".widget-slider").filter(has_text="confidence threshold").first
            slider.scroll_into_view_if_needed()
            track = slider.locator(".noUi-target").bounding_box()
            handle = slider.locator(".noUi-handle").bounding_box()
            page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
            page.mouse.down()
            page.mouse.move(track["x"] + 0.9 * track["width"], handle["y"] + handle["height"] / 2, steps=10)
            page.mouse.up()
            page.wait_for_function(
                "(before) => { const t = document.querySelector('table.mccom-summary');"
                " return t && t.innerText !== before; }", arg=before, timeout=60_000)
            after = _summary_text(page)
            moved = float(_threshold_shown(after))
            assert 0.8 <= moved <= 1.0, after
            readout = slider.locator(".widget-readout").inner_text()
            assert float(readout) == pytest.approx(moved)  # the summary follows the slider
            # Let the kernel finish redrawing the plots, then photograph the explorer.
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext"
                                   ".session.kernel.status === 'idle'", timeout=60_000)
            explorer = page.locator(".jp-OutputArea-output").filter(has=page.locator("table.mccom-summary")).first
            explorer.scroll_into_view_if_needed()
            shot = SCREENSHOTS / "threshold_explorer.png"
            explorer.screenshot(path=str(shot))
            page.screenshot(path=str(SCREENSHOTS / "jupyterlab.png"))
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
