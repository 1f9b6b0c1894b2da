"""The threshold explorer: ipywidgets controls over a pure sweep of a results frame.

The explorer never runs a model. Every control change calls ``sweep`` (by default
:func:`mccom_core.cascade.policies.sweep`) on the stored branch rows:

* the summary (an HTML table) is ``sweep(results, [threshold], **params)`` for the current
  threshold, and :attr:`ThresholdExplorer.summary_frame` holds that frame;
* the plots (latency vs exact match, LLM-call share vs threshold) are drawn from
  ``sweep(results, thresholds, **params)`` over the whole grid, cached per
  (rule, network, reaction) so moving the threshold slider only re-marks the point.

Without a live kernel (an exported HTML page, a saved notebook opened later) widgets cannot
render, so the explorer is displayed together with a static snapshot of its initial state
(:meth:`ThresholdExplorer.static_html`: the summary table and the figure as an embedded PNG).
A CSS rule hides the snapshot wherever the live controls did render, so a running notebook
shows the figure once.

``params`` are ``user`` (the acceptance rule), ``network_ms``, ``reaction_ms`` and
``accountings``. Any function with the signature ``sweep(results, thresholds, **params) ->
DataFrame`` can be injected (tests use a hand-made one).
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ("policy", "threshold", "accounting", "em", "es", "mean_ms", "p90_ms", "llm_share")
# What the summary shows for each column: header, and how a value is written (NaN: "-").
SHOWN = {
    "policy": ("policy", str), "threshold": ("threshold", "{:.2f}".format), "accounting": ("latency", str),
    "em": ("exact match", "{:.1%}".format), "es": ("edit similarity", "{:.1%}".format),
    "mean_ms": ("mean (s)", lambda ms: f"{ms / 1000:.2f}"), "p90_ms": ("p90 (s)", lambda ms: f"{ms / 1000:.2f}"),
    "llm_share": ("calls the LLM", "{:.1%}".format),
}
GRID = tuple(round(t, 2) for t in np.linspace(0.0, 1.0, 51))  # the plots' thresholds: 0.02 steps
RULES = ("exact", "prefix", "edit-similarity")  # mccom_core.cascade.policies.USERS names


_STYLE = "<style>.mccom-summary td, .mccom-summary th {padding: 2px 10px; text-align: right}</style>"
# The snapshot is hidden in an output area whose live explorer rendered (its VBox carries the
# class "mccom-explorer"); where widgets cannot render (no kernel, exported HTML) it shows.
_STATIC_STYLE = ("<style>.jp-OutputArea:has(.mccom-explorer) .mccom-static, "
                 ".output:has(.mccom-explorer) .mccom-static {display: none}</style>")


def summary_cells(frame: pd.DataFrame) -> list[list[str]]:
    """The summary as the user reads it: a header row, then one row of cell texts per policy."""
    cols = [c for c in SUMMARY_COLUMNS if c in frame]

    def cell(col, v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        return SHOWN[col][1](v)

    return [[SHOWN[c][0] for c in cols]] + [[cell(c, v) for c, v in zip(cols, row)]
                                            for row in frame[cols].itertuples(index=False)]


def render_summary(frame: pd.DataFrame) -> str:
    """The HTML the explorer shows for a sweep frame (also what tests compare against)."""
    import html

    head, *rows = summary_cells(frame)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'{_STYLE}<table class="mccom-summary"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _default_sweep():
    from mccom_core.cascade.policies import sweep

    return sweep


class ThresholdExplorer:
    """Sliders for threshold, network round trip and reaction time, a rule picker, a summary and plots.

    Parameters
    ----------
    results:
        The stored branch rows (``mccom_core.cascade.runner.read_results``).
    sweep:
        ``sweep(results, thresholds, **params) -> DataFrame``; :func:`mccom_core.cascade.policies.sweep`
        when None.
    accounting:
        The latency accounting shown (``"warm"`` or ``"cold"``).
    threshold, network_ms, reaction_ms, rule:
        Initial control values.
    plots:
        Draw the two figures (False: summary only, e.g. for quick tests).
    """

    def __init__(self, results, sweep: Callable | None = None, *, accounting: str = "warm",
                 threshold: float = 0.5, network_ms: float = 0.0, reaction_ms: float = 0.0,
                 rule: str = "exact", grid: Sequence[float] = GRID, plots: bool = True):
        import ipywidgets as w

        self.results, self.sweep = results, sweep or _default_sweep()
        self.accounting, self.grid, self.plots = accounting, tuple(grid), plots
        self._curves: dict[tuple, pd.DataFrame] = {}
        style = {"description_width": "170px"}
        layout = w.Layout(width="480px")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, readout_format=".2f",
                                       description="confidence threshold", style=style, layout=layout,
                                       continuous_update=False)
        self.network = w.FloatSlider(value=network_ms, min=0.0, max=1000.0, step=10.0, readout_format=".0f",
                                     description="network round trip (ms)", style=style, layout=layout,
                                     continuous_update=False)
        self.reaction = w.FloatSlider(value=reaction_ms, min=0.0, max=3000.0, step=50.0, readout_format=".0f",
                                      description="user reaction (ms)", style=style, layout=layout,
                                      continuous_update=False)
        self.rule = w.Dropdown(options=list(RULES), value=rule, description="acceptance rule", style=style,
                               layout=layout)
        self.summary = w.HTML()
        self.figure = w.Image(format="png")
        self.summary_frame = pd.DataFrame()
        for control in (self.threshold, self.network, self.reaction, self.rule):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([self.threshold, self.network, self.reaction, self.rule, self.summary, self.figure])
        self.widget.add_class("mccom-explorer")
        self.update()

    # ----------------------------------------------------------------------------- state

    def params(self) -> dict:
        """The keyword arguments the controls give ``sweep``."""
        return {"user": self.rule.value, "network_ms": float(self.network.value),
                "reaction_ms": float(self.reaction.value), "accountings": (self.accounting,)}

    def current(self) -> pd.DataFrame:
        """``sweep(results, [threshold], **params)`` for the controls' values."""
        return self.sweep(self.results, [float(self.threshold.value)], **self.params())

    def curves(self) -> pd.DataFrame:
        """The sweep over the whole grid (cached per rule, network and reaction time)."""
        p = self.params()
        key = (p["user"], p["network_ms"], p["reaction_ms"])
        if key not in self._curves:
            self._curves[key] = self.sweep(self.results, list(self.grid), **p)
        return self._curves[key]

    def update(self) -> None:
        """Recompute the summary and redraw the plots from the current control values."""
        self.summary_frame = self.current()
        self.summary.value = render_summary(self.summary_frame)
        if self.plots:
            self.figure.value = self._png()

    def _on_change(self, _change) -> None:
        self.update()

    def _png(self) -> bytes:
        import matplotlib.pyplot as plt

        from mccom_core.lab.plots import latency_vs_em, llm_share_vs_threshold

        curves, t = self.curves(), float(self.threshold.value)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        latency_vs_em(curves, self.accounting, threshold=t, ax=left)
        llm_share_vs_threshold(curves, self.accounting, threshold=t, ax=right)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", dpi=120)
        plt.close(fig)
        return buf.getvalue()

    def static_html(self) -> str:
        """The explorer's current state without widgets: controls as text, summary, figure (PNG)."""
        import base64
        import html

        p = self.params()
        controls = (f"confidence threshold {float(self.threshold.value):.2f}, network round trip "
                    f"{p['network_ms']:.0f} ms, user reaction {p['reaction_ms']:.0f} ms, acceptance rule "
                    f"{p['user']}, {self.accounting} latency")
        png = self.figure.value if self.plots and self.figure.value else (self._png() if self.plots else b"")
        img = (f'<img alt="latency vs exact match and LLM-call share vs threshold" '
               f'src="data:image/png;base64,{base64.b64encode(png).decode()}"/>' if png else "")
        return (f'{_STATIC_STYLE}<div class="mccom-static"><p><b>Static snapshot</b> (no live kernel: run the '
                f'notebook to move the controls): {html.escape(controls)}.</p>'
                f'{render_summary(self.summary_frame)}{img}</div>')

    def _ipython_display_(self):  # shows the controls when the explorer is a cell's last value
        from IPython.display import HTML, display

        display(self.widget)
        display(HTML(self.static_html()))


def threshold_explorer(results, sweep: Callable | None = None, **kwargs) -> ThresholdExplorer:
    """Build a :class:`ThresholdExplorer` (display it, or its ``.widget``, in a notebook)."""
    return ThresholdExplorer(results, sweep, **kwargs)
