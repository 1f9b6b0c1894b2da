"""Notebooks open as notebooks in JupyterLab, and saving one rewrites the same bytes."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from mccom_core.errors import MccomError
from mccom_core.lab import jupyterlab
from mccom_core.paths import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_running_and_saving_in_jupyterlab_rewrites_the_same_bytes(script, tmp_path):
    """JupyterLab's save path (jupytext's contents manager) with what a live session adds: outputs,
    execution counts, kernel language info, widget state and cell metadata."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    shutil.copy(PROJECT_ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    (tmp_path / "notebooks").mkdir()
    copy = tmp_path / "notebooks" / script.name
    shutil.copy(script, copy)
    cm = build_sync_jupytext_contents_manager_class(FileContentsManager)(root_dir=str(tmp_path))
    rel = f"notebooks/{script.name}"
    model = cm.get(rel, type="notebook", content=True)
    assert model["type"] == "notebook"
    nb = model["content"]
    nb.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0]}
    # A started kernel writes its own spec into the notebook: the committed header must match it.
    spec = KernelSpecManager().get_kernel_spec("python3")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = 7
            cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
            cell.metadata.update({"execution": {"iopub.status.idle": "2026-12-04T00:00:00Z"}, "scrolled": True})
    cm.save({"type": "notebook", "format": "json", "content": nb}, rel)
    assert copy.read_bytes() == script.read_bytes()
    assert sorted(p.name for p in (tmp_path / "notebooks").iterdir()) == [script.name]  # no paired .ipynb


def test_default_viewer_override_is_written_once(tmp_path):
    path = jupyterlab.ensure_notebook_viewer(tmp_path)
    assert path == tmp_path / "share/jupyter/lab/settings/overrides.d/mccom-workbench.json"
    settings = json.loads(path.read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    mtime = path.stat().st_mtime_ns
    assert jupyterlab.ensure_notebook_viewer(tmp_path) == path and path.stat().st_mtime_ns == mtime
    path.write_text("{}")
    jupyterlab.ensure_notebook_viewer(tmp_path)
    assert json.loads(path.read_text()) == settings


def test_unwritable_prefix_says_what_to_do(tmp_path):
    blocker = tmp_path / "share"
    blocker.write_text("a file where a folder must go")
    with pytest.raises(MccomError, match="jupytext-config set-default-viewer python"):
        jupyterlab.ensure_notebook_viewer(tmp_path)


def test_viewer_name_is_the_one_jupytext_registers():
    """The factory name must match jupytext's JupyterLab extension, or the setting does nothing."""
    bundles = list((jupyterlab.settings_override_path().parents[3] / "labextensions" / "jupyterlab-jupytext")
                   .rglob("*.js"))
    if not bundles:
        pytest.skip("jupytext's JupyterLab extension is not installed in this environment")
    assert any(f'"{jupyterlab.VIEWER}"' in b.read_text(errors="ignore") for b in bundles)


def test_lab_command_and_cli_setup_only(tmp_path, monkeypatch, capsys):
    from mccom_core.cli import main

    cmd = jupyterlab.lab_command(jupyterlab.LabConfig(port=9999, open_browser=False), ("--foo",))
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={PROJECT_ROOT}" in cmd and "--ServerApp.port=9999" in cmd and cmd[-1] == "--foo"
    assert "--ServerApp.open_browser=False" in cmd
    with pytest.raises(MccomError, match="not a folder"):
        jupyterlab.lab_command(jupyterlab.LabConfig(root=str(tmp_path / "missing")))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert main(["lab", "--setup-only"]) == 0
    assert (tmp_path / "share/jupyter/lab/settings/overrides.d/mccom-workbench.json").is_file()
    assert "mccom-workbench.json" in capsys.readouterr().out
