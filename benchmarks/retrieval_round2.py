"""Why round 2 hurts (issue 22 item 2): round-1 vs round-2 LLM exact match, paired per task.

Reads stored cascade rows only (no model runs). On the tasks where both branches ran, the
LLM's round-1 branch (``llm``: BM25 on the context around the cursor) is compared with a
round-2 branch (``llm_rejected``: MCCom's fused query; ``llm_rejected_repocoder``: RepoCoder's
query alone), split by whether the SLM was right and by the SLM's confidence. Both round-2
queries contain the SLM's output, so a wrong draft steers what is retrieved.

Per group: n, both EMs, the difference (round 2 - round 1) with a 95% paired bootstrap
interval (tasks resampled, ``--boot`` draws), the discordant pairs (round 1 only right,
round 2 only right) and the exact two-sided McNemar p (binomial on the discordant pairs).
``copies SLM``: share of LLM predictions equal to the SLM's (stripped), for each branch.

``--makeup`` also rebuilds each branch's retrieved block (BM25 only, with the LLM's tokenizer;
:func:`mccom_core.lab.retrieval_study.retrieval_makeup`, about a minute for 600 tasks) and
splits the tasks by what the round-1 and round-2 blocks hold: a window of the target file
after the cursor (code the left-to-right prompt does not show), or the ground truth itself.

Run (seconds; a minute with ``--makeup``)::

    .venv/bin/python benchmarks/retrieval_round2.py [--makeup]

It prints Markdown and writes it to ``benchmarks/results/retrieval_round2.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mccom_core.paths import PROJECT_ROOT

ROWS = PROJECT_ROOT / "benchmarks" / "results" / "cascade_rows.jsonl"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "retrieval_round2.md"
CONFIG_HASH = "5816af4848882cc3"  # the committed 600-task run and its 200-task ablation


def legacy_config():
    """The cascade config of :data:`CONFIG_HASH`: today's default with RepoCoder's round-2 query,
    the default until issue 22 adopted ``round2_query="around"``. The baseline of the retrieval
    studies (this one, the span filter's, the round-2 variants')."""
    from dataclasses import replace

    from mccom_core.cascade.engine import CascadeConfig, config_hash

    base = CascadeConfig()
    config = replace(base, retrieval=replace(base.retrieval, round2_query="repocoder"))
    assert config_hash(config) == CONFIG_HASH, "the legacy config moved: update CONFIG_HASH"
    return config
ROUND1 = "llm"
ROUND2 = {"fused": "llm_rejected", "repocoder": "llm_rejected_repocoder"}
# SLM-confidence bins, near the quartiles of the committed run (0.71, 0.85, 0.97).
CONFIDENCE_EDGES = (0.0, 0.7, 0.85, 0.97, 1.0)


def paired_frame(rows: pd.DataFrame, branches) -> pd.DataFrame:
    """One row per task holding every branch in ``branches`` (and ``slm``): em, prediction."""
    wide = rows.pivot_table(index="task_id", columns="branch", values=["em", "prediction"], aggfunc="first")
    wide.columns = [f"{value}_{branch}" for value, branch in wide.columns]
    slm = rows[rows["branch"] == "slm"].set_index("task_id")
    frame = wide.join(slm[["kind", "confidence"]].rename(columns={"confidence": "slm_confidence"}))
    need = [f"em_{b}" for b in ("slm", *branches)]
    return frame.dropna(subset=need).astype({c: bool for c in need})


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p: the binomial(n, 1/2) tail of the smaller discordant count."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_difference(a: np.ndarray, b: np.ndarray, boot: int = 10_000, seed: int = 0) -> dict:
    """EM of ``a`` and ``b`` on the same tasks, b - a with a 95% paired bootstrap interval, McNemar."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    diff = b - a
    draws = np.random.default_rng(seed).integers(0, n, size=(boot, n)) if n else np.zeros((0, 0), int)
    means = diff[draws].mean(axis=1) if n else np.array([np.nan])
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    return dict(n=n, em_round1=a.mean() if n else np.nan, em_round2=b.mean() if n else np.nan,
                diff=diff.mean() if n else np.nan, ci_lo=np.percentile(means, 2.5), ci_hi=np.percentile(means, 97.5),
                only_round1=only_a, only_round2=only_b, mcnemar_p=mcnemar_p(only_a, only_b))


def groups(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Task masks: all, by SLM right/wrong, by SLM-confidence bin, by kind (and, with the
    block makeup joined, by what the round-1 / round-2 blocks hold)."""
    out = {"all": pd.Series(True, index=frame.index),
           "SLM right": frame["em_slm"], "SLM wrong": ~frame["em_slm"]}
    bins = pd.cut(frame["slm_confidence"], CONFIDENCE_EDGES, include_lowest=True)
    for interval in bins.cat.categories:
        out[f"SLM conf {interval.left:.2f}-{interval.right:.2f}"] = bins == interval
    for kind in sorted(frame["kind"].unique()):
        out[f"kind {kind}"] = frame["kind"] == kind
    for column, what in (("after_cursor", "a window after the cursor"), ("truth_in_block", "the ground truth")):
        if f"{column}_round1" in frame:
            r1, r2 = frame[f"{column}_round1"].astype(bool), frame[f"{column}_round2"].astype(bool)
            out[f"block holds {what}: round 1 only"] = r1 & ~r2
            out[f"block holds {what}: round 2 only"] = ~r1 & r2
            out[f"block holds {what}: both or neither"] = r1 == r2
    return out


MAKEUP_RETRIEVER = {ROUND1: "round1", "llm_rejected": "mccom-fused", "llm_rejected_repocoder": "repocoder"}


def join_makeup(frame: pd.DataFrame, makeup: pd.DataFrame, round2: str) -> pd.DataFrame:
    """``frame`` with ``after_cursor_round1/2`` (the block has a window after the cursor) and
    ``truth_in_block_round1/2``, from :func:`retrieval_makeup` rows; tasks without them dropped."""
    wide = makeup.assign(after_cursor=makeup["after_cursor"] > 0).pivot_table(
        index="task_id", columns="retriever", values=["after_cursor", "truth_in_block"], aggfunc="first")
    out = frame.copy()
    for suffix, branch in (("round1", ROUND1), ("round2", round2)):
        for column in ("after_cursor", "truth_in_block"):
            out[f"{column}_{suffix}"] = wide[(column, MAKEUP_RETRIEVER[branch])]
    return out.dropna(subset=["after_cursor_round1", "after_cursor_round2"])


def block_makeup_rows(rows: pd.DataFrame, llm_spec: str) -> pd.DataFrame:
    """Per task and retriever, what the cascade's retrieved block holds (BM25 only, no model),
    with the legacy round-2 query of the rows studied here (RepoCoder's, the default before #22)."""
    from mccom_core.lab.retrieval_study import retrieval_makeup

    return retrieval_makeup(rows[rows["branch"] == "slm"].to_dict("records"), llm_spec,
                            tuple(MAKEUP_RETRIEVER.values()), progress=False, cascade_config=legacy_config())


def copies_slm(frame: pd.DataFrame, branch: str) -> pd.Series:
    return frame[f"prediction_{branch}"].str.strip() == frame["prediction_slm"].str.strip()


def compare(frame: pd.DataFrame, round2: str, boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Round 1 vs ``round2`` per group of :func:`groups` (see the module docstring)."""
    out = []
    for name, mask in groups(frame).items():
        sub = frame[mask]
        row = {"group": name, **paired_difference(sub[f"em_{ROUND1}"], sub[f"em_{round2}"], boot, seed)}
        row["copies_slm_round1"] = copies_slm(sub, ROUND1).mean() if len(sub) else np.nan
        row["copies_slm_round2"] = copies_slm(sub, round2).mean() if len(sub) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def render_table(table: pd.DataFrame) -> str:
    head = ("| tasks | n | round 1 EM | round 2 EM | round 2 - round 1 [95% CI] | round 1 only right "
            "| round 2 only right | McNemar p | copies SLM: round 1 | round 2 |\n"
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r.group} | {r.n} | {100 * r.em_round1:.1f} | {100 * r.em_round2:.1f} "
        f"| {100 * r.diff:+.1f} [{100 * r.ci_lo:+.1f}, {100 * r.ci_hi:+.1f}] | {r.only_round1} | {r.only_round2} "
        f"| {r.mcnemar_p:.3f} | {100 * r.copies_slm_round1:.0f}% | {100 * r.copies_slm_round2:.0f}% |\n"
        for r in table.itertuples())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument("--config-hash", default=CONFIG_HASH)
    parser.add_argument("--boot", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--makeup", action="store_true", help="also split by what the blocks hold (BM25 rerun)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = pd.read_json(args.rows, lines=True)
    rows = rows[rows["config_hash"] == args.config_hash]
    makeup = block_makeup_rows(rows, rows["llm_spec"].iloc[0]) if args.makeup else None
    doc = ["# Why round 2 hurts: round-1 vs round-2 LLM exact match, paired per task\n",
           f"Generated by `benchmarks/retrieval_round2.py {' '.join(sys.argv[1:] if argv is None else argv)}` "
           f"from the rows of config `{args.config_hash}` in `{args.rows.name}` (no model runs). "
           f"Round 1: branch `{ROUND1}`; intervals: paired bootstrap over tasks ({args.boot} draws, seed "
           f"{args.seed}); McNemar: exact, on the discordant pairs.\n"]
    for label, branch in ROUND2.items():
        frame = paired_frame(rows, (ROUND1, branch))
        if makeup is not None:
            frame = join_makeup(frame, makeup, branch)
        doc.append(f"\n## {label} round 2 (`{branch}`), {len(frame)} tasks\n\n")
        doc.append(render_table(compare(frame, branch, args.boot, args.seed)))
    text = "".join(doc)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
