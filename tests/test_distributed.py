"""Sharding over a real local Ray cluster: sharded rows equal serial rows, a killed worker's job
runs exactly once, a killed driver resumes from the file. Tiny random models saved as checkpoint
folders, so workers load them by spec exactly as the serial run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from mccom_core.cascade.runner import read_results, run_benchmark
from mccom_core.cascade.snapshots import materialize
from mccom_core.cli import main
from mccom_core.errors import MccomError
from mccom_core.jsonl import JsonlWriter, read_jsonl
from mccom_core.lm.distributed import ClusterConfig, cluster_config, shard
from tests.test_engine import TINY, pair  # noqa: F401  (pair is a fixture)
from tests.test_runner import bench  # noqa: F401  (a fixture)

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
# What differs between two runs of the same rows: when, where, and how long.
VOLATILE = {"written_at", "load_average", "host", "seconds"}


def stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE and not k.endswith("_ms")}


def by_key(path) -> dict:
    rows = read_jsonl(path)
    keyed = {(r["task_id"], r["branch"]): stable(r) for r in rows}
    assert len(keyed) == len(rows), "a (task, branch) row was written twice"
    return keyed


# --- bad input, and no Ray without workers (before the cluster fixture starts one) ----------


def test_bad_workers_and_addresses_are_one_clear_error(tmp_path, capsys):
    for workers in (0, -2):
        with pytest.raises(MccomError, match="workers must be a whole number >= 1"):
            ClusterConfig(workers=workers)
    assert cluster_config(None) is None and cluster_config(2, "auto") == ClusterConfig(2, "auto")
    with pytest.raises(MccomError, match="needs --workers"):
        cluster_config(None, "auto")
    assert not ray.is_initialized()
    with pytest.raises(MccomError, match="cannot reach a Ray cluster at 127.0.0.1:9 .*ray start --head"):
        shard(ClusterConfig(1, address="127.0.0.1:9"), int, [1], print)
    assert main(["bench", "run", "--out", str(tmp_path / "o.jsonl"), "--workers", "0"]) == 1
    assert "workers must be a whole number >= 1" in capsys.readouterr().err
    assert main(["ladder", "live", "--out", str(tmp_path / "o"), "--ray-address", "auto"]) == 1
    assert "needs --workers" in capsys.readouterr().err


def test_a_serial_run_never_imports_ray():
    code = ("import sys; from mccom_core.cli import build_parser; import mccom_core.cascade.runner, "
            "mccom_core.ladder.live; build_parser().parse_args(['bench', 'run', '--out', 'x']); "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# --- a real local cluster ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """2 CPUs, 2 workers of 1 thread; the workers import tests.* and share one cache dir."""
    cache = tmp_path_factory.mktemp("ray-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "MCCOM_CACHE_DIR": str(cache)}})
    yield ClusterConfig(workers=2)
    ray.shutdown()


@pytest.fixture
def one_thread():
    """The serial run on the workers' thread count, so float sums are done in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Squarer:
    """A job function whose worker kills itself (SIGKILL) on job 3, the first time only."""

    def __init__(self, marker: str):
        self.marker = Path(marker)

    def __call__(self, job: int):
        if job == 3 and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return job * job, torch.get_num_threads()


def failing_setup():
    raise MccomError("unknown model spec 'nope': use a registry name")


def test_shard_retries_a_killed_workers_job_once(cluster, tmp_path):
    got = []
    report = shard(cluster, partial(Squarer, str(tmp_path / "killed")), range(8),
                   lambda job, result: got.append((job, *result)))
    assert (tmp_path / "killed").exists() and report.retried == 1 and report.workers_started == 3
    assert sorted(got) == [(j, j * j, 1) for j in range(8)]  # every job once, torch on 1 thread each
    assert report.jobs == 8 and report.threads == 1
    with pytest.raises(MccomError, match="unknown model spec 'nope'"):
        shard(cluster, failing_setup, [1], print)


@pytest.fixture
def specs(pair, tmp_path):
    """The tiny pair saved as checkpoint folders: model specs that workers load by path."""
    names = []
    for lm in pair:
        folder = tmp_path / lm.spec
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)
        names.append(str(folder))
    return replace(TINY, slm=names[0], llm=names[1])


def test_sharded_rows_equal_serial_rows(bench, specs, cluster, one_thread, tmp_path):  # noqa: F811
    path, tasks = bench
    serial = run_benchmark(path, tmp_path / "serial.jsonl", specs, device="cpu", progress=False)
    sharded = run_benchmark(path, tmp_path / "sharded.jsonl", specs, device="cpu", progress=False, cluster=cluster)
    assert sharded.rows_written == serial.rows_written == 3 * len(tasks) == 18
    assert sorted(sharded.skipped) == sorted(serial.skipped) and len(serial.skipped) == 2
    assert by_key(tmp_path / "sharded.jsonl") == by_key(tmp_path / "serial.jsonl")
    hosts = set(read_results(tmp_path / "sharded.jsonl")["host"])
    assert len(hosts) == 1 and (read_results(tmp_path / "sharded.jsonl")["torch_threads"] == 1).all()
    again = run_benchmark(path, tmp_path / "sharded.jsonl", specs, device="cpu", progress=False, cluster=cluster)
    assert again.rows_written == 0 and again.rows_existing == 18  # resumes like a serial file


def dying_snapshot(marker: str, repo: str, repo_hash: str):
    """materialize, but the first call anywhere kills its worker (SIGKILL) mid-task."""
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return materialize(repo, repo_hash)


def test_a_killed_workers_task_completes_exactly_once(bench, specs, cluster, one_thread, tmp_path):  # noqa: F811
    path, _ = bench
    run_benchmark(path, tmp_path / "serial.jsonl", specs, device="cpu", progress=False, kind="stmt")
    marker = tmp_path / "killed"
    report = run_benchmark(path, tmp_path / "sharded.jsonl", specs, device="cpu", progress=False, kind="stmt",
                           cluster=cluster, snapshot=partial(dying_snapshot, str(marker)))
    assert marker.exists() and report.rows_written == 9
    assert by_key(tmp_path / "sharded.jsonl") == by_key(tmp_path / "serial.jsonl")
    assert len((tmp_path / "sharded.jsonl").read_text().splitlines()) == 9


def test_resume_after_the_driver_is_killed(bench, specs, cluster, one_thread, tmp_path, monkeypatch):  # noqa: F811
    path, _ = bench
    run_benchmark(path, tmp_path / "serial.jsonl", specs, device="cpu", progress=False)
    out, real_write, calls = tmp_path / "sharded.jsonl", JsonlWriter.write, []

    def dying_write(self, row):
        if len(calls) == 4:  # one task's three rows and another's SLM row are stored, then it dies
            raise KeyboardInterrupt
        calls.append(row["branch"])
        real_write(self, row)

    monkeypatch.setattr(JsonlWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(path, out, specs, device="cpu", progress=False, cluster=cluster)
    monkeypatch.setattr(JsonlWriter, "write", real_write)
    with open(out, "a", encoding="utf-8") as fh:  # and a row cut in half by the kill
        fh.write('{"task_id": "repo/line/00')
    report = run_benchmark(path, out, specs, device="cpu", progress=False, cluster=cluster)
    assert report.dropped_partial_line and report.rows_existing == 4 and report.rows_written == 14
    assert by_key(out) == by_key(tmp_path / "serial.jsonl")
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_sharded_live_chunks_equal_serial_chunks(cluster, one_thread, tmp_path):
    from mccom_core.ladder.live import generate_model, load_benchmark
    from tests.test_ladder_live import CONFIG, tiny_loaded

    config = replace(CONFIG, chunk=1, threads=1)
    problems = load_benchmark(config)
    serial, _ = generate_model(tiny_loaded("tiny-a"), "tiny-a", problems, config, partial=tmp_path / "s.jsonl")
    sharded, timing = generate_model(None, "tiny-a", problems, config, partial=tmp_path / "p.jsonl",
                                     cluster=cluster, loader=tiny_loaded)
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(sharded, serial)
    chunks = [stable(r) for r in read_jsonl(tmp_path / "p.jsonl")]
    assert len(chunks) == timing["chunks"] == 4 and timing["chunks_reused"] == 0
    assert sorted(map(json.dumps, chunks)) == sorted(json.dumps(stable(r)) for r in read_jsonl(tmp_path / "s.jsonl"))
    again, timing = generate_model(None, "tiny-a", problems, config, partial=tmp_path / "p.jsonl",
                                   cluster=cluster, loader=tiny_loaded)
    assert timing["chunks_reused"] == 4 and again.equals(serial)  # resumed: nothing sent to the cluster
