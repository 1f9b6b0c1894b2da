"""``mccom ladder``: the self-testing cascade (replay, live, plans). Parses args, calls the library."""

from __future__ import annotations

import argparse
import json

from mccom_core.cli._defaults import default

REPLAY = "mccom_core.ladder.replay:ReplayConfig"
RUN_REPLAY = "mccom_core.ladder.replay:run_replay"
SANDBOX = "mccom_core.ladder.sandbox:SandboxConfig"  # ReplayConfig's default sandbox is SandboxConfig()
RUN_PLANS = "mccom_core.ladder.plans:run_plans"
LIVE = "mccom_core.ladder.live:LiveConfig"
CLUSTER = "mccom_core.lm.distributed:ClusterConfig"
# `ladder live` options: LiveConfig field, type, help. Each default is the field's.
LIVE_OPTIONS = (
    ("benchmark", str, "humaneval | mbpp"),
    ("models", str, "model specs, small to large"),
    ("problems", int, "only the first N problems (default: all)"),
    ("k", int, "sampled solutions and test blocks per problem"),
    ("runs", int, "independent sampled runs, seeds seed, seed+1, ..."),
    ("seed", int, "sampling seed of the first run"),
    ("max_new_tokens", int, "cap on tokens per solution"),
    ("batch_size", int, "sequences per generate() call"),
    ("chunk", int, "problems per recorded chunk, the unit of resumption"),
    ("device", str, "auto, cpu, cuda, cuda:N"),
    ("threads", int, "torch CPU threads; 1 helps on a busy machine (default: torch's choice)"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("ladder", help="self-testing model ladder for code generation (arXiv 2405.15842)")
    sub = parser.add_subparsers(dest="ladder_command", metavar="ACTION")

    rp = sub.add_parser("replay", help="execute recorded generations and write the outcomes frame")
    rp.add_argument("--data", default=None, help="folder with answer/, testcase/, data/ (default: shared data's "
                                                 "code_cascading_wizardcoder)")
    rp.add_argument("--models", nargs="+", default=None,
                    help="ladder small to large (default: the recorded WizardCoder ladder)")
    rp.add_argument("--runs", type=int, default=default(RUN_REPLAY, "runs"),
                    help="sampled runs per model (default: %(default)s)")
    rp.add_argument("--samples", type=int, default=default(RUN_REPLAY, "samples"),
                    help="samples per run, file name p<samples> (default: %(default)s)")
    rp.add_argument("--problems", type=int, default=None, help="only the first N problems (default: all)")
    rp.add_argument("--timeout", type=float, default=default(SANDBOX, "timeout_s"),
                    help="seconds per (solution, test) pair (default: %(default)s)")
    rp.add_argument("--k-grid", type=int, nargs="+", default=default(REPLAY, "k_grid"),
                    help="k values (default: %(default)s)")
    rp.add_argument("--fallback", choices=("last", "first"), default=default(REPLAY, "fallback"),
                    help="solution a rung names when no (solution, test) pair passes; last is the "
                         "authors' (default: %(default)s)")
    rp.add_argument("--cache", default=None,
                    help="verdict cache file (SQLite), created if absent (default: exec/verdicts.sqlite "
                         "in MCCOM_CACHE_DIR or ~/.cache/mccom)")
    rp.add_argument("--out", required=True, help="output folder")
    rp.set_defaults(func=_replay)

    pl = sub.add_parser("plans", help="Pareto plan search on an outcomes frame, both savings metrics")
    pl.add_argument("--outcomes", required=True, help="outcomes.parquet from `replay` or `live`")
    pl.add_argument("--config", choices=("authors", "project"), default=default(RUN_PLANS, "config"),
                    help="named configuration: the authors' rule, prices, k values and seed-7 split, or "
                         "the project's (mccom_core.ladder.configs) (default: %(default)s)")
    pl.add_argument("--prices", nargs="+", default=None, metavar="MODEL=DOLLARS",
                    help="$ per 1k generated tokens per model, e.g. 7B=0.00191 13B=0.00665 34B=0.02024; "
                         "no throughput table is needed then (default: the configuration's prices, if any)")
    pl.add_argument("--throughput", default=None,
                    help="authors' wizard_he_throughput.csv, read only when no prices are given and the "
                         "configuration has none (default: none)")
    pl.add_argument("--cost-json", default=None,
                    help="JSON {model: cost per token}, e.g. a live run's cost_per_token.json (default: none)")
    pl.add_argument("--models", nargs="+", default=None,
                    help="ladder order, small to large (default: the order recorded with the outcomes)")
    pl.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="seeds of the validation/test splits (default: the configuration's)")
    pl.add_argument("--thetas", type=float, nargs="+", default=None,
                    help="acceptance thresholds searched (default: the configuration's, 0 to 1 by 0.1)")
    pl.add_argument("--rule", choices=("readme", "authors-code"), default=None,
                    help="acceptance rule (default: the configuration's)")
    pl.add_argument("--val-frac", type=float, default=None,
                    help="share of problems in the validation split (default: the configuration's, 0.3)")
    pl.add_argument("--out", required=True, help="output folder for fronts.csv, savings.csv, plans_config.json")
    pl.set_defaults(func=_plans)

    lv = sub.add_parser("live", help="generate with the real Qwen ladder, record, replay")
    for field, kind, text in LIVE_OPTIONS:
        shown = "" if "(default:" in text else " (default: %(default)s)"
        lv.add_argument(f"--{field.replace('_', '-')}", nargs="+" if field == "models" else None, type=kind,
                        default=default(LIVE, field), help=text + shown)
    lv.add_argument("--workers", type=int, help="shard each model's chunks over N Ray workers, each loading "
                    "the model once; this process appends them (default: a serial run, no Ray)")
    lv.add_argument("--ray-address", default=default(CLUSTER, "address"),
                    help="with --workers: a running Ray cluster, 'auto' or host:port "
                    "(default: start a local cluster with this machine's cores)")
    lv.add_argument("--out", required=True, help="output folder (replay layout + outcomes)")
    lv.set_defaults(func=_live)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _replay(args: argparse.Namespace) -> int:
    from mccom_core.ladder.replay import ReplayConfig, run_replay
    from mccom_core.paths import shared_data_dir
    from mccom_core.ladder.sandbox import SandboxConfig

    data = args.data or shared_data_dir() / "code_cascading_wizardcoder"
    config = ReplayConfig(k_grid=tuple(args.k_grid), sandbox=SandboxConfig(timeout_s=args.timeout),
                          fallback=args.fallback)
    paths = run_replay(data, args.out, models=args.models, runs=args.runs, samples=args.samples,
                       problems=args.problems, config=config, progress=True, cache_path=args.cache)
    print(json.dumps(paths, indent=1))
    return 0


def _plans(args: argparse.Namespace) -> int:
    from mccom_core.ladder.plans import run_plans

    cost = None
    if args.cost_json:
        from mccom_core.ladder.cost import read_cost_json

        cost = read_cost_json(args.cost_json)
    if args.prices:
        from mccom_core.ladder.configs import parse_prices

        cost = parse_prices(args.prices)
    paths = run_plans(args.outcomes, args.out, config=args.config, models=args.models,
                      throughput_csv=args.throughput, cost_per_token=cost, seeds=args.seeds,
                      thetas=None if args.thetas is None else tuple(args.thetas), rule=args.rule,
                      val_frac=args.val_frac)
    print(json.dumps(paths, indent=1))
    return 0


def _live(args: argparse.Namespace) -> int:
    from mccom_core.ladder.live import LiveConfig, run_live
    from mccom_core.lm.distributed import cluster_config

    options = {field: getattr(args, field) for field, _, _ in LIVE_OPTIONS}
    config = LiveConfig(**{**options, "models": tuple(args.models)})
    paths = run_live(config, args.out, cluster=cluster_config(args.workers, args.ray_address))
    print(json.dumps(paths, indent=1))
    return 0
