"""Ladder plans: enumerate, score on a validation split, keep the Pareto front, test it.

A plan says, per rung, skip or (k, l, theta). Everything here is a pure function of the
outcomes frame from :func:`mccom_core.ladder.replay.rung_outcomes` (one row per model, k, l,
run, problem); no code is executed. A plan is scored per problem as the mean over the
recorded runs of (dollars spent, final answer correct); a split's (cost, pass@1) is the
mean over its problems, so re-splitting is a column mean, not a re-run.

:func:`search` returns the fronts frame that :mod:`mccom_core.ladder.savings` scores and
:mod:`mccom_core.lab.ladder_plots` draws; :func:`run_plans` does it all for one named
configuration of :mod:`mccom_core.ladder.configs` (the authors' or the project's).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.ladder.replay import acceptance_rule

THETA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Rung:
    """One rung of a plan: k solutions, l test lines per test block, threshold theta."""

    k: int
    l: int
    theta: float | None = None  # None on the last rung (it always answers)


@dataclass(frozen=True)
class Plan:
    """Per model (in ladder order), a :class:`Rung` or ``None`` for skip."""

    rungs: tuple[Rung | None, ...]

    def label(self, models: Sequence[str]) -> str:
        parts = []
        for m, r in zip(models, self.rungs):
            if r is not None:
                t = "" if r.theta is None else f",θ{r.theta:g}"
                parts.append(f"{m}(k{r.k},l{r.l}{t})")
        return " > ".join(parts)

    @property
    def singular(self) -> bool:
        return sum(r is not None for r in self.rungs) == 1

    @property
    def theta(self) -> float | None:
        thetas = {r.theta for r in self.rungs if r is not None and r.theta is not None}
        return thetas.pop() if len(thetas) == 1 else None


def enumerate_plans(n_models: int, options: Sequence[tuple[int, int]],
                    thetas: Sequence[float] = THETA_GRID) -> list[Plan]:
    """All plans: a non-empty ordered subset of rungs; rungs before the last need tests.

    ``options`` are the (k, l) pairs available. A rung that is not last must be able to
    test itself (k >= 1, l >= 1): without tests it could never accept (README rule) or
    would always accept (the authors' code), making later rungs pointless. The last rung
    never has k = 1: it always answers, so one solution's tests would be paid for and never
    read (the authors' ``is_valid_combination`` drops it too). One theta is shared by the
    rungs of a plan, as in the authors' search.
    """
    tested = [o for o in options if o[0] >= 1 and o[1] >= 1]
    finals = [o for o in options if o[0] != 1]
    plans = []
    for size in range(1, n_models + 1):
        for chosen in itertools.combinations(range(n_models), size):
            for last in finals:
                for early in itertools.product(tested, repeat=size - 1):
                    for theta in (thetas if size > 1 else [None]):
                        rungs: list[Rung | None] = [None] * n_models
                        for idx, (k, l) in zip(chosen[:-1], early):
                            rungs[idx] = Rung(k, l, theta)
                        rungs[chosen[-1]] = Rung(last[0], last[1], None)
                        plans.append(Plan(tuple(rungs)))
    return plans


@dataclass
class OutcomeArrays:
    """The outcomes frame as dense arrays indexed [model, option, run, problem]."""

    models: tuple[str, ...]
    options: list[tuple[int, int]]
    numbers: np.ndarray
    passing: np.ndarray
    total: np.ndarray
    best_product: np.ndarray
    correct: np.ndarray
    tokens: np.ndarray

    @classmethod
    def from_frame(cls, outcomes: pd.DataFrame, models: Sequence[str]) -> "OutcomeArrays":
        options = sorted({(int(k), int(l)) for k, l in zip(outcomes["k"], outcomes["l"])})
        runs = sorted(outcomes["run"].unique())
        numbers = np.array(sorted(outcomes["number"].unique()))
        shape = (len(models), len(options), len(runs), len(numbers))
        idx = (
            outcomes["model"].map({m: i for i, m in enumerate(models)}).to_numpy(),
            np.array([options.index((int(k), int(l))) for k, l in zip(outcomes["k"], outcomes["l"])]),
            outcomes["run"].map({r: i for i, r in enumerate(runs)}).to_numpy(),
            np.searchsorted(numbers, outcomes["number"].to_numpy()),
        )
        if np.isnan(idx[0].astype(float)).any():
            raise MccomError(f"outcomes hold models outside the ladder {list(models)}")
        arrays = {}
        for col in ("passing", "total", "best_product", "correct", "tokens"):
            a = np.full(shape, -1 if col != "correct" else 0, dtype=np.int64)
            a[idx] = outcomes[col].to_numpy().astype(np.int64)
            arrays[col] = a
        if (arrays["total"] < 0).any():
            raise MccomError("outcomes are not rectangular (a model/k/l/run/problem is missing): "
                             "re-run the replay over the same problems for every model")
        return cls(tuple(models), options, numbers, **arrays)


def evaluate_plans(arr: OutcomeArrays, plans: Sequence[Plan], dollars_per_token: dict[str, float],
                   rule: str = "readme") -> tuple[np.ndarray, np.ndarray]:
    """Per plan and problem: mean cost ($) and mean correctness over runs; shape (plans, problems)."""
    accept = acceptance_rule(rule)
    cpt = np.array([dollars_per_token[m] for m in arr.models])
    n_runs, n_probs = arr.correct.shape[2:]
    cost = np.zeros((len(plans), n_probs))
    score = np.zeros((len(plans), n_probs))
    opt_index = {o: i for i, o in enumerate(arr.options)}
    for p, plan in enumerate(plans):
        remaining = np.ones((n_runs, n_probs), dtype=bool)
        spent = np.zeros((n_runs, n_probs))
        right = np.zeros((n_runs, n_probs))
        for m, rung in enumerate(plan.rungs):
            if rung is None:
                continue
            o = opt_index[(rung.k, rung.l)]
            spent += remaining * arr.tokens[m, o] * cpt[m]
            if rung.theta is None:
                adopt = remaining
            else:
                adopt = remaining & accept(arr.passing[m, o], arr.total[m, o], arr.best_product[m, o], rung.theta)
            right += adopt & (arr.correct[m, o] == 1)
            remaining = remaining & ~adopt
        cost[p] = spent.mean(0)
        score[p] = right.mean(0)
    return cost, score


def pareto_mask(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (cost <= and score >=, one strictly).

    Exact duplicates of a front point are all kept, as the authors' ``is_pareto`` does.
    Values are compared rounded to 12 decimals: pass@1 is a mean of counts, and two plans
    with the same count must not differ by the last bit of a float sum.
    """
    cost, score = np.round(np.asarray(cost, float), 12), np.round(np.asarray(score, float), 12)
    order = np.lexsort((-score, cost))  # cost ascending, then score descending
    mask = np.zeros(len(cost), dtype=bool)
    best, best_cost = -np.inf, np.nan
    for i in order:
        if score[i] > best:
            best, best_cost = score[i], cost[i]
            mask[i] = True
        elif score[i] == best and cost[i] == best_cost:
            mask[i] = True
    return mask


def split_problems(n: int, seed: int, val_frac: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Seeded validation/test split of problem positions (``random.Random(seed).sample``, as the authors)."""
    if not 0 < val_frac < 1:
        raise MccomError(f"val_frac must lie strictly between 0 and 1, got {val_frac}")
    val = np.array(sorted(random.Random(seed).sample(range(n), int(n * val_frac))), dtype=int)
    test = np.setdiff1d(np.arange(n), val)
    if len(val) == 0 or len(test) == 0:
        raise MccomError(f"{n} problems with val_frac={val_frac} leave an empty split: use more problems "
                         "or a val_frac nearer 0.5")
    return val, test


def search(arr: OutcomeArrays, dollars_per_token: dict[str, float], seeds: Sequence[int] = (7,),
           thetas: Sequence[float] = THETA_GRID, ks: Sequence[int] | None = None,
           ls: Sequence[int] | None = None, val_frac: float = 0.3, rule: str = "readme") -> pd.DataFrame:
    """Pareto plans per seed and theta, chosen on validation and evaluated on test.

    One row per (seed, theta, plan), never two: ``theta`` is a grid value (the plans with
    that theta plus the single-model plans) or ``"all"`` (every plan, pooled). A group's
    rows are the plans on its validation front (``cascade_front``) and every single-model
    plan (``singular``; ``single_front`` marks those on the single-model validation front),
    since the authors' savings metric compares with all of them. Costs are $ per problem
    and, in ``*_rel_cost``, relative to the cheapest single-model plan on the same split.
    Repeated seeds or thetas count once.
    """
    seeds, thetas = list(dict.fromkeys(seeds)), list(dict.fromkeys(thetas))
    options = [o for o in arr.options if (ks is None or o[0] in ks) and (ls is None or o[1] in ls)]
    plans = enumerate_plans(len(arr.models), options, thetas)
    cost, score = evaluate_plans(arr, plans, dollars_per_token, rule)
    singular = np.array([p.singular for p in plans])
    plan_theta = [p.theta for p in plans]
    labels = [p.label(arr.models) for p in plans]
    rows = []
    for seed in seeds:
        val, test = split_problems(len(arr.numbers), seed, val_frac)
        vc, vs, tc, ts = cost[:, val].mean(1), score[:, val].mean(1), cost[:, test].mean(1), score[:, test].mean(1)
        v_ref, t_ref = vc[singular].min(), tc[singular].min()
        single_front = _front(vc, vs, singular)
        groups = [(t, singular | np.array([pt == t for pt in plan_theta])) for t in thetas]
        for theta, member in groups + [("all", np.ones(len(plans), dtype=bool))]:
            on_front = _front(vc, vs, member)
            for i in np.flatnonzero(on_front | singular):
                rows.append({"seed": seed, "theta": theta, "plan": labels[i], "singular": bool(singular[i]),
                             "cascade_front": bool(on_front[i]), "single_front": bool(single_front[i]),
                             "val_cost": vc[i], "val_pass@1": vs[i], "test_cost": tc[i], "test_pass@1": ts[i],
                             "val_rel_cost": vc[i] / v_ref, "test_rel_cost": tc[i] / t_ref,
                             **_rung_columns(plans[i], arr.models)})
    out = pd.DataFrame(rows)
    out.attrs["config"] = {"seeds": seeds, "thetas": thetas, "ks": None if ks is None else list(ks),
                           "val_frac": val_frac, "rule": rule, "dollars_per_token": dollars_per_token,
                           "n_plans": len(plans)}
    return out


def _front(cost: np.ndarray, score: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Boolean mask over all plans: in ``pool`` and on the pool's Pareto front."""
    idx = np.flatnonzero(pool)
    mask = np.zeros(len(cost), dtype=bool)
    mask[idx[pareto_mask(cost[idx], score[idx])]] = True
    return mask


def _rung_columns(plan: Plan, models: Sequence[str]) -> dict:
    cols = {}
    for m, r in zip(models, plan.rungs):
        cols[f"k_{m}"] = -1 if r is None else r.k  # -1: skipped, as the authors' k = -1
        cols[f"l_{m}"] = 0 if r is None else r.l
    return cols


def plan_costs(outcomes: pd.DataFrame, config, throughput_csv=None,
               cost_per_token: dict[str, float] | None = None) -> dict[str, float]:
    """Per-token cost: an explicit mapping, else the configuration's prices, else the throughput table."""
    from mccom_core.ladder import cost as ladder_cost

    if cost_per_token is None:
        cost_per_token = config.dollars_per_token()
    if cost_per_token is None:
        if throughput_csv is None:
            raise MccomError(f"no per-token cost for configuration {config.name!r}: pass prices "
                             "(--prices MODEL=DOLLARS_PER_1K ...), a cost JSON, or the authors' throughput CSV")
        table = ladder_cost.read_throughput(throughput_csv)
        cost_per_token = ladder_cost.dollars_per_token(table, ladder_cost.mean_greedy_tokens(outcomes))
    return cost_per_token


def run_plans(outcomes_path, out_dir, config: str = "project", models: Sequence[str] | None = None,
              throughput_csv=None, cost_per_token: dict[str, float] | None = None,
              seeds: Sequence[int] | None = None, thetas: Sequence[float] | None = None,
              rule: str | None = None, val_frac: float | None = None) -> dict[str, str]:
    """Plan search on a saved outcomes frame; writes ``fronts.csv``, ``savings.csv``, ``plans_config.json``.

    ``config`` names a :mod:`mccom_core.ladder.configs` configuration (``authors`` or
    ``project``); ``seeds``, ``thetas``, ``rule`` and ``val_frac`` override its values.
    Per-token cost: ``cost_per_token`` (model -> cost, e.g. seconds per token measured live),
    else the configuration's prices (the authors'), else the ``throughput_csv``
    (:mod:`mccom_core.ladder.cost`); a throughput table is needed only in that last case.
    ``savings.csv`` has one row per (seed, theta) with both savings metrics.
    """
    import json
    from dataclasses import asdict
    from pathlib import Path

    from mccom_core.ladder.configs import get_config
    from mccom_core.ladder.replay import load_outcomes
    from mccom_core.ladder.savings import savings_table

    cfg = get_config(config)
    outcomes = load_outcomes(outcomes_path)
    if models is None:  # the ladder order recorded with the outcomes
        models = list(outcomes.attrs.get("source", {}).get("models") or [])
        if sorted(models) != sorted(outcomes["model"].unique()):
            raise MccomError("the outcomes do not record their ladder order: pass models small to large")
    cost_per_token = plan_costs(outcomes, cfg, throughput_csv, cost_per_token)
    missing = [m for m in models if m not in cost_per_token]
    if missing:
        raise MccomError(f"no per-token cost for models {missing}: add them to the cost mapping")
    arr = OutcomeArrays.from_frame(outcomes, models)
    fronts = search(arr, cost_per_token, seeds=cfg.seeds if seeds is None else seeds,
                    thetas=cfg.thetas if thetas is None else thetas, ks=cfg.ks,
                    val_frac=cfg.val_frac if val_frac is None else val_frac, rule=rule or cfg.rule)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fronts": str(out / "fronts.csv"), "savings": str(out / "savings.csv"),
             "config": str(out / "plans_config.json")}
    fronts.to_csv(paths["fronts"], index=False)
    savings_table(fronts).to_csv(paths["savings"], index=False)
    Path(paths["config"]).write_text(json.dumps({**fronts.attrs["config"], "configuration": asdict(cfg),
                                                 "models": list(models), "outcomes": str(outcomes_path)},
                                                indent=1))
    return paths
