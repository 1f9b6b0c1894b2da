"""Cost savings of a ladder over single models: two metrics, read from one fronts frame.

Both are pure functions of the frame :func:`mccom_core.ladder.plans.search` returns (one
row per seed, theta group and plan: every plan on the group's validation front, plus every
single-model plan), and both give one row per (seed, theta), ``theta == "all"`` being the
pooled group. Costs and pass@1 are read on the *test* split.

* ``"project"`` (:func:`project_savings`): for each plan on the single-model validation
  front, the cheapest plan on either front whose test pass@1 is at least as high;
  ``saving = 1 - cost(plan) / cost(single model)``. Reported at the best single model, as
  the mean over the single-model front and as the maximum. Never negative: the single
  model itself qualifies.
* ``"authors"`` (:func:`authors_savings`): the authors' ``plot_avg_curve.py``. For each
  plan on the group's validation front (the "green" points), every single-model plan
  (front or not: the "light-blue" points) whose test pass@1 lies within +-0.5 percentage
  points; ``saving = 1 - cost(plan) / mean cost of those``; front plans with no single model
  in their window are left out, and the metric is the mean over the rest. It can be
  negative (a front plan dearer than single models of its accuracy).

:data:`SAVINGS_METRICS` names them, so a notebook or the CLI asks for either by name.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError

AUTHORS_WINDOW = 0.5  # percentage points either side, plot_avg_curve.py's accuracy_bin_size / 2


def _groups(fronts: pd.DataFrame):
    """(seed, theta) groups in a stable order: seeds ascending, grid thetas, then "all"."""
    keys = list(dict.fromkeys(zip(fronts["seed"], fronts["theta"].astype(str))))
    keys.sort(key=lambda k: (k[0], k[1] == "all", float(k[1]) if k[1] != "all" else 0.0))
    theta_str = fronts["theta"].astype(str)
    for seed, theta in keys:
        g = fronts[(fronts["seed"] == seed) & (theta_str == theta)]
        yield seed, g["theta"].iloc[0], g


def project_savings(fronts: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, theta): saving at the best single model, mean and max over the single-model front."""
    rows = []
    for seed, theta, g in _groups(fronts):
        singles = g[g["single_front"]]
        candidates = g[g["cascade_front"] | g["single_front"]]
        savings = [1.0 - candidates.loc[candidates["test_pass@1"] >= s["test_pass@1"], "test_cost"].min()
                   / s["test_cost"] for _, s in singles.iterrows()]
        best = int(np.argmax(singles["test_pass@1"].to_numpy()))
        rows.append({"seed": seed, "theta": theta, "best_single_plan": singles["plan"].iloc[best],
                     "best_single_test_pass@1": singles["test_pass@1"].iloc[best],
                     "saving_at_best_single": savings[best], "mean_saving": float(np.mean(savings)),
                     "max_saving": float(np.max(savings)), "n_single_points": len(savings)})
    return pd.DataFrame(rows)


def authors_window_savings(front_cost, front_pass, single_cost, single_pass,
                           window: float = AUTHORS_WINDOW) -> np.ndarray:
    """Per front point, 1 - cost / mean cost of the single models within +-window points (NaN: none).

    pass@1 values are shares (0..1); the window is in percentage points, compared in
    percent as the authors' script does.
    """
    fp, sp = 100 * np.asarray(front_pass, float), 100 * np.asarray(single_pass, float)
    sc = np.asarray(single_cost, float)
    out = []
    for c, p in zip(np.asarray(front_cost, float), fp):
        near = (sp >= p - window) & (sp <= p + window)
        out.append(1.0 - c / sc[near].mean() if near.any() else np.nan)
    return np.array(out)


def authors_savings(fronts: pd.DataFrame, window: float = AUTHORS_WINDOW) -> pd.DataFrame:
    """Per (seed, theta): the authors' average saving over the validation front, and its range."""
    rows = []
    for seed, theta, g in _groups(fronts):
        front, singles = g[g["cascade_front"]], g[g["singular"]]
        s = authors_window_savings(front["test_cost"], front["test_pass@1"], singles["test_cost"],
                                   singles["test_pass@1"], window)
        kept = s[~np.isnan(s)]
        rows.append({"seed": seed, "theta": theta, "average_saving": float(kept.mean()) if kept.size else np.nan,
                     "max_saving": float(kept.max()) if kept.size else np.nan,
                     "min_saving": float(kept.min()) if kept.size else np.nan,
                     "n_front_points": len(s), "n_compared": int(kept.size)})
    return pd.DataFrame(rows)


SAVINGS_METRICS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "project": project_savings, "authors": authors_savings}


def savings(fronts: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The named metric's table (:data:`SAVINGS_METRICS`)."""
    if metric not in SAVINGS_METRICS:
        raise MccomError(f"unknown savings metric {metric!r}: choose one of {sorted(SAVINGS_METRICS)}")
    return SAVINGS_METRICS[metric](fronts)


def savings_table(fronts: pd.DataFrame) -> pd.DataFrame:
    """Both metrics side by side, one row per (seed, theta); the authors' columns prefixed ``authors_``."""
    ours = project_savings(fronts)
    theirs = authors_savings(fronts).drop(columns=["seed", "theta"]).add_prefix("authors_")
    return pd.concat([ours, theirs], axis=1)


def by_theta(table: pd.DataFrame, configuration: str) -> pd.DataFrame:
    """A :func:`savings_table` averaged over seeds, one row per theta (grid order, "all" last)."""
    cols = ["saving_at_best_single", "mean_saving", "max_saving", "authors_average_saving"]
    t = table.assign(theta_key=table["theta"].astype(str))
    out = t.groupby("theta_key", sort=False)[cols].mean().reset_index().rename(columns={"theta_key": "theta"})
    out.insert(0, "configuration", configuration)
    out["n_seeds"] = t.groupby("theta_key", sort=False)["seed"].nunique().to_numpy()
    return out
