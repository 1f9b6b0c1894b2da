"""The resumable benchmark runner: tasks × branches → one JSONL row each, written as it goes.

Each row is appended and flushed the moment its branch finishes, so a run killed at any point
loses at most the branch in flight. Restarted with the same output file, the runner reads the
rows already there, keys them by ``(task_id, branch, config_hash)`` and computes only what is
missing (a task whose SLM row exists reuses it for its dependent branches). A last line torn
by the kill is cut off before appending. Rows of other configurations in the same file are
kept and not counted as done for this one, except rows whose branch cannot see the difference
(``config_rows``: a config changing only MCCom's round-2 options reuses the SLM and round-1 rows).

Every row carries the config hash, the config itself, model specs, package versions, the
device and the machine's 1-minute load average when it was written (its timings are only as
good as the machine was quiet), so a results file says what produced it. A task that cannot be run (malformed line,
a file that changed since the task was built, a repository that cannot be materialized, a
context the models cannot complete from) is reported in :attr:`RunReport.skipped` and
skipped, never fatal.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from mccom_core.cascade.tasks import Task, read_tasks, task_context
from mccom_core.cascade.snapshots import materialize
from mccom_core.cascade.engine import BRANCHES, Cascade, CascadeConfig, branch_hash, config_hash
from mccom_core.errors import MccomError
from mccom_core.jsonl import JsonlWriter, read_jsonl, repair
from mccom_core.lm.distributed import ClusterConfig
from mccom_core.provenance import cpu_name, package_versions
from mccom_core.retrieval.retrievers import load_index


@dataclass(frozen=True)
class RunReport:
    """What a call of :func:`run_benchmark` did."""

    out_path: Path
    config_hash: str
    tasks: int  # tasks selected for this run
    rows_written: int  # rows appended by this call
    rows_existing: int  # rows of this config that were already in the file
    skipped: tuple[tuple[str, str], ...] = ()  # (task id or file:line, reason)
    seconds: float = 0.0
    dropped_partial_line: bool = False  # a torn last line (from a kill) was cut off
    extra: dict = field(default_factory=dict)


def select_tasks(tasks: Sequence[Task], kind: str | None = None, limit: int | None = None) -> list[Task]:
    """Tasks of ``kind`` (all kinds when None), at most ``limit`` per kind.

    The limit takes tasks round-robin over repositories (each repository's tasks are already
    in random order), so a small sample still covers every repository, and the result
    alternates between kinds, so a run stopped part way has covered each kind about equally.
    A larger ``limit`` selects a superset whose order starts with the smaller selection's
    tasks of each kind. Deterministic.
    """
    if limit is not None and limit < 1:
        raise MccomError(f"limit must be >= 1, got {limit}")
    by_kind: dict[str, dict[str, list[Task]]] = defaultdict(lambda: defaultdict(list))
    for task in tasks:
        if kind is None or task.kind == kind:
            by_kind[task.kind][task.repo].append(task)
    per_kind = []
    for k in sorted(by_kind):
        queues = [list(q) for q in by_kind[k].values()]
        picked, depth = [], 0
        while any(depth < len(q) for q in queues) and (limit is None or len(picked) < limit):
            picked += [q[depth] for q in queues if depth < len(q)]
            depth += 1
        per_kind.append(picked[:limit] if limit is not None else picked)
    longest = max((len(p) for p in per_kind), default=0)
    return [p[i] for i in range(longest) for p in per_kind if i < len(p)]


def read_results(path, config_hash: str | None = None, *, config: CascadeConfig | None = None) -> pd.DataFrame:
    """The rows of a results file as a DataFrame (only those of ``config_hash`` if given).

    With ``config``: the rows that hold for ``config`` (:func:`config_rows`: its own, and those of
    other configs whose difference their branch cannot see). Unparseable lines (a torn last
    line) are ignored.
    """
    rows = read_jsonl(path)
    if config is not None:
        return pd.DataFrame(config_rows(rows, config))
    return pd.DataFrame([r for r in rows if config_hash is None or r.get("config_hash") == config_hash])


def config_rows(rows: Iterable[dict], config: CascadeConfig) -> list[dict]:
    """The rows that hold for ``config``, one per (task, branch).

    A row of ``config``'s own hash (any branch, as the hash leaves ``branches`` out), or else one
    of another config with the same
    :func:`~mccom_core.cascade.engine.branch_hash` for its branch: a config that changes only
    MCCom's round-2 options gives the SLM and round-1 rows of the config it came from (they are
    what its round 2 would recompute, token for token). Own rows come first.
    """
    chash, data = config_hash(config), asdict(config)
    ours: dict[str, str] = {}
    theirs: dict[tuple, bool] = {}

    def holds(row) -> bool:
        branch = row.get("branch")
        if "task_id" not in row or branch is None:
            return False
        if row.get("config_hash") == chash:
            return True
        if branch not in BRANCHES:
            return False
        key = (row.get("config_hash"), branch)
        if key not in theirs:
            if branch not in ours:
                ours[branch] = branch_hash(data, branch)
            theirs[key] = isinstance(row.get("config"), dict) and branch_hash(row["config"], branch) == ours[branch]
        return theirs[key]

    kept = [r for r in rows if holds(r)]
    kept.sort(key=lambda r: r.get("config_hash") != chash)  # stable: own rows first, file order kept
    seen, out = set(), []
    for row in kept:
        if (row["task_id"], row["branch"]) not in seen:
            seen.add((row["task_id"], row["branch"]))
            out.append(row)
    return out


def _stored_rows(path: Path, config: CascadeConfig) -> dict[str, dict[str, dict]]:
    """task_id -> branch -> row, for the rows that hold for ``config`` (:func:`config_rows`)."""
    done: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in config_rows(read_jsonl(path), config):
        done[row["task_id"]].setdefault(row["branch"], row)
    return done


def run_benchmark(
    tasks, out, config: CascadeConfig = CascadeConfig(), *, limit: int | None = None,
    kind: str | None = None, device: str = "auto", slm=None, llm=None, progress: bool = True,
    snapshot: Callable[[str, str], Path] = materialize, index_loader: Callable = load_index,
    seed: Sequence[str | os.PathLike] = (), cluster: ClusterConfig | None = None,
) -> RunReport:
    """Run every selected task through the branches of ``config``, appending rows to ``out``.

    Parameters
    ----------
    tasks:
        A JSONL file or directory of them (malformed lines are reported and skipped), or a
        list of :class:`~mccom_core.cascade.tasks.Task`.
    out:
        The JSONL results file; created, or resumed when it exists.
    limit, kind:
        At most ``limit`` tasks per kind (see :func:`select_tasks`), only ``kind`` if given.
    device:
        Where the models run (``auto``, ``cpu``, ``cuda``...), when they are loaded here.
    slm, llm:
        Already loaded models (:class:`~mccom_core.lm.models.LoadedModel`); their ``spec`` must
        equal ``config.slm`` / ``config.llm``. Loaded with ``load_model`` when omitted.
    snapshot, index_loader:
        How a task's repository becomes a directory and a retrieval index.
    seed:
        Results files that are read, never written (e.g. committed rows): their rows of this
        config count as done, so only what none of them holds is run and appended to ``out``.
        So do their rows of another config whose difference the branch cannot see
        (:func:`config_rows`); those feed dependent branches and are not copied.
    cluster:
        Shard the tasks over Ray workers (see :mod:`mccom_core.lm.distributed`); each loads
        ``config.slm`` / ``config.llm`` by spec once, and this process appends every finished
        task's rows to ``out``, so resuming works as after a serial run. None: run here.
    """
    start = time.perf_counter()
    out, chash = Path(out), config_hash(config)
    skipped: list[tuple[str, str]] = []
    if isinstance(tasks, (str, os.PathLike)):
        loaded = read_tasks(tasks)
        skipped += [(msg.split(": ", 1)[0], msg.split(": ", 1)[-1]) for msg in loaded.skipped]
        tasks = loaded.tasks
    selected = select_tasks(tasks, kind, limit)
    dropped = repair(out)
    done = _stored_rows(out, config)
    for path in (Path(p) for p in seed if Path(p).is_file()):
        for task_id, branches in _stored_rows(path, config).items():
            for branch, row in branches.items():
                done[task_id].setdefault(branch, row)
    existing = sum(len(v) for v in done.values())
    todo = [t for t in selected if not set(config.branches) <= set(done.get(t.task_id, {}))]

    written, cascade, meta = 0, None, {}
    if todo and cluster is not None:
        if slm is not None or llm is not None:
            raise MccomError("loaded models cannot be sent to Ray workers: leave slm/llm out, the "
                             "workers load config.slm and config.llm by spec")
        written = _run_sharded(cluster, [(t, done.get(t.task_id)) for t in todo], out, config,
                               partial(_TaskWorker, config, device, snapshot, index_loader), skipped, progress)
    elif todo:
        writer = JsonlWriter(out)
        contexts = _Contexts(snapshot, index_loader, config)
        try:
            for task in _progress(todo, progress):
                try:
                    left, right, index = contexts.get(task)
                except MccomError as exc:
                    skipped.append((task.task_id, str(exc)))
                    continue
                if cascade is None:  # loaded only once a task can run; a bad model spec is fatal
                    cascade = Cascade(*_models(config, slm, llm, device), config)
                    meta = _metadata(config, chash, cascade)
                    _warm_up(cascade)
                try:
                    for row in cascade.run(task, left, right, index, done.get(task.task_id)):
                        writer.write({**row, **meta, "written_at": time.time(),
                                      "load_average": round(os.getloadavg()[0], 2)})
                        written += 1
                except MccomError as exc:  # e.g. nothing before the cursor to complete from
                    skipped.append((task.task_id, str(exc)))
        finally:
            writer.close()
    return RunReport(out, chash, len(selected), written, existing, tuple(skipped),
                     time.perf_counter() - start, dropped)


def _run_sharded(cluster, jobs, out: Path, config: CascadeConfig, setup: Callable,
                 skipped: list, progress: bool) -> int:
    """The sharded loop: workers compute whole tasks, this process is the file's one writer."""
    from mccom_core.lm.distributed import shard

    written = 0

    def append(job, result):
        nonlocal written
        rows, reason = result
        for row in rows:
            writer.write({**row, "written_at": time.time()})
        written += len(rows)
        if reason is not None:
            skipped.append((job[0].task_id, reason))

    with JsonlWriter(out) as writer:
        shard(cluster, setup, jobs, append, progress=progress)
    return written


class _TaskWorker:
    """A Ray worker's state in a sharded run: the task contexts and, once a task can run, the
    models (loaded once per worker, like the serial run's). Called with ``(task, stored rows)``,
    it returns the task's rows (carrying what the serial rows carry, plus the ``host``) and the
    reason it stopped early, if it did."""

    def __init__(self, config: CascadeConfig, device, snapshot, index_loader):
        self.config, self.device = config, device
        self.contexts = _Contexts(snapshot, index_loader, config)
        self.cascade, self.meta = None, {}

    def __call__(self, job) -> tuple[list[dict], str | None]:
        task, stored = job
        try:
            left, right, index = self.contexts.get(task)
        except MccomError as exc:
            return [], str(exc)
        if self.cascade is None:  # as in the serial loop: a bad model spec is fatal
            self.cascade = Cascade(*_models(self.config, None, None, self.device), self.config)
            self.meta = {**_metadata(self.config, config_hash(self.config), self.cascade),
                         "host": socket.gethostname()}
            _warm_up(self.cascade)
        rows = []
        try:
            for row in self.cascade.run(task, left, right, index, stored):
                rows.append({**row, **self.meta, "load_average": round(os.getloadavg()[0], 2)})
        except MccomError as exc:  # the rows before it are kept, as in the serial loop
            return rows, str(exc)
        return rows, None


def _models(config: CascadeConfig, slm, llm, device):
    from mccom_core.lm.models import load_model

    slm = slm if slm is not None else load_model(config.slm, device=device)
    llm = llm if llm is not None else load_model(config.llm, device=device)
    for role, lm, spec in (("slm", slm, config.slm), ("llm", llm, config.llm)):
        if lm.spec != spec:
            raise MccomError(f"the {role} given is {lm.spec!r} but config.{role} is {spec!r}: make them agree")
    return slm, llm


def _warm_up(cascade: Cascade) -> None:
    """An untimed pass through each model before the first timed branch (see models.warm_up)."""
    from mccom_core.lm import models

    for lm in (cascade.slm, cascade.llm):
        models.warm_up(lm)


def _metadata(config: CascadeConfig, chash: str, cascade: Cascade) -> dict:
    """What every row carries about how it was produced."""
    import torch

    return {"config_hash": chash, "config": json.loads(json.dumps(asdict(config))),
            "slm_spec": cascade.slm.spec, "llm_spec": cascade.llm.spec, "versions": package_versions(),
            "device": str(cascade.slm.device), "cpu": cpu_name(), "torch_threads": torch.get_num_threads()}


def _progress(items: list, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc="tasks", unit="task", disable=not enabled, smoothing=0.1)


class _Contexts:
    """Per task: left and right context, and the repository's index (one per snapshot)."""

    def __init__(self, snapshot, index_loader, config: CascadeConfig):
        self.snapshot, self.index_loader, self.config = snapshot, index_loader, config
        self.roots: dict[tuple[str, str], Path | MccomError] = {}
        self.indexes: dict[Path, object] = {}  # a RepoIndex, or the MccomError it raised
        self.retrieves = any(_retrieves(b) for b in config.branches)

    def get(self, task: Task):
        key = (task.repo, task.repo_hash)
        if key not in self.roots:
            try:
                self.roots[key] = Path(self.snapshot(task.repo, task.repo_hash))
            except MccomError as exc:  # remembered: every task of this repository is skipped
                self.roots[key] = exc
        root = self.roots[key]
        if isinstance(root, MccomError):
            raise root
        left, right = task_context(task, root)
        if self.retrieves and root not in self.indexes:
            try:
                self.indexes[root] = self.index_loader(root, self.config.retrieval)
            except MccomError as exc:
                self.indexes[root] = exc
        index = self.indexes.get(root)
        if isinstance(index, MccomError):
            raise index
        return left, right, index


def _retrieves(branch: str) -> bool:
    from mccom_core.cascade.engine import BRANCHES

    return BRANCHES[branch].retriever != "none"
