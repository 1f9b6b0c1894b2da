"""Routing policies and latency accounting: pure functions of branch rows.

The simulated user who accepts or rejects a shown suggestion is in :mod:`mccom_core.cascade.users`.

Every policy decides, per task, three things from the branch table (see
:mod:`mccom_core.cascade.engine`) and its parameters: whether the SLM runs, whether its suggestion
is shown, and whether the cloud LLM is called. An LLM call after an SLM attempt takes the
``escalation`` branch (round-2 retrieval, SLM output as draft); without an SLM attempt it
takes the ``llm`` branch (always-LLM).

========================  ==========  ===============  ==================================
policy                    SLM runs    SLM shown        LLM called
========================  ==========  ===============  ==================================
``always-slm``            yes         yes              never
``always-llm``            no          no               always (direct)
``confidence-only``       yes         conf >= t        conf < t
``rejection-only``        yes         yes              the user rejects it
``mccom``                 yes         conf >= t        conf < t, or the user rejects it
``oracle``                yes         SLM is right     SLM is wrong (the bound)
========================  ==========  ===============  ==================================

Latency per task (one accounting, ``cold`` or ``warm``, see :mod:`mccom_core.cascade.engine`)::

    total = SLM (prefill + decode) + retrieval (each branch taken) + LLM (prefill + decode)
            + network round trip per cloud call + the user's reaction time before a
            rejection registers (only when a shown suggestion is rejected)

and the time to the first shown suggestion is the SLM's time when it is shown, else the
total. Cloud timings are the same in both accountings (the cloud holds no cache of the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from mccom_core.cascade.engine import output_similarity, verbatim_share
from mccom_core.errors import MccomError
from mccom_core.papers import MCCOM_HEADLINES
from mccom_core.cascade.users import SimulatedUser, make_user

ACCOUNTINGS = ("cold", "warm")
DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.0, 1.0, 101))

# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class Route:
    """Per-task decisions of a policy (boolean arrays of one length)."""

    run_slm: np.ndarray
    show_slm: np.ndarray
    escalate: np.ndarray


class Policy:
    """A routing policy: decisions from the SLM's confidence test and the user's verdict."""

    name: ClassVar[str]
    uses_threshold: ClassVar[bool] = False

    def route(self, confident: np.ndarray, accepted: np.ndarray) -> Route:
        """``confident``: SLM confidence >= threshold; ``accepted``: the user would take the SLM output."""
        raise NotImplementedError


def _full(like: np.ndarray, value: bool) -> np.ndarray:
    return np.full(len(like), value)


class AlwaysSLM(Policy):
    name = "always-slm"

    def route(self, confident, accepted):
        return Route(_full(accepted, True), _full(accepted, True), _full(accepted, False))


class AlwaysLLM(Policy):
    name = "always-llm"

    def route(self, confident, accepted):
        return Route(_full(accepted, False), _full(accepted, False), _full(accepted, True))


class ConfidenceOnly(Policy):
    name = "confidence-only"
    uses_threshold = True

    def route(self, confident, accepted):
        return Route(_full(accepted, True), confident.copy(), ~confident)


class RejectionOnly(Policy):
    name = "rejection-only"

    def route(self, confident, accepted):
        return Route(_full(accepted, True), _full(accepted, True), ~accepted)


class MCCom(Policy):
    name = "mccom"
    uses_threshold = True

    def route(self, confident, accepted):
        return Route(_full(accepted, True), confident.copy(), ~confident | ~accepted)


class Oracle(Policy):
    name = "oracle"

    def route(self, confident, accepted):
        return Route(_full(accepted, True), accepted.copy(), ~accepted)


POLICIES: dict[str, Policy] = {p.name: p for p in (
    AlwaysSLM(), AlwaysLLM(), ConfidenceOnly(), RejectionOnly(), MCCom(), Oracle())}


# --------------------------------------------------------------------------- branch table


@dataclass(frozen=True)
class CascadeBranches:
    """Which stored branches play the SLM, the direct LLM and the escalation."""

    slm: str = "slm"
    llm: str = "llm"
    escalation: str = "llm_rejected"  # e.g. "llm_rejected_repocoder" for that ablation


@dataclass(frozen=True)
class LatencyModel:
    """How per-task latency is accounted (see the module docstring)."""

    accounting: str = "cold"  # "cold": full prefill per request; "warm": SLM reuses its cache
    network_ms: float = 0.0  # modeled round trip per cloud call; 0 = the measured compute only
    reaction_ms: float = 0.0  # before a rejection registers (the user keeps typing); 0 = instant

    def __post_init__(self):
        if self.accounting not in ACCOUNTINGS:
            raise MccomError(f"unknown accounting {self.accounting!r}: use one of {ACCOUNTINGS}")
        if self.network_ms < 0 or self.reaction_ms < 0:
            raise MccomError("network_ms and reaction_ms must be >= 0")


_FIELDS = ("prediction", "confidence", "em", "es", "retrieval_ms", "prefill_ms", "decode_ms",
           "draft_ms", "warm_prefill_ms", "warm_decode_ms", "warm_draft_ms")


def branch_table(results, branches: CascadeBranches = CascadeBranches()) -> pd.DataFrame:
    """One row per task with the columns of the three branches, prefixed ``slm_``, ``llm_``, ``esc_``.

    Tasks missing one of the branches are left out. A (task, branch) pair stored twice
    (rows of two configs mixed) raises: filter the results by ``config_hash`` first.
    """
    df = pd.DataFrame(results)
    if df.empty or "branch" not in df:
        raise MccomError("no branch rows: run `mccom bench run` (or mccom_core.cascade.runner.run_benchmark) first")
    parts = []
    for prefix, name in (("slm", branches.slm), ("llm", branches.llm), ("esc", branches.escalation)):
        sub = df[df["branch"] == name]
        if sub.empty:
            raise MccomError(f"no rows of branch {name!r}: compute it (CascadeConfig.branches) or pick another")
        if sub["task_id"].duplicated().any():
            raise MccomError(f"branch {name!r} has several rows per task: filter the results by config_hash")
        sub = sub.set_index("task_id")
        cols = sub[list(_FIELDS)].rename(columns=lambda c: f"{prefix}_{c}")
        parts.append(sub[["kind", "ground_truth"]].join(cols) if prefix == "slm" else cols)
    return parts[0].join(parts[1:], how="inner")


def _component(table: pd.DataFrame, prefix: str, accounting: str) -> tuple[np.ndarray, ...]:
    """(retrieval, prefill, decode) ms of one branch; decode includes drafting time."""
    get = lambda c: table[f"{prefix}_{c}"].to_numpy(dtype=float)  # noqa: E731
    prefill, decode = get("prefill_ms"), get("decode_ms") + get("draft_ms")
    if accounting == "warm":
        warm_pf = get("warm_prefill_ms")
        warm_dec = get("warm_decode_ms") + get("warm_draft_ms")
        prefill = np.where(np.isnan(warm_pf), prefill, warm_pf)
        decode = np.where(np.isnan(warm_dec), decode, warm_dec)
    return get("retrieval_ms"), prefill, decode


def _simulate(table: pd.DataFrame, policy: Policy, threshold: float | None,
              slm_accepted: np.ndarray, user: SimulatedUser, latency: LatencyModel) -> pd.DataFrame:
    confident = table["slm_confidence"].to_numpy(dtype=float) >= (threshold if threshold is not None else 0.0)
    r = policy.route(confident, slm_accepted)
    run, show, esc = (np.asarray(a, dtype=bool) for a in (r.run_slm, r.show_slm, r.escalate))
    s_ret, s_pf, s_dec = _component(table, "slm", latency.accounting)
    l_ret, l_pf, l_dec = _component(table, "llm", "cold")
    e_ret, e_pf, e_dec = _component(table, "esc", "cold")
    # The cloud branch taken: the escalation after an SLM attempt, else the direct LLM.
    c_ret, c_pf, c_dec = (np.where(run, e, l) for e, l in ((e_ret, l_ret), (e_pf, l_pf), (e_dec, l_dec)))
    pick = lambda col: np.where(esc, np.where(run, table[f"esc_{col}"], table[f"llm_{col}"]),  # noqa: E731
                                table[f"slm_{col}"])
    out = pd.DataFrame({"task_id": table.index, "kind": table["kind"].to_numpy()})
    out["policy"], out["threshold"], out["accounting"] = policy.name, threshold, latency.accounting
    out["route"] = np.select([~esc, ~run, show], ["slm", "llm", "rejected"], "withheld")
    out["prediction"] = pick("prediction")
    out["em"], out["es"] = pick("em").astype(bool), pick("es").astype(float)
    out["accepted"] = [user.accepts(p, g) for p, g in zip(out["prediction"], table["ground_truth"])]
    out["llm_call"] = esc
    out["slm_ms"] = run * (s_pf + s_dec)
    out["llm_ms"] = esc * (c_pf + c_dec)
    out["retrieval_ms"] = run * s_ret + esc * c_ret
    out["network_ms"] = esc * latency.network_ms
    out["wait_ms"] = (show & esc) * latency.reaction_ms
    out["prefill_ms"] = run * s_pf + esc * c_pf
    out["decode_ms"] = run * s_dec + esc * c_dec
    out["total_ms"] = out[["slm_ms", "llm_ms", "retrieval_ms", "network_ms", "wait_ms"]].sum(axis=1)
    out["first_shown_ms"] = np.where(show, run * (s_ret + s_pf + s_dec), out["total_ms"])
    return out


def _check_threshold(policy: Policy, threshold: float | None) -> float | None:
    if not policy.uses_threshold:
        return None
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise MccomError(f"policy {policy.name!r} needs a confidence threshold in [0, 1], got {threshold!r}")
    return value


def _policy(name: str) -> Policy:
    if name not in POLICIES:
        raise MccomError(f"unknown policy {name!r}: choose one of {list(POLICIES)}")
    return POLICIES[name]


def _slm_accepted(table: pd.DataFrame, user: SimulatedUser) -> np.ndarray:
    return np.array([user.accepts(p, g) for p, g in zip(table["slm_prediction"], table["ground_truth"])],
                    dtype=bool)


def simulate(results, policy: str, threshold: float | None = None, *, user: str | SimulatedUser = "exact",
             latency: LatencyModel = LatencyModel(),
             branches: CascadeBranches = CascadeBranches()) -> pd.DataFrame:
    """Per task: what ``policy`` shows, whether the user accepts it, and where the time goes.

    Columns: ``route`` (slm, llm, withheld = escalated before showing, rejected = shown then
    escalated), ``prediction``, ``em``, ``es``, ``accepted``, ``llm_call``, and milliseconds
    ``slm_ms``, ``llm_ms``, ``retrieval_ms``, ``network_ms``, ``wait_ms`` (summing to
    ``total_ms``; ``prefill_ms`` + ``decode_ms`` split the compute), ``first_shown_ms``.
    """
    pol, table, user = _policy(policy), branch_table(results, branches), make_user(user)
    return _simulate(table, pol, _check_threshold(pol, threshold), _slm_accepted(table, user), user, latency)


_MEANS = ("em", "es", "accepted", "first_shown_ms", "llm_call", "slm_ms", "llm_ms", "retrieval_ms",
          "network_ms", "wait_ms", "prefill_ms", "decode_ms")


def _aggregate(frame: pd.DataFrame) -> dict:
    total = frame["total_ms"].to_numpy(dtype=float)
    row = {"n": len(frame), "mean_ms": float(total.mean()), "p90_ms": float(np.percentile(total, 90))}
    row.update({c: float(frame[c].mean()) for c in _MEANS})
    row["accept_rate"], row["llm_share"] = row.pop("accepted"), row.pop("llm_call")
    return row


def sweep(results, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *, policies: Sequence[str] | None = None,
          user: str | SimulatedUser = "exact", accountings: Sequence[str] = ACCOUNTINGS,
          network_ms: float = 0.0, reaction_ms: float = 0.0,
          branches: CascadeBranches = CascadeBranches(), by_kind: bool = False) -> pd.DataFrame:
    """EM, ES, mean and p90 latency, LLM-call share per policy, threshold and accounting.

    Pure: reads the stored branch rows only. Threshold policies get one row per threshold;
    the others one row with ``threshold`` NaN. ``kind`` is ``"all"``, plus one row per task
    kind with ``by_kind``. Latency columns are means in ms, except ``p90_ms``.
    """
    table, user = branch_table(results, branches), make_user(user)
    accepted = _slm_accepted(table, user)
    names = list(POLICIES) if policies is None else list(policies)
    rows = []
    for accounting in accountings:
        latency = LatencyModel(accounting, network_ms, reaction_ms)
        for name in names:
            pol = _policy(name)
            for t in (thresholds if pol.uses_threshold else [None]):
                per_task = _simulate(table, pol, _check_threshold(pol, t), accepted, user, latency)
                groups = [("all", per_task)] + (list(per_task.groupby("kind")) if by_kind else [])
                for kind, frame in groups:
                    rows.append({"policy": name, "threshold": np.nan if t is None else float(t),
                                 "accounting": accounting, "kind": kind, **_aggregate(frame)})
    return pd.DataFrame(rows)


def best_threshold(sweep_frame: pd.DataFrame, policy: str = "mccom", accounting: str = "warm",
                   kind: str = "all", reference: str = "always-llm") -> float:
    """The threshold with the lowest mean latency among those with EM >= ``reference``'s EM;
    when none reaches it, the one with the highest EM (ties: lower latency)."""
    sel = sweep_frame[(sweep_frame["accounting"] == accounting) & (sweep_frame["kind"] == kind)]
    rows, ref = sel[sel["policy"] == policy], sel[sel["policy"] == reference]
    if rows.empty or ref.empty:
        raise MccomError(f"the sweep has no rows of {policy!r} and {reference!r} for {accounting}/{kind}")
    good = rows[rows["em"] >= float(ref["em"].iloc[0]) - 1e-12]
    pick = good.sort_values(["mean_ms", "threshold"]) if not good.empty else \
        rows.sort_values(["em", "mean_ms", "threshold"], ascending=[False, True, True])
    return float(pick["threshold"].iloc[0])


def summary(results, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, **kwargs) -> pd.DataFrame:
    """Every policy per accounting, threshold policies at their :func:`best_threshold`, with
    changes relative to always-LLM (``*_vs_llm_pct``) and the distance to the oracle.

    ``kwargs`` go to :func:`sweep` (user, network_ms, reaction_ms, branches, accountings).
    """
    kwargs.pop("by_kind", None)
    frame = sweep(results, thresholds, **kwargs)
    rows = []
    for accounting in frame["accounting"].unique():
        sel = frame[frame["accounting"] == accounting]
        for name in sel["policy"].unique():
            rows_p = sel[sel["policy"] == name]
            if POLICIES[name].uses_threshold:
                t = best_threshold(frame, name, accounting)
                rows_p = rows_p[rows_p["threshold"] == t]
            rows.append(rows_p.iloc[0])
    out = pd.DataFrame(rows).reset_index(drop=True)
    for accounting in out["accounting"].unique():
        at = out["accounting"] == accounting
        llm = out[at & (out["policy"] == "always-llm")].iloc[0]
        oracle = out[at & (out["policy"] == "oracle")].iloc[0]
        out.loc[at, "latency_vs_llm_pct"] = 100 * (out.loc[at, "mean_ms"] / llm["mean_ms"] - 1)
        out.loc[at, "em_vs_llm_pct"] = 100 * (out.loc[at, "em"] / llm["em"] - 1) if llm["em"] else np.nan
        out.loc[at, "llm_calls_vs_llm_pct"] = 100 * (out.loc[at, "llm_share"] - 1)
        out.loc[at, "em_below_oracle"] = oracle["em"] - out.loc[at, "em"]
        out.loc[at, "ms_above_oracle"] = out.loc[at, "mean_ms"] - oracle["mean_ms"]
    return out


# --------------------------------------------------------------------------- the paper's numbers


def paper_comparison(results, summary_frame: pd.DataFrame, accounting: str = "warm",
                     policy: str = "mccom") -> pd.DataFrame:
    """The paper's five headline numbers beside ours (percent)."""
    row = summary_frame[(summary_frame["accounting"] == accounting) & (summary_frame["policy"] == policy)].iloc[0]
    ours = {
        "latency_vs_llm_pct": row["latency_vs_llm_pct"], "llm_calls_vs_llm_pct": row["llm_calls_vs_llm_pct"],
        "em_vs_llm_pct": row["em_vs_llm_pct"], "slm_output_in_left_pct": 100 * verbatim_share(results),
        "slm_llm_es_pct": 100 * output_similarity(results),
    }
    return pd.DataFrame({"metric": list(MCCOM_HEADLINES), "paper": list(MCCOM_HEADLINES.values()),
                         "measured": [float(ours[k]) for k in MCCOM_HEADLINES]})
