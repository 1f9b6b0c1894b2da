"""The resumable runner: rows as it goes, resume after a kill, skipped tasks, the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from mccom_core.cascade import runner as runner_mod
from mccom_core.cascade.tasks import BenchmarkConfig, Task, build_tasks, save_tasks
from mccom_core.cascade.engine import CORE_BRANCHES, config_hash
from mccom_core.cli import main
from mccom_core.errors import MccomError
from mccom_core.jsonl import JsonlWriter
from mccom_core.provenance import cpu_name
from mccom_core.cascade.policies import sweep
from mccom_core.cascade.runner import read_results, run_benchmark, select_tasks
from tests.test_engine import TINY, pair, write_repo  # noqa: F401  (pair is a fixture)


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """Task file of a tiny repository: 3 line + 3 stmt tasks, a malformed line, a stale task."""
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    root = write_repo(tmp_path / "repo")
    tasks = []
    for kind in ("line", "stmt"):
        tasks += build_tasks(str(root), BenchmarkConfig(kind=kind, tasks_per_repo=3)).tasks
    stale = replace(tasks[-1], task_id="repo/stmt/stale", file_sha256="0" * 64)
    path = save_tasks(tasks + [stale], tmp_path / "tasks.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"task_id": "broken"}\n')
    return path, tasks


def keys(path):
    df = read_results(path)
    return sorted(zip(df["task_id"], df["branch"], df["config_hash"]))


def task(task_id, kind, repo):
    return Task(task_id, kind, repo, "h", "f.py", "s", 1, 1, 1, 0, 0, "x", 1, 1)


def test_select_tasks_round_robin_per_kind():
    tasks = [task(f"{r}/{k}/{i}", k, r) for r in ("a", "b") for k in ("line", "stmt") for i in range(3)]
    picked = [t.task_id for t in select_tasks(tasks, limit=3)]
    assert picked == ["a/line/0", "a/stmt/0", "b/line/0", "b/stmt/0", "a/line/1", "a/stmt/1"]
    more = [t.task_id for t in select_tasks(tasks, limit=5)]
    assert [i for i in more if i in picked] == picked  # a larger limit extends, per kind, in order
    assert sum("/line/" in i for i in more) == sum("/stmt/" in i for i in more) == 5
    assert [t.task_id for t in select_tasks(tasks, kind="stmt", limit=2)] == ["a/stmt/0", "b/stmt/0"]
    assert len(select_tasks(tasks)) == 12
    with pytest.raises(MccomError, match="limit"):
        select_tasks(tasks, limit=0)


def test_end_to_end_rows_skips_and_sweep(bench, pair, tmp_path):
    path, tasks = bench
    slm, llm = pair
    out = tmp_path / "results.jsonl"
    report = run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False)
    skipped = dict(report.skipped)
    # The malformed line and the task whose file changed are reported, never fatal.
    assert len(skipped) == 2
    assert "missing fields" in skipped[f"{path}:{len(tasks) + 2}"]
    assert "differs from the file the task was built from" in skipped["repo/stmt/stale"]
    assert report.tasks == len(tasks) + 1 and report.rows_written == 3 * len(tasks) == 18
    df = read_results(out)
    assert sorted(set(df["task_id"])) == sorted(t.task_id for t in tasks)
    assert df.groupby("task_id")["branch"].apply(lambda b: tuple(b) == CORE_BRANCHES).all()
    first = df.iloc[0]
    assert first["config_hash"] == config_hash(TINY) and first["slm_spec"] == "tiny-slm"
    assert first["config"]["max_left_tokens"] == 128 and first["device"] == "cpu"
    assert set(first["versions"]) >= {"python", "torch", "transformers", "mccom-workbench"}
    assert (df["load_average"] >= 0).all()  # how busy the machine was when each row's timings were taken
    assert (df["cpu"] == cpu_name()).all() and cpu_name().endswith(" cores")
    frame = sweep(df, [0.0, 0.5, 1.0])
    assert (frame["n"] == len(tasks)).all()
    assert frame[frame["policy"] == "always-llm"]["llm_share"].eq(1.0).all()
    # A finished run computes nothing and needs no model.
    again = run_benchmark(path, out, TINY, progress=False)
    assert again.rows_written == 0 and again.rows_existing == len(df)


def test_resume_after_a_kill(bench, pair, tmp_path, monkeypatch):
    path, _ = bench
    slm, llm = pair
    clean = tmp_path / "clean.jsonl"
    run_benchmark(path, clean, TINY, slm=slm, llm=llm, progress=False, limit=2, kind="stmt")

    out = tmp_path / "killed.jsonl"
    real_write, calls = JsonlWriter.write, []

    def dying_write(self, row):
        if len(calls) == 4:  # task 1's three rows and task 2's SLM row are stored, then it dies
            raise KeyboardInterrupt
        calls.append(row["branch"])
        real_write(self, row)

    monkeypatch.setattr(JsonlWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False, limit=2, kind="stmt")
    monkeypatch.setattr(JsonlWriter, "write", real_write)
    assert len(read_results(out)) == 4
    with open(out, "a", encoding="utf-8") as fh:  # and a half-written row, cut by the kill
        fh.write('{"task_id": "repo/line/00')

    report = run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False, limit=2, kind="stmt")
    assert report.dropped_partial_line and report.rows_existing == 4
    assert len(keys(clean)) == 6 and keys(out) == keys(clean) and len(set(keys(out))) == 6
    assert report.rows_written == 2  # task 2's LLM branches, its stored SLM row reused
    lines = out.read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) == len(keys(clean))
    resumed = read_results(out).set_index(["task_id", "branch"])["prediction"]
    assert resumed.sort_index().equals(read_results(clean).set_index(["task_id", "branch"])["prediction"].sort_index())


def test_other_config_rows_are_kept_apart(bench, pair, tmp_path):
    path, _ = bench
    slm, llm = pair
    out = tmp_path / "results.jsonl"
    run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False, limit=1, kind="stmt")
    other = replace(TINY, max_stmt_tokens=4)
    report = run_benchmark(path, out, other, slm=slm, llm=llm, progress=False, limit=1, kind="stmt")
    assert report.rows_existing == 0 and report.rows_written == 3
    assert len(read_results(out)) == 6 and len(read_results(out, config_hash(other))) == 3
    # Adding an ablation to a finished run computes only its branches.
    more = run_benchmark(path, out, TINY.with_ablations("repocoder"), slm=slm, llm=llm,
                         progress=False, limit=1, kind="stmt")
    assert (more.rows_existing, more.rows_written) == (3, 1)
    with pytest.raises(MccomError, match="config.slm"):
        run_benchmark(path, tmp_path / "x.jsonl", replace(TINY, slm="other"), slm=slm, llm=llm, progress=False)


def test_cli_run_builds_the_config(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_run(tasks, out, config, **kw):
        seen.update(tasks=tasks, out=out, config=config, **kw)
        return runner_mod.RunReport(tmp_path / "r.jsonl", "abc", 2, 6, 0, (("t9", "bad"),), 1.0)

    monkeypatch.setattr(runner_mod, "run_benchmark", fake_run)
    code = main(["bench", "run", "--tasks", "t.jsonl", "--out", "r.jsonl", "--limit", "2", "--kind", "line",
                 "--device", "cpu", "--ablation", "no-drafting", "--no-warm", "--quiet"])
    assert code == 0
    config = seen["config"]
    assert (seen["limit"], seen["kind"], seen["device"], seen["progress"]) == (2, "line", "cpu", False)
    assert config.branches == ("slm", "llm", "llm_rejected", "slm_nodraft", "llm_nodraft", "llm_rejected_nodraft")
    assert config.warm is False and asdict(config)["slm"] == "qwen2.5-coder-0.5b"
    captured = capsys.readouterr()
    assert "skipped t9: bad" in captured.err and "6 rows written" in captured.out


def test_models_are_warmed_up_once_before_the_first_timed_branch(bench, pair, tmp_path, monkeypatch):
    """The first forward after a load pages the weights in (25.8 s against 13.0 s for the 1.5B
    here): each run warms both models, untimed, before it times the first branch."""
    from mccom_core.lm import models

    path, tasks = bench
    events = []
    real_warm, real_write = models.warm_up, JsonlWriter.write
    monkeypatch.setattr(models, "warm_up", lambda lm, **kw: (events.append(("warm", lm.spec)), real_warm(lm, **kw)))
    monkeypatch.setattr(JsonlWriter, "write",
                        lambda self, row: (events.append(("row", row["branch"])), real_write(self, row)))
    run_benchmark(path, tmp_path / "r.jsonl", TINY, slm=pair[0], llm=pair[1], progress=False)
    assert events[:2] == [("warm", "tiny-slm"), ("warm", "tiny-llm")]
    assert [e for e in events[2:] if e[0] == "warm"] == [] and len(events) == 2 + 3 * len(tasks)


def test_seed_rows_count_as_done_and_are_never_written(bench, pair, tmp_path):
    """Rows in a seed file (e.g. the committed rows) are not rerun; only the missing tasks run,
    appended to ``out``; the seed file is left byte for byte as it was."""
    (path, _), (slm, llm) = bench, pair
    seed = tmp_path / "committed.jsonl"
    run_benchmark(path, seed, TINY, slm=slm, llm=llm, progress=False, limit=1, kind="stmt")
    before = seed.read_bytes()
    out = tmp_path / "build" / "new.jsonl"
    report = run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False, limit=1, kind="stmt", seed=[seed])
    assert report.rows_written == 0 and not out.exists()
    report = run_benchmark(path, out, TINY, slm=slm, llm=llm, progress=False, limit=2, kind="stmt", seed=[seed])
    assert report.rows_existing == len(TINY.branches) and report.rows_written == len(TINY.branches)
    assert seed.read_bytes() == before
    assert set(keys(out)).isdisjoint(keys(seed))
    assert len({k[0] for k in keys(out) + keys(seed)}) == 2  # two stmt tasks in all, each run once


def test_seed_rows_of_a_config_differing_only_in_round2_feed_its_round2_branch(bench, pair, tmp_path):
    """A config that changes only round-2 options reuses the seed's SLM (and round-1) rows of
    another config: only its round-2 branch runs, and its rows equal a run from scratch."""
    from mccom_core.cascade.engine import branch_hash

    (path, _), (slm, llm) = bench, pair
    seed = tmp_path / "committed.jsonl"
    run_benchmark(path, seed, TINY, slm=slm, llm=llm, progress=False, limit=1, kind="line")
    variant = replace(TINY, retrieval=replace(TINY.retrieval, round2_query="around", fusion_schedule="square"))
    data, base = asdict(variant), asdict(TINY)
    assert branch_hash(data, "slm") == branch_hash(base, "slm") and branch_hash(data, "llm") == branch_hash(base, "llm")
    assert branch_hash(data, "llm_rejected") != branch_hash(base, "llm_rejected")
    out = tmp_path / "variant.jsonl"
    report = run_benchmark(path, out, variant, slm=slm, llm=llm, progress=False, limit=1, kind="line", seed=[seed])
    assert report.rows_existing == 2 and report.rows_written == 1
    assert [(k[1], k[2]) for k in keys(out)] == [("llm_rejected", config_hash(variant))]
    fresh = tmp_path / "fresh.jsonl"
    run_benchmark(path, fresh, variant, slm=slm, llm=llm, progress=False, limit=1, kind="line")
    cols = ["task_id", "prediction", "token_ids", "confidence", "retrieved_windows", "retrieved_tokens"]
    reused = read_results(out)[cols]
    scratch = read_results(fresh)
    assert reused.to_dict("records") == scratch[scratch["branch"] == "llm_rejected"][cols].to_dict("records")
    # Read for the variant, the seed's SLM and round-1 rows hold for it: a whole run's rows.
    held = read_results(seed, config=variant)
    assert sorted(held["branch"]) == ["llm", "slm"] and set(held["config_hash"]) == {config_hash(TINY)}
    # A change a round-1 branch can see (the filter) reuses nothing.
    other = replace(TINY, retrieval=replace(TINY.retrieval, exclude_visible="span"))
    report = run_benchmark(path, tmp_path / "other.jsonl", other, slm=slm, llm=llm, progress=False, limit=1,
                           kind="line", seed=[seed])
    assert report.rows_existing == 0 and report.rows_written == 3
