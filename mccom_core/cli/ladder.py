"""``mccom ladder``: the self-testing cascade (replay, live, plans). Parses args, calls the library."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("ladder", help="self-testing model ladder for code generation (arXiv 2405.15842)")
    sub = parser.add_subparsers(dest="ladder_command", metavar="ACTION")

    rp = sub.add_parser("replay", help="execute recorded generations and write the outcomes frame")
    rp.add_argument("--data", default=None, help="folder with answer/, testcase/, data/ (default: shared data's "
                                                 "code_cascading_wizardcoder)")
    rp.add_argument("--models", nargs="+", default=None, help="ladder small to large (default 7B 13B 34B)")
    rp.add_argument("--runs", type=int, default=10, help="sampled runs per model")
    rp.add_argument("--samples", type=int, default=10, help="samples per run (file name p<samples>)")
    rp.add_argument("--problems", type=int, default=None, help="only the first N problems")
    rp.add_argument("--timeout", type=float, default=1.0, help="seconds per (solution, test) pair")
    rp.add_argument("--k-grid", type=int, nargs="+", default=None, help="k values (default 0 1 2 3 4 5 10)")
    rp.add_argument("--out", required=True, help="output folder")
    rp.set_defaults(func=_replay)

    pl = sub.add_parser("plans", help="Pareto plan search on an outcomes frame")
    pl.add_argument("--outcomes", required=True, help="outcomes.parquet from `replay` or `live`")
    pl.add_argument("--throughput", default=None, help="authors' wizard_he_throughput.csv (replay costs)")
    pl.add_argument("--cost-json", default=None, help="JSON {model: cost per token} (e.g. a live run's)")
    pl.add_argument("--models", nargs="+", default=None, help="ladder order, small to large")
    pl.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    pl.add_argument("--thetas", type=float, nargs="+", default=None)
    pl.add_argument("--rule", default="readme", help="acceptance rule: readme | authors-code")
    pl.add_argument("--val-frac", type=float, default=0.3, help="share of problems in the validation split")
    pl.add_argument("--out", required=True, help="output folder")
    pl.set_defaults(func=_plans)

    lv = sub.add_parser("live", help="generate with the real Qwen ladder, record, replay")
    lv.add_argument("--benchmark", default="humaneval", help="humaneval | mbpp")
    lv.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    lv.add_argument("--problems", type=int, default=None, help="only the first N problems")
    lv.add_argument("--k", type=int, default=5, help="sampled solutions and test blocks per problem")
    lv.add_argument("--runs", type=int, default=1)
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--max-new-tokens", type=int, default=256)
    lv.add_argument("--batch-size", type=int, default=8)
    lv.add_argument("--chunk", type=int, default=8, help="problems per recorded chunk (the unit of resumption)")
    lv.add_argument("--device", default="auto")
    lv.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 helps on a busy machine)")
    lv.add_argument("--out", required=True, help="output folder (replay layout + outcomes)")
    lv.set_defaults(func=_live)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _replay(args: argparse.Namespace) -> int:
    from mccom_core.ladder.replay import ReplayConfig, run_replay
    from mccom_core.paths import shared_data_dir
    from mccom_core.ladder.sandbox import SandboxConfig

    data = args.data or shared_data_dir() / "code_cascading_wizardcoder"
    config = ReplayConfig(sandbox=SandboxConfig(timeout_s=args.timeout))
    if args.k_grid:
        config = ReplayConfig(k_grid=tuple(args.k_grid), sandbox=config.sandbox)
    paths = run_replay(data, args.out, models=args.models, runs=args.runs, samples=args.samples,
                       problems=args.problems, config=config, progress=True)
    print(json.dumps(paths, indent=1))
    return 0


def _plans(args: argparse.Namespace) -> int:
    from mccom_core.ladder.plans import THETA_GRID, run_plans

    cost = None
    if args.cost_json:
        from mccom_core.ladder.cost import read_cost_json

        cost = read_cost_json(args.cost_json)
    paths = run_plans(args.outcomes, args.out, models=args.models, throughput_csv=args.throughput,
                      cost_per_token=cost, seeds=args.seeds, thetas=tuple(args.thetas or THETA_GRID),
                      rule=args.rule, val_frac=args.val_frac)
    print(json.dumps(paths, indent=1))
    return 0


def _live(args: argparse.Namespace) -> int:
    from mccom_core.ladder.live import LiveConfig, run_live

    config = LiveConfig(models=tuple(args.models), benchmark=args.benchmark, problems=args.problems, k=args.k,
                        runs=args.runs, seed=args.seed, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, device=args.device, threads=args.threads,
                        chunk=args.chunk)
    paths = run_live(config, args.out)
    print(json.dumps(paths, indent=1))
    return 0
