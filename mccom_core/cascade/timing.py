"""Timing sessions: compare branches of one task that were timed on different days, like for like.

A rerun that recomputes one branch (say the LLM after a rejection, with a new retrieval query)
reuses the other branches' rows from an earlier config. Those were timed in another session,
often on a machine of another speed (this project's CPU varied by up to 1.8x between days), so
a policy's latency that adds the reused SLM time to the new LLM time, and compares it with the
reused always-LLM time, mixes two machines.

:func:`align_sessions` rescales each row's milliseconds to the speed its task's reference
session had (the session that timed the task's first branch), using one speed per (session,
model role and phase: the median prefill cost per prompt token, and the median cost of a
decoding forward pass after the first (``decode_ms / (n_forward - 1)``), over every row that
session wrote. The two are scaled apart because they did not move together: between the
project's sessions prefill per token varied 1.7x and a decoding step 3x. A session with no
multi-step decode of a role falls back to its prefill factor. The result is a model, not a
measurement: reports give the raw figure beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError

SESSION_GAP_S = 1800.0  # rows more than 30 min apart come from different runs (one task: ~1 min)
PREFILL_COLUMNS = ("retrieval_ms", "prefill_ms", "warm_prefill_ms")  # scaled by the prefill speed
DECODE_COLUMNS = ("decode_ms", "verify_ms", "draft_ms", "warm_decode_ms", "warm_draft_ms")  # by the decode speed


def timing_sessions(rows: pd.DataFrame, gap_s: float = SESSION_GAP_S) -> pd.Series:
    """Session number per row (index aligned with ``rows``): rows sorted by ``written_at``
    start a new session after a gap longer than ``gap_s`` seconds."""
    if "written_at" not in rows:
        raise MccomError("rows carry no written_at: they were written before the runner recorded it")
    t = pd.to_numeric(rows["written_at"], errors="raise").astype(float)
    order = t.sort_values(kind="stable")
    session = (order.diff().fillna(0.0) > gap_s).cumsum()
    return session.reindex(rows.index).astype(int)


def session_speeds(rows: pd.DataFrame, sessions: pd.Series | None = None) -> pd.DataFrame:
    """Per (session, role): ``ms_per_token`` (median prefill ms per prompt token, over ``rows``
    rows) and ``ms_per_step`` (median ms per decoding forward pass after the first, over
    ``decode_rows`` rows; NaN when the session decoded no second step)."""
    sessions = timing_sessions(rows) if sessions is None else sessions
    num = lambda c: pd.to_numeric(rows[c], errors="coerce")  # noqa: E731
    ok = (num("prompt_tokens") > 0) & (num("prefill_ms") > 0)
    prefill = pd.DataFrame({"session": sessions[ok], "role": rows.loc[ok, "role"],
                            "v": num("prefill_ms")[ok] / num("prompt_tokens")[ok]})
    steps = num("n_forward") - 1
    dok = (steps > 0) & (num("decode_ms") > 0)
    decode = pd.DataFrame({"session": sessions[dok], "role": rows.loc[dok, "role"],
                           "v": num("decode_ms")[dok] / steps[dok]})
    p = prefill.groupby(["session", "role"])["v"].agg(["median", "size"])
    d = decode.groupby(["session", "role"])["v"].agg(["median", "size"])
    out = pd.DataFrame({"ms_per_token": p["median"], "rows": p["size"]})
    out = out.join(pd.DataFrame({"ms_per_step": d["median"], "decode_rows": d["size"]}), how="left")
    out["decode_rows"] = out["decode_rows"].fillna(0).astype(int)
    return out


def align_sessions(rows: pd.DataFrame, gap_s: float = SESSION_GAP_S) -> pd.DataFrame:
    """A copy of ``rows`` whose timing columns are rescaled to each task's reference session.

    The reference session of a task is the one that wrote its earliest row. The prefill
    columns of a row of session ``s`` and role ``r`` are multiplied by
    ``ms_per_token(ref, r) / ms_per_token(s, r)``, its decode columns by the same ratio of
    ``ms_per_step`` (speeds from :func:`session_speeds`; the prefill ratio where either session
    has no decode speed); rows already in their reference session keep their numbers exactly.
    Added columns: ``timing_session``, ``reference_session``, ``prefill_scale``, ``decode_scale``,
    and ``aligned`` (False where one of the two sessions never ran the row's role, so there is
    no speed to scale by, or where rows carry no ``written_at``: such rows keep their measured
    numbers).
    """
    out = rows.copy()
    if "written_at" not in out or out["written_at"].isna().all():  # hand-made rows: no sessions to tell
        out["timing_session"] = out["reference_session"] = 0
        out["prefill_scale"], out["decode_scale"], out["aligned"] = 1.0, 1.0, False
        return out
    sessions = timing_sessions(out, gap_s)
    speeds = session_speeds(out, sessions)
    first = out.assign(_s=sessions).sort_values("written_at", kind="stable").groupby("task_id")["_s"].first()
    ref = out["task_id"].map(first).astype(int)
    pre, dec, known = np.ones(len(out)), np.ones(len(out)), np.ones(len(out), dtype=bool)
    for i in np.flatnonzero((ref != sessions).to_numpy()):
        role, s, r = out["role"].iloc[i], sessions.iloc[i], ref.iloc[i]
        if (r, role) not in speeds.index or (s, role) not in speeds.index:
            known[i] = False  # no speed of this role in one of the sessions: left as measured
            continue
        pre[i] = speeds.at[(r, role), "ms_per_token"] / speeds.at[(s, role), "ms_per_token"]
        step = speeds.at[(r, role), "ms_per_step"] / speeds.at[(s, role), "ms_per_step"]
        dec[i] = step if np.isfinite(step) else pre[i]
    for cols, scale in ((PREFILL_COLUMNS, pre), (DECODE_COLUMNS, dec)):
        for col in cols:
            if col in out:
                out[col] = pd.to_numeric(out[col], errors="coerce") * scale
    out["timing_session"], out["reference_session"] = sessions, ref
    out["prefill_scale"], out["decode_scale"], out["aligned"] = pre, dec, known
    return out


def mixed_tasks(aligned: pd.DataFrame) -> int:
    """How many tasks of an :func:`align_sessions` frame have rows outside their reference session."""
    moved = aligned["timing_session"] != aligned["reference_session"]
    return int(aligned.loc[moved, "task_id"].nunique())


def paired_prefill_ratio(rows: pd.DataFrame, branch: str, reference: str) -> pd.Series:
    """Per task, ``branch``'s prefill ms per prompt token over ``reference``'s: about 1 when
    both ran at one speed (the check of an alignment: same model, prompts of similar length)."""
    sub = rows[rows["branch"].isin([branch, reference]) & (pd.to_numeric(rows["prompt_tokens"]) > 0)]
    per_token = pd.to_numeric(sub["prefill_ms"]) / pd.to_numeric(sub["prompt_tokens"])
    wide = pd.DataFrame({"task_id": sub["task_id"], "branch": sub["branch"], "v": per_token}).pivot_table(
        index="task_id", columns="branch", values="v", aggfunc="first")
    if branch not in wide or reference not in wide:
        return pd.Series(dtype=float)
    return (wide[branch] / wide[reference]).dropna()
