"""Session alignment of branch timings (mccom_core.cascade.timing) on literal rows."""

import math

import pandas as pd
import pytest

from mccom_core.cascade.timing import (align_sessions, mixed_tasks, paired_prefill_ratio, session_speeds,
                                       timing_sessions)
from mccom_core.errors import MccomError


def _row(task, branch, role, t, prompt, prefill, forwards, decode, **extra):
    return dict(task_id=task, branch=branch, role=role, written_at=t, prompt_tokens=prompt, prefill_ms=prefill,
                n_forward=forwards, decode_ms=decode, draft_ms=1.0, retrieval_ms=2.0, **extra)


def _rows():
    # Session 0 (t ~ 0): task a's slm and llm; the llm runs at 10 ms/token and 300 ms/step.
    # Session 1 (t ~ 10,000 s): task a's llm_rejected (15 ms/token, 900 ms/step) and all of task b.
    return pd.DataFrame([
        _row("a", "slm", "slm", 0.0, 100, 300.0, 3, 200.0),
        _row("a", "llm", "llm", 30.0, 100, 1000.0, 3, 600.0),
        _row("a", "llm_rejected", "llm", 10_000.0, 100, 1500.0, 2, 900.0),
        _row("b", "slm", "slm", 10_020.0, 200, 800.0, 1, 0.0),
        _row("b", "llm", "llm", 10_050.0, 200, 3000.0, 2, 900.0),
    ], index=[10, 11, 12, 13, 14])


def test_sessions_split_at_gaps_and_keep_the_index():
    rows = _rows().iloc[::-1]
    assert timing_sessions(rows).to_dict() == {14: 1, 13: 1, 12: 1, 11: 0, 10: 0}
    assert timing_sessions(rows, gap_s=1e6).tolist() == [0] * 5


def test_session_speeds_are_medians_per_role():
    speeds = session_speeds(_rows())
    assert speeds.loc[(0, "llm")].tolist() == [10.0, 1, 300.0, 1]
    assert speeds.loc[(1, "llm")].tolist() == [15.0, 2, 900.0, 2]  # median of 15 and 15 ms/token
    assert speeds.loc[(1, "slm"), "ms_per_token"] == 4.0
    assert math.isnan(speeds.loc[(1, "slm"), "ms_per_step"])  # one forward: no decode step
    assert speeds.loc[(1, "slm"), "decode_rows"] == 0


def test_align_rescales_only_rows_outside_their_task_session():
    out = align_sessions(_rows())
    esc = out.loc[12]
    assert (esc["reference_session"], esc["timing_session"]) == (0, 1)
    assert esc["prefill_scale"] == pytest.approx(10 / 15) and esc["decode_scale"] == pytest.approx(300 / 900)
    assert esc["prefill_ms"] == pytest.approx(1000.0) and esc["retrieval_ms"] == pytest.approx(2.0 * 10 / 15)
    assert esc["decode_ms"] == pytest.approx(300.0) and esc["draft_ms"] == pytest.approx(1 / 3)
    untouched = out.drop(index=12)
    assert (untouched[["prefill_ms", "decode_ms"]] == _rows().drop(index=12)[["prefill_ms", "decode_ms"]]).all().all()
    assert (untouched["prefill_scale"] == 1.0).all() and out["aligned"].all()
    assert mixed_tasks(out) == 1
    assert _rows()["prefill_ms"].tolist() == [300.0, 1000.0, 1500.0, 800.0, 3000.0]  # input not modified


def test_align_falls_back_to_prefill_scale_without_decode_steps_and_flags_unknown_roles():
    rows = _rows()
    rows.loc[14, "n_forward"] = 1  # session 1's llm then has one decode step measured (row 12)
    rows.loc[12, "n_forward"] = 1  # ... and now none
    out = align_sessions(rows)
    assert out.loc[12, "decode_scale"] == pytest.approx(10 / 15)
    rows = _rows().drop(index=[13, 14])  # task a's llm_rejected alone in session 1: its speed is its own
    rows.loc[12, "role"] = "cloud"  # a role session 0 never ran
    out = align_sessions(rows)
    assert not out.loc[12, "aligned"] and out.loc[12, "prefill_ms"] == 1500.0


def test_paired_prefill_ratio_checks_an_alignment():
    rows = _rows()
    assert paired_prefill_ratio(rows, "llm_rejected", "llm").to_dict() == {"a": 1.5}
    assert paired_prefill_ratio(align_sessions(rows), "llm_rejected", "llm")["a"] == pytest.approx(1.0)
    assert paired_prefill_ratio(rows, "missing", "llm").empty


def test_rows_without_write_times_are_left_as_measured():
    with pytest.raises(MccomError, match="written_at"):
        timing_sessions(_rows().drop(columns="written_at"))
    out = align_sessions(_rows().drop(columns="written_at"))
    assert out["prefill_ms"].tolist() == _rows()["prefill_ms"].tolist() and not out["aligned"].any()
    assert mixed_tasks(out) == 0
