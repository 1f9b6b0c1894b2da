"""Repository snapshots: a PyPI source distribution pinned as ``name==version``, or a local
directory, turned into a read-only directory of files that tasks and retrieval both use.

A PyPI sdist is downloaded once with pip (``pip download --no-deps --no-binary NAME``) into
``cache_dir("sdists", "<name>-<version>")`` and extracted into
``cache_dir("snapshots", "<name>-<version>-<sha12>")``. The sdist's sha256 is the identity of
the snapshot: tasks record it, and a snapshot whose sdist hash differs from the recorded one
is refused (a re-uploaded or tampered file would silently change every ground truth).

A local directory is used in place; its identity is a content hash of its Python files
(:func:`tree_hash`), because tasks and retrieval only ever read ``*.py`` files.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mccom_core.errors import MccomError
from mccom_core.provenance import file_sha256
from mccom_core.paths import cache_dir

_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9._+!-]*)\s*$")
_MARKER = ".mccom-snapshot.json"  # written into each extracted snapshot: where it came from
# Directories never part of a snapshot's file list (build output, VCS, caches).
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv", "venv",
                        "node_modules", "build", "dist", ".mypy_cache", ".pytest_cache"})


@dataclass(frozen=True)
class RepoSpec:
    """What a task's repository is: ``pypi`` (name, version) or ``local`` (a directory)."""

    source: str  # "pypi" or "local"
    name: str  # canonical PyPI name (PEP 503) or the directory name
    version: str  # pinned version; "" for a local directory
    path: str = ""  # the local directory, resolved; "" for PyPI

    @property
    def text(self) -> str:
        """The spec as written in tasks and definitions: ``name==version`` or the path."""
        return f"{self.name}=={self.version}" if self.source == "pypi" else self.path

    @property
    def slug(self) -> str:
        """A file-name-safe label: ``name-version`` or the directory name."""
        return f"{self.name}-{self.version}" if self.source == "pypi" else self.name


def canonical_name(name: str) -> str:
    """PEP 503 normalisation (``Pydantic_AI.slim`` -> ``pydantic-ai-slim``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_spec(spec: str) -> RepoSpec:
    """Parse ``name==version`` (PyPI) or a path to an existing directory (local)."""
    if not isinstance(spec, str) or not spec.strip():
        raise MccomError("empty repository spec: give NAME==VERSION (a PyPI sdist) or a directory")
    match = _SPEC.match(spec)
    if match:
        return RepoSpec("pypi", canonical_name(match.group(1)), match.group(2))
    if "==" in spec or any(op in spec for op in (">=", "<=", "~=", "!=")):
        raise MccomError(
            f"bad repository spec {spec!r}: pin one exact version as NAME==VERSION "
            "(e.g. markitdown==0.1.9); ranges are not reproducible"
        )
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise MccomError(
            f"repository {spec!r} is neither NAME==VERSION nor an existing directory: "
            "check the path, or pin a PyPI package as NAME==VERSION"
        )
    resolved = path.resolve()
    return RepoSpec("local", resolved.name, "", str(resolved))


def python_files(root: Path) -> list[Path]:
    """The ``*.py`` files of a snapshot, sorted by POSIX relative path (the order that makes
    task building deterministic), skipping VCS, caches and build output."""
    root = Path(root)
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def tree_hash(root: Path) -> str:
    """Content hash of a local directory: sha256 over (relative path, file bytes) of its
    Python files, as ``tree:<hex>``. Renaming, editing or adding a ``.py`` file changes it."""
    digest = hashlib.sha256()
    for path in python_files(root):
        rel = path.relative_to(root).as_posix().encode("utf-8")
        data = path.read_bytes()
        digest.update(len(rel).to_bytes(8, "big") + rel + len(data).to_bytes(8, "big") + data)
    return "tree:" + digest.hexdigest()


def _find_sdist(folder: Path, spec: RepoSpec) -> Path | None:
    stem = re.sub(r"[-_.]+", "[-_.]", re.escape(spec.name).replace("\\-", "-"))
    pattern = re.compile(rf"^{stem}-{re.escape(spec.version)}\.(tar\.gz|zip|tar\.bz2)$", re.I)
    found = sorted(p for p in folder.iterdir() if pattern.match(p.name))
    return found[0] if found else None


def cached_sdist(repo_spec: str) -> Path | None:
    """The sdist of a PyPI spec if it is already in the cache (never downloads)."""
    spec = parse_spec(repo_spec)
    return _find_sdist(cache_dir("sdists", spec.slug), spec) if spec.source == "pypi" else None


def download_sdist(spec: RepoSpec) -> Path:
    """Return the cached sdist of a PyPI spec, downloading it with pip the first time."""
    folder = cache_dir("sdists", spec.slug)
    cached = _find_sdist(folder, spec)
    if cached:
        return cached
    # ``--no-binary NAME`` rather than ``:all:``: pip builds the sdist's metadata in an
    # isolated environment, and ``:all:`` would force its build backend's own dependencies
    # (maturin, via google-genai's build requirements) to be compiled from source too.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", spec.name,
           "--disable-pip-version-check", "-q", spec.text, "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sdist = _find_sdist(folder, spec)
    if proc.returncode != 0 or sdist is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise MccomError(
            f"could not download the source distribution of {spec.text} with pip: check the "
            f"package name and version (`pip index versions {spec.name}`) and that the release "
            f"has an sdist, not only wheels.\npip said: {tail}"
        )
    return sdist


def _extract(archive: Path, dest: Path) -> Path:
    """Extract an sdist safely into ``dest`` and return its top-level directory."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise MccomError(f"refusing {archive}: unsafe member path {name!r}")
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tf.extractall(dest, filter="data")  # no absolute paths, links out, devices
            else:
                members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
                for m in members:
                    if m.name.startswith("/") or ".." in Path(m.name).parts:
                        raise MccomError(f"refusing {archive}: unsafe member path {m.name!r}")
                tf.extractall(dest, members=members)
    entries = [p for p in dest.iterdir() if p.name != _MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


@dataclass(frozen=True)
class Snapshot:
    """A materialized repository: where its files are and the hash that identifies it."""

    spec: RepoSpec
    root: Path  # directory whose ``*.py`` files are the repository
    repo_hash: str  # sdist sha256 (PyPI) or ``tree:<hex>`` (local directory)


def open_snapshot(repo_spec: str, expected_hash: str | None = None) -> Snapshot:
    """Materialize a repository (download and extract once, then reuse the cache).

    ``expected_hash`` is the hash a task or definition recorded; a repository whose hash
    differs raises :class:`MccomError` rather than silently changing every ground truth.
    """
    spec = parse_spec(repo_spec)
    if spec.source == "local":
        root = Path(spec.path)
        actual = tree_hash(root)
        if expected_hash and actual != expected_hash:
            raise MccomError(
                f"local repository {root} changed since its tasks were built (content hash "
                f"{actual}, recorded {expected_hash}): restore it, or rebuild the tasks"
            )
        return Snapshot(spec, root, actual)
    sdist = download_sdist(spec)
    sha = file_sha256(sdist)
    if expected_hash and sha != expected_hash:
        raise MccomError(
            f"the sdist of {spec.text} at {sdist} has sha256 {sha}, but {expected_hash} was "
            "recorded: the file changed. Delete it to download again, or rebuild the tasks"
        )
    target = cache_dir("snapshots") / f"{spec.slug}-{sha[:12]}"
    marker = target / _MARKER
    if marker.is_file():
        if json.loads(marker.read_text()).get("sha256") != sha:
            raise MccomError(f"snapshot {target} was made from another sdist: delete it")
        return Snapshot(spec, _root(target), sha)
    # Extract beside the target, then rename: an interrupted run never leaves a half snapshot.
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    top = _extract(sdist, tmp)
    rel = top.relative_to(tmp).as_posix()
    (tmp / _MARKER).write_text(json.dumps({"spec": spec.text, "sha256": sha, "root": rel}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return Snapshot(spec, _root(target), sha)


def materialize(repo_spec: str, expected_hash: str | None = None) -> Path:
    """The snapshot directory of a repository (see :func:`open_snapshot`)."""
    return open_snapshot(repo_spec, expected_hash).root


def _root(target: Path) -> Path:
    rel = json.loads((target / _MARKER).read_text())["root"]
    return target / rel if rel != "." else target
