from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mccom_core.retrieval.code_tokens import code_tokens
from mccom_core.errors import MccomError
from mccom_core.retrieval.index import IndexConfig, Window
from mccom_core.retrieval.retrievers import RETRIEVERS, get_retriever, load_index, retrieve, snippet_texts
from mccom_core.retrieval.queries import (
    FUSION_SCHEDULES, CompletionSite, RetrievalConfig, fuse_scores, fusion_weight, normalize_scores, round1_query,
    round2_query, top_hits,
)

# A tiny repository: the target file (target.py) calls helpers defined in two other files.
REPO = {
    "target.py": (
        "from geometry import area_of_circle\n"       # 0
        "from store import save_result\n"             # 1
        "\n"                                          # 2
        "def main(radius):\n"                         # 3
        "    value = area_of_circle(radius)\n"        # 4  <- target line
        "    save_result(value)\n"                    # 5
        "    return value\n"                          # 6
    ),
    "geometry.py": (
        "import math\n"
        "\n"
        "def area_of_circle(radius):\n"
        "    return math.pi * radius ** 2\n"
    ),
    "store.py": (
        "import json\n"
        "\n"
        "def save_result(value, path='out.json'):\n"
        "    with open(path, 'w') as fh:\n"
        "        json.dump(value, fh)\n"
    ),
    "noise.py": "def unrelated():\n    return 'nothing here'\n",
}

SMALL = RetrievalConfig(window_lines=4, stride=2, top_k=10)


@pytest.fixture
def index(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in REPO.items():
        (root / name).write_text(text, encoding="utf-8")
    return load_index(root, SMALL, cache_root=tmp_path / "cache")


def site(**kw):
    lines = REPO["target.py"].split("\n")
    base = dict(
        left_context="\n".join(lines[:4]) + "\n    value = ",
        right_context="\n".join(lines[5:]),
        target_path="target.py",
        target_span=(4, 5),
    )
    return CompletionSite(**{**base, **kw})


def located(hits):
    return [(h.window.path, h.window.start, h.window.end) for h in hits]


def test_round1_query_takes_left_tail_and_right_head():
    config = RetrievalConfig(query_left_lines=2, query_right_lines=1)
    assert round1_query("a\nb\nc\nd = ", "e\nf\ng", config) == "c\nd = \ne"
    assert round1_query("a\nb", "c", RetrievalConfig(query_left_lines=0, query_right_lines=0)) == ""


def test_round2_query_joins_slm_output_onto_the_left_end():
    config = RetrievalConfig(query_left_lines=3, round2_query="repocoder")  # the default until issue 22
    # One SLM line continues the cursor line: 3 left lines, the last one completed.
    assert round2_query("a\nb\nc\nd = ", "f(x)", config) == "b\nc\nd = f(x)"
    # Two SLM lines: the left keeps 2 lines so the query stays 3 lines long.
    assert round2_query("a\nb\nc\nd = ", "f(x)\ng(y)", config) == "c\nd = f(x)\ng(y)"
    # A long SLM output keeps at least the cursor line.
    assert round2_query("a\nd = ", "1\n2\n3\n4", config) == "d = 1\n2\n3\n4"
    assert round2_query("a\nd = ", "f(x)", config, right_context="r") == "a\nd = f(x)"  # right unused


def test_round2_query_around_is_round1_with_the_slm_output_at_the_cursor():
    config = RetrievalConfig(query_left_lines=2, query_right_lines=1, round2_query="around")
    assert round2_query("a\nb\nc\nd = ", "f(x)", config, "e\nf") == "c\nd = f(x)\ne"
    assert round2_query("a\nb\nc\nd = ", "f(x)\ng(y)", config, "e\nf") == "c\nd = f(x)\ng(y)\ne"
    assert round2_query("x = ", "1", replace(config, query_left_lines=0), "e") == "1\ne"
    # It holds every token of the round-1 query, and the SLM output's.
    assert round2_query("a\nb\nc\nd = ", "", config, "e\nf") == round1_query("a\nb\nc\nd = ", "e\nf", config)
    with pytest.raises(MccomError, match="round2_query"):
        RetrievalConfig(round2_query="slm-only")


def test_normalize_scores_min_max_over_the_mask():
    assert normalize_scores(np.array([1.0, 3.0, 5.0])).tolist() == [0.0, 0.5, 1.0]
    mask = np.array([True, True, False, True])
    assert normalize_scores(np.array([2.0, 4.0, 100.0, 6.0]), mask).tolist() == [0.0, 0.5, 0.0, 1.0]
    assert normalize_scores(np.array([7.0, 7.0])).tolist() == [0.0, 0.0]
    assert normalize_scores(np.array([1.0, 2.0]), np.array([False, False])).tolist() == [0.0, 0.0]


def test_fusion_arithmetic_on_hand_made_scores():
    round1 = np.array([0.0, 2.0, 4.0])  # normalized: 0, 0.5, 1
    round2 = np.array([10.0, 0.0, 5.0])  # normalized: 1, 0, 0.5
    assert fuse_scores(round1, round2, 0.25).tolist() == [0.25, 0.375, 0.875]
    assert fuse_scores(round1, round2, 0.0).tolist() == [0.0, 0.5, 1.0]
    assert fuse_scores(round1, round2, 1.0).tolist() == [1.0, 0.0, 0.5]
    # The excluded window (a leak with a huge score) does not stretch the normalization.
    mask = np.array([True, True, True, False])
    fused = fuse_scores(np.array([0.0, 2.0, 4.0, 99.0]), np.array([10.0, 0.0, 5.0, 99.0]), 0.5, mask)
    assert fused.tolist() == [0.5, 0.25, 0.75, 0.0]


def test_fusion_schedules():
    assert fusion_weight(0.3) == 0.3
    assert fusion_weight(0.3, "square") == pytest.approx(0.09)
    assert fusion_weight(0.25, "sqrt") == 0.5
    assert fusion_weight(0.9, "constant", 0.4) == 0.4
    with pytest.raises(MccomError, match=r"\[0, 1\]"):
        fusion_weight(1.5)
    with pytest.raises(MccomError, match="unknown fusion schedule"):
        fusion_weight(0.5, "cubic")
    with pytest.raises(MccomError, match="unknown fusion schedule"):
        RetrievalConfig(fusion_schedule="cubic")


def test_registry_names_and_unknown_strategy():
    assert sorted(RETRIEVERS) == ["mccom-fused", "none", "repocoder", "round1"]
    assert get_retriever("round1", SMALL).config is SMALL
    with pytest.raises(MccomError, match="unknown retriever"):
        get_retriever("dense")


def test_round1_ranks_and_never_returns_windows_overlapping_the_target(index):
    # Windows: target.py (0,4) (2,6) (4,7); the target is line 4, so only (0,4) is eligible.
    hits = retrieve(index, site(), "round1", SMALL)
    assert located(hits) == [
        ("target.py", 0, 4), ("store.py", 2, 5), ("store.py", 0, 4), ("geometry.py", 0, 4),
    ]
    assert [h.rank for h in hits] == [0, 1, 2, 3]
    assert snippet_texts(hits)[3] == REPO["geometry.py"].rstrip("\n")
    # With the target on line 6, the rest of the target file (2,6) becomes retrievable.
    late = retrieve(index, site(target_span=(6, 7)), "round1", SMALL)
    assert located(late) == [
        ("target.py", 0, 4), ("target.py", 2, 6), ("store.py", 2, 5), ("store.py", 0, 4),
        ("geometry.py", 0, 4),
    ]
    assert located(retrieve(index, site(), "round1", RetrievalConfig(window_lines=4, stride=2, top_k=2))) == [
        ("target.py", 0, 4), ("store.py", 2, 5),
    ]


def test_identical_inputs_give_identical_hits(index):
    for name in ("round1", "repocoder", "mccom-fused"):
        s = site(slm_output="area_of_circle(radius)", slm_confidence=0.7)
        assert retrieve(index, s, name, SMALL) == retrieve(index, s, name, SMALL)


# Round 2: the whole target file is the target; the SLM drafted a call to save_result.
ROUND2 = dict(left_context="def main(radius):\n    value = ", right_context="", target_span=(0, 7),
              slm_output="save_result(radius)")


def test_round2_strategies_and_confidence_weighted_fusion(index):
    assert located(retrieve(index, site(**ROUND2), "round1", SMALL)) == [
        ("geometry.py", 0, 4), ("store.py", 2, 5), ("store.py", 0, 4),
    ]
    repocoder = [("store.py", 2, 5), ("store.py", 0, 4), ("geometry.py", 0, 4)]
    assert located(retrieve(index, site(**ROUND2), "repocoder", SMALL)) == repocoder
    fused = {c: located(retrieve(index, site(**ROUND2, slm_confidence=c), "mccom-fused", SMALL))
             for c in (0.0, 0.3, 0.6, 1.0)}
    assert fused[0.0] == fused[0.3] == [("geometry.py", 0, 4), ("store.py", 2, 5), ("store.py", 0, 4)]
    assert fused[0.6] == [("store.py", 2, 5), ("geometry.py", 0, 4), ("store.py", 0, 4)]
    assert fused[1.0] == repocoder
    assert retrieve(index, site(**ROUND2), "none", SMALL) == []


def test_fused_scores_are_the_weighted_sum_of_normalized_rounds(index):
    s = site(**ROUND2, slm_confidence=0.3)
    mask = index.eligible(s.target_path, s.target_span)
    r1 = normalize_scores(index.scores(code_tokens(round1_query(s.left_context, "", SMALL))), mask)
    r2 = normalize_scores(index.scores(code_tokens(round2_query(s.left_context, s.slm_output, SMALL))), mask)
    expected = 0.7 * r1 + 0.3 * r2
    hits = retrieve(index, s, "mccom-fused", SMALL)
    paths = [(index.window(i).path, index.window(i).start) for i in range(len(index))]
    for hit in hits:
        i = paths.index((hit.window.path, hit.window.start))
        assert hit.score == pytest.approx(expected[i], abs=1e-12)
    assert hits[0].score == pytest.approx(0.7 * 1.0 + 0.3 * r2[paths.index(("geometry.py", 0))])


def test_round2_without_slm_output_or_confidence_is_a_user_error(index):
    with pytest.raises(MccomError, match="slm_output"):
        retrieve(index, site(), "repocoder", SMALL)
    with pytest.raises(MccomError, match="slm_confidence"):
        retrieve(index, site(slm_output="x"), "mccom-fused", SMALL)
    with pytest.raises(MccomError, match=r"\[0, 1\]"):
        retrieve(index, site(slm_output="x", slm_confidence=2.0), "mccom-fused", SMALL)


def test_top_hits_breaks_ties_by_window_order(index):
    n = len(index)
    scores = np.zeros(n)
    scores[[5, 1, 3]] = 2.0
    scores[2] = 3.0
    mask = np.ones(n, dtype=bool)
    mask[3] = False
    hits = top_hits(index, scores, mask, 3)
    assert [(index.window(i), s) for i, s in [(2, 3.0), (1, 2.0), (5, 2.0)]] == [(h.window, h.score) for h in hits]
    assert top_hits(index, scores, mask, 0) == []
    assert top_hits(index, np.zeros(n), mask, 3) == []


def test_retrieval_config_validation():
    with pytest.raises(MccomError, match="top_k"):
        RetrievalConfig(top_k=-1)
    with pytest.raises(MccomError, match="retrieved_share"):
        RetrievalConfig(retrieved_share=1.5)
    with pytest.raises(MccomError, match="unknown BM25 backend"):
        RetrievalConfig(backend="x")
    # index_config carries every index setting over (extensions as a tuple: it keys the cache)
    config = RetrievalConfig(window_lines=7, stride=3, extensions=[".py", ".pyi"], max_file_bytes=99, backend="bm25s")
    assert config.index_config == IndexConfig(window_lines=7, stride=3, extensions=(".py", ".pyi"),
                                              max_file_bytes=99, backend="bm25s")


# --- properties (hypothesis) ---------------------------------------------------------------

PROPERTY = settings(max_examples=100, deadline=None)
finite = st.floats(allow_nan=False, allow_infinity=False)
confidence = st.floats(0.0, 1.0)


@st.composite
def scores_and_mask(draw, elements=finite):
    """Two score lists and a mask over the same windows."""
    n = draw(st.integers(1, 12))
    return (draw(arrays(np.float64, n, elements=elements)), draw(arrays(np.float64, n, elements=elements)),
            draw(arrays(np.bool_, n)))


@PROPERTY
@given(case=scores_and_mask())
def test_normalized_scores_span_zero_to_one_over_the_mask(case):
    scores, _, mask = case
    norm = normalize_scores(scores, mask)
    assert (norm[~mask] == 0).all()
    if not mask.any():
        return
    assert ((0 <= norm) & (norm <= 1)).all()
    if scores[mask].max() > scores[mask].min():
        assert norm[mask].min() == 0.0 and norm[mask].max() == 1.0
        # min-max keeps the order (rounding may tie close scores, never swap them)
        s, n = scores[mask], norm[mask]
        assert (n[:, None] <= n[None, :])[s[:, None] <= s[None, :]].all()
    else:
        assert (norm == 0).all()  # all equal: no ranking


def test_normalize_scores_of_a_span_beyond_float_max():
    """hi - lo overflows to inf here; the top score used to normalize to inf/inf = nan."""
    assert normalize_scores(np.array([-1e308, 0.0, 1e308])).tolist() == [0.0, 0.5, 1.0]


@PROPERTY
@given(case=scores_and_mask(), weight=confidence)
def test_fused_scores_are_exactly_the_weighted_sum(case, weight):
    round1, round2, mask = case
    fused = fuse_scores(round1, round2, weight, mask)
    expected = (1 - weight) * normalize_scores(round1, mask) + weight * normalize_scores(round2, mask)
    assert fused.tolist() == expected.tolist()
    assert (fused[~mask] == 0).all()
    assert fuse_scores(round1, round2, 0.0, mask).tolist() == normalize_scores(round1, mask).tolist()
    assert fuse_scores(round1, round2, 1.0, mask).tolist() == normalize_scores(round2, mask).tolist()


@PROPERTY
@given(low=confidence, high=confidence, schedule=st.sampled_from(sorted(FUSION_SCHEDULES)), constant=confidence)
def test_fusion_weight_lies_in_0_1_and_grows_with_confidence(low, high, schedule, constant):
    low, high = sorted((low, high))
    w_low, w_high = fusion_weight(low, schedule, constant), fusion_weight(high, schedule, constant)
    assert 0.0 <= w_low <= w_high <= 1.0
    if schedule == "constant":
        assert w_low == w_high == constant


@PROPERTY
@given(bad=st.floats(allow_nan=True).filter(lambda c: not 0.0 <= c <= 1.0),
       schedule=st.sampled_from(sorted(FUSION_SCHEDULES)))
def test_fusion_weight_rejects_a_confidence_outside_0_1(bad, schedule):
    with pytest.raises(MccomError, match=r"\[0, 1\]"):
        fusion_weight(bad, schedule)


class NumberedWindows:
    """Stands in for a RepoIndex in top_hits: window i is line i of one file, so index order is window order."""

    def window(self, i):
        return Window("a.py", i, i + 1, f"line {i}")


@PROPERTY
@given(case=scores_and_mask(elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])), k=st.integers(0, 14))
def test_top_hits_are_the_k_best_positive_retrievable_windows_best_first(case, k):
    scores, _, mask = case
    hits = top_hits(NumberedWindows(), scores, mask, k)
    chosen = [h.window.start for h in hits]
    eligible = sorted(np.flatnonzero(mask & (scores > 0)), key=lambda i: (-scores[i], i))
    assert chosen == eligible[:k]  # best first, ties in window order
    assert [h.rank for h in hits] == list(range(len(hits)))
    assert [h.score for h in hits] == [scores[i] for i in chosen]


def test_repocoder_keeps_its_query_whatever_round2_query_says(index):
    s = site(slm_output="save_result(area_of_circle(r))\n", slm_confidence=0.6)
    legacy = get_retriever("repocoder", SMALL).retrieve(index, s)
    assert get_retriever("repocoder", replace(SMALL, round2_query="around")).retrieve(index, s) == legacy
