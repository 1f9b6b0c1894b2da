"""``mccom bench``: benchmark commands. ``build`` makes task files; later sub-commands (``run``)
add their parser in :func:`register` beside it. Parsing only: the work is in the library."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="build and run completion benchmarks")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    _register_build(sub)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def _register_build(sub) -> None:
    build = sub.add_parser(
        "build",
        help="build completion tasks from repositories",
        description=(
            "Build line/stmt completion tasks. Either from a definition file (all its "
            "repositories, pinned and hashed), or from one repository given as NAME==VERSION "
            "(a PyPI sdist) or a local directory."
        ),
    )
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
    build.add_argument("--kind", default="line", choices=("line", "stmt"), help="with --spec")
    build.add_argument("--tasks", type=int, default=100, help="with --spec: tasks to draw")
    build.add_argument("--seed", type=int, default=0, help="with --spec: sampling seed")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from mccom_core import bench_definition
    from mccom_core.benchmarks import BenchmarkConfig, build_tasks, save_tasks

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
