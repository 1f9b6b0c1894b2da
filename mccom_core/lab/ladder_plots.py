"""Figures for the self-testing ladder. Each takes ``ax=None`` and returns the Figure.

They read the frames of :mod:`mccom_core.ladder.plans` and :mod:`mccom_core.ladder.replay`;
nothing here runs code or models, calls ``plt.show()`` or picks a backend.
"""

from __future__ import annotations

import pandas as pd


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def plot_pass_at_1(pass1: pd.DataFrame, ax=None):
    """Bars of greedy and sampled pass@1 per model (from ``per_model_pass_at_1``)."""
    fig, ax = _axes(ax)
    models = list(pass1["model"])
    width = 0.38
    xs = range(len(models))
    ax.bar([x - width / 2 for x in xs], pass1["greedy_pass@1"], width, label="greedy")
    ax.bar([x + width / 2 for x in xs], pass1["sampled_pass@1"], width, label="sampled (mean)")
    ax.set_xticks(list(xs), models)
    ax.set_ylabel("pass@1")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Per-model pass@1 (hidden tests, sandboxed)")
    return fig


def plot_fronts(fronts: pd.DataFrame, split: str = "test", seed: int | None = None, thetas=None, ax=None):
    """Pareto fronts (validation-chosen plans) in relative cost vs pass@1, one line per theta.

    ``split`` is ``"val"`` or ``"test"``; ``seed`` picks one seed (default: the first);
    ``thetas`` the theta groups to draw (default: every grid value present, plus single models).
    """
    fig, ax = _axes(ax)
    seed = fronts["seed"].iloc[0] if seed is None else seed
    f = fronts[fronts["seed"] == seed]
    groups = [t for t in f["theta"].unique() if t != "all"] if thetas is None else list(thetas)
    for theta in groups:
        g = f[(f["theta"] == theta) & (f["front"] == "cascade")].sort_values(f"{split}_rel_cost")
        ax.plot(g[f"{split}_rel_cost"], g[f"{split}_pass@1"], marker=".", label=f"θ={theta}")
    single = f[(f["theta"] == "all") & (f["front"] == "single")].sort_values(f"{split}_rel_cost")
    ax.plot(single[f"{split}_rel_cost"], single[f"{split}_pass@1"], "k--", marker="s", label="single model")
    ax.set_xscale("log")
    ax.set_xlabel("cost relative to the cheapest single-model plan")
    ax.set_ylabel("pass@1")
    ax.set_title(f"Plans chosen on validation, shown on {split} (seed {seed})")
    ax.legend(fontsize="small")
    return fig


def plot_savings(savings: pd.DataFrame, paper: dict | None = None, ax=None):
    """Per-seed cost saving at the best single model, with the paper's range shaded."""
    fig, ax = _axes(ax)
    ax.bar(savings["seed"].astype(str), savings["saving_at_best_single"] * 100, label="measured")
    if paper:
        lo, hi = paper["wizardcoder_saving"]
        ax.axhspan(lo * 100, hi * 100, alpha=0.2, color="green", label="paper, WizardCoder-Python")
    ax.set_xlabel("seed")
    ax.set_ylabel("cost saving at ≥ best single-model pass@1 (%)")
    ax.legend()
    return fig
