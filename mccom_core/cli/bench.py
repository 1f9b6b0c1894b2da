"""``mccom bench``: benchmark commands. ``build`` makes task files; ``run`` runs the cascade
branches on them (:func:`mccom_core.cascade.runner.run_benchmark`). Parsing only: the work is in the
library."""

from __future__ import annotations

import argparse
import sys

from mccom_core.cli._defaults import default
from mccom_core.paths import DEFAULT_TASKS

BENCHMARK = "mccom_core.cascade.tasks:BenchmarkConfig"
CASCADE = "mccom_core.cascade.engine:CascadeConfig"
RUN_BENCHMARK = "mccom_core.cascade.runner:run_benchmark"
CLUSTER = "mccom_core.lm.distributed:ClusterConfig"

BUILD_HELP = ("Build line/stmt completion tasks. Either from a definition file (all its repositories, pinned "
              "and hashed), or from one repository given as NAME==VERSION (a PyPI sdist) or a local directory.")
RUN_HELP = (
    "Run every task through the cascade branches (SLM, LLM direct, LLM after "
    "rejection, plus any ablations) and append one JSONL row per task and branch. "
    "Re-running with the same --out resumes: rows already there are not recomputed."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="build and run completion benchmarks")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    _register_build(sub)
    _register_run(sub)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def _register_build(sub) -> None:
    build = sub.add_parser("build", help="build completion tasks from repositories", description=BUILD_HELP)
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--definition", help="definition JSON (e.g. data/benchmarks/default.json)")
    source.add_argument("--spec", help="one repository: NAME==VERSION or a directory")
    build.add_argument("--repo", action="append", help="with --definition: only this repository "
                       "(name or spec; repeatable)")
    build.add_argument("--out", help="output: a directory (definition) or a .jsonl file (--spec)")
    build.add_argument("--record", action="store_true",
                       help="write observed sha256 and counts back into the definition")
    build.add_argument("--check", action="store_true",
                       help="rebuild into a temporary directory and compare byte for byte with "
                       "the shipped task files; exit 1 on any difference")
    build.add_argument("--kind", default=default(BENCHMARK, "kind"), choices=("line", "stmt"),
                       help="with --spec: task kind (default: %(default)s)")
    build.add_argument("--tasks", type=int, default=default(BENCHMARK, "tasks_per_repo"),
                       help="with --spec: tasks to draw (default: %(default)s)")
    build.add_argument("--seed", type=int, default=default(BENCHMARK, "seed"),
                       help="with --spec: sampling seed (default: %(default)s)")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from mccom_core.cascade import definition as bench_definition
    from mccom_core.cascade.tasks import BenchmarkConfig, build_tasks, save_tasks

    if args.spec:
        if not args.out:
            print("mccom bench build --spec needs --out FILE.jsonl", file=sys.stderr)
            return 2
        config = BenchmarkConfig(kind=args.kind, tasks_per_repo=args.tasks, seed=args.seed)
        result = build_tasks(args.spec, config)
        save_tasks(result.tasks, args.out)
        print(f"{len(result.tasks)} {args.kind} tasks from {result.candidates} candidates "
              f"in {result.files_used} files ({len(result.files_skipped)} skipped) -> {args.out}")
        return 0
    if args.check:
        problems = bench_definition.check_definition(args.definition, only=args.repo)
        for problem in problems:
            print(problem)
        print("rebuild is byte-identical" if not problems else f"{len(problems)} file(s) differ")
        return 1 if problems else 0
    reports = bench_definition.build_definition(
        args.definition, out_dir=args.out, only=args.repo, record=args.record
    )
    for report in reports:
        counts = ", ".join(f"{k} {n}/{report.candidates[k]}" for k, n in report.counts.items())
        print(f"{report.spec}  sha256 {report.repo_hash[:12]}  {counts}")
    return 0


def _register_run(sub) -> None:
    run = sub.add_parser("run", help="run the cascade branches on tasks (resumable)", description=RUN_HELP)
    run.add_argument("--tasks", default=str(DEFAULT_TASKS),
                     help="task JSONL file or directory, the shipped benchmark by default (default: %(default)s)")
    run.add_argument("--out", required=True, help="results JSONL (created or resumed)")
    run.add_argument("--limit", type=int, help="at most N tasks per kind, round-robin over repositories")
    run.add_argument("--kind", choices=("line", "stmt"), help="only this task kind (default: both)")
    run.add_argument("--device", default=default(RUN_BENCHMARK, "device"),
                     help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    run.add_argument("--slm", default=default(CASCADE, "slm"), help="local model spec (default: %(default)s)")
    run.add_argument("--llm", default=default(CASCADE, "llm"), help="cloud model spec (default: %(default)s)")
    run.add_argument("--ablation", action="append", default=[],
                     help="add ablation branches: no-drafting, no-retrieval, repocoder (repeatable)")
    run.add_argument("--max-left-tokens", type=int, default=default(CASCADE, "max_left_tokens"),
                     help="left-context budget (default: %(default)s)")
    run.add_argument("--retrieved-tokens", type=int, default=default(CASCADE, "retrieved_tokens"),
                     help="retrieved-block budget (default: %(default)s)")
    run.add_argument("--stage1-drafter", default=default(CASCADE, "stage1_drafter"),
                     help="drafter of SLM / LLM-direct branches (default: %(default)s)")
    run.add_argument("--context-draft-len", type=int, default=default(CASCADE, "context_draft_len"),
                     help="context-match draft length (default: the drafter's, 2 on a CPU, 10 on a GPU)")
    run.add_argument("--stage2-drafter", default=default(CASCADE, "stage2_drafter"),
                     help="drafter after a rejection (default: %(default)s)")
    run.add_argument("--warm", action=argparse.BooleanOptionalAction, default=default(CASCADE, "warm"),
                     help="also time the SLM with a warm prefix cache (default: %(default)s)")
    run.add_argument("--workers", type=int, help="shard the tasks over N Ray workers, each loading the models once; "
                     "this process appends every finished task's rows to --out (default: a serial run, no Ray)")
    run.add_argument("--ray-address", default=default(CLUSTER, "address"),
                     help="with --workers: a running Ray cluster, 'auto' or host:port "
                     "(default: start a local cluster with this machine's cores)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.cascade.runner import run_benchmark
    from mccom_core.lm.distributed import cluster_config

    config = CascadeConfig(
        slm=args.slm, llm=args.llm, max_left_tokens=args.max_left_tokens,
        retrieved_tokens=args.retrieved_tokens, stage1_drafter=args.stage1_drafter,
        context_draft_len=args.context_draft_len,
        stage2_drafter=args.stage2_drafter, warm=args.warm,
    ).with_ablations(*args.ablation)
    report = run_benchmark(args.tasks, args.out, config, limit=args.limit, kind=args.kind,
                           device=args.device, progress=not args.quiet,
                           cluster=cluster_config(args.workers, args.ray_address))
    for where, reason in report.skipped:
        print(f"skipped {where}: {reason}", file=sys.stderr)
    print(f"{report.rows_written} rows written, {report.rows_existing} already there "
          f"({report.tasks} tasks, {len(report.skipped)} skipped, config {report.config_hash}) "
          f"in {report.seconds:.0f} s -> {report.out_path}")
    return 0
