"""Figures of the notebooks: each takes a tidy frame and ``ax=None`` and returns the Figure.

Nothing here calls ``plt.show()`` or ``matplotlib.use()``: the caller (a notebook, the
threshold explorer, a test) decides how the figure is displayed or saved. Frames come from
:func:`mccom_core.cascade.policies.sweep` and :mod:`mccom_core.lab.speculative`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mccom_core.papers import MCCOM_HEADLINES

THRESHOLD_POLICIES = ("mccom", "confidence-only")  # drawn as curves over the threshold
FIXED_POLICIES = ("always-slm", "always-llm", "rejection-only", "oracle")  # drawn as points
ORACLE_LABEL = "oracle (bound: routes on the simulated user's verdict)"
POINT_COLORS = {"always-slm": "tab:green", "always-llm": "tab:purple", "rejection-only": "tab:brown", "oracle": "k"}


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _label(ax, xlabel: str, ylabel: str, legend_size: int | None = 7, below: bool = False):
    """Axis labels and a legend (``legend_size=None``: matplotlib's default size).

    ``below``: the legend goes under the axes, in two columns, where it cannot hide data
    (for plots whose curves may fill any corner).
    """
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if below:
        ax.legend(fontsize=legend_size, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    else:
        ax.legend(fontsize=legend_size)


# What matplotlib would stamp into a file that does not depend on the figure: a creation date
# (SVG, PDF) and the software's name (PNG). Dropped, so the same figure gives the same bytes.
_NO_STAMPS = {"svg": {"Date": None}, "png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}


def save(fig, figures_dir, name: str, formats=("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``<figures_dir>/<name>.<fmt>`` for each format; returns the paths.

    Deterministic: the same figure gives byte-identical files (no date or software stamp;
    SVG element ids come from a fixed hash salt instead of a random one).
    """
    import matplotlib

    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{fmt}" for fmt in formats]
    with matplotlib.rc_context({"svg.hashsalt": "mccom-workbench"}):
        for p, fmt in zip(paths, formats):
            fig.savefig(p, bbox_inches="tight", dpi=120, metadata=_NO_STAMPS.get(fmt))
    return paths


def _select(frame: pd.DataFrame, accounting: str | None, kind: str = "all") -> pd.DataFrame:
    sel = frame
    if accounting is not None and "accounting" in sel:
        sel = sel[sel["accounting"] == accounting]
    if "kind" in sel:
        sel = sel[sel["kind"] == kind]
    return sel


def latency_vs_em(sweep_frame: pd.DataFrame, accounting: str | None = "warm", *, threshold: float | None = None,
                  paper_point: bool = True, ax=None):
    """Mean latency (s) vs exact match: threshold policies as curves, the others as points.

    ``threshold`` marks that point on each curve; ``paper_point`` marks where MCCom's reported
    changes (latency -25.6 %, EM +8.9 % vs always-LLM) would put it relative to our always-LLM.
    """
    import seaborn as sns

    fig, ax = _axes(ax)
    sel = _select(sweep_frame, accounting)
    curves = sel[sel["policy"].isin(THRESHOLD_POLICIES)].sort_values("threshold")
    if not curves.empty:
        sns.lineplot(data=curves.assign(mean_s=curves["mean_ms"] / 1e3), x="mean_s", y="em", hue="policy",
                     sort=False, marker=".", ax=ax)
    points = sel[sel["policy"].isin(FIXED_POLICIES)]
    # The oracle is drawn first, large and hollow, so a policy at the same point (rejection-only
    # often is: both call the LLM exactly when the user rejects) stays visible inside it.
    for row in points.sort_values("policy", key=lambda p: p != "oracle").itertuples():
        if row.policy == "oracle":
            ax.scatter(row.mean_ms / 1e3, row.em, marker="*", s=260, facecolors="none", linewidths=1.2, zorder=3,
                       edgecolors=POINT_COLORS["oracle"], label=ORACLE_LABEL)
        else:
            ax.scatter(row.mean_ms / 1e3, row.em, marker="o", s=40, zorder=4, color=POINT_COLORS.get(row.policy),
                       label=row.policy)
    if threshold is not None and not curves.empty:
        at = curves[np.isclose(curves["threshold"], threshold)]
        ax.scatter(at["mean_ms"] / 1e3, at["em"], s=160, facecolors="none", edgecolors="k", zorder=4,
                   label=f"threshold {threshold:.2f}")
    llm = points[points["policy"] == "always-llm"]
    if paper_point and not llm.empty:
        latency, em = 1 + MCCOM_HEADLINES["latency_vs_llm_pct"] / 100, 1 + MCCOM_HEADLINES["em_vs_llm_pct"] / 100
        ax.scatter(llm["mean_ms"].iloc[0] / 1e3 * latency, llm["em"].iloc[0] * em,
                   marker="X", s=90, color="tab:red", zorder=4, label="paper's MCCom (relative to our always-LLM)")
    ax.set_title(f"latency vs exact match{f' ({accounting})' if accounting else ''}")
    _label(ax, "mean latency per request (s)", "exact match (share of tasks)", below=True)
    return fig


def llm_share_vs_threshold(sweep_frame: pd.DataFrame, accounting: str | None = "warm", *,
                           threshold: float | None = None, paper_point: bool = True, ax=None):
    """Share of requests that call the LLM vs the confidence threshold, with the oracle's share."""
    import seaborn as sns

    fig, ax = _axes(ax)
    sel = _select(sweep_frame, accounting)
    curves = sel[sel["policy"].isin(THRESHOLD_POLICIES)].sort_values("threshold")
    if not curves.empty:
        sns.lineplot(data=curves, x="threshold", y="llm_share", hue="policy", ax=ax)
    oracle = sel[sel["policy"] == "oracle"]
    if not oracle.empty:
        ax.axhline(oracle["llm_share"].iloc[0], color="k", ls=":", label=ORACLE_LABEL)
    if paper_point:
        ax.axhline(1 + MCCOM_HEADLINES["llm_calls_vs_llm_pct"] / 100, color="tab:red", ls="--",
                   label="paper's MCCom share")
    if threshold is not None:
        ax.axvline(threshold, color="grey", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    _label(ax, "confidence threshold", "share of requests calling the LLM", below=True)
    return fig


def paper_vs_measured(table: pd.DataFrame, ax=None):
    """Grouped bars of ``paper`` and ``measured`` per ``metric`` (both in percent)."""
    import seaborn as sns

    fig, ax = _axes(ax, (7, 4))
    long = table.melt(id_vars="metric", value_vars=["paper", "measured"], var_name="source", value_name="percent")
    sns.barplot(data=long, y="metric", x="percent", hue="source", orient="h", ax=ax)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_ylabel("")
    return fig


def policy_bars(summary_frame: pd.DataFrame, y: str = "em", accounting: str | None = "warm", ax=None):
    """One bar per policy (e.g. ``em``, ``mean_ms``, ``llm_share``) from a summary frame."""
    import seaborn as sns

    fig, ax = _axes(ax)
    sel = _select(summary_frame, accounting)
    sns.barplot(data=sel, x=y, y="policy", orient="h", ax=ax, color="tab:blue")
    ax.set_ylabel("")
    return fig


def ablation_bars(frame: pd.DataFrame, x: str = "em", hue: str | None = None, ax=None):
    """Bars of ``x`` per ``setting`` (the retrieval ablation), optionally split by ``hue``."""
    import seaborn as sns

    fig, ax = _axes(ax)
    sns.barplot(data=frame, x=x, y="setting", hue=hue, orient="h", ax=ax)
    ax.set_ylabel("")
    return fig


# --------------------------------------------------------------------------- speculative decoding


def acceptance_bars(acc: pd.DataFrame, ax=None):
    """Draft acceptance rate per method of ours (from :func:`mccom_core.lab.speculative.acceptance`)."""
    import seaborn as sns

    fig, ax = _axes(ax)
    sns.barplot(data=acc, x="method", y="acceptance", hue="role", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accepted / drafted tokens")
    return fig


def accepted_lengths(frame: pd.DataFrame, ax=None):
    """Distribution of accepted draft tokens per forward pass, per task and method."""
    import seaborn as sns

    fig, ax = _axes(ax)
    ours = frame[frame["drafted"].notna() & (frame["method"] != "plain")]
    ours = ours.assign(accepted_per_pass=ours["accepted"] / ours["passes"])
    sns.boxplot(data=ours, x="method", y="accepted_per_pass", hue="role", ax=ax)
    ax.set_ylabel("accepted draft tokens per pass")
    return fig


SPEEDUP_LABELS = {"post_prefill_speedup": "speedup after the prompt's prefill",
                  "total_speedup": "end-to-end speedup", "decode_speedup": "decode-only speedup"}


def speedup_boxes(frame: pd.DataFrame, column: str = "post_prefill_speedup", ax=None):
    """Per-task speedup vs plain greedy per method, ours and transformers', on a linear axis.

    ``column`` is a speedup of :func:`mccom_core.lab.speculative.method_frame`. Boxes and
    whiskers only (outliers are not drawn, so a few lines cannot stretch the axis); the title
    says how many lines a post-prefill box holds at the noise floor or a decode box leaves out.
    """
    import seaborn as sns

    fig, ax = _axes(ax, (7, 4))
    ours = frame[frame["method"] != "plain"]
    sub = ours[ours[column].notna()]
    sns.boxplot(data=sub, x="method", y=column, hue="role", showfliers=False, ax=ax)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set_ylim(bottom=0)
    title = f"{SPEEDUP_LABELS.get(column, column)}, per line (outliers not drawn)"
    if column == "post_prefill_speedup" and ours["post_prefill_floored"].any():
        title += (f"\n{int(ours['post_prefill_floored'].sum())} line-runs end within the prefill noise (draft "
                  "verified\nin the prefill pass): their ratio is taken at the floor, a lower bound")
    elif len(sub) < len(ours):
        title += (f"\n{len(ours) - len(sub)} line-runs left out: no measurable decode\n"
                  "(draft verified in the prefill pass)")
    ax.set_title(title, fontsize=8)
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_ylabel(f"{SPEEDUP_LABELS.get(column, column)} (x, plain greedy = 1)")
    ax.set_xlabel("method")
    return fig


def theoretical_curve(acc: pd.DataFrame | None = None, draft_lens=(1, 3, 5, 10), ax=None):
    """``(1 - a^(g+1)) / (1 - a)`` over ``a`` for several ``g``, with the measured (a, tokens/pass)."""
    from mccom_core.lab.speculative import theoretical_speedup

    fig, ax = _axes(ax)
    a = np.linspace(0, 0.99, 100)
    for g in draft_lens:
        ax.plot(a, theoretical_speedup(a, g), lw=1, label=f"theory, g = {g}")
    if acc is not None and not acc.empty:
        for row in acc.itertuples():
            ax.scatter(row.acceptance, row.tokens_per_pass, zorder=3,
                       label=f"{row.method} ({row.role}): g = {row.draft_len:.1f}")
    _label(ax, "acceptance rate a", "tokens per forward pass")
    return fig


def latency_breakdown(frame: pd.DataFrame, ax=None):
    """Stacked prefill and decode time per line and model (a quickstart frame)."""
    fig, ax = _axes(ax, (7, 4))
    labels = [f"{m.split('/')[-1][:20]}\nline {n}" for m, n in zip(frame["model"], frame["line"])]
    x = np.arange(len(frame))
    ax.bar(x, frame["prefill_ms"], label="prefill")
    ax.bar(x, frame["decode_ms"], bottom=frame["prefill_ms"], label="decode")
    ax.set_xticks(x, labels, fontsize=7, rotation=60, ha="right")
    ax.set_ylabel("ms")
    ax.legend()
    return fig


def fusion_curve(summary_frame: pd.DataFrame, ax=None):
    """Retrieval hit rate vs the round-2 fusion weight; MCCom's confidence schedule as a line."""
    fig, ax = _axes(ax)
    const = summary_frame[summary_frame["setting"].str.startswith("w = ")].sort_values("weight")
    ax.plot(const["weight"], const["hit_rate"], marker="o", label="constant weight w")
    ax.plot(const["weight"], const["hit_at_1"], marker=".", ls="--", label="constant w, hit@1")
    conf = summary_frame[~summary_frame["setting"].str.startswith("w = ")]
    for row in conf.itertuples():
        ax.axhline(row.hit_rate, color="tab:red", ls=":", label=f"{row.setting}")
    ax.set_xlim(0, 1)
    _label(ax, "round-2 weight w (0 = round 1, 1 = the round-2 query alone)", "tasks whose ground truth is retrieved")
    return fig
