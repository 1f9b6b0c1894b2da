"""benchmarks/retrieval_round2.py: the paired statistics and groups, on hand-made rows."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from mccom_core.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def round2():
    spec = importlib.util.spec_from_file_location("retrieval_round2", PROJECT_ROOT / "benchmarks" / "retrieval_round2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs(round2):
    assert round2.mcnemar_p(0, 0) == 1.0
    assert round2.mcnemar_p(3, 0) == 2 / 8  # 2 * P(X <= 0), X ~ Bin(3, 1/2)
    assert round2.mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 2 ** 12)
    assert round2.mcnemar_p(5, 5) == 1.0


def test_paired_difference_counts_and_interval(round2):
    a = np.array([1, 1, 1, 0, 0, 1])
    b = np.array([1, 0, 0, 0, 1, 1])
    out = round2.paired_difference(a, b, boot=2000, seed=0)
    assert (out["n"], out["only_round1"], out["only_round2"]) == (6, 2, 1)
    assert out["diff"] == pytest.approx(-1 / 6)
    assert out["ci_lo"] <= out["diff"] <= out["ci_hi"]
    same = round2.paired_difference(a, a, boot=100)
    assert (same["diff"], same["ci_lo"], same["ci_hi"], same["mcnemar_p"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_frame_keeps_tasks_with_every_branch_and_groups_split_them(round2):
    rows = pd.DataFrame([
        {"task_id": t, "branch": b, "em": em, "prediction": p, "kind": k, "confidence": c}
        for t, k, c, cells in (
            ("a", "line", 0.99, {"slm": (1, "x"), "llm": (1, "x"), "llm_rejected": (0, "y")}),
            ("b", "stmt", 0.50, {"slm": (0, "z"), "llm": (0, "w"), "llm_rejected": (0, "z")}),
            ("c", "line", 0.80, {"slm": (0, "z"), "llm": (1, "v")}),  # no round-2 row: left out
        )
        for b, (em, p) in cells.items()
    ])
    frame = round2.paired_frame(rows, ("llm", "llm_rejected"))
    assert list(frame.index) == ["a", "b"]
    table = round2.compare(frame, "llm_rejected", boot=100).set_index("group")
    assert table.loc["all", ["n", "only_round1", "only_round2"]].tolist() == [2, 1, 0]
    assert table.loc["SLM wrong", "copies_slm_round2"] == 1.0 and table.loc["SLM wrong", "copies_slm_round1"] == 0.0
    assert table.loc["SLM conf 0.97-1.00", "n"] == 1 and table.loc["kind stmt", "n"] == 1
