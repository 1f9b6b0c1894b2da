"""Does the redundancy filter pay in exact match? (issue 22, items 2-3)

``RetrievalConfig(exclude_visible="span")`` drops retrieved windows of the target file whose lines
the prompt already shows. It was chosen without looking at any model output
(``benchmarks/retrieval_filter_blocks.py``: it removes the 56-65% of the block that repeated the
shown left context and raises "ground truth in the block, not in the shown left" from 14.5 to 17.0%
in round 1 and from 9.0 to 14.0% in round 2). This script measures what it does to the models.

It runs the cascade's three core branches (SLM with round-1 retrieval, LLM with round 1, LLM with
MCCom's fused round 2 after the SLM) with the filter on the 200 ablation tasks of the committed run
(the first 100 per kind, as ``benchmarks/cascade_run.py --ablation-per-kind 100``), and compares
them task by task with the committed rows of the same tasks without the filter (config
``5816af4848882cc3``): paired EM difference with a 95% bootstrap interval and the exact McNemar p.

Split, fixed before any filtered row existed: per kind, a seeded permutation puts 30% of the tasks
in ``validation`` and 70% in ``test``. The test split runs first, so a partial run reports the
held-out numbers first. The variant was chosen on block statistics, not on EM; the validation
split is there for variants tuned on EM later (fusion weight, round-2 gating), which must be
chosen on it and reported on ``test``.

Decision rule (stated before the run): the filter becomes the default only if, on the test split,
the cascade's two deciding numbers are not lower with it (SLM EM, which sets the LLM share, and
the LLM's round-1 EM) and at least one of them is higher with McNemar p < 0.05. Whatever the
outcome, the report states n and the intervals.

Rows go to ``benchmarks/results/retrieval_span_rows.jsonl`` (append-only, resumable: re-run the
same command to continue; ``--limit`` caps how many new tasks one call runs). About 65 s per task
on the project's 2-core CPU, so run it alone::

    .venv/bin/python benchmarks/retrieval_span.py --limit 40
    .venv/bin/python benchmarks/retrieval_span.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_round2 import CONFIG_HASH as BASELINE_HASH, legacy_config, paired_difference  # noqa: E402

from mccom_core.cascade.engine import CascadeConfig, config_hash  # noqa: E402
from mccom_core.cascade.runner import read_results, run_benchmark, select_tasks  # noqa: E402
from mccom_core.cascade.tasks import read_tasks  # noqa: E402
from mccom_core.paths import PROJECT_ROOT  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
TASKS = PROJECT_ROOT / "data" / "benchmarks" / "default"
ABLATION_PER_KIND = 100
VALIDATION_SHARE = 0.3
SPLIT_SEED = 22  # the issue's number; fixed before the first filtered row
BRANCHES = {"slm": "SLM, round 1", "llm": "LLM, round 1", "llm_rejected": "LLM, fused round 2 (MCCom)"}


def filtered_config(exclude_visible: str = "span") -> CascadeConfig:
    """The legacy cascade config with the redundancy filter on (everything else unchanged)."""
    base = legacy_config()
    return replace(base, retrieval=replace(base.retrieval, exclude_visible=exclude_visible))


def split(tasks, seed: int = SPLIT_SEED, share: float = VALIDATION_SHARE) -> dict[str, list]:
    """The ablation tasks by split: per kind a seeded permutation, the first ``share`` validation."""
    chosen = select_tasks(tasks, limit=ABLATION_PER_KIND)
    out = {"test": [], "validation": []}
    for kind in sorted({t.kind for t in chosen}):
        of_kind = [t for t in chosen if t.kind == kind]
        order = np.random.default_rng([seed, len(of_kind)]).permutation(len(of_kind))
        n_val = round(share * len(of_kind))
        val = {of_kind[i].task_id for i in order[:n_val]}
        out["validation"] += [t for t in of_kind if t.task_id in val]
        out["test"] += [t for t in of_kind if t.task_id not in val]
    return {name: select_tasks(ts) for name, ts in out.items()}  # kinds alternate within a split


def compare(base: pd.DataFrame, filt: pd.DataFrame, task_ids) -> pd.DataFrame:
    """Per branch, EM without vs with the filter on the tasks both hold, and within the filtered
    run fused round 2 vs round 1 (the issue's target)."""
    def em(rows, branch):
        sel = rows[(rows["branch"] == branch) & rows["task_id"].isin(task_ids)]
        return sel.set_index("task_id")["em"].astype(bool)

    out = []
    for branch, label in BRANCHES.items():
        a, b = em(base, branch), em(filt, branch)
        common = sorted(set(a.index) & set(b.index))
        d = paired_difference(a.loc[common].to_numpy(), b.loc[common].to_numpy())
        out.append({"comparison": f"{label}: filter off -> span", **d})
    filtered = set(em(filt, "llm_rejected").index)  # both runs are compared on the filtered run's tasks
    slm = em(filt, "slm")
    for label, rows, only in (("filter off", base, filtered), ("filter span", filt, filtered),
                              ("filter span, SLM wrong", filt, filtered & set(slm.index[~slm]))):
        r1, r2 = em(rows, "llm"), em(rows, "llm_rejected")
        common = sorted(set(r1.index) & set(r2.index) & only)
        d = paired_difference(r1.loc[common].to_numpy(), r2.loc[common].to_numpy())
        out.append({"comparison": f"{label}: LLM round 1 -> fused round 2", **d})
    return pd.DataFrame(out)


def render(table: pd.DataFrame) -> list[str]:
    lines = ["| comparison | tasks | before EM % | after EM % | difference, points [95% CI] | only before | only after | McNemar p |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        if r.n == 0:
            lines.append(f"| {r.comparison} | 0 | | | | | | |")
            continue
        lines.append(f"| {r.comparison} | {r.n} | {100 * r.em_round1:.1f} | {100 * r.em_round2:.1f} | "
                     f"{100 * r.diff:+.1f} [{100 * r.ci_lo:+.1f}, {100 * r.ci_hi:+.1f}] | {r.only_round1} | "
                     f"{r.only_round2} | {r.mcnemar_p:.3f} |")
    return lines


def decision(table: pd.DataFrame) -> str:
    """The stated rule applied to the test split's table."""
    rows = table.set_index("comparison")
    slm, llm = rows.loc[f"{BRANCHES['slm']}: filter off -> span"], rows.loc[f"{BRANCHES['llm']}: filter off -> span"]
    if min(slm.n, llm.n) == 0:
        return "No test task has both runs yet: no decision."
    not_lower = slm["diff"] >= 0 and llm["diff"] >= 0
    significant = any(r["diff"] > 0 and r["mcnemar_p"] < 0.05 for r in (slm, llm))
    verdict = "adopt" if not_lower and significant else "do not adopt (yet)"
    return (f"Rule on the test split (n = {int(min(slm.n, llm.n))}): SLM EM {100 * slm['diff']:+.1f} points "
            f"(p = {slm['mcnemar_p']:.3f}), LLM round-1 EM {100 * llm['diff']:+.1f} points (p = {llm['mcnemar_p']:.3f}) "
            f"-> **{verdict}**.")


def latency(base: pd.DataFrame, filt: pd.DataFrame) -> list[str]:
    """Retrieval time per branch (issue 22 item 5) on the same tasks, without and with the filter,
    as the cascade rows time it (query, scoring, filter, fitting the block; with the filter also
    cutting the shown context, which tokenizes the whole left context)."""
    lines = ["| branch | tasks | median ms, off | p90 ms, off | median ms, span | p90 ms, span |",
             "|---|---:|---:|---:|---:|---:|"]
    for branch, label in BRANCHES.items():
        f = filt[filt["branch"] == branch].set_index("task_id")["retrieval_ms"].dropna()
        b = base[base["branch"] == branch].set_index("task_id")["retrieval_ms"].reindex(f.index).dropna()
        f = f.loc[b.index]
        if len(f):
            lines.append(f"| {label} | {len(f)} | {b.median():.1f} | {b.quantile(0.9):.1f} | "
                         f"{f.median():.1f} | {f.quantile(0.9):.1f} |")
    return lines


def report(rows_path: Path, baseline_path: Path, output: Path, splits: dict) -> str:
    base = read_results(baseline_path, BASELINE_HASH)
    chash = config_hash(filtered_config())
    filt = read_results(rows_path, chash) if rows_path.is_file() else base.iloc[0:0]
    lines = [
        "# The redundancy filter in exact match (issue 22)", "",
        f"Generated by `benchmarks/retrieval_span.py` on {dt.date.today()}, {cpu_name()}; rows in "
        f"`{rows_path.relative_to(PROJECT_ROOT) if rows_path.is_relative_to(PROJECT_ROOT) else rows_path.name}` "
        f"(config `{chash}`: the default with `exclude_visible=\"span\"`), compared task by task with the committed "
        f"rows without the filter (config `{BASELINE_HASH}`). Qwen2.5-Coder 0.5B local, 1.5B cloud, greedy.",
        "",
        f"The 200 ablation tasks split per kind with seed {SPLIT_SEED}: "
        f"{len(splits['test'])} test, {len(splits['validation'])} validation; tasks done with the filter: "
        f"{filt[filt['branch'] == 'llm_rejected']['task_id'].nunique()}. Before/after columns of the last three "
        "rows are round 1 / fused round 2. Paired 95% bootstrap interval (10,000 resamples) and exact McNemar p.",
        "",
    ]
    tables = {}
    for name in ("test", "validation"):
        ids = {t.task_id for t in splits[name]}
        tables[name] = compare(base, filt, ids)
        lines += [f"## {name} split", "", *render(tables[name]), ""]
    lines += ["## Decision", "", decision(tables["test"]), "", "## Retrieval time", "", *latency(base, filt), ""]
    text = "\n".join(lines)
    output.write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=str(TASKS), help="the benchmark's task files")
    parser.add_argument("--rows", type=Path, default=RESULTS / "retrieval_span_rows.jsonl",
                        help="filtered rows (appended; the run resumes from them)")
    parser.add_argument("--baseline-rows", type=Path, default=RESULTS / "cascade_rows.jsonl",
                        help="the committed rows without the filter")
    parser.add_argument("--output", type=Path, default=RESULTS / "retrieval_span.md", help="the report")
    parser.add_argument("--limit", type=int, default=None, help="run at most this many new tasks in this call")
    parser.add_argument("--splits", nargs="+", default=["test", "validation"], choices=["test", "validation"],
                        help="which splits to run, in this order")
    parser.add_argument("--device", default="auto", help="where the models run")
    parser.add_argument("--report-only", action="store_true", help="no model runs: the report from stored rows")
    args = parser.parse_args(argv)

    splits = split(read_tasks(args.tasks).tasks)
    if not args.report_only:
        config = filtered_config()
        stored = read_results(args.rows, config_hash(config)) if args.rows.is_file() else None
        done = set() if stored is None else set(stored.loc[stored["branch"] == "llm_rejected", "task_id"])
        budget = args.limit
        for name in args.splits:
            todo = [t for t in splits[name] if t.task_id not in done]
            if budget is not None:
                todo, budget = todo[:budget], budget - len(todo[:budget])
            if todo:
                print(f"{name}: {len(todo)} tasks to run", flush=True)
                run_benchmark(todo, args.rows, config, device=args.device)
    print(report(args.rows, args.baseline_rows, args.output, splits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
