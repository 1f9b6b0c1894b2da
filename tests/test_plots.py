"""Plot functions: they draw the frame they get, honour ``ax``, return the Figure, never show."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mccom_core.lab import plots
from mccom_core.cascade.policies import sweep
from mccom_core.lab.speculative import acceptance, method_frame
from tests.notebook_helpers import cascade_rows, speculative_rows


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def fail(*_, **__):
        raise AssertionError("plot functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", fail)
    monkeypatch.setattr(matplotlib, "use", fail)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def curves():
    return sweep(cascade_rows(), [0.0, 0.5, 1.0], accountings=("warm",))


def test_latency_vs_em_draws_curves_points_and_marks(curves):
    fig = plots.latency_vs_em(curves, "warm", threshold=0.5)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert {"mccom", "confidence-only", plots.ORACLE_LABEL, "always-llm", "threshold 0.50"} <= set(labels)
    assert "simulated user's verdict" in plots.ORACLE_LABEL
    assert "paper's MCCom (relative to our always-LLM)" in labels
    curves_drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3]  # one point per threshold
    assert len(curves_drawn) == 2  # mccom and confidence-only
    mccom = curves[curves.policy == "mccom"].sort_values("threshold")
    assert any(np.allclose(ln.get_ydata(), mccom.em) for ln in curves_drawn)
    llm = curves[curves.policy == "always-llm"].iloc[0]
    paper = [c for c in ax.collections if c.get_label().startswith("paper")][0]
    assert list(paper.get_offsets()[0]) == pytest.approx([llm.mean_ms / 1e3 * (1 - 0.256), llm.em * 1.089])


def test_given_ax_is_used(curves):
    fig, (a, b) = plt.subplots(1, 2)
    assert plots.latency_vs_em(curves, "warm", ax=a) is fig
    assert plots.llm_share_vs_threshold(curves, "warm", threshold=0.3, ax=b) is fig
    assert len(fig.axes) == 2 and b.get_xlabel() == "confidence threshold"


def test_llm_share_lines(curves):
    ax = plots.llm_share_vs_threshold(curves, "warm", threshold=0.5).axes[0]
    by_label = {ln.get_label(): ln for ln in ax.get_lines()}
    oracle = curves[curves.policy == "oracle"].llm_share.iloc[0]
    assert by_label[plots.ORACLE_LABEL].get_ydata()[0] == pytest.approx(oracle)
    assert by_label["paper's MCCom share"].get_ydata()[0] == pytest.approx(1 - 0.463)
    assert by_label["threshold 0.50"].get_xdata()[0] == pytest.approx(0.5)


def test_speculative_plots():
    frame = method_frame(speculative_rows())
    acc = acceptance(frame)
    ax = plots.theoretical_curve(acc, draft_lens=(1, 5)).axes[0]
    theory = [ln for ln in ax.get_lines() if ln.get_label().startswith("theory")]
    assert len(theory) == 2
    a, y = theory[0].get_xdata(), theory[0].get_ydata()
    assert y == pytest.approx(1 + a)  # g = 1: (1 - a^2) / (1 - a)
    assert len(ax.collections) == len(acc)  # one measured point per method
    bars = plots.acceptance_bars(acc).axes[0].patches
    heights = sorted(p.get_height() for p in bars if p.get_height() > 0)
    assert heights == pytest.approx(sorted(acc["acceptance"]))
    box = plots.speedup_boxes(frame).axes[0]
    assert box.get_yscale() == "linear" and box.get_ylim()[0] == 0
    assert plots.accepted_lengths(frame).axes[0].get_ylabel() == "accepted draft tokens per pass"


def test_rejection_only_is_drawn_over_a_coinciding_oracle(curves):
    same = curves.copy()
    oracle = same.policy == "oracle"
    rej = same.policy == "rejection-only"
    same.loc[rej, ["mean_ms", "em"]] = same.loc[oracle, ["mean_ms", "em"]].to_numpy()
    ax = plots.latency_vs_em(same, "warm", paper_point=False).axes[0]
    by_label = {c.get_label(): c for c in ax.collections}
    star, dot = by_label[plots.ORACLE_LABEL], by_label["rejection-only"]
    assert list(star.get_offsets()[0]) == list(dot.get_offsets()[0])
    assert dot.get_zorder() > star.get_zorder()
    assert star.get_facecolor().size == 0 or star.get_facecolor()[0][3] == 0  # hollow
    assert dot.get_sizes()[0] < star.get_sizes()[0]


def test_speedup_boxes_never_plot_the_exploding_decode_ratio():
    rows = speculative_rows()
    rows[1]["llm"]["stage2"] = {"total_ms": 290.0, "prefill_ms": 290.0, "decode_ms": 0.0, "tokens": 12,
                                "passes": 1, "drafted": 12, "accepted": 12}  # verified in the prefill pass
    frame = method_frame(rows)
    ax = plots.speedup_boxes(frame, "post_prefill_speedup").axes[0]
    assert frame["post_prefill_speedup"].max() == 600 / 15  # floored at 5 % of the 300 ms prefill
    assert ax.get_ylim()[1] < 100 and "1 line-runs end within the prefill noise" in ax.get_title()
    ax = plots.speedup_boxes(frame, "decode_speedup").axes[0]
    assert ax.get_ylim()[1] < 100 and "1 line-runs left out" in ax.get_title()


def test_bars_and_save(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"metric": ["a", "b"], "paper": [14.4, 78.4], "measured": [10.0, 70.0]})
    fig = plots.paper_vs_measured(table)
    widths = sorted(p.get_width() for p in fig.axes[0].patches if p.get_width() > 0)
    assert widths == pytest.approx([10.0, 14.4, 70.0, 78.4])
    paths = plots.save(fig, tmp_path / "figs", "obs")
    assert [p.name for p in paths] == ["obs.png", "obs.svg"] and all(p.stat().st_size > 0 for p in paths)
    qs = pd.DataFrame({"model": ["m", "m"], "line": [1, 2], "prefill_ms": [10.0, 20.0], "decode_ms": [5.0, 1.0]})
    tops = [p.get_y() + p.get_height() for p in plots.latency_breakdown(qs).axes[0].patches]
    assert sorted(tops) == pytest.approx([10.0, 15.0, 20.0, 21.0])


def test_fusion_curve():
    import pandas as pd

    table = pd.DataFrame({"setting": ["w = 0.00", "w = 1.00", "confidence (MCCom)"], "weight": [0.0, 1.0, 0.4],
                          "n": [3, 3, 3], "hit_rate": [0.5, 0.25, 0.75], "hit_at_1": [0.25, 0.0, 0.5]})
    ax = plots.fusion_curve(table).axes[0]
    by_label = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(by_label["constant weight w"].get_ydata()) == [0.5, 0.25]
    assert by_label["confidence (MCCom)"].get_ydata()[0] == pytest.approx(0.75)


def test_save_is_byte_identical_for_the_same_figure(tmp_path):
    """Same inputs, same bytes: no date or software stamp, SVG ids from a fixed salt."""
    first = plots.save(plots.latency_vs_em(sweep(cascade_rows(), [0.0, 0.5, 1.0])), tmp_path / "a", "f")
    second = plots.save(plots.latency_vs_em(sweep(cascade_rows(), [0.0, 0.5, 1.0])), tmp_path / "b", "f")
    for one, two in zip(first, second):
        assert one.read_bytes() == two.read_bytes(), one.name
    svg = first[1].read_text(encoding="utf-8")
    assert "<dc:date>" not in svg and 'id="' in svg
    assert b"Software" not in first[0].read_bytes()[:200]


def _fronts():
    import pandas as pd

    rows = []
    for theta, pts in ((0.3, [(1.0, 0.5), (3.0, 0.7)]), (0.5, [(1.0, 0.5), (3.0, 0.7)]),  # = single-model front
                       (0.7, [(1.0, 0.5), (1.5, 0.65), (3.0, 0.7)]), (0.9, [(1.0, 0.5), (1.5, 0.65), (3.0, 0.7)])):
        rows += [{"seed": 0, "theta": theta, "cascade_front": True, "single_front": False, "test_rel_cost": c,
                  "test_pass@1": p} for c, p in pts]
    rows += [{"seed": 0, "theta": "all", "cascade_front": False, "single_front": True, "test_rel_cost": c,
              "test_pass@1": p} for c, p in ((1.0, 0.5), (3.0, 0.7))]
    return pd.DataFrame(rows)


def test_fronts_have_one_legend_entry_per_line_drawn():
    from mccom_core.lab import ladder_plots

    ax = ladder_plots.plot_fronts(_fronts(), split="test", seed=0, thetas=[0.3, 0.5, 0.7, 0.9, 0.1],
                                  benchmark="toy").axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == len(ax.get_lines()) == 2  # θ 0.1 has no front; 0.3/0.5 equal the singles
    assert labels == ["θ=0.7, 0.9", "single model (= cascade front, θ=0.3, 0.5)"]
    assert ax.get_title() == "toy: plans chosen on validation, shown on test (seed 0)"
    assert "(x, log scale)" in ax.get_xlabel() and "share of problems" in ax.get_ylabel()


def test_zero_saving_bar_is_labelled():
    import pandas as pd

    from mccom_core.lab import ladder_plots

    savings = pd.DataFrame({"seed": [0, 1, 2], "saving_at_best_single": [0.25, 0.0, 0.5]})
    ax = ladder_plots.plot_savings(savings, benchmark="toy").axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [25.0, 0.0, 50.0]
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"25%", "0%", "50%"}
    assert texts["0%"].xy[0] == pytest.approx(ax.patches[1].get_x() + ax.patches[1].get_width() / 2)
