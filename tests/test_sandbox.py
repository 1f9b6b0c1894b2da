"""The sandbox contains hostile code: each snippet fails with its reason, the host is untouched."""

from __future__ import annotations

import os
import socket
import time

import pytest

from mccom_core.ladder.sandbox import Job, Sandbox, SandboxConfig, Verdict, pair_key, run_tests

SOLUTION = "def add(a, b):\n    return a + b\n"
GOOD = "assert add(1, 2) == 3"
CFG = SandboxConfig(timeout_s=1.0, max_timeouts=None, use_cache=False)


@pytest.fixture(scope="module")
def sandbox():
    os.environ["MCCOM_TEST_SECRET"] = "hunter2"  # must not reach the child
    with Sandbox(CFG) as sb:
        yield sb
    os.environ.pop("MCCOM_TEST_SECRET", None)


def run_one(sb: Sandbox, snippet: str) -> list[Verdict]:
    """The hostile snippet, then a good test: the second verdict shows the job recovered."""
    return sb.run([Job(SOLUTION, (snippet, GOOD))])[0]


def test_passing_and_failing_tests(sandbox):
    verdicts = sandbox.run([Job(SOLUTION, (GOOD, "assert add(1, 2) == 4", "assert add(1) == 1"))])[0]
    assert verdicts == [
        Verdict(True, "passed"),
        Verdict(False, "AssertionError"),
        Verdict(False, "TypeError: add() missing 1 required positional argument: 'b'"),
    ]


def test_setup_failure_fails_every_test(sandbox):
    verdicts = sandbox.run([Job("def add(a, b)\n    return a", (GOOD, GOOD + " "))])[0]
    assert [v.passed for v in verdicts] == [False, False]
    assert all(v.reason.startswith("setup: SyntaxError") for v in verdicts)


def test_tests_do_not_share_state(sandbox):
    verdicts = sandbox.run([Job("x = 1\n", ("x = 2\nassert x == 2", "assert x == 1"))])[0]
    assert verdicts == [Verdict(True, "passed"), Verdict(True, "passed")]


def test_infinite_loop_times_out_within_the_limit(sandbox):
    start = time.monotonic()
    verdicts = run_one(sandbox, "while True:\n    pass")
    assert verdicts == [Verdict(False, "timeout"), Verdict(True, "passed")]
    assert time.monotonic() - start < CFG.timeout_s + 2.0


def test_loop_that_swallows_the_alarm_is_killed_by_the_watchdog(sandbox):
    snippet = "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass"
    verdicts = run_one(sandbox, snippet)
    assert verdicts == [Verdict(False, "timeout"), Verdict(True, "passed")]


def test_fork_bomb_cannot_fork(sandbox):
    verdicts = run_one(sandbox, "import os\nwhile True:\n    os.fork()")
    assert verdicts[0] == Verdict(False, "TypeError: 'NoneType' object is not callable")
    verdicts = run_one(sandbox, "import posix\nwhile True:\n    posix.fork()")
    assert verdicts == [Verdict(False, "blocked: os.fork"), Verdict(True, "passed")]


def test_memory_bomb_gets_memory_error(sandbox):
    verdicts = run_one(sandbox, "x = bytearray(16 * 2**30)")
    assert verdicts == [Verdict(False, "MemoryError"), Verdict(True, "passed")]


def test_deep_recursion(sandbox):
    verdicts = run_one(sandbox, "def f(n):\n    return f(n + 1)\nf(0)")
    assert verdicts[0] == Verdict(False, "RecursionError: maximum recursion depth exceeded")
    crash = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)"
    verdicts = run_one(sandbox, crash)
    # Python 3.11 recursion lives on the heap: it ends by timeout, memory or a crash.
    assert verdicts[0].passed is False
    assert verdicts[0].reason.split(" (")[0] in {"timeout", "MemoryError", "killed by SIGSEGV"}
    assert verdicts[1] == Verdict(True, "passed")


def test_cannot_write_or_delete_files_outside_its_dir(sandbox, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "new.txt"
    snippets = {
        f"open({str(target)!r}, 'w').write('x')": f"blocked: open({str(target)!r}, 'w')",
        f"import posix\nposix.unlink({str(victim)!r})": f"blocked: os.remove({str(victim)!r})",
        f"import posix\nposix.rename({str(victim)!r}, {str(target)!r})": f"blocked: os.rename({str(victim)!r})",
        f"import os\nos.remove({str(victim)!r})": "TypeError: 'NoneType' object is not callable",
        "open('inside.txt', 'w').write('fine')\nassert open('inside.txt').read() == 'fine'": "passed",
    }
    for snippet, reason in snippets.items():
        assert run_one(sandbox, snippet) == [Verdict(reason == "passed", reason), Verdict(True, "passed")]
    assert victim.read_text() == "keep me"
    assert not target.exists()


def test_environment_is_scrubbed(sandbox):
    assert os.environ["MCCOM_TEST_SECRET"] == "hunter2"
    verdicts = run_one(sandbox, "import os\nassert 'MCCOM_TEST_SECRET' not in os.environ\n"
                                "assert sorted(os.environ) == ['HOME', 'LANG', 'OMP_NUM_THREADS', 'PATH', 'TMPDIR']")
    assert verdicts == [Verdict(True, "passed"), Verdict(True, "passed")]
    if os.getuid() == 0:  # dropped to nobody: the host's environment block is unreadable
        verdicts = run_one(sandbox, f"open('/proc/{os.getpid()}/environ').read()")
        assert verdicts[0].passed is False and verdicts[0].reason.startswith("PermissionError")


def test_cannot_open_a_socket_to_a_local_port(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        verdicts = run_one(sandbox, f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))")
        assert verdicts == [Verdict(False, "blocked: socket.__new__"), Verdict(True, "passed")]
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_os_exit_and_sys_exit(sandbox):
    assert run_one(sandbox, "import os\nos._exit(3)") == [
        Verdict(False, "child exited with code 3"), Verdict(True, "passed")]
    assert run_one(sandbox, "import sys\nsys.exit(0)") == [
        Verdict(False, "SystemExit: 0"), Verdict(True, "passed")]
    assert run_one(sandbox, "exit()") == [
        Verdict(False, "TypeError: 'NoneType' object is not callable"), Verdict(True, "passed")]


def test_printing_gigabytes_hits_the_output_cap(sandbox, capfd):
    start = time.monotonic()
    verdicts = run_one(sandbox, "import sys\nfor _ in range(5000):\n    sys.stdout.write('x' * 10**6)")
    assert verdicts == [Verdict(False, "OSError: [Errno 27] File too large"), Verdict(True, "passed")]
    assert time.monotonic() - start < 5
    out, err = capfd.readouterr()
    assert "xxxx" not in out and "xxxx" not in err


def test_timeout_budget_skips_the_rest_of_a_hanging_solution(tmp_path):
    cfg = SandboxConfig(timeout_s=0.5, max_timeouts=2, use_cache=False)
    hang = "def f():\n    while True: pass\n"
    verdicts = run_tests(hang, ["f()", "f() or 1", "assert True", "f() or 2"], cfg)
    assert verdicts == [Verdict(False, "timeout"), Verdict(False, "timeout"),
                        Verdict(False, "skipped: 2 earlier tests timed out"),
                        Verdict(False, "skipped: 2 earlier tests timed out")]


def test_cache_answers_without_executing(tmp_path):
    cfg = SandboxConfig(timeout_s=1.0)
    jobs = [Job(SOLUTION, (GOOD, "assert add(2, 2) == 5")), Job("def add(a, b):\n    return 0\n", (GOOD,))]
    with Sandbox(cfg, cache_path=tmp_path / "v.sqlite") as sb:
        first = sb.run(jobs)
        assert sb.executed_pairs == 3
    with Sandbox(cfg, cache_path=tmp_path / "v.sqlite") as sb:
        assert sb.run(jobs) == first
        assert sb.executed_pairs == 0
        assert len(sb.cache) == 3
    assert first == [[Verdict(True, "passed"), Verdict(False, "AssertionError")], [Verdict(False, "AssertionError")]]
    assert pair_key(SOLUTION, GOOD, cfg) != pair_key(SOLUTION, GOOD, SandboxConfig(timeout_s=2.0))
