"""Open the workbench in JupyterLab: notebooks open as notebooks on double-click.

The notebooks are jupytext percent scripts (``notebooks/NN_name.py``; ``jupytext.toml`` keeps
them unpaired and their header free of the jupytext version, so saving from JupyterLab rewrites
the same bytes). JupyterLab opens a ``.py`` file in the text editor unless its default viewer
for Python files is jupytext's notebook view. :func:`ensure_notebook_viewer` sets that default
for the JupyterLab of this Python environment, through a namespaced settings override
(``{sys.prefix}/share/jupyter/lab/settings/overrides.d/mccom-workbench.json``, read by
jupyterlab_server), so nothing in the user's own settings changes and any ``jupyter lab`` run
from this environment afterwards behaves the same. :func:`lab_command` is the server command
``mccom lab`` runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from mccom_core.errors import MccomError
from mccom_core.paths import PROJECT_ROOT

# jupytext's JupyterLab extension registers its notebook view under this factory name.
VIEWER = "Jupytext Notebook"
OVERRIDES = {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": VIEWER}}}
OVERRIDE_NAME = "mccom-workbench.json"


def settings_override_path(prefix: str | Path | None = None) -> Path:
    """The override file of the JupyterLab installed under ``prefix`` (default: this Python's)."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / OVERRIDE_NAME


def ensure_notebook_viewer(prefix: str | Path | None = None) -> Path:
    """Make jupytext's notebook view the default for ``.py`` files in this environment's JupyterLab.

    Idempotent: the file is written only when missing or different. Returns its path.
    """
    path = settings_override_path(prefix)
    text = json.dumps(OVERRIDES, indent=2) + "\n"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MccomError(
            f"cannot write JupyterLab's settings override {path} ({exc.strerror}): use a virtual "
            f"environment you own, or run `jupytext-config set-default-viewer python` to set the "
            f"default in your user settings, or open a notebook with right-click > Open With > "
            f"{VIEWER}") from exc
    return path


@dataclass(frozen=True)
class LabConfig:
    """How ``mccom lab`` starts JupyterLab."""

    root: str | None = None  # folder the file browser shows; None: the project root
    port: int = 8888
    ip: str = "127.0.0.1"
    open_browser: bool = True


def lab_command(config: LabConfig = LabConfig(), extra: tuple[str, ...] = ()) -> list[str]:
    """The JupyterLab server command line for ``config`` (run with this Python)."""
    root = Path(config.root) if config.root else PROJECT_ROOT
    if not root.is_dir():
        raise MccomError(f"{root} is not a folder: pass the folder JupyterLab should show")
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={config.ip}",
            f"--ServerApp.port={config.port}", f"--ServerApp.open_browser={config.open_browser}", *extra]
