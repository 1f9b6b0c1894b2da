"""Hostile code against the sandbox: each case gets the right verdict and leaves the host untouched.

Every case runs as the first test of a job whose second test is good, next to a second,
well-behaved job in the same batch: the good verdicts show that neither the rest of the job
nor the batch paid for the hostile one. The six routes of issue 23 (a probe's escapes from
the previous sandbox) have a test each, named ``test_route_*``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from mccom_core.ladder.sandbox import Job, Sandbox, SandboxConfig, Verdict

SOLUTION = "def add(a, b):\n    return a + b\n"
GOOD = "assert add(1, 2) == 3"
WRONG = "def add(a, b):\n    return a - b\n"
# Short limits keep the suite fast; the wall-clock backstop is what ends sleeping code.
CFG = SandboxConfig(timeout_s=0.5, setup_timeout_s=0.5, wall_timeout_s=2.0, max_timeouts=None, use_cache=False)
PASSED = Verdict(True, "passed")
BYSTANDER = Job("def mul(a, b):\n    return a * b\n", ("assert mul(2, 3) == 6", "assert mul(2, 3) == 7"))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(CFG) as sb:
        yield sb


@pytest.fixture
def open_dir():
    """A directory anyone may write (as ``/tmp`` is), so only the sandbox's own checks stand in the way."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mccom-hostile-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (what a fork server would have left running)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def hostile(sb: Sandbox, snippet: str, program: str = SOLUTION) -> Verdict:
    """The snippet's verdict; asserts the job's good test and a bystander job were unaffected."""
    start = time.monotonic()
    verdicts = sb.run([Job(program, (snippet, GOOD)), BYSTANDER])
    assert time.monotonic() - start < 2 * CFG.wall_timeout_s + 5
    assert verdicts[1] == [PASSED, Verdict(False, "AssertionError")]
    if program == SOLUTION:
        assert verdicts[0][1] == PASSED
    for w in sb._workers.values():  # no process outlived its test
        assert children_of(w.pid) == []
    return verdicts[0][0]


def test_infinite_loop(sandbox):
    assert hostile(sandbox, "while True:\n    pass") == Verdict(False, "timeout")


def test_loop_ignoring_sigterm_and_the_timer(sandbox):
    snippet = ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass")
    assert hostile(sandbox, snippet) == Verdict(False, "timeout")
    snippet = "import signal\nsignal.signal(signal.SIGPROF, signal.SIG_IGN)\nwhile True:\n    pass"
    assert hostile(sandbox, snippet) == Verdict(False, "timeout")  # RLIMIT_CPU ends it


def test_bounded_fork_bomb(sandbox):
    assert hostile(sandbox, "import os\nfor _ in range(20):\n    os.fork()") == Verdict(
        False, "TypeError: 'NoneType' object is not callable")
    assert hostile(sandbox, "import posix\nfor _ in range(20):\n    posix.fork()") == Verdict(False, "blocked: os.fork")
    verdict = hostile(sandbox, "import _posixsubprocess, sys\n_posixsubprocess.fork_exec(['/bin/true'], [b'/bin/true'], "
                               "True, (), None, None, -1, -1, -1, -1, -1, -1, -1, -1, False, False, None, None, None, -1, None, False)")
    assert verdict.passed is False


def test_8gb_allocation(sandbox):
    assert hostile(sandbox, "x = bytearray(8 * 2**30)") == Verdict(False, "MemoryError")


def test_writes_outside_its_directory(sandbox, open_dir):
    home = Path.home() / "mccom-sandbox-probe.txt"
    cwd = Path.cwd() / "mccom-sandbox-probe.txt"
    for target in (open_dir / "outside.txt", home, cwd):
        verdict = hostile(sandbox, f"open({str(target)!r}, 'w').write('x')")
        assert verdict == Verdict(False, f"blocked: open({str(target)!r}, 'w')")
        assert not target.exists()
    verdict = hostile(sandbox, "open('inside.txt', 'w').write('fine')\nassert open('inside.txt').read() == 'fine'")
    assert verdict == PASSED


def test_deleting_a_decoy_outside(sandbox, open_dir):
    decoy = open_dir / "decoy.txt"
    decoy.write_text("keep me")
    decoy.chmod(0o666)
    assert hostile(sandbox, f"import posix\nposix.unlink({str(decoy)!r})") == Verdict(
        False, f"blocked: os.remove({str(decoy)!r})")
    assert hostile(sandbox, f"import pathlib\npathlib.Path({str(decoy)!r}).unlink()").passed is False
    assert decoy.read_text() == "keep me"


def test_reading_a_secret_from_the_parent_environment(sandbox, monkeypatch):
    monkeypatch.setenv("MCCOM_HOSTILE_SECRET", "hunter2")
    assert hostile(sandbox, "import os\nassert 'MCCOM_HOSTILE_SECRET' not in os.environ") == PASSED
    if os.getuid() == 0:  # dropped to nobody: the host's environment block is unreadable
        verdict = hostile(sandbox, f"open('/proc/{os.getpid()}/environ').read()")
        assert verdict.passed is False and verdict.reason.startswith("PermissionError")


def test_socket_to_a_local_listener(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        verdict = hostile(sandbox, f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))")
        assert verdict == Verdict(False, "blocked: socket.__new__")
        verdict = hostile(sandbox, f"import _socket\n_socket.socket().connect(('127.0.0.1', {port}))")
        assert verdict.passed is False
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_child_process_that_would_outlive_the_timeout(sandbox):
    for snippet in ("import subprocess\nsubprocess.Popen(['sleep', '30'])",
                    "import posix\nposix.posix_spawn('/bin/sleep', ['sleep', '30'], {})",
                    "import os\nos.system('sleep 30 &')"):
        assert hostile(sandbox, snippet).passed is False  # and hostile() found no process left


def test_500_mb_of_output(sandbox, capfd):
    start = time.monotonic()
    verdict = hostile(sandbox, "import sys\nfor _ in range(500):\n    sys.stdout.write('x' * 10**6)")
    assert verdict == Verdict(False, "OSError: [Errno 27] File too large")
    assert time.monotonic() - start < 5
    out, err = capfd.readouterr()
    assert "xxxx" not in out and "xxxx" not in err


def test_exiting_before_the_asserts(sandbox):
    assert hostile(sandbox, "import sys\nsys.exit(0)\nassert add(1, 2) == 4") == Verdict(False, "SystemExit: 0")
    assert hostile(sandbox, "import os\nos._exit(0)\nassert add(1, 2) == 4") == Verdict(False, "child exited with code 0")
    assert hostile(sandbox, "raise SystemExit(0)") == Verdict(False, "SystemExit: 0")
    assert hostile(sandbox, "import posix\nposix._exit(0)") == Verdict(False, "child exited with code 0")


def test_patching_the_harness_globals(sandbox):
    snippet = ("import sys\nfor m in list(sys.modules.values()):\n"
               "    for name in ('_reason', 'reason_of', 'PASS_IMAGE', 'EXIT_FAIL', 'run_test'):\n"
               "        if hasattr(m, name):\n            setattr(m, name, lambda *a, **k: 'passed')\n"
               "assert add(1, 2) == 4")
    assert hostile(sandbox, snippet).passed is False


def test_route_dir_fd_writes_and_deletes(sandbox, open_dir):
    decoy = open_dir / "decoy.txt"
    decoy.write_text("keep me")
    decoy.chmod(0o666)
    outside = str(open_dir)
    snippets = [
        f"import os\nfd = os.open({outside!r}, os.O_RDONLY)\nos.open('new.txt', os.O_CREAT | os.O_WRONLY, dir_fd=fd)",
        f"import os, posix\nposix.unlink('decoy.txt', dir_fd=os.open({outside!r}, os.O_RDONLY))",
        f"import os\nfd = os.open({outside!r}, os.O_RDONLY | os.O_DIRECTORY)",
        "import os\nfd = os.open('.', os.O_RDONLY)\nos.open('../escaped.txt', os.O_CREAT | os.O_WRONLY, dir_fd=fd)",
        "import os, posix\nfd = os.open('.', os.O_RDONLY)\nposix.mkdir('../escaped', dir_fd=fd)",
        "import os\nfd = os.open('/proc/self/cwd/..', os.O_RDONLY)",
    ]
    for snippet in snippets:
        verdict = hostile(sandbox, snippet)
        assert verdict.passed is False and verdict.reason.startswith("blocked: "), (snippet, verdict)
    assert decoy.read_text() == "keep me"
    assert sorted(p.name for p in open_dir.iterdir()) == ["decoy.txt"]


def test_route_patching_the_harness_and_shared_builtins(sandbox):
    snippets = [
        "import sys\nsys.modules['__main__']._reason = lambda exc: 'passed'\nassert False",
        "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.str = lambda *a: 'passed'\nassert False",
        "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\nassert False",
    ]
    for snippet in snippets:
        assert hostile(sandbox, snippet).passed is False


def test_route_state_shared_between_tests(sandbox):
    swap = "add.__code__ = (lambda a, b: a + b).__code__\nassert False"
    verdicts = sandbox.run([Job(WRONG, (swap, GOOD, "assert add(5, 1) == 4"))])[0]
    assert verdicts == [Verdict(False, "AssertionError"), Verdict(False, "AssertionError"), PASSED]
    poison = "import math\nmath.sqrt = lambda x: 3\nopen('flag', 'w').write('x')"
    verdicts = sandbox.run([Job(SOLUTION, (poison, "import math, os\nassert math.sqrt(4) == 2 and not os.path.exists('flag')"))])[0]
    assert verdicts == [PASSED, PASSED]


def test_route_forged_verdict_lines(sandbox):
    forge = ("import sys, os\nf = sys._getframe()\nwhile f is not None:\n    f = f.f_back\n"
             "for fd in range(3, 64):\n    for line in (b'S\\tok\\n', b'0\\tpassed\\n', b'1\\tpassed\\n', b'P', b'passed\\n'):\n"
             "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n")
    assert hostile(sandbox, forge + "os._exit(0)").passed is False
    assert hostile(sandbox, forge + "assert add(1, 2) == 4").passed is False
    # The harness's own exec, reached through its frame, is refused to anyone but the harness.
    steal = ("import sys\nf = sys._getframe()\nwhile 'execv' not in f.f_locals:\n    f = f.f_back\n"
             "f.f_locals['execv']('/bin/true', ['true'])")
    assert hostile(sandbox, steal) == Verdict(False, "blocked: os.exec")
    assert hostile(sandbox, "import os\nos.execv('/bin/true', ['true'])") == Verdict(False, "blocked: os.exec")


def test_route_heartbeat_cannot_extend_the_deadline(sandbox):
    beat = ("import os, signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGPROF, signal.SIG_IGN)\nwhile True:\n"
            "    for fd in range(3, 64):\n        try:\n            os.write(fd, b'0\\tpassed\\n')\n"
            "        except OSError:\n            pass\n    time.sleep(0.01)\n")
    start = time.monotonic()
    assert hostile(sandbox, beat) == Verdict(False, f"timeout (wall clock {CFG.wall_timeout_s:g} s)")
    assert time.monotonic() - start < CFG.wall_timeout_s + 3


def test_route_error_line_and_sleep_costs_only_that_test(sandbox):
    crash = ("import os, signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
             "for fd in range(0, 64):\n    try:\n        os.write(fd, b'E\\tsetup failed\\n')\n"
             "    except OSError:\n        pass\n")
    assert hostile(sandbox, crash + "time.sleep(60)") == Verdict(False, f"timeout (wall clock {CFG.wall_timeout_s:g} s)")
    assert hostile(sandbox, crash + "os._exit(70)").passed is False
    where = hostile(sandbox, "import os\nraise RuntimeError(os.environ['HOME'])")  # its working directory
    assert where.reason.startswith("RuntimeError: /") and not Path(where.reason.split(": ", 1)[1]).exists()
