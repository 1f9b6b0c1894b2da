"""The "What we found" sections of the notebooks: short Markdown computed from their tables.

Each function takes the frames a notebook has just computed and returns Markdown whose every
number comes from them (no typed results), so a rerun on other models, parameters or rows
updates the conclusions with the tables. Missing pieces (a branch not stored, an empty table)
are said, not skipped silently.
"""

from __future__ import annotations

import math

import pandas as pd

from mccom_core.papers import MCCOM_HEADLINES

OBSERVATION_LABELS = {
    "slm_output_in_left_pct": "local outputs found verbatim in the left context",
    "slm_llm_es_pct": "edit similarity between local and cloud outputs",
    "slm_em_no_retrieval_pct": "local exact match without retrieval",
    "slm_vs_llm_em_pct": "local exact match relative to the cloud model's",
}


def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _signed(x: float, unit: str = "%") -> str:
    return f"{x:+.1f} {unit}" if _ok(x) else "n/a"


def _s(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if _ok(ms) else "n/a"


def _bullets(lines) -> str:
    return "\n".join(f"- {line}" for line in lines) + "\n"


def quickstart(frame: pd.DataFrame, trace: pd.DataFrame, threshold: float) -> str:
    """Notebook 01: each model on the sampled lines, and the confidence cascade's trace."""
    if frame.empty:
        return "No line was completed: nothing to conclude.\n"
    n = frame["line"].nunique()
    lines = []
    for model, g in frame.groupby("model", sort=False):
        total = g["prefill_ms"] + g["decode_ms"]
        lines.append(f"`{model}`: exact match on {int(g['exact_match'].sum())} of {len(g)} lines, median "
                     f"{_s(total.median())} per line, of which prefill (reading the prompt) "
                     f"{100 * g['prefill_ms'].sum() / total.sum():.0f} %")
    models = list(frame["model"].drop_duplicates())
    if len(models) >= 2 and not trace.empty:
        local = int((trace["answered_by"] == models[0]).sum())
        cloud = frame[frame["model"] == models[-1]]
        lines.append(f"the confidence cascade at threshold {threshold:.2f} kept {local} of {len(trace)} lines "
                     f"on the local model; mean time per line {_s(trace['total_ms'].mean())} against "
                     f"{_s((cloud['prefill_ms'] + cloud['decode_ms']).mean())} for the cloud model alone, "
                     f"exact match {int(trace['exact_match'].sum())} vs {int(cloud['exact_match'].sum())}")
    return (f"On {n} sampled lines (an illustration, not a benchmark: notebook 03 has the 600-task "
            f"numbers):\n\n" + _bullets(lines))


def observations(obs: pd.DataFrame) -> str:
    """Notebook 02: the paper's four observations beside ours."""
    lines = []
    for row in obs.itertuples():
        label = OBSERVATION_LABELS.get(row.metric, row.metric)
        if not _ok(row.measured):
            lines.append(f"{label}: not measured (its branch is not stored)")
            continue
        diff = row.measured - row.paper
        lines.append(f"{label}: {row.measured:.1f} % here vs {row.paper:.1f} % in the paper "
                     f"({diff:+.1f} points; {int(row.n_tasks)} tasks)")
    return _bullets(lines) if lines else "No observation could be computed.\n"


def cascade(table: pd.DataFrame, accounting: str) -> str:
    """Notebook 03: MCCom against always-LLM (and the paper), the gate's role, the oracle gap."""
    t = table[table["accounting"] == accounting].set_index("policy")
    if "mccom" not in t.index or "always-llm" not in t.index:
        return f"No MCCom or always-LLM row for {accounting} accounting: nothing to compare.\n"
    m = t.loc["mccom"]
    lines = [f"MCCom at its best threshold ({m['threshold']:.2f}), {accounting} latency, against always-LLM: "
             f"mean latency {_signed(m['latency_vs_llm_pct'])} (paper {MCCOM_HEADLINES['latency_vs_llm_pct']:+.1f} %), "
             f"cloud calls {_signed(m['llm_calls_vs_llm_pct'])} (paper {MCCOM_HEADLINES['llm_calls_vs_llm_pct']:+.1f} %), "
             f"exact match {_signed(m['em_vs_llm_pct'])} (paper {MCCOM_HEADLINES['em_vs_llm_pct']:+.1f} %); "
             f"{100 * m['em']:.1f} % vs {100 * t.loc['always-llm', 'em']:.1f} % exact match, "
             f"{_s(m['mean_ms'])} vs {_s(t.loc['always-llm', 'mean_ms'])} mean, over {int(m['n'])} tasks"]
    if "rejection-only" in t.index:
        r = t.loc["rejection-only"]
        if math.isclose(r["mean_ms"], m["mean_ms"]) and math.isclose(r["em"], m["em"]):
            lines.append("the confidence gate adds nothing at the chosen threshold: MCCom equals rejection-only "
                         "(every saving comes from showing the local suggestion first and escalating on rejection)")
        else:
            lines.append(f"the confidence gate changes mean latency by "
                         f"{_signed(100 * (m['mean_ms'] / r['mean_ms'] - 1))} against rejection-only "
                         f"(exact match {_signed(100 * (m['em'] - r['em']), 'points')})")
    oracle = (f"MCCom reaches the oracle (escalating exactly when the simulated user rejects): a rejection "
              f"already routes like it" if abs(m["em_below_oracle"]) < 5e-4 and abs(m["ms_above_oracle"]) < 0.5 else
              f"the oracle (escalating exactly when the simulated user rejects) is "
              f"{100 * m['em_below_oracle']:.1f} points of exact match and {_s(m['ms_above_oracle'])} of mean "
              f"latency better")
    lines.append(f"cloud calls on {100 * m['llm_share']:.0f} % of tasks; {oracle}")
    return _bullets(lines)


def timing_alignment(raw: pd.DataFrame, aligned: pd.DataFrame, mixed: int, accounting: str) -> str:
    """Notebook 03: whether the latencies were session-aligned, and MCCom's change raw beside aligned.

    ``raw`` and ``aligned`` are :func:`~mccom_core.cascade.policies.summary` tables of the
    measured and the :func:`~mccom_core.cascade.timing.align_sessions` rows; ``mixed`` is the
    number of tasks whose rows span sessions.
    """
    if not mixed:
        return "Every task's branches were timed in one session: the latencies are as measured.\n"
    r = raw[(raw["accounting"] == accounting) & (raw["policy"] == "mccom")]
    a = aligned[(aligned["accounting"] == accounting) & (aligned["policy"] == "mccom")]
    if r.empty or a.empty:
        return f"{mixed} tasks mix timing sessions; no MCCom row to compare raw and aligned latency.\n"
    return _bullets([
        f"{mixed} tasks have branches timed in different sessions (a rerun reused rows of another config), "
        f"on machines of different speed: the tables use timings rescaled to each task's first session "
        f"(`mccom_core.cascade.timing.align_sessions`)",
        f"MCCom against always-LLM ({accounting}): {_signed(a['latency_vs_llm_pct'].iloc[0])} aligned, "
        f"{_signed(r['latency_vs_llm_pct'].iloc[0])} as measured (raw); exact match and cloud calls do not "
        f"depend on timing"])


def speculative(sp: pd.DataFrame, acc: pd.DataFrame) -> str:
    """Notebook 04: post-prefill and end-to-end speed-ups, exactness, acceptance."""
    lines = []
    for role in ("slm", "llm"):
        g = sp[(sp["role"] == role) & (sp["method"] != "plain")]
        if g.empty:
            continue
        best = g.sort_values("post_prefill_speedup", ascending=False).iloc[0]
        same = bool((g["identical"] == 1.0).all())
        lines.append(f"{'local' if role == 'slm' else 'cloud'} model, best method `{best['method']}`: "
                     f"{best['post_prefill_speedup']:.2f}x after the prompt's prefill, "
                     f"{best['total_speedup']:.2f}x end to end (medians over {int(best['n'])} lines); "
                     f"outputs {'identical to plain greedy on every line' if same else 'NOT always identical'}")
        slow = g[g["post_prefill_speedup"] < 1.0]["method"].tolist()
        if slow:
            lines.append(f"slower than plain greedy here: {', '.join(f'`{s}`' for s in slow)}")
    s2 = sp[(sp["role"] == "llm") & (sp["method"] == "stage2")]
    if not s2.empty:
        lines.append(f"stage 2 verified the whole rejected suggestion inside the prefill pass on "
                     f"{int(s2['n_no_decode'].iloc[0])} of {int(s2['n'].iloc[0])} lines (no decode step at all)")
    for row in acc.itertuples():
        lines.append(f"`{row.method}` accepts {100 * row.acceptance:.0f} % of drafted tokens "
                     f"({row.tokens_per_pass:.2f} tokens per pass)")
    return _bullets(lines) if lines else "No speculative run is stored.\n"


def retrieval(ablation: pd.DataFrame, makeup: pd.DataFrame | None = None) -> str:
    """Notebook 05: exact match by retrieval setting, round 2 against round 1, the block's makeup."""
    em = ablation.set_index(["setting", "role"])["em"]
    lines = []
    for role, name in (("slm", "local"), ("llm", "cloud")):
        have = ablation[ablation["role"] == role]
        if not have.empty:
            lines.append(f"{name} exact match: " + ", ".join(
                f"{r.setting} {100 * r.em:.1f} %" for r in have.itertuples()) + f" ({int(have['n'].iloc[0])} tasks)")
    r1 = em.get(("round 1", "llm"))
    for setting in ("fused round 2 (MCCom)", "RepoCoder round 2"):
        r2 = em.get((setting, "llm"))
        if _ok(r1) and _ok(r2):
            verdict = "beats" if r2 > r1 else ("ties" if r2 == r1 else "trails")
            by = "" if r2 == r1 else f" by {100 * abs(r2 - r1):.1f} points"
            lines.append(f"{setting} {verdict} round 1 for the cloud model{by} (the paper expects round 2 to help)")
    if makeup is not None and not makeup.empty:
        for row in makeup.itertuples():
            lines.append(f"`{row.retriever}`: {100 * row.visible_left_share:.0f} % of retrieved windows repeat left "
                         f"context the prompt already shows; the ground truth is in the block on "
                         f"{100 * row.truth_in_block:.0f} % of tasks")
    return _bullets(lines) if lines else "No ablation rows: nothing to conclude.\n"


__all__ = ["cascade", "observations", "quickstart", "retrieval", "speculative"]
