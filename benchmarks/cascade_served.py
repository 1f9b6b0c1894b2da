"""The MCCom cascade with its LLM behind a served engine (vLLM), against the in-process rows (issue 20, item 4).

Runs the first ``--per-kind`` tasks per kind of the shipped benchmark (round-robin over
repositories, as ``cascade_run.py``) through the cascade's branches with the default config
but the LLM given by ``--spec`` (an ``openai:`` spec: every LLM request goes over HTTP to the
server; the SLM runs in this process), all in this one session, which is what

    mccom bench run --llm <spec> --limit <per-kind> --out <rows>

does (the same :func:`mccom_core.cascade.runner.run_benchmark`). Rows go to ``--rows``
(committed beside the report; a rerun resumes). The report then puts, on the same tasks:

* the policies (always-SLM, always-LLM, rejection-only, MCCom at its best threshold) from the
  served rows, so "latency vs always-LLM" is measured with a real serving engine on the cloud
  side, and from the committed in-process rows (``cascade_rows.jsonl``, session-aligned as
  in ``cascade.md``);
* token for token, whether each served branch's output equals the in-process one (the LLM
  branches must: both are greedy on the same weights in float32), and the time split
  per branch;
* MCCom served with stage 2 off: the escalation branch without a draft
  (``llm_rejected_nodraft``, one plain greedy request on the server; same prompt, so the same
  tokens as ``llm_rejected``), because on vLLM 0.32 stage 2's verification request cannot
  read the prefix cache and prefills the whole prompt again.

    mccom serve qwen2.5-coder-1.5b --port 8391 --eager --kv-cache-gb 1 &   # wait for "ready"
    python benchmarks/cascade_served.py --spec openai:http://127.0.0.1:8391/v1#qwen2.5-coder-1.5b --per-kind 8

Client and server share this machine's two cores; the SLM runs while the server idles.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cascade_run import THRESHOLDS, _fmt, complete_tasks  # noqa: E402
from server_stage2 import server_version  # noqa: E402

from mccom_core.cascade.engine import CascadeConfig, config_hash  # noqa: E402
from mccom_core.cascade.policies import CascadeBranches, summary  # noqa: E402
from mccom_core.cascade.runner import read_results, run_benchmark  # noqa: E402
from mccom_core.cascade.timing import align_sessions  # noqa: E402
from mccom_core.paths import DEFAULT_TASKS  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
POLICIES = ("always-slm", "always-llm", "rejection-only", "mccom", "oracle")
NODRAFT = "llm_rejected_nodraft"  # the escalation with stage 2 off (same prompt, no draft)
SERVED_BRANCHES = (*CascadeConfig().branches, NODRAFT)


def policy_rows(rows: pd.DataFrame, label: str, branches: CascadeBranches = CascadeBranches(),
                policies=POLICIES) -> list[str]:
    """The key policies, cold and warm accounting, as table lines."""
    t = summary(rows, THRESHOLDS, branches=branches)
    out = []
    for name in policies:
        c = t[(t["policy"] == name) & (t["accounting"] == "cold")].iloc[0]
        w = t[(t["policy"] == name) & (t["accounting"] == "warm")].iloc[0]
        out.append(f"| {label} | {name} | {_fmt(w['threshold'], 2)} | {_fmt(w['em'], pct=True)} "
                   f"| {_fmt(w['llm_share'], pct=True)} | {_fmt(c['mean_ms'] / 1e3, 2)} | {_fmt(w['mean_ms'] / 1e3, 2)} "
                   f"| {_fmt(w['p90_ms'] / 1e3, 2)} | {_fmt(c['latency_vs_llm_pct'])} / {_fmt(w['latency_vs_llm_pct'])} |")
    return out


def branch_split(rows: pd.DataFrame, label: str) -> list[str]:
    out = []
    for branch in SERVED_BRANCHES:
        g = rows[rows["branch"] == branch]
        if g.empty:
            continue
        out.append(f"| {label} | {branch} | {len(g)} | {100 * g['em'].mean():.1f} | {g['prompt_tokens'].mean():.0f} "
                   f"| {g['retrieval_ms'].mean() / 1e3:.2f} | {g['prefill_ms'].mean() / 1e3:.2f} "
                   f"| {g['decode_ms'].mean() / 1e3:.2f} | {(g['prefill_ms'] + g['decode_ms']).median() / 1e3:.2f} |")
    return out


def same_token_counts(served: pd.DataFrame, local: pd.DataFrame) -> dict[str, tuple]:
    """Per branch: tasks whose served output tokens equal the in-process row's (stage 2 off
    against the in-process escalation with stage 2: the same prompt, so greedy gives the same tokens)."""
    key = ["task_id", "branch"]
    local = local.assign(branch=local["branch"].astype(str))
    local = pd.concat([local, local[local["branch"] == "llm_rejected"].assign(branch=NODRAFT)])
    both = served[key + ["token_ids", "em"]].merge(local[key + ["token_ids", "em"]], on=key,
                                                   suffixes=("_served", "_local"))
    counts = {}
    for branch in SERVED_BRANCHES:
        g = both[both["branch"] == branch]
        if not g.empty:
            same = sum(list(a) == list(b) for a, b in zip(g["token_ids_served"], g["token_ids_local"]))
            counts[branch] = (len(g), same, 100 * g["em_served"].mean(), 100 * g["em_local"].mean())
    return counts


def same_tokens(served: pd.DataFrame, local: pd.DataFrame) -> list[str]:
    out = []
    for branch, (n, same, em_served, em_local) in same_token_counts(served, local).items():
        against = " (in-process: llm_rejected)" if branch == NODRAFT else ""
        out.append(f"| {branch}{against} | {n} | {same} | {em_served:.1f} | {em_local:.1f} |")
    return out


def reading(served: pd.DataFrame, local: pd.DataFrame, has_nodraft: bool) -> list[str]:
    """The report's reading, every number computed from the rows above it."""
    tables = {}

    def pol(rows, name, accounting, branches=CascadeBranches()):
        key = (id(rows), branches)  # one policy sweep per row set and escalation branch
        if key not in tables:
            tables[key] = summary(rows, THRESHOLDS, branches=branches)
        t = tables[key]
        return t[(t["policy"] == name) & (t["accounting"] == accounting)].iloc[0]

    def mean_s(rows, branch, col):
        return rows.loc[rows["branch"] == branch, col].mean() / 1e3

    s_llm, l_llm = pol(served, "always-llm", "warm"), pol(local, "always-llm", "warm")
    s_mc = [pol(served, "mccom", a) for a in ("cold", "warm")]
    l_mc = [pol(local, "mccom", a) for a in ("cold", "warm")]
    esc = mean_s(served, "llm_rejected", "prefill_ms") + mean_s(served, "llm_rejected", "decode_ms")
    direct = mean_s(served, "llm", "prefill_ms") + mean_s(served, "llm", "decode_ms")
    verify, plain = mean_s(served, "llm_rejected", "decode_ms"), mean_s(served, "llm", "decode_ms")
    text = (f"Client and server share this machine's two cores. The served LLM takes "
            f"{s_llm['mean_ms'] / 1e3:.1f} s per always-LLM task against {l_llm['mean_ms'] / 1e3:.1f} s "
            f"in-process ({s_llm['mean_ms'] / l_llm['mean_ms']:.2f}x; `server_lines.md` splits a line's time "
            f"into queue, prefill and decode on both sides). Against that "
            f"cloud, MCCom changes mean latency vs always-LLM by {s_mc[0]['latency_vs_llm_pct']:+.1f}% cold / "
            f"{s_mc[1]['latency_vs_llm_pct']:+.1f}% warm, against {l_mc[0]['latency_vs_llm_pct']:+.1f}% / "
            f"{l_mc[1]['latency_vs_llm_pct']:+.1f}% with the LLM in-process; EM ({s_mc[1]['em'] * 100:.1f}%, "
            f"always-LLM {s_llm['em'] * 100:.1f}%) and LLM share ({s_mc[1]['llm_share'] * 100:.1f}%) are the "
            f"same in both, the outputs being the same. The difference is the escalation: served, an escalated "
            f"line costs {esc:.1f} s of LLM time after the SLM's attempt against {direct:.1f} s for a direct "
            f"call, because stage 2 over the API adds a verification request that prefills the whole prompt "
            f"again (vLLM 0.32 computes prompt log probabilities without the prefix cache): {verify:.1f} s "
            f"after the first token against {plain:.1f} s for a plain request. In-process, stage 2 makes "
            f"the escalation cheaper than a direct call instead "
            f"({mean_s(local, 'llm_rejected', 'decode_ms'):.2f} s of decode against "
            f"{mean_s(local, 'llm', 'decode_ms'):.2f} s).")
    if has_nodraft:
        n_mc = [pol(served, "mccom", a, CascadeBranches(escalation=NODRAFT)) for a in ("cold", "warm")]
        text += (f" With stage 2 off the escalation is one plain greedy request and served MCCom is at "
                 f"{n_mc[0]['latency_vs_llm_pct']:+.1f}% cold / {n_mc[1]['latency_vs_llm_pct']:+.1f}% warm vs "
                 f"always-LLM: " + ("against a server like this one, stage 2 off is the faster choice."
                                     if n_mc[1]["mean_ms"] < s_mc[1]["mean_ms"] else "stage 2 still pays here."))
    counts = same_token_counts(served, local)
    if all(n == same for n, same, *_ in counts.values()):
        text += (" Every served branch gave the in-process greedy tokens on every task (the first table): "
                 "the server changes timings only.")
    else:
        text += (" Some served outputs differ from the in-process greedy ones (the first table): "
                 "the server is not lossless here; find out why before reading its timings.")
    return ["## Reading", "", text, ""]


def report(served: pd.DataFrame, local: pd.DataFrame, args, note: str) -> str:
    core = list(CascadeConfig().branches)
    local_aligned = align_sessions(local)  # speeds per session from all rows, as cascade.md
    tasks = sorted(set(complete_tasks(served)) & set(complete_tasks(local)))

    def pick(r, branches=core):
        return r[r["task_id"].isin(tasks) & r["branch"].isin(branches)]

    has_nodraft = set(tasks) <= set(served.loc[served["branch"] == NODRAFT, "task_id"])
    served, local, local_aligned = pick(served, SERVED_BRANCHES), pick(local), pick(local_aligned)
    nodraft = policy_rows(served, "served (vLLM), stage 2 off", CascadeBranches(escalation=NODRAFT),
                          ("rejection-only", "mccom", "oracle")) if has_nodraft else []
    kinds = served.drop_duplicates("task_id")["kind"].value_counts().to_dict()
    written = pd.to_datetime(served["written_at"], unit="s", utc=True)
    loads = served["load_average"].dropna() if "load_average" in served else pd.Series(dtype=float)
    load = f" 1-minute load average when rows were written: median {loads.median():.1f}, max {loads.max():.1f}." \
        if len(loads) else ""
    command = "python benchmarks/cascade_served.py " + " ".join(args.argv)
    lines = [
        "# The cascade with a served LLM (vLLM) against the in-process LLM",
        "",
        f"Generated by `{command}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. {note}",
        f"Served rows: {len(tasks)} tasks {kinds}, written {written.min():%Y-%m-%d %H:%M} to "
        f"{written.max():%H:%M} UTC on {cpu_name()} (client and server on this machine, loopback network), Python {platform.python_version()}.{load} LLM `{args.spec}` ({args.version}"
        f"{', ' + args.server_note if args.server_note else ''}); SLM `{served['slm_spec'].iloc[0]}` in-process; "
        f"config `{config_hash(args.config)}` (the default config, `{config_hash(CascadeConfig())}`, with the LLM "
        f"served). In-process rows: the same tasks' rows of `{config_hash(CascadeConfig())}` in "
        f"`cascade_rows.jsonl` (the LLM in the benchmark's own process, float32, same weights), written "
        f"{pd.to_datetime(local['written_at'].min(), unit='s', utc=True):%Y-%m-%d} to "
        f"{pd.to_datetime(local['written_at'].max(), unit='s', utc=True):%Y-%m-%d}, timings session-aligned as "
        f"in `cascade.md`.",
        "",
        "## Same tokens",
        "",
        "Per branch, the tasks whose served-run output tokens equal the in-process row's (greedy, float32, the "
        "same weights; the SLM runs in-process in both).",
        "",
        "| branch | tasks | same tokens | EM % served | EM % in-process |",
        "|---|---:|---:|---:|---:|",
        *same_tokens(served, local),
        "",
        "## Policies",
        "",
        "Each policy at its best threshold (the fastest whose EM reaches always-LLM's, else the highest EM), "
        "warm accounting for the threshold, EM and share; mean seconds per task cold and warm (warm: the SLM "
        "keeps its prompt's KV cache; the LLM's timings are as measured in both).",
        "",
        "| LLM | policy | threshold | EM % | LLM calls % | mean s cold | mean s warm | p90 s warm "
        "| latency vs always-LLM % (cold / warm) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *policy_rows(served, "served (vLLM)"),
        *nodraft,
        *policy_rows(local_aligned, "in-process"),
        "",
        "## Where the time goes, per branch",
        "",
        "Means over the tasks (seconds). Served LLM branches: prefill is the client's time to the first "
        "request's first token (queue, HTTP and the server's prefill), decode the rest of the branch's "
        "requests (with token healing a line makes a constrained one-token request first; stage 2 adds the "
        "verification request, a full prefill on vLLM 0.32).",
        "",
        "| LLM | branch | n | EM % | prompt tokens | retrieval s | prefill s | decode s | median total s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *branch_split(served, "served (vLLM)"),
        *branch_split(local_aligned, "in-process"),
        "",
        *reading(served, local_aligned, has_nodraft),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model> (the LLM)")
    ap.add_argument("--per-kind", type=int, default=8, help="tasks per kind (round-robin over repositories)")
    ap.add_argument("--rows", type=Path, default=RESULTS / "cascade_served_rows.jsonl")
    ap.add_argument("--output", type=Path, default=RESULTS / "cascade_served.md")
    ap.add_argument("--server-note", default="", help="how the server was started, for the report")
    ap.add_argument("--report-only", action="store_true", help="no model runs: the report from stored rows")
    args = ap.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.config = replace(CascadeConfig(), llm=args.spec)

    from mccom_core.lm.remote import load_remote

    remote = load_remote(args.spec)  # one clear error when the server is down or serves another model
    args.version = server_version(remote.config.base_url)
    note = "Report from stored rows only."
    if not args.report_only:
        from mccom_core.lm.models import load_model

        t0, written, skipped = time.perf_counter(), 0, []
        slm = load_model(args.config.slm, device="cpu")
        # One pass per LLM branch, each with its own prefix-cache salt: a cascade sends a task's
        # prompt to the cloud once (directly or after a rejection), so the rejected branch must
        # not find the direct branch's prompt (often the same tokens) cached on the server.
        stamp = time.time_ns()
        for branch in SERVED_BRANCHES[1:]:
            llm = load_remote(args.spec, cache_salt=f"mccom-{branch}-{stamp}")
            run = run_benchmark(DEFAULT_TASKS, args.rows, replace(args.config, branches=("slm", branch)),
                                limit=args.per_kind, device="cpu", slm=slm, llm=llm)
            written, skipped = written + run.rows_written, skipped + list(run.skipped)
        note = (f"This call: {written} rows computed in {(time.perf_counter() - t0) / 60:.1f} min; "
                f"{len(skipped)} task(s) skipped.")
        for where, why in skipped:
            print(f"skipped {where}: {why}", file=sys.stderr)
    served = read_results(args.rows, config=args.config)
    if served.empty:
        print(f"no rows of config {config_hash(args.config)} in {args.rows}", file=sys.stderr)
        return 1
    local = read_results(RESULTS / "cascade_rows.jsonl", config=CascadeConfig())
    text = report(served, local, args, note)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
