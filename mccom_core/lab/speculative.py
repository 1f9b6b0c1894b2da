"""Aggregates of the speculative-decoding benchmark rows (``benchmarks/speculative.py``).

Each JSONL row is one task: ``slm`` holds the 0.5B's ``plain``, ``stage1`` and ``pld``
(transformers' prompt lookup) runs, ``llm`` (only on tasks the SLM missed) the 1.5B's
``plain``, ``stage2``, ``stage2_context`` and ``assisted`` (transformers' assisted
generation) runs; each run has ``total_ms``, ``prefill_ms``, ``decode_ms`` and ``tokens``,
and ours also ``passes``, ``drafted``, ``accepted`` and (rows since session 2) ``rounds``,
the passes that verified a non-empty draft.

With a per-token acceptance rate ``a`` and drafts of ``g`` tokens, one verification pass
yields on average ``(1 - a^(g+1)) / (1 - a)`` tokens (Leviathan et al., 2023): the
theoretical ceiling of the decode speedup when a pass costs what a plain step costs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.jsonl import read_jsonl

ROLES = {"slm": "0.5B (stage 1)", "llm": "1.5B (stage 2)"}  # how the plots name the two blocks
BASELINE = "plain"


def theoretical_speedup(a, g):
    """Expected tokens per verification pass, ``(1 - a^(g+1)) / (1 - a)`` (``g + 1`` at ``a = 1``)."""
    a, g = np.asarray(a, dtype=float), np.asarray(g, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.isclose(a, 1.0), g + 1, (1 - a ** (g + 1)) / (1 - a))
    return out if out.ndim else float(out)


def read_rows(path) -> list[dict]:
    """The rows of a speculative-benchmark JSONL file (a torn last line is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise MccomError(f"no speculative rows at {path}: run `python benchmarks/speculative.py` "
                         "or pass the path of its --rows file")
    rows = read_jsonl(path)
    if not rows:
        raise MccomError(f"{path} holds no rows: run `python benchmarks/speculative.py` first")
    return rows


def method_frame(rows) -> pd.DataFrame:
    """One row per (task, role, method) with timings and, for ours, draft counts.

    ``decode_speedup`` and ``total_speedup`` are the plain run's time over this run's, per
    task (``decode_speedup`` is NaN when plain greedy made at most one token: no decode).
    """
    out = []
    for row in rows:
        for role in ROLES:
            block = row.get(role)
            if not block:
                continue
            base = block[BASELINE]
            for method, run in block.items():
                if not isinstance(run, dict):
                    continue
                decode = max(run["decode_ms"], 1e-6)
                out.append({
                    "task_id": row["task_id"], "repo": row.get("repo"), "role": role, "method": method,
                    "total_ms": run["total_ms"], "prefill_ms": run["prefill_ms"], "decode_ms": run["decode_ms"],
                    "tokens": run["tokens"], "passes": run.get("passes", np.nan),
                    "drafted": run.get("drafted", np.nan), "accepted": run.get("accepted", np.nan),
                    "rounds": run.get("rounds", np.nan),
                    "identical": bool(block.get("identical", True)),
                    "decode_speedup": base["decode_ms"] / decode if base["tokens"] > 1 else np.nan,
                    "total_speedup": base["total_ms"] / run["total_ms"],
                })
    if not out:
        raise MccomError("the rows hold no slm/llm blocks: are they from benchmarks/speculative.py?")
    return pd.DataFrame(out)


def acceptance(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (role, method) of ours that drafts: acceptance rate ``a``, mean draft length ``g``,
    accepted and produced tokens per pass, and the theoretical tokens per pass.

    ``g`` is drafted tokens per draft round (a pass that verified a non-empty draft). Rows
    without a ``rounds`` count fall back to the passes of tasks that drafted at all, which
    bounds the rounds from above, so ``g`` is then a lower bound of the mean draft length.
    """
    rows = []
    ours = frame[frame["drafted"].notna() & (frame["method"] != BASELINE)]
    for (role, method), sub in ours.groupby(["role", "method"], sort=False):
        drafted, accepted = sub["drafted"].sum(), sub["accepted"].sum()
        known = sub["rounds"].notna()
        rounds = sub.loc[known, "rounds"].sum() + sub.loc[~known & (sub["drafted"] > 0), "passes"].sum()
        a = accepted / drafted if drafted else 0.0
        g = drafted / rounds if rounds else 0.0
        rows.append({"role": role, "method": method, "n": len(sub), "drafted": int(drafted),
                     "accepted": int(accepted), "acceptance": a, "draft_len": g,
                     "accepted_per_pass": accepted / sub["passes"].sum(),
                     "tokens_per_pass": sub["tokens"].sum() / sub["passes"].sum(),
                     "theoretical_tokens_per_pass": theoretical_speedup(a, g)})
    return pd.DataFrame(rows)


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (role, method): median and p90 decode/total ms and median speedups vs plain greedy."""
    g = frame.groupby(["role", "method"], sort=False)
    out = g.agg(n=("task_id", "size"), decode_ms=("decode_ms", "median"), total_ms=("total_ms", "median"),
                decode_speedup=("decode_speedup", "median"), total_speedup=("total_speedup", "median"),
                identical=("identical", "mean"))
    out["decode_p90_ms"] = g["decode_ms"].quantile(0.9)
    out["total_p90_ms"] = g["total_ms"].quantile(0.9)
    return out.reset_index()
