"""The redundancy filter: windows the prompt already shows, and windows repeating each other."""

from dataclasses import replace

import numpy as np
import pytest

from mccom_core.errors import MccomError
from mccom_core.lm.prompts import PromptConfig, build_prompt
from mccom_core.retrieval.queries import CompletionSite, RetrievalConfig, top_hits
from mccom_core.retrieval.redundancy import (ShownText, jaccard, novel_top_hits, shown_context, shown_mask,
                                             shown_spans)
from mccom_core.retrieval.retrievers import get_retriever, load_index

# The target reads a binary header; the cursor is on line 8. A vendored copy of lines 4-7, two
# identical helper files and the codec the target imports make the other candidates.
REPO = {
    "target.py": (
        "import struct\n"                                           # 0
        "from codec import decode_block\n"                          # 1
        "\n"                                                        # 2
        "def parse_header(stream):\n"                               # 3
        "    magic = stream.read(4)\n"                              # 4
        "    version = struct.unpack('<H', stream.read(2))[0]\n"    # 5
        "    flags = struct.unpack('<H', stream.read(2))[0]\n"      # 6
        "    size = struct.unpack('<I', stream.read(4))[0]\n"       # 7
        "    payload = decode_block(stream.read(size), flags)\n"    # 8 <- target
        "    return magic, version, payload\n"                      # 9
    ),
    "vendor/target_copy.py": (
        "    magic = stream.read(4)\n"
        "    version = struct.unpack('<H', stream.read(2))[0]\n"
        "    flags = struct.unpack('<H', stream.read(2))[0]\n"
        "    size = struct.unpack('<I', stream.read(4))[0]\n"
    ),
    "codec.py": (
        "def decode_block(data, flags):\n"
        "    if flags & 1:\n"
        "        data = inflate_block(data)\n"
        "    return data\n"
        "\n"
        "def inflate_block(data):\n"
        "    return zlib.decompress(data)\n"
    ),
    "reader_a.py": "def read_size(stream):\n    size = struct.unpack('<I', stream.read(4))[0]\n    return stream.read(size)\n",
    "reader_b.py": "def read_size(stream):\n    size = struct.unpack('<I', stream.read(4))[0]\n    return stream.read(size)\n",
}
LINES = REPO["target.py"].split("\n")
LEFT = "\n".join(LINES[:8]) + "\n    payload = "
SHOWN = LEFT[LEFT.index("    version"):]  # the prompt keeps lines 5-7 and the cursor line
SMALL = RetrievalConfig(window_lines=4, stride=2, top_k=10)
STRATEGIES = ("round1", "repocoder", "mccom-fused")

# Windows of target.py: (0,4) (2,6) (4,8) (6,10); (6,10) overlaps the target and is never
# eligible. Lines 5-7 are shown: (4,8) has 3 of 4 lines shown (dropped by "span"), (2,6) only
# line 5 (kept). The vendored copy is a near-duplicate of shown lines 5-8 ("span+text"); the
# two readers are identical and (2,6) half-overlaps (0,4) ("dedupe").
LEGACY = {
    "round1": ["target.py:0", "target.py:2", "target.py:4", "vendor/target_copy.py:0", "reader_a.py:0",
               "reader_b.py:0", "codec.py:0"],
    "repocoder": ["target.py:0", "target.py:2", "target.py:4", "vendor/target_copy.py:0", "codec.py:0",
                  "reader_a.py:0", "reader_b.py:0"],
}
LEGACY["mccom-fused"] = LEGACY["round1"]


@pytest.fixture
def index(tmp_path):
    for name, text in REPO.items():
        path = tmp_path / "repo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_index(tmp_path / "repo", SMALL, cache_root=tmp_path / "cache")


def site(**kw):
    base = dict(left_context=LEFT, right_context="\n".join(LINES[9:]), target_path="target.py",
                target_span=(8, 9), slm_output="decode_block(stream.read(size), flags)",
                slm_confidence=0.5, shown_left=SHOWN)
    return CompletionSite(**{**base, **kw})


def located(hits):
    return [f"{h.window.path}:{h.window.start}" for h in hits]


def without(names, *dropped):
    return [n for n in names if n not in dropped]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_default_config_retrieves_exactly_as_before(index, strategy):
    hits = get_retriever(strategy, SMALL).retrieve(index, site())
    assert located(hits) == LEGACY[strategy]
    assert [h.rank for h in hits] == list(range(7))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_span_drops_target_windows_mostly_shown(index, strategy):
    hits = get_retriever(strategy, replace(SMALL, exclude_visible="span")).retrieve(index, site())
    assert located(hits) == without(LEGACY[strategy], "target.py:4")
    assert [h.rank for h in hits] == list(range(6))
    # Scores are not changed by the filter: the kept windows keep their unfiltered order and score.
    before = {located([h])[0]: h.score for h in get_retriever(strategy, SMALL).retrieve(index, site())}
    assert all(h.score == before[located([h])[0]] for h in hits)


def test_span_with_the_whole_left_context_shown(index):
    # shown_left None: all of the left context is in the prompt, so every eligible target window goes.
    hits = get_retriever("round1", replace(SMALL, exclude_visible="span")).retrieve(index, site(shown_left=None))
    assert located(hits) == without(LEGACY["round1"], "target.py:0", "target.py:2", "target.py:4")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_span_text_also_drops_copies_of_the_shown_text(index, strategy):
    hits = get_retriever(strategy, replace(SMALL, exclude_visible="span+text")).retrieve(index, site())
    assert located(hits) == without(LEGACY[strategy], "target.py:4", "vendor/target_copy.py:0")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_dedupe_drops_half_overlapping_neighbours_and_near_duplicates(index, strategy):
    # target.py:2 repeats half of target.py:0; the vendored copy has the identifiers of
    # target.py:4 (Jaccard 9/10); reader_b.py is reader_a.py.
    hits = get_retriever(strategy, replace(SMALL, dedupe=True)).retrieve(index, site())
    assert located(hits) == without(LEGACY[strategy], "target.py:2", "vendor/target_copy.py:0", "reader_b.py:0")
    both = get_retriever(strategy, replace(SMALL, exclude_visible="span+text", dedupe=True)).retrieve(index, site())
    assert located(both) == without(LEGACY[strategy], "target.py:2", "target.py:4", "vendor/target_copy.py:0",
                                    "reader_b.py:0")
    assert [h.rank for h in both] == [0, 1, 2]


def test_top_k_is_refilled_from_further_down_the_ranking(index):
    config = replace(SMALL, top_k=2, exclude_visible="span+text", dedupe=True)
    assert located(get_retriever("round1", config).retrieve(index, site())) == ["target.py:0", "reader_a.py:0"]
    assert get_retriever("round1", config).retrieve(index, site(), top_k=0) == []


def test_filters_off_is_top_hits_itself(index):
    scores = np.linspace(1.0, 2.0, len(index))
    mask = index.eligible("target.py", (8, 9))
    assert novel_top_hits(index, scores, mask, 5, site(), SMALL) == top_hits(index, scores, mask, 5)


def test_shown_spans_left_and_right():
    left = "a = 1\nb = 2\nc = 3\n    "  # the cursor is on line 3
    assert shown_spans(CompletionSite(left, shown_left="c = 3\n    ")) == [(2, 3)]
    assert shown_spans(CompletionSite(left)) == [(0, 3)]
    # A two-line target (3, 5): the right context starts on line 4 (the rest of it), then 5, 6.
    right = "\nx = 1\ny = 2\nz = 3"
    two = CompletionSite(left, right, "t.py", (3, 5), shown_left="b = 2\nc = 3\n    ", shown_right="\nx = 1\ny = 2\n")
    assert shown_spans(two) == [(1, 3), (5, 7)]
    assert shown_spans(replace(two, shown_left="    ", shown_right="")) == []


def test_shown_mask_needs_half_the_lines_shown(index):
    mask = shown_mask(index, site(shown_left=LEFT[LEFT.index("    magic"):]))  # lines 4-7 shown
    assert sorted(located([_hit(index, i) for i in np.flatnonzero(mask)])) == ["target.py:2", "target.py:4",
                                                                               "target.py:6"]
    assert not shown_mask(index, site(target_path=None)).any()
    assert not shown_mask(index, site(target_path="not_indexed.py")).any()


def _hit(index, i):
    from mccom_core.retrieval.queries import Hit
    return Hit(index.window(int(i)), 0.0, 0)


def test_near_duplicate_of_the_shown_text_needs_a_matching_stretch():
    shown = ShownText("alpha = beta(gamma)\ndelta = epsilon\nzeta = eta\n", "")
    assert shown.stretches(2) == [{"alpha", "beta", "gamma", "delta", "epsilon"}, {"delta", "epsilon", "zeta", "eta"},
                                  {"zeta", "eta"}]
    assert shown.near_duplicate({"delta", "epsilon", "zeta", "eta"}, 2, 0.8)
    # Every token occurs in the shown text, but in no two-line stretch together: not a copy.
    assert not shown.near_duplicate({"alpha", "zeta"}, 2, 0.8)
    assert shown.near_duplicate({"alpha", "zeta"}, 3, 0.2)
    assert not shown.near_duplicate(set(), 2, 0.8)
    assert jaccard(set(), set()) == 0.0 and jaccard({"a", "b"}, {"b", "c"}) == 1 / 3


def test_shown_context_cuts_as_build_prompt(tiny_tokenizer):
    left = "".join(f"value_{i} = compute(value_{i - 1})\n" for i in range(1, 40)) + "    "
    right = "".join(f"print(value_{i})\n" for i in range(30))
    base = CompletionSite(left, right, "t.py", (39, 40))
    for config in (PromptConfig(max_left_tokens=40), PromptConfig(max_left_tokens=40, max_right_tokens=20, format="fim")):
        prompt = build_prompt(left, right, tiny_tokenizer, config)
        shown = shown_context(base, tiny_tokenizer, config)
        assert (shown.shown_left, shown.shown_right) == (prompt.left, prompt.right)
        assert 0 < len(shown.shown_left) < len(left)
    assert shown_context(base, tiny_tokenizer).shown_right == ""


def test_bad_options_and_inconsistent_sites_are_user_errors():
    with pytest.raises(MccomError, match="exclude_visible"):
        RetrievalConfig(exclude_visible="all")
    with pytest.raises(MccomError, match="near_duplicate"):
        RetrievalConfig(near_duplicate=0.0)
    with pytest.raises(MccomError, match="suffix"):
        CompletionSite("a = 1\nb = ", shown_left="a = 1")
    with pytest.raises(MccomError, match="prefix"):
        CompletionSite("a = ", "\nb = 2", shown_right="b")


def test_default_config_hash_is_unchanged():
    from mccom_core.cascade.engine import CascadeConfig, config_hash

    # The hash of the committed cascade rows (benchmarks/results/cascade_rows.jsonl), computed
    # before these options existed: configs at the old behaviour must keep it. The default
    # round-2 query is "around" since issue 22 (its rerun's rows carry 198822e0d85000cf).
    assert config_hash(CascadeConfig()) == "198822e0d85000cf"
    legacy = RetrievalConfig(backend="bm25s", round2_query="repocoder")
    assert config_hash(CascadeConfig(retrieval=legacy)) == "5816af4848882cc3"
    assert config_hash(CascadeConfig(retrieval=replace(legacy, backend="rank-bm25"))) == "a94d68ed6f716dc2"
    on = {config_hash(CascadeConfig(retrieval=replace(legacy, **kw)))
          for kw in ({"exclude_visible": "span"}, {"exclude_visible": "span+text"}, {"dedupe": True},
                     {"near_duplicate": 0.7})}
    assert len(on) == 4 and "5816af4848882cc3" not in on
    assert set(RetrievalConfig(dedupe=True).hash_fields()) >= {"exclude_visible", "dedupe", "near_duplicate"}
    # The span filter's rows (benchmarks/results/retrieval_span_rows.jsonl) were keyed before
    # round2_query existed; a later generation of options leaves their hash alone.
    span = CascadeConfig(retrieval=replace(legacy, exclude_visible="span"))
    assert config_hash(span) == "cc43139ec58a3391"
    assert "round2_query" not in span.retrieval.hash_fields()
    around = {config_hash(replace(span, retrieval=replace(span.retrieval, round2_query="around", **kw)))
              for kw in ({"exclude_visible": "none"}, {})}
    assert len(around) == 2 and not around & {"5816af4848882cc3", "cc43139ec58a3391"}
