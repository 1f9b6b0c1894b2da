"""Scaling of ``mccom bench run --workers N`` on this machine, and a projection to a cluster.

Runs the same tasks four ways with :func:`mccom_core.cascade.runner.run_benchmark`:

* serial, torch on all cores, and sharded over 1 Ray worker holding all cores;
* serial, torch on 1 thread, and sharded over 2 Ray workers of 1 core (thread) each;

and reports tasks per hour (wall time including worker start and model loads, and the steady
rate between the first and last task written), worker-seconds per task, and whether the
sharded rows equal the serial rows of the same thread count, row for row (timings, written_at,
load_average and host left out; float sums depend on the thread count, so only equal thread
counts are compared). The tasks are line and statement tasks built from a frozen copy of this
project's own ``mccom_core/retrieval`` and ``mccom_core/cascade`` sources.

The models are **tiny random Qwen2 models** (``--hidden``, ``--layers``) saved as checkpoint
folders, not the real Qwen 0.5B/1.5B: a real task costs about 65 s here (see
``benchmarks/results/reproduce_paper.md``), 4 x 10 tasks of them would not fit the session. The
projection of the 600-task run uses that real per-task time and this table's measured 2-worker
efficiency, and says so: it is an estimate, not a measurement. Run it alone on the machine::

    .venv/bin/python benchmarks/ray_scaling.py --per-kind 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mccom_core.cascade.engine import CascadeConfig  # noqa: E402
from mccom_core.cascade.runner import run_benchmark  # noqa: E402
from mccom_core.cascade.tasks import BenchmarkConfig, build_tasks, save_tasks  # noqa: E402
from mccom_core.jsonl import read_jsonl  # noqa: E402
from mccom_core.lm.distributed import ClusterConfig  # noqa: E402
from mccom_core.provenance import cpu_name, package_versions  # noqa: E402

VOLATILE = {"written_at", "load_average", "host"}


def stable_rows(path: Path) -> dict:
    rows = read_jsonl(path)
    keyed = {(r["task_id"], r["branch"]): {k: v for k, v in r.items() if k not in VOLATILE and not k.endswith("_ms")}
             for r in rows}
    assert len(keyed) == len(rows), f"{path}: a (task, branch) row was written twice"
    return keyed


def tiny_models(work: Path, hidden: int, layers: tuple[int, int]) -> tuple[str, str]:
    """Two random Qwen2 checkpoints (SLM, LLM) sharing the tests' offline byte-level tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.conftest import build_tiny_tokenizer

    tok, specs = build_tiny_tokenizer(), []
    for seed, (name, n_layers) in enumerate(zip(("tiny-slm", "tiny-llm"), layers)):
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                             num_hidden_layers=n_layers, num_attention_heads=8, num_key_value_heads=2,
                             max_position_embeddings=4096, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
        folder = work / name
        Qwen2ForCausalLM(config).eval().save_pretrained(folder)
        tok.save_pretrained(folder)
        specs.append(str(folder))
    return specs[0], specs[1]


def tasks_file(work: Path, per_kind: int) -> tuple[Path, int]:
    repo = work / "repo"
    for sub in ("retrieval", "cascade"):
        shutil.copytree(ROOT / "mccom_core" / sub, repo / sub, ignore=shutil.ignore_patterns("__pycache__"))
    tasks = []
    for kind in ("line", "stmt"):
        tasks += build_tasks(str(repo), BenchmarkConfig(kind=kind, tasks_per_repo=per_kind)).tasks
    return save_tasks(tasks, work / "tasks.jsonl"), len(tasks)


def timed(tasks: Path, out: Path, config: CascadeConfig, threads: int, cluster: ClusterConfig | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    report = run_benchmark(tasks, out, config, device="cpu", progress=False, cluster=cluster)
    wall = time.perf_counter() - start
    written = sorted({r["task_id"]: r["written_at"] for r in read_jsonl(out)}.values())
    steady = (len(written) - 1) / (written[-1] - written[0]) * 3600 if len(written) > 1 else float("nan")
    assert not report.skipped, report.skipped
    return {"wall": wall, "tasks": report.tasks, "per_hour": report.tasks / wall * 3600, "steady": steady}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-kind", type=int, default=5, help="line and stmt tasks each (default: 5, 10 tasks)")
    ap.add_argument("--hidden", type=int, default=512, help="tiny models' hidden size (default: 512)")
    ap.add_argument("--layers", type=int, nargs=2, default=(4, 8), help="SLM and LLM layers (default: 4 8)")
    ap.add_argument("--task-seconds", type=float, default=65.0,
                    help="real-model seconds per task for the projection (default: 65, reproduce_paper.md)")
    ap.add_argument("--nodes", type=int, nargs="+", default=(1, 4, 16, 64), help="cluster sizes projected")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="cores per node (default: this machine's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_scaling.md"))
    args = ap.parse_args(argv)

    import ray

    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    os.environ["MCCOM_CACHE_DIR"] = str(work / "cache")  # read by the workers too (inherited)
    try:
        slm, llm = tiny_models(work, args.hidden, tuple(args.layers))
        config = replace(CascadeConfig(), slm=slm, llm=llm)
        tasks, n = tasks_file(work, args.per_kind)
        cores = os.cpu_count()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"MCCOM_CACHE_DIR": str(work / "cache")}})
        runs = {
            "serial, all cores": timed(tasks, work / "serial_all.jsonl", config, cores, None),
            "1 worker, all cores": timed(tasks, work / "w1.jsonl", config, cores, ClusterConfig(workers=1)),
            "serial, 1 thread": timed(tasks, work / "serial_1.jsonl", config, 1, None),
            f"{cores} workers, 1 thread each": timed(tasks, work / "w2.jsonl", config, 1, ClusterConfig(workers=cores)),
        }
        same_1 = stable_rows(work / "w1.jsonl") == stable_rows(work / "serial_all.jsonl")
        same_n = stable_rows(work / "w2.jsonl") == stable_rows(work / "serial_1.jsonl")
        rows_n = len(stable_rows(work / "w2.jsonl"))
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    workers = {"serial, all cores": 1, "1 worker, all cores": 1, "serial, 1 thread": 1}
    lines = [
        "# Ray scaling: `mccom bench run --workers N`",
        "",
        f"**Tiny random models, not the real Qwen 0.5B/1.5B**: Qwen2 with hidden size {args.hidden}, "
        f"{args.layers[0]} (SLM) and {args.layers[1]} (LLM) layers and the tests' 320-token vocabulary, saved "
        "as checkpoint folders and loaded by every worker from its spec, as real models would be. "
        f"{n} tasks (line and stmt, {args.per_kind} each) from a frozen copy of this project's own sources, "
        "all default branches (SLM, LLM direct, LLM after rejection, warm SLM pass).",
        "",
        f"Command: `.venv/bin/python benchmarks/ray_scaling.py --per-kind {args.per_kind} --hidden {args.hidden} "
        f"--layers {args.layers[0]} {args.layers[1]}` on "
        f"{dt.date.today()}, {cpu_name()}, Python {package_versions()['python']}, torch {package_versions()['torch']}, "
        f"ray {ray.__version__}; one local Ray cluster of {cores} CPUs for all sharded runs. 1-minute load "
        f"average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (other work on the machine "
        "slows every run alike only if it is steady: read the speed-up as approximate).",
        "",
        "| run | wall s (incl. worker start, model loads) | tasks/hour (wall) | tasks/hour (steady: first to last task written) | process-s per task (wall x processes / tasks) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in runs.items():
        w = workers.get(name, cores)
        lines.append(f"| {name} | {r['wall']:.1f} | {r['per_hour']:.0f} | {r['steady']:.0f} | {r['wall'] * w / r['tasks']:.2f} |")
    # Start-up (a worker's cluster slot, its model loads) is paid once per run, so a long run's
    # speed is the steady rate: the speed-up is taken there.
    # The baseline is the faster serial run: on a busy machine torch on all cores can spin-wait
    # far below one thread's speed, which would flatter the workers.
    serial = max(runs["serial, all cores"]["steady"], runs["serial, 1 thread"]["steady"])
    efficiency = runs[f"{cores} workers, 1 thread each"]["steady"] / serial
    lines += [
        "",
        f"Sharded rows equal serial rows on the same {n} tasks (timings, written_at, load_average, host left out): "
        f"1 worker vs serial, all cores: **{'yes' if same_1 else 'NO'}**; {cores} workers vs serial, 1 thread: "
        f"**{'yes' if same_n else 'NO'}** ({rows_n} rows).",
        "",
        f"Speed-up of {cores} one-thread workers over the faster serial run: {efficiency:.2f}x "
        "(steady rates; the wall rates of so short a run are dominated by worker start-up).",
        "",
        f"## Projection: the 600-task run with the real models (estimate, not measured)",
        "",
        f"Assumes {args.task_seconds:.0f} s per task on a {args.cores}-core node of this kind (the real pair's "
        "measured mean, `benchmarks/results/reproduce_paper.md`), one node = one Ray node running "
        f"{args.cores} one-thread workers at the speed-up measured above, shards that never wait for each "
        "other, and worker start-up (loading both models, about a minute) paid once per worker. Real models are "
        "memory-bound where these tiny ones are not, so the per-node speed-up of real runs may be lower; node "
        "memory must hold both models per worker (about 8 GB in float32).",
        "",
        "| nodes | hours | node-hours |",
        "| ---: | ---: | ---: |",
    ]
    node_rate = efficiency * 3600 / args.task_seconds  # tasks per hour per node
    for nodes in args.nodes:
        hours = 600 / (nodes * node_rate) + 1 / 60
        lines.append(f"| {nodes} | {hours:.2f} | {hours * nodes:.1f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0 if same_1 and same_n else 1


if __name__ == "__main__":
    raise SystemExit(main())
