"""Benchmark the MCCom cascade with the real Qwen2.5-Coder pair: every policy, both accountings.

Runs N tasks per kind of the default benchmark through the cascade branches (SLM, LLM direct,
LLM after rejection) with :func:`mccom_core.cascade.runner.run_benchmark`, then computes every policy
from the stored rows (:func:`mccom_core.cascade.policies.summary`), the two paper observations, and
where the time goes, and writes ``benchmarks/results/cascade.md``.

The rows go to ``benchmarks/results/cascade_rows.jsonl``; the runner resumes from them, so a
larger run (``--per-kind 300``) can be spread over several sessions: re-run the same command
and it computes only the missing tasks. On the project's 2-core CPU one task costs roughly
25-60 s for the three branches (prefill dominates: ~1,500-token prompts), so run it alone::

    .venv/bin/python benchmarks/cascade_run.py --per-kind 10

``--ablation no-retrieval --ablation repocoder --ablation-per-kind 100`` adds the retrieval
ablation branches (issue #4: the 1.5B with no retrieval, round 1, RepoCoder's round 2 and the
fused round 2) on the first 100 tasks per kind; the report then has a retrieval section. This
is what ``mccom reproduce --profile paper`` computes too (same rows file, same config).

The run goes in stages of ``--step`` (default 10) more tasks per kind, kinds alternating, each stage
followed by its ablation branches, so a run stopped part way has both kinds and the ablations of
what it did.

``--report-only`` rebuilds the table from the stored rows without running any model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mccom_core.cascade.engine import CascadeConfig, branch_stats, config_hash
from mccom_core.errors import MccomError
from mccom_core.paths import PROJECT_ROOT
from mccom_core.cascade.policies import paper_comparison, summary
from mccom_core.cascade.runner import read_results, run_benchmark
from mccom_core.cascade.timing import align_sessions, mixed_tasks, paired_prefill_ratio, session_speeds
from mccom_core.provenance import cpu_name, package_versions
from mccom_core.lab.study import paired_difference, retrieval_ablation, slm_missed_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_round2 import CONFIG_HASH as BASELINE_CONFIG, mcnemar_p  # noqa: E402  (the legacy run; exact McNemar)

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.0, 1.0, 101))
TARGET_SPEEDUP_PCT = -40.0  # MCCom at its best threshold vs always-LLM (warm), at >= its EM
TARGET_LLM_SHARE = 0.55


def _fmt(x, digits=1, pct=False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{100 * x:.{digits}f}" if pct else f"{x:,.{digits}f}"


def policy_table(table) -> list[str]:
    cold = table[table["accounting"] == "cold"].set_index("policy")
    warm = table[table["accounting"] == "warm"].set_index("policy")
    out = ["| policy | threshold (cold / warm) | EM % | ES % | LLM calls % | mean s cold | p90 s cold "
           "| mean s warm | p90 s warm | first shown s warm | latency vs LLM % (cold / warm) "
           "| EM vs LLM % | EM below oracle (pts, warm) | s above oracle (warm) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name in warm.index:
        c, w = cold.loc[name], warm.loc[name]
        out.append(
            f"| {name} | {_fmt(c['threshold'], 2)} / {_fmt(w['threshold'], 2)} | {_fmt(w['em'], pct=True)} "
            f"| {_fmt(w['es'], pct=True)} | {_fmt(w['llm_share'], pct=True)} | {_fmt(c['mean_ms'] / 1e3, 2)} "
            f"| {_fmt(c['p90_ms'] / 1e3, 2)} | {_fmt(w['mean_ms'] / 1e3, 2)} | {_fmt(w['p90_ms'] / 1e3, 2)} "
            f"| {_fmt(w['first_shown_ms'] / 1e3, 2)} | {_fmt(c['latency_vs_llm_pct'])} / {_fmt(w['latency_vs_llm_pct'])} "
            f"| {_fmt(w['em_vs_llm_pct'])} | {_fmt(100 * w['em_below_oracle'])} | {_fmt(w['ms_above_oracle'] / 1e3, 2)} |")
    return out


def time_table(table) -> list[str]:
    out = ["| policy | accounting | prefill s | decode s | retrieval s | network s | wait s | total s |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        out.append(f"| {r['policy']} | {r['accounting']} | {r['prefill_ms'] / 1e3:.2f} | {r['decode_ms'] / 1e3:.2f} "
                   f"| {r['retrieval_ms'] / 1e3:.3f} | {r['network_ms'] / 1e3:.2f} | {r['wait_ms'] / 1e3:.2f} "
                   f"| {r['mean_ms'] / 1e3:.2f} |")
    return out


def branch_table(rows) -> list[str]:
    stats = branch_stats(rows)
    warm = rows[rows["warm_reused_tokens"].notna()] if "warm_reused_tokens" in rows else rows.iloc[:0]
    out = ["| branch | n | EM % | ES % | mean confidence | prompt tokens | retrieval ms | prefill s (cold) "
           "| decode s | total s cold | total s warm | forward passes | draft tokens accepted |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in stats.iterrows():
        out.append(f"| {r['branch']} | {r['n']} | {100 * r['em']:.1f} | {100 * r['es']:.1f} | {r['confidence']:.2f} "
                   f"| {r['prompt_tokens']:.0f} | {r['retrieval_ms']:.1f} | {r['prefill_ms'] / 1e3:.2f} "
                   f"| {r['decode_ms'] / 1e3:.2f} | {r['cold_ms'] / 1e3:.2f} | {r['warm_ms'] / 1e3:.2f} "
                   f"| {r['n_forward']:.1f} | {_fmt(r['draft_acceptance'], pct=True)} % |")
    if len(warm):
        out.append("")
        out.append(f"Warm SLM requests reused {warm['warm_reused_tokens'].mean():.0f} of "
                   f"{warm['prompt_tokens'].mean():.0f} prompt tokens on average; the warm output equals the "
                   f"cold one on {int(warm['warm_same_output'].astype(bool).sum())} of {len(warm)} requests "
                   f"({', '.join(f'{b}: {n}' for b, n in warm['branch'].value_counts(sort=False).items())}).")
    return out


def retrieval_section(rows) -> list[str]:
    """Issue #4: EM/ES of the LLM per retrieval setting, and fused vs RepoCoder round 2, on all
    tasks and on those the SLM missed (where a deployed MCCom runs round 2)."""
    try:
        ablation = retrieval_ablation(rows)
        missed = retrieval_ablation(rows, slm_missed=True).set_index("branch")
    except MccomError:  # the ablation branches were not computed
        return []
    llm = ablation[ablation["role"] == "llm"]
    if len(llm) < 2:
        return []
    out = ["## Retrieval settings (the LLM, same tasks)", "",
           "Round-2 settings query with the 0.5B's output. *SLM missed*: the tasks on which the 0.5B was wrong, "
           "the only ones where MCCom runs round 2 after a rejection.", "",
           "| setting | branch | n | EM % | ES % | mean s | n (SLM missed) | EM % (SLM missed) | ES % (SLM missed) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in llm.iterrows():
        m = missed.loc[r["branch"]] if r["branch"] in missed.index else None
        tail = (f"{m['n']} | {100 * m['em']:.1f} | {100 * m['es']:.1f}" if m is not None and m["n"] else "0 | | ")
        out.append(f"| {r['setting']} | {r['branch']} | {r['n']} | {100 * r['em']:.1f} | {100 * r['es']:.1f} "
                   f"| {r['mean_ms'] / 1e3:.2f} | {tail} |")
    if set(llm["branch"]) >= {"llm_rejected", "llm_rejected_repocoder"}:
        out.append("")
        for label, tasks in (("all tasks", None), ("tasks the SLM missed", slm_missed_tasks(rows))):
            for metric in ("em", "es"):
                try:
                    d = paired_difference(rows, "llm_rejected", "llm_rejected_repocoder", metric, tasks=tasks)
                except MccomError:
                    continue
                out.append(f"Fused round 2 minus RepoCoder round 2, {metric.upper()}, {label}: "
                           f"{100 * d['diff']:+.1f} points (95% paired bootstrap {100 * d['lo']:+.1f} to "
                           f"{100 * d['hi']:+.1f}; n = {d['n']}, fused better on {d['wins']}, worse on {d['losses']}).")
    return out + ["", *makeup_section(rows)]


def makeup_section(rows) -> list[str]:
    """Issue #4: what the prompt's retrieved block holds (BM25 and the tokenizer only)."""
    from mccom_core.lab.retrieval_study import makeup_summary, retrieval_makeup

    summary_ = makeup_summary(retrieval_makeup(rows, rows["llm_spec"].iloc[0], progress=False))
    if summary_.empty:
        return []
    out = ["### What the retrieved block holds", "",
           f"The block ({CascadeConfig().retrieved_tokens} tokens of the LLM's tokenizer, rebuilt exactly as the "
           "cascade builds it) per retriever, over the tasks with an SLM row: the share of its windows that "
           "repeat the target file's left context *already shown in the prompt*, that come from the target "
           "file before the cursor but beyond the prompt's left budget, that show the target file *after* "
           "the cursor, and that come from other files; and how often the ground truth occurs in the block.", "",
           "| retriever | tasks | windows per block | repeats the shown left % | left, beyond the prompt % "
           "| after the cursor % | other files % | ground truth in block % |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in summary_.iterrows():
        out.append(f"| {r['retriever']} | {r['n']} | {r['windows']:.2f} | {_fmt(r['visible_left_share'], pct=True)} "
                   f"| {_fmt(r['left_beyond_prompt_share'], pct=True)} | {_fmt(r['after_cursor_share'], pct=True)} "
                   f"| {_fmt(r['other_file_share'], pct=True)} | {_fmt(r['truth_in_block'], pct=True)} |")
    return out + [""]


KEY_POLICIES = ("always-slm", "always-llm", "confidence-only", "mccom", "oracle")


def complete_tasks(rows) -> pd.Index:
    """The task ids with every core branch stored: the tasks the policy tables are computed on
    (:func:`~mccom_core.cascade.policies.branch_table` leaves the others out), so every n
    the report states counts these, also while a rerun is partial."""
    core = rows[rows["branch"].isin(CascadeConfig().branches)]
    counts = core.groupby("task_id")["branch"].nunique()
    return counts.index[counts == len(CascadeConfig().branches)]


def kind_table(rows, args) -> list[str]:
    """The key policies per task kind (warm accounting, each kind's own best thresholds)."""
    out = ["| kind | n | policy | threshold | EM % | ES % | LLM calls % | mean s warm | latency vs LLM % (warm) |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for kind in sorted(rows["kind"].unique()):
        sub = rows[rows["kind"] == kind]
        table = summary(sub, THRESHOLDS, network_ms=args.network_ms, reaction_ms=args.reaction_ms,
                        accountings=("warm",)).set_index("policy")
        n = len(complete_tasks(sub))
        for name in KEY_POLICIES:
            w = table.loc[name]
            out.append(f"| {kind} | {n} | {name} | {_fmt(w['threshold'], 2)} | {_fmt(w['em'], pct=True)} "
                       f"| {_fmt(w['es'], pct=True)} | {_fmt(w['llm_share'], pct=True)} | {_fmt(w['mean_ms'] / 1e3, 2)} "
                       f"| {_fmt(w['latency_vs_llm_pct'])} |")
    return out


def sensitivity_table(rows) -> list[str]:
    """MCCom at its best threshold (warm) as the modeled network round trip and the user's
    reaction time grow: when the confidence gate starts to pay off."""
    out = ["| network ms | reaction ms | best threshold | EM % | LLM calls % | mean s warm | always-LLM s "
           "| latency vs LLM % | rejection-only vs LLM % |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for network in (0.0, 300.0):
        for reaction in (0.0, 500.0, 1000.0, 2000.0):
            t = summary(rows, THRESHOLDS, network_ms=network, reaction_ms=reaction,
                        accountings=("warm",)).set_index("policy")
            m, llm, rej = t.loc["mccom"], t.loc["always-llm"], t.loc["rejection-only"]
            out.append(f"| {network:g} | {reaction:g} | {_fmt(m['threshold'], 2)} | {_fmt(m['em'], pct=True)} "
                       f"| {_fmt(m['llm_share'], pct=True)} | {_fmt(m['mean_ms'] / 1e3, 2)} | {_fmt(llm['mean_ms'] / 1e3, 2)} "
                       f"| {_fmt(m['latency_vs_llm_pct'])} | {_fmt(rej['latency_vs_llm_pct'])} |")
    return out


def sample_note(rows, em: float) -> str:
    """How far the sample is from the 300-per-kind target, and how wide an EM interval it gives."""
    n = len(complete_tasks(rows))
    half = 196 * np.sqrt(max(em * (1 - em), 1e-9) / max(n, 1))
    return (f"**Sample size.** {n} tasks (target: 300 per kind). An EM of {100 * em:.1f}% on {n} tasks has a 95% "
            f"interval of about ±{half:.1f} points; paired differences between policies on the same tasks are "
            f"tighter, but a few points are still noise. The runner resumes: the same command with "
            f"`--per-kind 300` computes only the missing tasks.")


def llm_share_floor(table) -> list[str]:
    """Why the LLM share has a floor: MCCom escalates every rejected suggestion whatever the
    threshold, so its share is at least rejection-only's, the SLM's miss rate for this user."""
    warm = table[table["accounting"] == "warm"].set_index("policy")
    floor, slm_em = warm.loc["rejection-only", "llm_share"], warm.loc["always-slm", "em"]
    return [f"The LLM-share floor: at any threshold MCCom sends every rejected suggestion to the LLM, so its "
            f"share is at least rejection-only's, {100 * floor:.1f}% here (the 0.5B's miss rate under this "
            f"user; its EM is {100 * slm_em:.1f}%). A share of at most {100 * TARGET_LLM_SHARE:.0f}% needs a local "
            f"model that is right at least {100 * (1 - TARGET_LLM_SHARE):.0f}% of the time, or a more lenient "
            f"user (`mccom_core.cascade.users`: edit similarity, correct prefix)."]


def load_note(rows) -> str:
    """How busy the machine was while the stored rows' timings were taken."""
    if "load_average" not in rows or rows["load_average"].isna().all():
        return "Rows carry no load average (written before the runner recorded it)."
    load = rows["load_average"].dropna()
    return (f"1-minute load average when rows were written: median {load.median():.2f}, p90 "
            f"{load.quantile(0.9):.2f}, max {load.max():.2f} ({len(load)} of {len(rows)} rows record it; "
            f"2 cores, so above 2 the timings include waiting for a core).")


def speed_note(rows) -> str:
    """The machine's speed per day of writing: the median LLM prefill cost per prompt token.

    Rows come from several sessions, not always on the same machine; each task's branches are
    timed in one session, so policies compare like with like, but absolute seconds mix them.
    """
    llm = rows[(rows["role"] == "llm") & (rows["prompt_tokens"] > 0)]
    if llm.empty or "written_at" not in llm:
        return ""
    days = llm["written_at"].map(lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d"))
    cpus = llm.get("cpu", pd.Series(None, index=llm.index, dtype=object)).fillna("CPU not recorded")
    per_day = (llm["prefill_ms"] / llm["prompt_tokens"]).groupby([days, cpus]).agg(["median", "size"])
    parts = [f"{d} ({c}): {r['median']:.1f} ms ({int(r['size'])} rows)" for (d, c), r in per_day.iterrows()]
    core = rows[rows["branch"].isin(CascadeConfig().branches) & rows["task_id"].isin(complete_tasks(rows))]
    span = core.groupby("task_id")["written_at"].agg(lambda t: t.max() - t.min())
    mixed = int((span > 6 * 3600).sum())  # one run's branches of a task are minutes apart
    tail = (". A task's branches are timed on one day, so policies compare like with like; absolute "
            "seconds mix the days and machines." if not mixed else
            f". **{mixed} of {core['task_id'].nunique()} tasks have core branches timed in different sessions** "
            "(over 6 h apart: rows reused from another config, `runner.config_rows`): their raw policy latencies "
            "mix the speeds above, so the policy tables below use session-aligned timings (see *Timing "
            "sessions*, with the raw figures beside); EM and LLM share do not depend on timing.")
    return "Machine speed by day of writing (median LLM prefill per prompt token): " + "; ".join(parts) + tail


def baseline_section(rows, aligned, args) -> list[str]:
    """This config's fused round 2 and cascade against the rows of ``--baseline-config`` (another
    round-2 option, same SLM and round-1 rows) on the same tasks: paired EM with a bootstrap
    interval and the exact McNemar p, and the cascade's numbers, the baseline's timed in one
    session per task."""
    chash = getattr(args, "config_hash", None) or rows["config_hash"].iloc[0]
    if not args.baseline_config or args.baseline_config == chash or not args.rows.is_file():
        return []
    base = read_results(args.rows, args.baseline_config)
    if base.empty:
        return []
    tasks = sorted(set(complete_tasks(rows)) & set(complete_tasks(base)))
    if not tasks:
        return []
    esc = CascadeConfig().branches[-1]
    theirs = base[(base["branch"] == esc) & base["task_id"].isin(tasks)].assign(branch=f"{esc}_baseline")
    both = pd.concat([rows[rows["task_id"].isin(tasks)], theirs], ignore_index=True)
    missed = slm_missed_tasks(both)
    out = [f"## Round 2 against config `{args.baseline_config}`", "",
           f"The same {len(tasks)} tasks with the rows of config `{args.baseline_config}` (`--baseline-config`; the "
           "SLM and round-1 rows are shared, so only the round-2 branch differs). Paired EM of the LLM: this "
           "config's fused round 2 minus the baseline's, and minus round 1 (95% paired bootstrap; exact McNemar "
           "p on the discordant tasks).", "",
           "| comparison | tasks | n | EM % | baseline EM % | diff (points) | 95% interval | better / worse "
           "| McNemar p |", "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for label, baseline in (("fused round 2 vs baseline's", f"{esc}_baseline"), ("fused round 2 vs round 1", "llm")):
        for scope, subset in (("all", None), ("SLM missed", missed)):
            d = paired_difference(both, esc, baseline, "em", tasks=subset)
            out.append(f"| {label} | {scope} | {d['n']} | {100 * d['branch_mean']:.1f} | {100 * d['baseline_mean']:.1f} "
                       f"| {100 * d['diff']:+.1f} | {100 * d['lo']:+.1f} to {100 * d['hi']:+.1f} "
                       f"| {d['wins']} / {d['losses']} | {mcnemar_p(d['wins'], d['losses']):.3g} |")
    params = dict(network_ms=args.network_ms, reaction_ms=args.reaction_ms, accountings=("warm",))
    tables = {"this config, aligned timings": summary(aligned[aligned["task_id"].isin(tasks)], THRESHOLDS, **params),
              "this config, raw timings": summary(rows[rows["task_id"].isin(tasks)], THRESHOLDS, **params),
              f"`{args.baseline_config}` (one session per task)": summary(base[base["task_id"].isin(tasks)],
                                                                          THRESHOLDS, **params)}
    out += ["", "The cascade on these tasks (warm, MCCom at its best threshold):", "",
            "| rows | MCCom EM % | always-LLM EM % | LLM calls % | MCCom mean s | always-LLM mean s "
            "| latency vs LLM % |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, t in tables.items():
        t = t.set_index("policy")
        m, llm = t.loc["mccom"], t.loc["always-llm"]
        out.append(f"| {name} | {100 * m['em']:.1f} | {100 * llm['em']:.1f} | {100 * m['llm_share']:.1f} "
                   f"| {m['mean_ms'] / 1e3:.2f} | {llm['mean_ms'] / 1e3:.2f} | {m['latency_vs_llm_pct']:+.1f} |")
    return out + [""]


def timing_section(raw, aligned, args) -> list[str]:
    """Raw against session-aligned latency of the key policies, the speeds behind the alignment,
    and its check: a task's escalation and direct-LLM prefill cost per token should agree."""
    n_mixed = mixed_tasks(aligned)
    if not n_mixed:
        return []
    esc = CascadeConfig().branches[-1]
    tables = {name: summary(r, THRESHOLDS, network_ms=args.network_ms, reaction_ms=args.reaction_ms,
                            accountings=("warm",)).set_index("policy") for name, r in (("raw", raw), ("aligned", aligned))}
    out = ["## Timing sessions", "",
           f"{n_mixed} tasks have rows timed in another session than their first row (a rerun that recomputed "
           "one branch and reused the others). `mccom_core.cascade.timing.align_sessions` rescales such rows to "
           "the speed of the task's first session: prefill columns by the ratio of the two sessions' median "
           "prefill ms per prompt token, decode columns by the ratio of their median ms per decoding step "
           "(same model role). The policy tables above use the aligned timings; the raw ones are here.", "",
           "| policy | threshold (raw / aligned) | mean s warm, raw | mean s warm, aligned "
           "| latency vs LLM %, raw | latency vs LLM %, aligned |", "|---|---|---:|---:|---:|---:|"]
    for name in ("always-llm", "rejection-only", "mccom"):
        r, a = tables["raw"].loc[name], tables["aligned"].loc[name]
        out.append(f"| {name} | {_fmt(r['threshold'], 2)} / {_fmt(a['threshold'], 2)} | {_fmt(r['mean_ms'] / 1e3, 2)} "
                   f"| {_fmt(a['mean_ms'] / 1e3, 2)} | {_fmt(r['latency_vs_llm_pct'])} | {_fmt(a['latency_vs_llm_pct'])} |")
    moved = aligned["timing_session"] != aligned["reference_session"]
    tasks = aligned.loc[moved, "task_id"].unique()
    check = {name: paired_prefill_ratio(r[r["task_id"].isin(tasks)], esc, "llm")
             for name, r in (("raw", raw), ("aligned", aligned))}
    if len(check["raw"]):
        out += ["", f"Check, on those tasks: the `{esc}` branch's prefill ms per prompt token over the same task's "
                f"`llm` branch (same model, prompts of similar length; about 1.0 when both ran at one speed): "
                f"median {check['raw'].median():.3f} raw (IQR {check['raw'].quantile(.25):.3f}-"
                f"{check['raw'].quantile(.75):.3f}), {check['aligned'].median():.3f} aligned (IQR "
                f"{check['aligned'].quantile(.25):.3f}-{check['aligned'].quantile(.75):.3f}), n = {len(check['raw'])}."]
    scales, unknown = aligned.loc[moved], int((~aligned["aligned"]).sum())
    left = f"; {unknown} rows left as measured (no speed of their role in one session)" if unknown else ""
    out += ["", f"Scales applied: prefill {scales['prefill_scale'].min():.3f}-{scales['prefill_scale'].max():.3f}, "
            f"decode {scales['decode_scale'].min():.3f}-{scales['decode_scale'].max():.3f}{left}.",
            "", "| session | first row (UTC) | role | rows | prefill ms/token | decode rows | ms/decode step |",
            "|---:|---|---|---:|---:|---:|---:|"]
    speeds = session_speeds(raw, aligned["timing_session"])  # the measured speeds, before rescaling
    starts = aligned.groupby("timing_session")["written_at"].min()
    for (session, role), r in speeds.iterrows():
        when = dt.datetime.fromtimestamp(float(starts[session]), dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        out.append(f"| {session} | {when} | {role} | {int(r['rows'])} | {r['ms_per_token']:.2f} "
                   f"| {int(r['decode_rows'])} | {_fmt(r['ms_per_step'], 0)} |")
    return out + [""]


def report(rows, args, run_note: str) -> str:
    raw, aligned = rows, align_sessions(rows)
    rows = aligned if mixed_tasks(aligned) else raw  # like-for-like policy latencies
    table = summary(rows, THRESHOLDS, network_ms=args.network_ms, reaction_ms=args.reaction_ms)
    paper = paper_comparison(rows, table, accounting="warm")
    kinds = rows[rows["task_id"].isin(complete_tasks(rows))].drop_duplicates("task_id")["kind"].value_counts().to_dict()
    chash = getattr(args, "config_hash", None) or rows["config_hash"].iloc[0]
    reused = int((rows["config_hash"] != chash).sum())
    reuse_note = (f" {reused} rows (SLM, round 1, ablations a round-2 option cannot change) are those of config "
                  f"`{'`, `'.join(sorted(set(rows['config_hash']) - {chash}))}` (`runner.config_rows`)." if reused else "")
    m = table[(table["policy"] == "mccom") & (table["accounting"] == "warm")].iloc[0]
    llm = table[(table["policy"] == "always-llm") & (table["accounting"] == "warm")].iloc[0]
    hit_speed = m["latency_vs_llm_pct"] <= TARGET_SPEEDUP_PCT and m["em"] >= llm["em"]
    lines = [
        "# MCCom cascade: policies, latency and the paper's observations",
        "",
        f"Generated by `{' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"CPU: {cpu_name()} (shared with other jobs). {run_note} {load_note(raw)} {speed_note(raw)}",
        f"Versions: {', '.join(f'{k} {v}' for k, v in package_versions().items())}.",
        f"Models: SLM `{rows['slm_spec'].iloc[0]}`, LLM `{rows['llm_spec'].iloc[0]}`; config hash "
        f"`{chash}`; tasks per kind: {kinds} (complete tasks: every core branch stored).{reuse_note}",
        f"Simulated user: exact match after stripping trailing whitespace; network round trip "
        f"{args.network_ms:g} ms per cloud call; reaction time before a rejection registers {args.reaction_ms:g} ms.",
        "",
        sample_note(rows, llm["em"]),
        "",
        "## Policies",
        "",
        "Threshold policies at their best threshold per accounting: the fastest threshold whose EM "
        "reaches always-LLM's, else the one with the highest EM. EM, ES and LLM calls do not depend "
        "on the accounting (shown: warm). *Cold*: every request prefills its whole prompt. *Warm*: the "
        "SLM keeps the KV cache of its prompt up to the cursor's line (as editor integrations do); "
        "the cloud LLM has no cache of the file, so its timings are the cold ones.",
        "",
        *policy_table(table),
        "",
        f"Target (warm, MCCom at its best threshold): at least {-TARGET_SPEEDUP_PCT:.0f}% faster than "
        f"always-LLM at equal or better EM, at most {100 * TARGET_LLM_SHARE:.0f}% of tasks reaching the LLM. "
        f"Measured: {m['latency_vs_llm_pct']:+.1f}% latency, EM {100 * m['em']:.1f}% vs {100 * llm['em']:.1f}%, "
        f"{100 * m['llm_share']:.1f}% LLM calls: speed target **{'met' if hit_speed else 'not met'}**, "
        f"LLM-share target **{'met' if m['llm_share'] <= TARGET_LLM_SHARE else 'not met'}**.",
        "",
        *llm_share_floor(table),
        "",
        "## Per kind",
        "",
        "The key policies on each kind alone (warm accounting, thresholds chosen per kind).",
        "",
        *kind_table(rows, args),
        "",
        "## Sensitivity: network round trip and reaction time",
        "",
        "With no reaction time and no network cost, showing the SLM's suggestion first costs nothing, so "
        "MCCom's best threshold is 0 (rejection-only). A user who needs time to reject, and a network "
        "round trip per cloud call, make the confidence gate pay off: low-confidence suggestions go to the "
        "LLM at once instead of waiting for a rejection.",
        "",
        *sensitivity_table(rows),
        "",
        "## Where the time goes (mean seconds per task)",
        "",
        *time_table(table),
        "",
        "## The paper's numbers beside ours",
        "",
        "| metric | paper | measured (warm, MCCom at best threshold) |",
        "|---|---:|---:|",
        *[f"| {r['metric']} | {r['paper']:+.1f} | {r['measured']:+.1f} |" for _, r in paper.iterrows()],
        "",
        "`slm_output_in_left_pct`: share of non-empty SLM outputs found verbatim in the left context "
        "the prompt showed. `slm_llm_es_pct`: mean edit similarity (rapidfuzz normalized Levenshtein) "
        "between the SLM and the direct LLM outputs. The paper measured on its own benchmarks and "
        "models (and with a GPU cloud model); the comparison is of direction and size, not identity.",
        "",
        *retrieval_section(rows),
        *baseline_section(raw, aligned, args),
        *timing_section(raw, aligned, args),
        "## Branches",
        "",
        "As measured (raw timings).",
        "",
        *branch_table(raw),
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=str(PROJECT_ROOT / "data" / "benchmarks" / "default"))
    parser.add_argument("--per-kind", type=int, default=10, help="tasks per kind (round-robin over repositories)")
    parser.add_argument("--rows", type=Path, default=RESULTS / "cascade_rows.jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS / "cascade.md")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--network-ms", type=float, default=0.0)
    parser.add_argument("--reaction-ms", type=float, default=0.0)
    parser.add_argument("--ablation", action="append", default=[],
                        help="also compute these ablation branches: no-retrieval, repocoder, no-drafting (repeatable)")
    parser.add_argument("--ablation-per-kind", type=int, default=None,
                        help="tasks per kind that get the ablation branches (default: --per-kind)")
    parser.add_argument("--step", type=int, default=10,
                        help="run in stages of this many more tasks per kind (ablations follow each stage)")
    parser.add_argument("--round2-query", choices=["repocoder", "around"], default=None,
                        help="MCCom's round-2 query (RetrievalConfig.round2_query; default: the config's). A "
                             "changed round-2 option recomputes only the round-2 branches: the SLM and round-1 "
                             "rows of the same file hold for it (runner.config_rows)")
    parser.add_argument("--report-only", action="store_true", help="no model runs: tables from stored rows")
    parser.add_argument("--baseline-config", default=BASELINE_CONFIG,
                        help="config hash whose round-2 branch the report compares with, on the same tasks "
                             "(default: the run with RepoCoder's round-2 query; '' for none)")
    args = parser.parse_args(argv)

    config = CascadeConfig()
    if args.round2_query:
        config = replace(config, retrieval=replace(config.retrieval, round2_query=args.round2_query))
    note = "Report from stored rows only."
    if not args.report_only:
        from mccom_core.lm.models import load_model

        load = os.getloadavg()[0]
        slm, llm = load_model(config.slm, device=args.device), load_model(config.llm, device=args.device)
        ablation_config = config.with_ablations(*args.ablation) if args.ablation else None
        ablation_per_kind = args.ablation_per_kind or args.per_kind
        written = existing = 0
        main_s = ablation_s = 0.0
        ablation_rows, skipped = 0, {}
        # Stages of --step tasks per kind: a run stopped part way (the full one takes several
        # sessions) has both kinds and the ablation branches of the tasks it has done.
        for limit in range(min(args.step, args.per_kind), args.per_kind + args.step, args.step):
            limit = min(limit, args.per_kind)
            run = run_benchmark(args.tasks, args.rows, config, limit=limit, slm=slm, llm=llm)
            written, main_s = written + run.rows_written, main_s + run.seconds
            existing = existing or run.rows_existing
            skipped.update(run.skipped)
            if ablation_config is not None and limit - args.step < ablation_per_kind:
                extra = run_benchmark(args.tasks, args.rows, ablation_config, limit=min(limit, ablation_per_kind),
                                      slm=slm, llm=llm)
                ablation_rows, ablation_s = ablation_rows + extra.rows_written, ablation_s + extra.seconds
                skipped.update(extra.skipped)
            if limit == args.per_kind:
                break
        per_task = main_s / max(written / len(config.branches), 1)
        ablation_note = (f" Ablation branches ({', '.join(args.ablation)}): {ablation_rows} rows computed in "
                         f"{ablation_s / 60:.1f} min." if args.ablation else "")
        note = (f"This call: {written} rows computed ({existing} already stored) in "
                f"{main_s / 60:.1f} min, ~{per_task:.0f} s per task for all branches incl. the untimed warm-up; "
                f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
                f"{len(skipped)} task(s) skipped.{ablation_note}")
        for where, why in skipped.items():
            print(f"skipped {where}: {why}", file=sys.stderr)
    rows = read_results(args.rows, config=config)
    args.config_hash = config_hash(config)
    if rows.empty:
        print(f"no rows of config {config_hash(config)} in {args.rows}", file=sys.stderr)
        return 1
    text = report(rows, args, note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    raise SystemExit(code)
