"""The threshold explorer, headless: controls drive a pure sweep; nothing else is computed."""

from __future__ import annotations

import pandas as pd
import pytest

from mccom_core.cascade.policies import sweep
from mccom_core.lab.widgets import ThresholdExplorer, render_summary, summary_cells
from tests.notebook_helpers import cascade_rows

# A tiny results frame and a hand-made sweep with the documented signature: the explorer must
# show exactly what the sweep returns for the controls' values.
RESULTS = pd.DataFrame({"task_id": ["a", "b", "c"], "confidence": [0.2, 0.5, 0.9], "em": [1, 0, 1]})


class FakeSweep:
    def __init__(self):
        self.calls = []

    def __call__(self, results, thresholds, **params):
        self.calls.append((list(thresholds), params))
        rows = []
        for t in thresholds:
            kept = results[results["confidence"] >= t]
            rows.append({"policy": "mccom", "threshold": t, "accounting": params["accountings"][0],
                         "em": float(kept["em"].mean()) if len(kept) else 0.0, "es": 0.5,
                         "mean_ms": 100.0 + params["network_ms"] + params["reaction_ms"],
                         "p90_ms": 200.0, "llm_share": 1 - len(kept) / len(results),
                         "rule": params["user"]})
        return pd.DataFrame(rows)


def test_slider_value_gives_the_sweep_at_that_threshold():
    fake = FakeSweep()
    ex = ThresholdExplorer(RESULTS, fake, threshold=0.1, plots=False)
    assert ex.summary.value == render_summary(fake(RESULTS, [0.1], **ex.params()))
    ex.threshold.value = 0.6
    expected = fake(RESULTS, [0.6], **ex.params())
    pd.testing.assert_frame_equal(ex.summary_frame, expected)
    assert ex.summary.value == render_summary(expected)
    assert ex.summary_frame["llm_share"].iloc[0] == pytest.approx(2 / 3)
    assert "<td>66.7%</td>" in ex.summary.value  # what the user reads: the LLM-call share


def test_other_controls_reach_the_sweep():
    fake = FakeSweep()
    ex = ThresholdExplorer(RESULTS, fake, accounting="cold", plots=False)
    ex.network.value = 120.0
    ex.reaction.value = 500.0
    ex.rule.value = "prefix"
    thresholds, params = fake.calls[-1]
    assert thresholds == [0.5]
    assert params == {"user": "prefix", "network_ms": 120.0, "reaction_ms": 500.0, "accountings": ("cold",)}
    assert ex.summary_frame["mean_ms"].iloc[0] == 720.0 and ex.summary_frame["rule"].iloc[0] == "prefix"


def test_plots_sweep_the_grid_once_per_setting():
    fake = FakeSweep()
    ex = ThresholdExplorer(RESULTS, fake, grid=(0.0, 0.5, 1.0))
    first = ex.figure.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    grid_calls = [c for c in fake.calls if c[0] == [0.0, 0.5, 1.0]]
    assert len(grid_calls) == 1
    ex.threshold.value = 0.9  # moves the mark only: no new grid sweep
    assert len([c for c in fake.calls if c[0] == [0.0, 0.5, 1.0]]) == 1
    assert ex.figure.value != first
    ex.network.value = 50.0  # a new latency setting: one new grid sweep
    assert len([c for c in fake.calls if c[0] == [0.0, 0.5, 1.0]]) == 2


def test_with_the_cascade_sweep_on_branch_rows():
    rows = pd.DataFrame(cascade_rows())
    ex = ThresholdExplorer(rows, threshold=0.7, grid=(0.0, 0.7, 1.0))
    ex.threshold.value = 0.3
    ex.reaction.value = 1000.0
    expected = sweep(rows, [0.3], user="exact", network_ms=0.0, reaction_ms=1000.0, accountings=("warm",))
    pd.testing.assert_frame_equal(ex.summary_frame, expected)
    assert ex.summary.value == render_summary(expected)
    assert set(ex.summary_frame["policy"]) == {"always-slm", "always-llm", "confidence-only", "rejection-only",
                                                "mccom", "oracle"}


def test_static_snapshot_for_readers_without_a_kernel():
    """Displaying the explorer publishes the widget and a static snapshot (summary + PNG) that
    a CSS rule hides only where the live explorer rendered."""
    import base64
    import re

    from IPython.core.interactiveshell import InteractiveShell

    fake = FakeSweep()
    ex = ThresholdExplorer(RESULTS, fake, threshold=0.6, grid=(0.0, 0.5, 1.0))
    snapshot = ex.static_html()
    assert render_summary(ex.summary_frame) in snapshot and "confidence threshold 0.60" in snapshot
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', snapshot).group(1))
    assert png == ex.figure.value and png.startswith(b"\x89PNG")
    assert ".jp-OutputArea:has(.mccom-explorer) .mccom-static" in snapshot
    assert "mccom-explorer" in ex.widget._dom_classes

    shell = InteractiveShell.instance()
    published = []
    shell.display_pub.publish = lambda data, **kw: published.append(data)
    try:
        ex._ipython_display_()
    finally:
        InteractiveShell.clear_instance()
    assert "application/vnd.jupyter.widget-view+json" in published[0]
    assert published[1]["text/html"] == snapshot
    assert "<img" not in ThresholdExplorer(RESULTS, fake, plots=False).static_html()  # no figure drawn, none shown


def test_summary_cells_are_readable():
    frame = pd.DataFrame([{"policy": "mccom", "threshold": 0.5, "accounting": "warm", "em": 0.4483, "es": 0.6419,
                           "mean_ms": 15995.4, "p90_ms": 31683.9, "llm_share": 0.63, "extra": 1},
                          {"policy": "always-llm", "threshold": float("nan"), "accounting": "warm", "em": 0.43,
                           "es": 0.64, "mean_ms": 23429.2, "p90_ms": 32650.6, "llm_share": 1.0, "extra": 2}])
    assert summary_cells(frame) == [
        ["policy", "threshold", "latency", "exact match", "edit similarity", "mean (s)", "p90 (s)", "calls the LLM"],
        ["mccom", "0.50", "warm", "44.8%", "64.2%", "16.00", "31.68", "63.0%"],
        ["always-llm", "-", "warm", "43.0%", "64.0%", "23.43", "32.65", "100.0%"]]
    html = render_summary(frame)
    assert html.count("<tr>") == 3 and "<th>mean (s)</th>" in html and 'class="mccom-summary"' in html
