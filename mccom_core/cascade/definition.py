"""Benchmark definitions: the JSON file that pins repositories, hashes and the seed, and
from which the shipped task files are rebuilt byte for byte.

A definition looks like (``data/benchmarks/default.json``)::

    {"name": "default", "seed": 2024, "kinds": ["line", "stmt"], "tasks_per_repo": 100,
     "max_per_file": 4, "max_file_bytes": 100000, "skip_tests": true,
     "repos": [{"spec": "markitdown==0.1.9", "sha256": "8f69...", "first_release": "...",
                "why": "...", "counts": {"line": 100, "stmt": 100}}]}

Task files go to ``<definition dir>/<name>/<kind>/<name>-<version>.jsonl``: one file per
repository and kind, so one repository can be rebuilt and compared on its own.
"""

from __future__ import annotations

import filecmp
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mccom_core.cascade.tasks import BenchmarkConfig, build_tasks_from_snapshot, save_tasks
from mccom_core.errors import MccomError
from mccom_core.cascade.snapshots import open_snapshot, parse_spec

_REQUIRED = ("name", "seed", "kinds", "tasks_per_repo", "repos")


@dataclass(frozen=True)
class Definition:
    """A parsed definition file; ``raw`` keeps every key so recording does not lose notes."""

    path: Path
    raw: dict

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def out_dir(self) -> Path:
        """Where the task files live: beside the definition, in a folder named after it."""
        return self.path.parent / self.name

    def config(self, kind: str) -> BenchmarkConfig:
        keys = ("tasks_per_repo", "seed", "max_per_file", "max_file_bytes", "skip_tests")
        return BenchmarkConfig(kind=kind, **{k: self.raw[k] for k in keys if k in self.raw})

    def repos(self, only=None) -> list[dict]:
        """Repository entries, optionally only those whose name (or spec) is in ``only``."""
        entries = self.raw["repos"]
        if not only:
            return entries
        wanted = set(only)
        chosen = [e for e in entries if e["spec"] in wanted or parse_spec(e["spec"]).name in wanted]
        if len(chosen) < len(wanted):
            known = ", ".join(parse_spec(e["spec"]).name for e in entries)
            raise MccomError(f"--repo {sorted(wanted)} not all in {self.path}; known: {known}")
        return chosen


def load_definition(path) -> Definition:
    """Read and validate a definition file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MccomError(f"benchmark definition {path} not found: check the path") from None
    except (ValueError, OSError) as exc:
        raise MccomError(f"benchmark definition {path} is not valid JSON: {exc}") from None
    missing = [k for k in _REQUIRED if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise MccomError(f"benchmark definition {path} lacks {missing}: see data/benchmarks/")
    for entry in raw["repos"]:
        if not isinstance(entry, dict) or "spec" not in entry:
            raise MccomError(f"{path}: every entry of 'repos' needs a 'spec' (NAME==VERSION)")
    return Definition(path, raw)


@dataclass
class RepoReport:
    """What building one repository of a definition produced."""

    spec: str
    repo_hash: str
    counts: dict = field(default_factory=dict)  # kind -> tasks written
    candidates: dict = field(default_factory=dict)  # kind -> eligible positions
    files: list = field(default_factory=list)  # task files written


def task_file(out_dir: Path, kind: str, spec: str) -> Path:
    return Path(out_dir) / kind / f"{parse_spec(spec).slug}.jsonl"


def build_definition(path, out_dir=None, only=None, record=False) -> list[RepoReport]:
    """Build the task files of a definition (all repositories, or those named in ``only``).

    A repository whose entry records a ``sha256`` must hash to it. With ``record=True``
    the observed hashes and counts are written back into the definition file.
    """
    definition = load_definition(path)
    out_dir = Path(out_dir) if out_dir else definition.out_dir
    reports = []
    for entry in definition.repos(only):
        snap = open_snapshot(entry["spec"], entry.get("sha256"))
        report = RepoReport(entry["spec"], snap.repo_hash)
        for kind in definition.raw["kinds"]:
            result = build_tasks_from_snapshot(snap, definition.config(kind))
            target = save_tasks(result.tasks, task_file(out_dir, kind, entry["spec"]))
            report.counts[kind] = len(result.tasks)
            report.candidates[kind] = result.candidates
            report.files.append(target)
        reports.append(report)
    if record:
        _record(definition, reports)
    return reports


def _record(definition: Definition, reports: list[RepoReport]) -> None:
    by_spec = {r.spec: r for r in reports}
    for entry in definition.raw["repos"]:
        report = by_spec.get(entry["spec"])
        if report:
            entry["sha256"] = report.repo_hash
            entry["counts"] = dict(report.counts)
            entry["candidates"] = dict(report.candidates)
    text = json.dumps(definition.raw, indent=2, ensure_ascii=False) + "\n"
    definition.path.write_text(text, encoding="utf-8")


def check_definition(path, only=None) -> list[str]:
    """Rebuild into a temporary directory and compare with the shipped task files.

    Returns one message per file that differs or is missing (empty: byte-identical).
    """
    definition = load_definition(path)
    problems = []
    with tempfile.TemporaryDirectory(prefix="mccom-bench-check-") as tmp:
        for report in build_definition(path, out_dir=tmp, only=only):
            for kind in definition.raw["kinds"]:
                fresh = task_file(Path(tmp), kind, report.spec)
                shipped = task_file(definition.out_dir, kind, report.spec)
                if not shipped.is_file():
                    problems.append(f"{shipped}: missing (rebuild with mccom bench build)")
                elif not filecmp.cmp(fresh, shipped, shallow=False):
                    problems.append(f"{shipped}: differs from a fresh rebuild")
    return problems
