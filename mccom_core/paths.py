"""Where things live: the user cache, the shared data, the project root.

Every location can be overridden, so users elsewhere can point at their own copies:

* ``MCCOM_CACHE_DIR``: converted models, downloaded sdists, retrieval indexes, execution
  results. Default: the platform's user cache directory (``~/.cache/mccom`` on Linux).
* ``MCCOM_SHARED_DATA``: the recorded generations and MBPP (``../shared/data`` beside the
  project root by default). The data is read in place and never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

from mccom_core.errors import MccomError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TASKS = PROJECT_ROOT / "data" / "benchmarks" / "default"  # the default benchmark's task files
BUILD_DIR = PROJECT_ROOT / "build"  # outputs of runs (git-ignored): executed notebooks, tables, figures


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as recorded in results: relative to the project root when it lies inside the project
    (so committed results name no machine's checkout), else as given. :func:`project_path` inverts it."""
    p = Path(path).expanduser().resolve()
    try:
        return p.relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def project_path(path: str | os.PathLike) -> Path:
    """``path`` as an absolute path: kept when absolute, else resolved against the project root.

    Notebook parameters and profiles hold project-relative paths (``benchmarks/results/...``,
    ``build/...``), so they work in any clone, whatever the working directory.
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def cache_dir(*parts: str) -> Path:
    """Return (and create) a directory under the mccom user cache."""
    base = os.environ.get("MCCOM_CACHE_DIR")
    if base:
        root = Path(base).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("mccom"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Locate the shared data directory.

    Order: ``explicit`` argument, ``MCCOM_SHARED_DATA``, then ``../shared/data`` beside
    the project root. Raises :class:`MccomError` when none exists.
    """
    candidates = []
    if explicit is not None:
        candidates.append(Path(explicit).expanduser())
    elif os.environ.get("MCCOM_SHARED_DATA"):
        candidates.append(Path(os.environ["MCCOM_SHARED_DATA"]).expanduser())
    else:
        candidates.append(PROJECT_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise MccomError(
        f"shared data directory not found at {candidates[0]}: pass its path explicitly or set "
        "MCCOM_SHARED_DATA to the folder that holds code_cascading_wizardcoder/ and codet/"
    )
