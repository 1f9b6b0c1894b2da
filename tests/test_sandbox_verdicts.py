"""Verdicts that do not depend on context: per-test timeouts, CPU time, cache keys, hidden-test jobs.

Tiny hand-written solutions pin each rule of issue 23, item 2.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pandas as pd

from mccom_core.ladder import sandbox as sandbox_module
from mccom_core.ladder.data import Generations, Problem
from mccom_core.ladder.replay import ReplayConfig, build_jobs, execute
from mccom_core.ladder.sandbox import Job, Sandbox, SandboxConfig, Verdict, pair_key, run_tests

PASSED = Verdict(True, "passed")
HANG = "def f():\n    while True:\n        pass\n"
FAST = SandboxConfig(timeout_s=0.3, setup_timeout_s=0.5, wall_timeout_s=3.0, use_cache=False)


def test_a_timed_out_test_does_not_skip_the_rest():
    verdicts = run_tests(HANG, ["f()", "assert True", "f() or 1", "assert 1 + 1 == 2"], FAST)
    assert verdicts == [Verdict(False, "timeout"), PASSED, Verdict(False, "timeout"), PASSED]


def test_skips_of_the_optional_timeout_budget_are_never_cached(tmp_path):
    cfg = SandboxConfig(timeout_s=0.3, setup_timeout_s=0.5, wall_timeout_s=3.0, max_timeouts=1)
    tests = ("f()", "assert True")
    with Sandbox(cfg, cache_path=tmp_path / "v.sqlite") as sb:
        assert sb.run([Job(HANG, tests)])[0] == [Verdict(False, "timeout"),
                                                 Verdict(False, "skipped: 1 earlier tests timed out")]
        assert len(sb.cache) == 1  # the timeout, not the skip
    with Sandbox(SandboxConfig(timeout_s=0.3, setup_timeout_s=0.5, wall_timeout_s=3.0),
                 cache_path=tmp_path / "v.sqlite") as sb:
        assert sb.run([Job(HANG, ("assert True",))])[0] == [PASSED]
        assert sb.executed_pairs == 1  # the skip left nothing behind to be misread


def test_timeouts_are_cpu_time_not_wall_clock():
    # sleeping uses no CPU: a 0.3 s CPU limit passes a 0.8 s sleep, as any load would
    assert run_tests("import time\n", ["time.sleep(0.8)"], FAST) == [PASSED]
    # ~0.1 s of CPU passes under a 0.3 s limit while three busy processes compete for 2 cores
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.1:\n    pass\n"
    hogs = [multiprocessing.Process(target=_spin, args=(3.0,)) for _ in range(3)]
    for h in hogs:
        h.start()
    try:
        assert run_tests(burn, ["assert True"] * 3, FAST) == [PASSED] * 3
    finally:
        for h in hogs:
            h.terminate()
            h.join()


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_wall_clock_kills_and_sandbox_errors_are_not_cached(tmp_path):
    cfg = SandboxConfig(timeout_s=0.3, setup_timeout_s=0.5, wall_timeout_s=0.5)
    with Sandbox(cfg, cache_path=tmp_path / "v.sqlite") as sb:
        assert sb.run([Job("import time\n", ("time.sleep(5)", "assert True"))])[0] == [
            Verdict(False, "timeout (wall clock 0.5 s)"), PASSED]
        assert len(sb.cache) == 1


def test_a_failing_fork_server_costs_only_its_job_and_is_not_cached(tmp_path, monkeypatch):
    real = sandbox_module._read_line
    calls = []

    def flaky(fd, timeout_s):
        calls.append(fd)
        if len(calls) == 1:
            raise TimeoutError("no answer from the fork server in 1 s")
        return real(fd, timeout_s)

    monkeypatch.setattr(sandbox_module, "_read_line", flaky)
    cfg = SandboxConfig(max_workers=1)
    with Sandbox(cfg, cache_path=tmp_path / "v.sqlite") as sb:
        first, second = sb.run([Job("x = 1\n", ("assert x == 1",)), Job("y = 2\n", ("assert y == 2",))])
        assert first == [Verdict(False, "sandbox error: TimeoutError: no answer from the fork server in 1 s")]
        assert second == [PASSED]
        assert len(sb.cache) == 1
        assert sb.run([Job("x = 1\n", ("assert x == 1",))])[0] == [PASSED]  # retried, not read back


def test_cache_key_holds_every_limit_and_a_version(tmp_path, monkeypatch):
    base = SandboxConfig()
    key = pair_key("x = 1", "assert x", base)
    for changed in (SandboxConfig(timeout_s=2.0), SandboxConfig(setup_timeout_s=1.0),
                    SandboxConfig(wall_timeout_s=3.0), SandboxConfig(memory_bytes=1 << 30),
                    SandboxConfig(output_bytes=1 << 10), SandboxConfig(drop_privileges=False)):
        assert pair_key("x = 1", "assert x", changed) != key
    for same in (SandboxConfig(max_workers=1), SandboxConfig(use_cache=False), SandboxConfig(max_timeouts=3)):
        assert pair_key("x = 1", "assert x", same) == key
    monkeypatch.setattr(sandbox_module, "KEY_VERSION", "sandbox-v3")
    assert pair_key("x = 1", "assert x", base) != key


def test_verdicts_stored_under_the_old_key_format_are_ignored(tmp_path):
    """A cache written before keys carried a version: its (wrong) verdict is never read."""
    import hashlib
    import json
    from dataclasses import asdict

    old_cfg = {k: v for k, v in asdict(SandboxConfig()).items() if k not in ("max_workers", "use_cache")}
    h = hashlib.blake2b(digest_size=16)
    for part in (json.dumps(old_cfg, sort_keys=True), "x = 1\n", "assert x == 1"):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    path = tmp_path / "v.sqlite"
    with Sandbox(SandboxConfig(), cache_path=path):
        pass  # creates the table
    db = sqlite3.connect(path)
    db.execute("INSERT INTO verdict VALUES (?, ?, ?)", (h.digest(), 0, "skipped: 1 earlier tests timed out"))
    db.commit()
    db.close()
    with Sandbox(SandboxConfig(), cache_path=path) as sb:
        assert sb.run([Job("x = 1\n", ("assert x == 1",))])[0] == [PASSED]
        assert sb.executed_pairs == 1


def test_hidden_test_runs_in_its_own_job_and_cannot_touch_self_test_verdicts():
    # the hidden test hangs; the self-tests must still get their own verdicts
    problem = Problem(0, "Toy/0", "def f(x):\n", "f",
                      "def check(candidate):\n    while True:\n        pass\n")
    frame = pd.DataFrame([("S", 0, 0, 0, "def f(x):\n    return x + 1\n", 10,
                           "assert f(1) == 2\nassert f(2) == 0", 4, 4)],
                         columns=["model", "run", "number", "sample", "answer", "answer_tokens", "tests",
                                  "test_tokens_2", "test_tokens_4"])
    gens = Generations({0: problem}, frame, ("S",))
    jobs, owners = build_jobs(gens, k_max=2, l_max=2)
    assert [o[-1] for o in owners] == ["hidden", "self"]
    assert jobs[0].tests == (problem.hidden_test(),)
    assert jobs[1].tests == ("assert f(1) == 2", "assert f(2) == 0")
    config = ReplayConfig(k_grid=(2,), l_grid=(2,),
                          sandbox=SandboxConfig(timeout_s=0.3, setup_timeout_s=0.5, max_timeouts=1, use_cache=False))
    verdicts = execute(gens, config)[("S", 0, 0)]
    assert verdicts["hidden"] == {0: False} and verdicts["reasons"] == {0: "timeout"}
    assert verdicts["pairs"] == {(0, "assert f(1) == 2"): True, (0, "assert f(2) == 0"): False}
