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


def _distinct_series(f: pd.DataFrame, groups, split: str) -> list[tuple[list, pd.DataFrame]]:
    """The theta fronts as distinct point sets: [(thetas, points)], empty fronts dropped.

    Fronts with the same points (on a small ladder every theta often keeps only the
    single-model plans) become one series, so the legend has one entry per line drawn.
    """
    out: dict[tuple, tuple[list, pd.DataFrame]] = {}
    for theta in groups:
        g = f[(f["theta"] == theta) & f["cascade_front"]].sort_values(f"{split}_rel_cost")
        if g.empty:
            continue
        key = tuple(zip(g[f"{split}_rel_cost"].round(12), g[f"{split}_pass@1"].round(12)))
        out.setdefault(key, ([], g))[0].append(theta)
    return list(out.values())


def _thetas(thetas: list) -> str:
    return "θ=" + ", ".join(f"{t:g}" if isinstance(t, float) else str(t) for t in thetas)


def plot_fronts(fronts: pd.DataFrame, split: str = "test", seed: int | None = None, thetas=None,
                benchmark: str | None = None, ax=None):
    """Pareto fronts (validation-chosen plans) in relative cost vs pass@1, one line per theta.

    ``split`` is ``"val"`` or ``"test"``; ``seed`` picks one seed (default: the first);
    ``thetas`` the theta groups to draw (default: every grid value present, plus single models);
    ``benchmark`` names the problems and ladder in the title. Thetas whose fronts have the same
    points share one line and one legend entry (the single-model front's, when they match it).
    """
    fig, ax = _axes(ax)
    seed = fronts["seed"].iloc[0] if seed is None else seed
    f = fronts[fronts["seed"] == seed]
    if f["theta"].dtype == object:  # read back from CSV, grid thetas are strings beside "all"
        f = f.assign(theta=[t if t == "all" else float(t) for t in f["theta"]])
    groups = [t for t in f["theta"].unique() if t != "all"] if thetas is None else list(thetas)
    single = f[(f["theta"] == "all") & f["single_front"]].sort_values(f"{split}_rel_cost")
    single_key = tuple(zip(single[f"{split}_rel_cost"].round(12), single[f"{split}_pass@1"].round(12)))
    single_label = "single model"
    for ts, g in _distinct_series(f, groups, split):
        if tuple(zip(g[f"{split}_rel_cost"].round(12), g[f"{split}_pass@1"].round(12))) == single_key:
            single_label += f" (= cascade front, {_thetas(ts)})"
            continue
        ax.plot(g[f"{split}_rel_cost"], g[f"{split}_pass@1"], marker=".", label=_thetas(ts))
    if not single.empty:
        ax.plot(single[f"{split}_rel_cost"], single[f"{split}_pass@1"], "k--", marker="s", label=single_label)
    ax.set_xscale("log")
    ax.set_xlabel(f"{split} cost per problem, relative to the cheapest single-model plan (x, log scale)")
    ax.set_ylabel(f"pass@1 on the {split} split (share of problems)")
    name = {"val": "validation", "test": "test"}.get(split, split)
    ax.set_title(f"{benchmark + ': ' if benchmark else ''}plans chosen on validation, shown on {name} "
                 f"(seed {seed})", fontsize=10)
    ax.legend(fontsize="small")
    return fig


def plot_savings(savings: pd.DataFrame, paper: dict | None = None, benchmark: str | None = None, ax=None):
    """Per-seed cost saving at the best single model, with the paper's range shaded.

    Every bar carries its value as text, so a seed with no saving (a zero-height bar) still
    shows "0%" at its position.
    """
    fig, ax = _axes(ax)
    values = savings["saving_at_best_single"] * 100
    bars = ax.bar(savings["seed"].astype(str), values, label="measured")
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], fontsize=8, padding=2)
    if paper:
        lo, hi = paper["wizardcoder_saving"]
        ax.axhspan(lo * 100, hi * 100, alpha=0.2, color="green", label="paper, WizardCoder-Python")
    ax.axhline(0, color="k", lw=0.8)
    ax.margins(y=0.12)  # room for the value labels above the tallest bar
    ax.set_xlabel("seed of the validation/test split")
    ax.set_ylabel("cost saving at ≥ best single-model pass@1 (%)")
    ax.set_title(f"{benchmark + ': ' if benchmark else ''}test-split saving per seed", fontsize=10)
    ax.legend()
    return fig


def plot_savings_by_theta(table: pd.DataFrame, column: str = "saving", ax=None, title: str | None = None):
    """Grouped bars: one group per theta, one bar per configuration (percent, labelled).

    ``table`` has columns ``theta``, ``configuration`` and ``column`` (a share, e.g. the
    mean over seeds of a savings metric); configurations keep their order of appearance.
    """
    fig, ax = _axes(ax, figsize=(8, 4))
    thetas = list(dict.fromkeys(table["theta"].astype(str)))
    configs = list(dict.fromkeys(table["configuration"]))
    width = 0.8 / len(configs)
    for j, name in enumerate(configs):
        sub = table[table["configuration"] == name].assign(theta=lambda d: d["theta"].astype(str))
        values = sub.set_index("theta").reindex(thetas)[column] * 100
        xs = [i + (j - (len(configs) - 1) / 2) * width for i in range(len(thetas))]
        bars = ax.bar(xs, values.fillna(0), width, label=name)
        ax.bar_label(bars, labels=["" if pd.isna(v) else f"{v:.0f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(thetas)), thetas)
    ax.axhline(0, color="k", lw=0.8)
    ax.margins(y=0.12)
    ax.set_xlabel("θ (acceptance threshold); all = pooled over θ")
    ax.set_ylabel("cost saving (%)")
    ax.set_title(title or "Cost saving per θ", fontsize=10)
    ax.legend(fontsize="small")
    return fig
