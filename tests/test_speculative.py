"""Aggregates of speculative-decoding rows: exact numbers from three hand-made tasks."""

from __future__ import annotations

import json
import math

import pytest

from mccom_core.errors import MccomError
from mccom_core.lab.speculative import acceptance, method_frame, read_rows, speedups, theoretical_speedup
from tests.notebook_helpers import speculative_rows, write_jsonl


def test_theoretical_speedup():
    assert theoretical_speedup(0.0, 5) == pytest.approx(1.0)
    assert theoretical_speedup(0.5, 1) == pytest.approx((1 - 0.25) / 0.5)  # 1.5
    assert theoretical_speedup(1.0, 4) == pytest.approx(5.0)
    assert list(theoretical_speedup([0.5, 1.0], [2, 2])) == pytest.approx([1.75, 3.0])


def test_method_frame_rows_and_speedups():
    frame = method_frame(speculative_rows())
    # 3 tasks x 3 SLM methods + 2 tasks x 4 LLM methods.
    assert len(frame) == 9 + 8
    s1 = frame[(frame.task_id == "s0") & (frame.method == "stage1")].iloc[0]
    assert s1.decode_speedup == pytest.approx(200.0 / 100.0)  # plain decode 200 ms, stage 1 100 ms
    assert s1.total_speedup == pytest.approx(300.0 / 200.0)
    pld = frame[(frame.task_id == "s0") & (frame.method == "pld")].iloc[0]
    assert math.isnan(pld.drafted) and pld.decode_speedup == pytest.approx(200.0 / 150.0)
    assert set(frame[frame.role == "llm"].task_id) == {"s1", "s2"}
    s2 = frame[(frame.task_id == "s1") & (frame.method == "stage2")].iloc[0]
    assert s2.post_prefill_ms == 200.0 and s2.post_prefill_speedup == 600.0 / 200.0  # (900 - 300) / (500 - 300)
    assert not frame["post_prefill_floored"].any()


def _verified_in_prefill():
    """Task s1's stage 2 verifies the whole draft in its prefill pass: 0 ms of decode."""
    rows = speculative_rows()
    rows[1]["llm"]["stage2"] = {"total_ms": 340.0, "prefill_ms": 340.0, "decode_ms": 0.0, "tokens": 12,
                                "passes": 1, "drafted": 12, "accepted": 12}
    return rows


def test_draft_verified_in_the_prefill_pass_gives_no_exploding_ratio():
    frame = method_frame(_verified_in_prefill())
    s2 = frame[(frame.task_id == "s1") & (frame.method == "stage2")].iloc[0]
    assert math.isnan(s2.decode_speedup)  # no decode: no decode-only ratio, not 600 / 1e-6
    assert s2.post_prefill_ms == 40.0  # 340 ms total after the prompt's 300 ms prefill
    assert s2.post_prefill_speedup == 600.0 / 40.0 and not s2.post_prefill_floored
    # Faster than the prefill noise (5 % of 300 ms = 15 ms): the ratio stops at that floor.
    rows = _verified_in_prefill()
    rows[1]["llm"]["stage2"]["total_ms"] = rows[1]["llm"]["stage2"]["prefill_ms"] = 290.0  # prefill noise
    s2 = method_frame(rows).set_index(["task_id", "method"]).loc[("s1", "stage2")]
    assert s2.post_prefill_floored and s2.post_prefill_speedup == 600.0 / 15.0
    assert s2.total_speedup == 900.0 / 290.0


def test_acceptance_matches_the_benchmark_formula():
    acc = acceptance(method_frame(speculative_rows())).set_index(["role", "method"])
    s1 = acc.loc[("slm", "stage1")]
    assert (s1.drafted, s1.accepted) == (24, 15)
    assert s1.acceptance == pytest.approx(15 / 24)
    assert s1.draft_len == pytest.approx(24 / 15)  # drafted per pass of tasks that drafted
    assert s1.tokens_per_pass == pytest.approx(30 / 15)
    assert s1.theoretical_tokens_per_pass == pytest.approx(theoretical_speedup(15 / 24, 24 / 15))
    assert ("slm", "plain") not in acc.index and ("slm", "pld") not in acc.index
    assert acc.loc[("llm", "stage2")].acceptance == pytest.approx(18 / 24)


def test_speedups_summary():
    sp = speedups(method_frame(speculative_rows())).set_index(["role", "method"])
    assert sp.loc[("llm", "stage2"), "decode_speedup"] == pytest.approx(600 / 200)
    assert sp.loc[("llm", "stage2"), "post_prefill_speedup"] == 600 / 200
    assert sp.loc[("llm", "stage2_context"), "post_prefill_speedup"] == 600 / 180
    assert sp.loc[("slm", "stage1"), "post_prefill_speedup"] == pytest.approx(201 / 101)  # median of 200/100, 201/101, 202/102
    sp = speedups(method_frame(_verified_in_prefill())).set_index(["role", "method"])
    s2 = sp.loc[("llm", "stage2")]
    assert (s2.n_no_decode, s2.n_floored, s2.decode_speedup) == (1, 0, 600 / 200)  # only s2 has a decode
    assert s2.post_prefill_speedup == (600 / 40 + 600 / 200) / 2
    assert sp.loc[("llm", "assisted"), "total_speedup"] == pytest.approx(900 / 700)
    assert sp.loc[("slm", "plain"), "n"] == 3 and sp.loc[("slm", "plain"), "identical"] == 1.0


def test_read_rows(tmp_path):
    path = write_jsonl(speculative_rows(), tmp_path / "rows.jsonl")
    with path.open("a") as fh:
        fh.write('{"task_id": "torn')  # a killed run's last line
    assert [r["task_id"] for r in read_rows(path)] == ["s0", "s1", "s2"]
    with pytest.raises(MccomError, match="benchmarks/speculative.py"):
        read_rows(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MccomError, match="no rows"):
        read_rows(tmp_path / "empty.jsonl")
    with pytest.raises(MccomError, match="no slm/llm blocks"):
        method_frame([json.loads('{"task_id": "x"}')])


def test_acceptance_uses_recorded_draft_rounds():
    rows = speculative_rows()
    for row in rows:  # the rows now say how many passes verified a draft: 2 per task
        row["slm"]["stage1"]["rounds"] = 2
    s1 = acceptance(method_frame(rows)).set_index(["role", "method"]).loc[("slm", "stage1")]
    assert s1.draft_len == pytest.approx(24 / 6)
