"""A new user's session in a real browser: JupyterLab on a fresh clone, notebook 03 by double-click.

The project is cloned to a temporary path (the committed HEAD) and served by JupyterLab, started
the way ``mccom lab`` starts it (jupytext's notebook view installed as the default viewer of
``.py`` files). Headless Chromium (Debian's, driven by playwright) double-clicks ``notebooks``
and then ``03_cascade_tradeoffs.py`` in the file browser: it must open as a notebook. Every cell
runs with the notebook's default parameters (the committed rows of the real benchmark, nothing
to compute), the threshold slider is dragged with the mouse, the shown summary is checked
against the library's sweep at the shown threshold, the notebook is saved, and ``git status
--porcelain`` of the clone must be empty. Screenshots go to ``build/browser/``. Needs
``.ci/install_browser.sh`` (apt chromium) and the playwright package; playwright's own browser
download is not used.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mccom_core.paths import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = PROJECT_ROOT / "build" / "browser"
NOTEBOOK = "03_cascade_tradeoffs.py"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A clone of the project at a new path, and JupyterLab serving it on a random port with a token."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run .ci/install_browser.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from mccom_core.lab.jupyterlab import LabConfig, ensure_notebook_viewer, lab_command

    home = tmp_path_factory.mktemp("lab")
    clone = home / "somewhere else" / "mccom-workbench"
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
    assert _git(clone, "status", "--porcelain") == ""
    ensure_notebook_viewer()  # what `mccom lab` (and `mccom reproduce`) do first
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel inherits it
    env["PYTHONPATH"] = str(clone)  # the kernel imports the clone's mccom_core, as its own venv would
    env["JUPYTER_CONFIG_DIR"] = str(home / ".jupyter")  # no user settings, no saved workspace
    env["JUPYTERLAB_SETTINGS_DIR"] = str(home / ".jupyter" / "lab" / "user-settings")
    labconfig = home / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True)
    # No "get notified about Jupyter news?" toast over the screenshot.
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    log = open(home / "lab.log", "wb")
    cmd = lab_command(LabConfig(root=str(clone), port=port, open_browser=False),
                      (f"--ServerApp.token={token}", "--LabApp.expose_app_in_browser=True",
                       "--ServerApp.port_retries=0") + (("--allow-root",) if os.geteuid() == 0 else ()))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(home / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"url": f"{base}/lab?token={token}", "clone": clone, "log": home / "lab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _table(page) -> list[list[str]]:
    """The explorer's summary table as rows of cell texts (header first)."""
    return page.locator("table.mccom-summary").first.evaluate(
        "t => Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.innerText.trim()))")


def _expected(clone: Path, threshold: float) -> list[list[str]]:
    """What the library says the summary holds at ``threshold``, formatted as the explorer shows it
    (the notebook's default ``align_timings = True``: timings aligned to each task's first session)."""
    from mccom_core.cascade.policies import sweep
    from mccom_core.cascade.timing import align_sessions
    from mccom_core.lab.study import cascade_results
    from mccom_core.lab.widgets import summary_cells

    rows = align_sessions(cascade_results(clone / "benchmarks" / "results" / "cascade_rows.jsonl",
                                          slm="qwen2.5-coder-0.5b", llm="qwen2.5-coder-1.5b", per_kind=300,
                                          compute=False))
    return summary_cells(sweep(rows, [threshold], user="exact", network_ms=0.0, reaction_ms=0.0,
                               accountings=("warm",)))


def _kernel_idle(page, timeout=120_000):
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.sessionContext && w.sessionContext.session"
                           " && w.sessionContext.session.kernel"
                           " && w.sessionContext.session.kernel.status === 'idle'; }", timeout=timeout)


def test_double_click_run_all_move_the_slider_save_and_git_stays_clean(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    clone = lab["clone"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(lab["url"])
            listing = page.locator(".jp-DirListing-content")
            listing.locator(".jp-DirListing-item", has_text="notebooks").first.dblclick(timeout=90_000)
            item = listing.locator(".jp-DirListing-item", has_text=NOTEBOOK).first
            item.wait_for(timeout=30_000)
            item.dblclick()
            # It opens as a notebook (jupytext's view), not in the text editor.
            page.locator(".jp-NotebookPanel").first.wait_for(timeout=60_000)
            assert page.locator(".jp-FileEditor").count() == 0
            assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path") == f"notebooks/{NOTEBOOK}"
            _kernel_idle(page)
            page.evaluate("async () => { await window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.locator("table.mccom-summary").first.wait_for(timeout=180_000)
            _kernel_idle(page, 180_000)
            errors = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.all_inner_texts()[:3]
            # The live explorer rendered, so its static snapshot is hidden; the findings are shown.
            assert page.locator(".mccom-explorer").count() == 1
            assert page.locator(".mccom-static").first.is_hidden()
            assert page.get_by_role("heading", name="What we found").count() == 1

            slider = page.locator(".widget-slider").filter(has_text="confidence threshold").first
            start = float(slider.locator(".widget-readout").inner_text())
            before = _table(page)
            assert before == _expected(clone, start)  # the notebook's default threshold, as the library says
            # Drag the threshold slider's handle to 90 % of its track, with the mouse.
            slider.scroll_into_view_if_needed()
            track = slider.locator(".noUi-target").bounding_box()
            handle = slider.locator(".noUi-handle").bounding_box()
            page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
            page.mouse.down()
            page.mouse.move(track["x"] + 0.9 * track["width"], handle["y"] + handle["height"] / 2, steps=10)
            page.mouse.up()
            page.wait_for_function(
                "(start) => { const r = Array.from(document.querySelectorAll('.widget-slider'))"
                ".find(s => s.innerText.includes('confidence threshold'));"
                " return r && parseFloat(r.querySelector('.widget-readout').innerText) !== start; }",
                arg=start, timeout=60_000)
            moved = float(slider.locator(".widget-readout").inner_text())
            assert 0.8 <= moved <= 1.0
            _kernel_idle(page)
            page.wait_for_function(
                "(t) => { const rows = document.querySelector('table.mccom-summary').rows;"
                " return Array.from(rows).some(r => r.cells[1] && r.cells[1].innerText.trim() === t); }",
                arg=f"{moved:.2f}", timeout=60_000)
            after = _table(page)
            assert after == _expected(clone, moved) and after != before  # the summary follows the slider

            explorer = page.locator(".jp-OutputArea-output").filter(has=page.locator("table.mccom-summary")).first
            explorer.scroll_into_view_if_needed()
            shot = SCREENSHOTS / "threshold_explorer.png"
            explorer.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            # Save (as a user would, Ctrl+S) and wait until the document is clean.
            page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
            page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
            page.screenshot(path=str(SCREENSHOTS / "jupyterlab.png"))
        finally:
            browser.close()
    assert _git(clone, "status", "--porcelain") == "", (clone / "notebooks" / NOTEBOOK).read_text()[:400]
