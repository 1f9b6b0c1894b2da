"""The project runs from any clone at any path: no machine paths in what users run or read, and
a notebook run with its default parameters in a fresh clone elsewhere writes only under build/."""

from __future__ import annotations

import re
import subprocess

import pytest

from mccom_core.paths import PROJECT_ROOT, portable_path, project_path

# Absolute paths that only exist on the machine where a file was written (a user's home, this
# workplace's checkout). /tmp in a documented example command is not one of them.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|Users|mnt)/[\w.-]+")


def _tracked(*specs: str) -> list:
    out = subprocess.run(["git", "ls-files", *specs], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [PROJECT_ROOT / f for f in out if f.endswith((".py", ".md", ".toml", ".json", ".yml", ".cfg"))]


def test_no_machine_paths_in_code_notebooks_and_docs():
    files = _tracked("notebooks", "mccom_core", "README.md", "data/*.md", "data/benchmarks/*.json", "tests",
                     "pyproject.toml", "environment.yml")
    assert len(files) > 50
    found = [f"{f.relative_to(PROJECT_ROOT)}: {m.group(0)}" for f in files
             for m in MACHINE_PATH.finditer(f.read_text(encoding="utf-8"))]
    assert found == []


def test_no_machine_paths_in_committed_results():
    """Recorded results travel with the clone: they name paths relative to the project."""
    import pandas as pd

    files = _tracked("benchmarks/results")
    assert any(f.suffix == ".json" for f in files)
    found = [f"{f.relative_to(PROJECT_ROOT)}: {m.group(0)}" for f in files if f.suffix == ".json"
             for m in MACHINE_PATH.finditer(f.read_text(encoding="utf-8"))]
    for path in sorted((PROJECT_ROOT / "benchmarks" / "results").rglob("outcomes.parquet")):
        attrs = str(pd.read_parquet(path).attrs)
        found += [f"{path.relative_to(PROJECT_ROOT)} attrs: {m.group(0)}" for m in MACHINE_PATH.finditer(attrs)]
    assert found == []


def test_machine_path_pattern():
    # Built from parts, so this file holds no machine path itself.
    checkout, home = "/" + "/".join(("work", "repo")), "/" + "/".join(("home", "ann"))
    assert MACHINE_PATH.findall(f'x = "{checkout}/build"  # and {home}/data, not /tmp/x or a/work/b') == [
        checkout, home]


def test_project_path_resolves_against_the_project_root(tmp_path):
    assert project_path("build/x") == PROJECT_ROOT / "build" / "x"
    assert project_path(tmp_path) == tmp_path
    assert project_path("~/x").is_absolute()
    assert portable_path(PROJECT_ROOT / "benchmarks" / "x") == "benchmarks/x"
    assert portable_path(tmp_path) == str(tmp_path)
    assert project_path(portable_path(PROJECT_ROOT / "a" / "b")) == PROJECT_ROOT / "a" / "b"


def _git(*args, cwd=PROJECT_ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _clone_working_tree(dest):
    """A clone at ``dest`` checked out at the working tree's tracked state (uncommitted edits included)."""
    commit = _git("stash", "create") or _git("rev-parse", "HEAD")  # stash create: a commit, nothing stashed
    _git("clone", "--quiet", "--no-checkout", str(PROJECT_ROOT), str(dest))
    _git("fetch", "--quiet", "origin", commit, cwd=dest)
    _git("checkout", "--quiet", "--detach", commit, cwd=dest)
    return dest


NOTEBOOKS = sorted(p.stem for p in (PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="module")
def clone_elsewhere(tmp_path_factory):
    return _clone_working_tree(tmp_path_factory.mktemp("clones") / "somewhere else" / "mccom-workbench")


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_defaults_in_a_clone_elsewhere(stem, clone_elsewhere, tmp_path, monkeypatch):
    """Every notebook from a clone at another path (with a space in it), with its default
    parameters and the working directory elsewhere: it reads the clone's committed rows, writes
    under the clone's build/ only, and leaves the clone's git status clean. The clone has no
    ``../shared`` beside it, as a new user's: notebook 06 then says where to get the authors'
    recordings and skips their replay."""
    import papermill

    from mccom_core.lab.reproduce import kernel_env, to_ipynb

    clone = clone_elsewhere
    monkeypatch.setenv("PYTHONPATH", str(clone))  # the kernel imports the clone's mccom_core
    monkeypatch.delenv("MCCOM_SHARED_DATA", raising=False)
    src = to_ipynb(clone / "notebooks" / f"{stem}.py", tmp_path / "src")
    with kernel_env():
        papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   cwd=str(tmp_path), progress_bar=False)
    results = clone / "build" / "notebooks" / "results" / stem
    assert results.is_dir() and any(results.iterdir()), f"{stem} wrote no results under the clone's build/"
    assert _git("status", "--porcelain", cwd=clone) == ""
    if stem == "04_speculative_decoding":
        assert (results / "methods.csv").is_file()
        assert sorted(p.name for p in (clone / "build" / "notebooks" / "figures").glob("04_*.svg"))
