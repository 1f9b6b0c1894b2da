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

Stage 2 often verifies the whole draft inside the prefill pass (prompt and draft in one
forward pass): the run then has no decode time at all, and a decode-only ratio explodes.
The honest per-task figure is the time *after the prompt's prefill*: the run's total minus
the plain run's prefill of the same prompt (ours book the draft's verification inside their
``prefill_ms``, so their own prefill is not the prompt's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.jsonl import read_jsonl

ROLES = {"slm": "0.5B (stage 1)", "llm": "1.5B (stage 2)"}  # how the plots name the two blocks
BASELINE = "plain"
# Two timings of the same prompt's prefill differ by about 3 % (std) on the 2-core benchmark
# machine (the 1.5B's ``assisted`` vs ``plain`` prefill: 155 ms of ~4.8 s). A time below 5 %
# of the prompt's prefill is within that noise: it is floored there in ratios.
NOISE_SHARE = 0.05


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

    Per task, the plain run's time over this run's (above 1 is faster):

    - ``total_speedup``: end to end.
    - ``post_prefill_speedup``: time after the prompt's prefill, ``post_prefill_ms`` (this
      run's total minus the plain run's ``prefill_ms``). A post-prefill time below
      ``NOISE_SHARE`` of the prompt's prefill is timing noise: the ratio then uses that floor
      (a lower bound of the speedup) and ``post_prefill_floored`` is True.
    - ``decode_speedup``: decode time only; NaN where either run's decode is below the floor
      (stage 2 verified the whole draft in the prefill pass, or plain made one token).
    """
    out = []
    for row in rows:
        for role in ROLES:
            block = row.get(role)
            if not block:
                continue
            base = block[BASELINE]
            prompt_ms = base["prefill_ms"]  # the prompt's prefill, with no draft in it
            floor = NOISE_SHARE * prompt_ms
            base_post = base["total_ms"] - prompt_ms
            for method, run in block.items():
                if not isinstance(run, dict):
                    continue
                post = run["total_ms"] - prompt_ms
                measured = base["tokens"] > 1 and base["decode_ms"] >= floor
                out.append({
                    "task_id": row["task_id"], "repo": row.get("repo"), "role": role, "method": method,
                    "total_ms": run["total_ms"], "prefill_ms": run["prefill_ms"], "decode_ms": run["decode_ms"],
                    "tokens": run["tokens"], "passes": run.get("passes", np.nan),
                    "drafted": run.get("drafted", np.nan), "accepted": run.get("accepted", np.nan),
                    "rounds": run.get("rounds", np.nan),
                    "identical": bool(block.get("identical", True)),
                    "post_prefill_ms": post, "post_prefill_floored": post < floor,
                    "decode_speedup": (base["decode_ms"] / run["decode_ms"]
                                       if measured and run["decode_ms"] >= floor else np.nan),
                    "post_prefill_speedup": base_post / max(post, floor) if measured else np.nan,
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
    """Per (role, method): median and p90 times and median per-task speedups vs plain greedy.

    ``post_prefill_speedup`` and ``total_speedup`` cover every task (a floored post-prefill
    ratio is a lower bound, which leaves the median exact while fewer than half are floored;
    ``n_floored`` counts them). ``decode_speedup`` covers only the tasks with a measurable
    decode (``n_no_decode`` counts the others), so it leaves out stage 2's best lines.
    """
    frame = frame.assign(no_decode=frame["decode_speedup"].isna())
    g = frame.groupby(["role", "method"], sort=False)
    out = g.agg(n=("task_id", "size"), decode_ms=("decode_ms", "median"), total_ms=("total_ms", "median"),
                post_prefill_ms=("post_prefill_ms", "median"),
                post_prefill_speedup=("post_prefill_speedup", "median"), n_floored=("post_prefill_floored", "sum"),
                total_speedup=("total_speedup", "median"),
                decode_speedup=("decode_speedup", "median"), n_no_decode=("no_decode", "sum"),
                identical=("identical", "mean"))
    out["decode_p90_ms"] = g["decode_ms"].quantile(0.9)
    out["total_p90_ms"] = g["total_ms"].quantile(0.9)
    return out.reset_index()
