"""The round-2 query "around" in exact match, on the held-out test split (issue 22, items 2-3).

``benchmarks/retrieval_round2_variants.py`` chose the variant on block statistics of the 460
tuning tasks (every stored task but the held-out test split; no model output read but the stored
SLM rows that steer round 2): MCCom's fused round 2 with the round-2 query built around the cursor
(``RetrievalConfig(round2_query="around")``: round 1's query, the SLM output inserted at the
cursor) instead of RepoCoder's (the SLM output after the left lines, the right context dropped).
There it lost no task's ground truth against round 1 where the legacy query lost 12 (gained 1 /
1), and with the fusion schedule left at MCCom's ``w = confidence``.

This script runs the cascade's fused round-2 LLM branch with that variant on the test split of
``benchmarks/retrieval_span.py`` (seed 22, 140 tasks, fixed before any filtered or variant row)
and compares it task by task with the committed rows of the same tasks (config
``5816af4848882cc3``): the legacy fused round 2 and round 1. Only the round-2 branch runs: the
SLM and round-1 rows of the committed run are the variant's too (the round-2 options cannot
change them; ``run_benchmark(seed=...)`` reuses rows of equal ``branch_hash``), so the paired
comparison is against the very SLM outputs that steered round 2.

Decision rule (stated before the first variant row): ``round2_query="around"`` becomes the
default if, on the test split, its fused round-2 LLM EM is not lower than round 1's LLM EM (the
issue's target) and not lower than the legacy fused round 2's. Either way the report states n,
the paired 95% bootstrap intervals and the exact McNemar p. ``--filter span`` runs the same
variant with the redundancy filter on, paired with ``retrieval_span_rows.jsonl`` (informative:
the filter is not the default).

Rows go to ``benchmarks/results/retrieval_round2_em_rows.jsonl`` (append-only, resumable; about
25 s per task on the project's 2-core CPU, so run it alone)::

    .venv/bin/python benchmarks/retrieval_round2_em.py --limit 40
    .venv/bin/python benchmarks/retrieval_round2_em.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_round2 import paired_difference  # noqa: E402  (one home for the paired statistics)
from retrieval_span import (BASELINE_HASH, RESULTS, SPLIT_SEED, TASKS, filtered_config, legacy_config,  # noqa: E402
                            render, split)  # noqa: E402

from mccom_core.cascade.engine import CascadeConfig, config_hash  # noqa: E402
from mccom_core.cascade.runner import read_results, run_benchmark  # noqa: E402
from mccom_core.cascade.tasks import read_tasks  # noqa: E402
from mccom_core.paths import PROJECT_ROOT  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

VARIANT = {"round2_query": "around"}
SEEDS = {"none": RESULTS / "cascade_rows.jsonl", "span": RESULTS / "retrieval_span_rows.jsonl"}


def base_config(filt: str = "none") -> CascadeConfig:
    """The config the variant is compared with: the legacy default, or it with the span filter."""
    return legacy_config() if filt == "none" else filtered_config(filt)


def variant_config(filt: str = "none") -> CascadeConfig:
    """The base config with the round-2 variant, computing only the round-2 branch (and its SLM source)."""
    base = base_config(filt)
    return replace(base, branches=("slm", "llm_rejected"), retrieval=replace(base.retrieval, **VARIANT))


def compare(base: pd.DataFrame, variant: pd.DataFrame, task_ids) -> pd.DataFrame:
    """Fused round 2 with the variant vs legacy fused round 2 and vs round 1, on all tasks and
    where the SLM was wrong (the cascade runs round 2 after a rejection)."""
    def em(rows, branch):
        sel = rows[(rows["branch"] == branch) & rows["task_id"].isin(task_ids)]
        return sel.set_index("task_id")["em"].astype(bool)

    new, legacy, round1, slm = em(variant, "llm_rejected"), em(base, "llm_rejected"), em(base, "llm"), em(base, "slm")
    out = []
    for label, only in (("all tasks", set(new.index)), ("SLM wrong", set(new.index) & set(slm.index[~slm]))):
        for name, ref in (("legacy fused round 2", legacy), ("LLM round 1", round1)):
            common = sorted(set(ref.index) & only)
            d = paired_difference(ref.loc[common].to_numpy(), new.loc[common].to_numpy())
            out.append({"comparison": f"{label}: {name} -> fused round 2, around query", **d})
    return pd.DataFrame(out)


def decision(table: pd.DataFrame) -> str:
    rows = table.set_index("comparison")
    legacy = rows.loc["all tasks: legacy fused round 2 -> fused round 2, around query"]
    round1 = rows.loc["all tasks: LLM round 1 -> fused round 2, around query"]
    if min(legacy.n, round1.n) == 0:
        return "No test task has a variant row yet: no decision."
    adopt = legacy["diff"] >= 0 and round1["diff"] >= 0
    return (f"Rule on the test split (n = {int(round1.n)}): fused round 2 with the around query vs round 1 "
            f"{100 * round1['diff']:+.1f} points [{100 * round1.ci_lo:+.1f}, {100 * round1.ci_hi:+.1f}], vs the legacy "
            f"fused round 2 {100 * legacy['diff']:+.1f} points [{100 * legacy.ci_lo:+.1f}, {100 * legacy.ci_hi:+.1f}] "
            f"-> **{'adopt' if adopt else 'do not adopt'}** `round2_query=\"around\"`.")


def report(filt: str, rows_path: Path, output: Path, splits: dict, all_splits: bool) -> str:
    base = read_results(SEEDS[filt], config_hash(base_config(filt)))
    chash = config_hash(variant_config(filt))
    variant = read_results(rows_path, chash) if rows_path.is_file() else base.iloc[0:0]
    done = variant[variant["branch"] == "llm_rejected"]
    rel = rows_path.relative_to(PROJECT_ROOT) if rows_path.is_relative_to(PROJECT_ROOT) else rows_path.name
    lines = [
        "# The round-2 query around the cursor in exact match (issue 22)", "",
        f"Generated by `benchmarks/retrieval_round2_em.py --filter {filt}` on {dt.date.today()}, {cpu_name()}; "
        f"variant rows in `{rel}` (config `{chash}`: the {'default' if filt == 'none' else 'span-filter'} config with "
        f"`round2_query=\"around\"`), compared task by task with the rows of config `{config_hash(base_config(filt))}` "
        f"(`{SEEDS[filt].relative_to(PROJECT_ROOT)}`), whose SLM outputs steered the variant's round 2. "
        "Qwen2.5-Coder 0.5B local, 1.5B cloud, greedy.", "",
        f"Held-out test split of the 200 ablation tasks (per kind, seed {SPLIT_SEED}): {len(splits['test'])} tasks; "
        f"tasks with a variant row: {done['task_id'].nunique()}. Before/after columns: the reference / the variant. "
        "Paired 95% bootstrap interval (10,000 resamples) and exact McNemar p.", "",
    ]
    names = ("test", "validation") if all_splits else ("test",)
    tables = {}
    for name in names:
        tables[name] = compare(base, variant, {t.task_id for t in splits[name]})
        lines += [f"## {name} split", "", *render(tables[name]), ""]
    lines += ["## Decision", "", decision(tables["test"]), ""]
    if len(done):
        ms = done["retrieval_ms"]
        lines += [f"Retrieval time of the variant's round 2 (query, scoring, fusion, block): median {ms.median():.1f} ms, "
                  f"p90 {ms.quantile(0.9):.1f} ms over {len(done)} tasks.", ""]
    text = "\n".join(lines)
    output.write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filter", choices=sorted(SEEDS), default="none", help="the redundancy filter of both runs")
    parser.add_argument("--tasks", default=str(TASKS), help="the benchmark's task files")
    parser.add_argument("--rows", type=Path, default=RESULTS / "retrieval_round2_em_rows.jsonl",
                        help="variant rows (appended; the run resumes from them)")
    parser.add_argument("--output", type=Path, default=None, help="the report (default: by filter)")
    parser.add_argument("--limit", type=int, default=None, help="run at most this many new tasks in this call")
    parser.add_argument("--splits", nargs="+", default=["test"], choices=["test", "validation"],
                        help="which splits to run, in this order (the choice was made without EM: test is enough)")
    parser.add_argument("--device", default="auto", help="where the models run")
    parser.add_argument("--report-only", action="store_true", help="no model runs: the report from stored rows")
    args = parser.parse_args(argv)
    output = args.output or RESULTS / ("retrieval_round2_em.md" if args.filter == "none"
                                       else f"retrieval_round2_em_{args.filter}.md")

    splits = split(read_tasks(args.tasks).tasks)
    if not args.report_only:
        config = variant_config(args.filter)
        stored = read_results(args.rows, config_hash(config)) if args.rows.is_file() else None
        done = set() if stored is None or stored.empty else set(stored.loc[stored["branch"] == "llm_rejected", "task_id"])
        budget = args.limit
        for name in args.splits:
            todo = [t for t in splits[name] if t.task_id not in done]
            if budget is not None:
                todo, budget = todo[:budget], budget - len(todo[:budget])
            if todo:
                print(f"{name}: {len(todo)} tasks to run", flush=True)
                run_benchmark(todo, args.rows, config, device=args.device, seed=[SEEDS[args.filter]])
    print(report(args.filter, args.rows, output, splits, "validation" in args.splits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
