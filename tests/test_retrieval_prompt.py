import math
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from mccom_core.errors import MccomError
from mccom_core.retrieval.index import Window
from mccom_core.retrieval.queries import Hit
from mccom_core.retrieval.prompt import HEADER, as_token_counter, assemble_prompt, fit_block, render_block


def words(text):
    """A deterministic test tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class EncodeTokenizer:
    """A Hugging Face style tokenizer: one token per character, plus a BOS if asked."""

    def encode(self, text, add_special_tokens=True):
        return [0] * (len(text) + (1 if add_special_tokens else 0))


HITS = [
    Hit(Window("pkg/best.py", 0, 2, "def best():\n    return 1"), 3.0, 0),
    Hit(Window("pkg/mid.py", 10, 11, "MID = 2"), 2.0, 1),
    Hit(Window("worst.py", 5, 6, "worst = 3"), 1.0, 2),
]
LEFT = "import os\n\ndef main():\n    x = best()\n    return "


def test_render_block_is_repocoder_style_with_the_best_window_last():
    rule = "# " + "-" * 50
    assert render_block(HITS[:2]) == (
        "# Here are some relevant code fragments from other files of the repo:\n" + rule + "\n"
        "# the below code fragment can be found in:\n# pkg/mid.py\n" + rule + "\n# MID = 2\n" + rule + "\n"
        "# the below code fragment can be found in:\n# pkg/best.py\n" + rule + "\n"
        "# def best():\n#     return 1\n" + rule + "\n"
    )
    assert render_block([]) == ""


def test_everything_fits_in_a_large_budget():
    prompt = assemble_prompt(LEFT, HITS, words, budget_tokens=1000)
    assert prompt.text == render_block(HITS) + LEFT
    assert prompt.hits == tuple(HITS)
    assert prompt.snippets == ["def best():\n    return 1", "MID = 2", "worst = 3"]
    assert prompt.n_tokens == words(prompt.text)
    assert prompt.left_chars_dropped == 0


def test_budget_is_never_exceeded_and_the_least_relevant_go_first():
    seen_counts = set()
    for budget in range(0, 140):
        for share in (0.0, 0.25, 0.5, 1.0):
            prompt = assemble_prompt(LEFT, HITS, words, budget_tokens=budget, retrieved_share=share)
            assert prompt.n_tokens == words(prompt.text) <= budget
            assert prompt.hits == tuple(HITS[: len(prompt.hits)])  # a best-first prefix
            assert LEFT.endswith(prompt.text[len(render_block(list(prompt.hits))):])
            seen_counts.add(len(prompt.hits))
    assert seen_counts == {0, 1, 2, 3}


def test_left_context_keeps_its_share_and_is_cut_at_a_line_start():
    # Half of 20 tokens is reserved for the left context, which needs only 8: the block gets
    # 12, too few for any window (the block with one window is 36 words).
    prompt = assemble_prompt(LEFT, HITS, words, budget_tokens=20)
    assert prompt.hits == () and prompt.text == LEFT and prompt.n_tokens == 8
    # Budget 6 with the block empty: the left context keeps its longest tail from a line start.
    prompt = assemble_prompt(LEFT, [], words, budget_tokens=6)
    assert prompt.text == "\ndef main():\n    x = best()\n    return "  # the blank line is kept
    assert prompt.left_chars_dropped == len("import os\n")
    # Budget 1: only the cursor line fits.
    prompt = assemble_prompt(LEFT, [], words, budget_tokens=1)
    assert prompt.text == "    return " and prompt.n_tokens == 1
    # A cursor line too long for the budget is cut mid-line (no later line start to cut at).
    prompt = assemble_prompt("a\nb c d e", [], words, budget_tokens=2)
    assert prompt.text == " d e" and prompt.left_chars_dropped == 5


def test_hf_style_tokenizer_counts_without_special_tokens():
    count = as_token_counter(EncodeTokenizer())
    assert count("abc") == 3
    prompt = assemble_prompt(LEFT, HITS, EncodeTokenizer(), budget_tokens=len(LEFT) + len(render_block(HITS[:1])))
    assert prompt.hits == (HITS[0],) and prompt.text == render_block(HITS[:1]) + LEFT
    assert prompt.n_tokens == len(prompt.text)


def test_bad_tokenizer_and_budget_are_user_errors():
    with pytest.raises(MccomError, match="cannot count tokens"):
        as_token_counter(42)
    with pytest.raises(MccomError, match="budget_tokens"):
        assemble_prompt(LEFT, HITS, words, budget_tokens=-1)
    with pytest.raises(MccomError, match="retrieved_share"):
        assemble_prompt(LEFT, HITS, words, retrieved_share=2.0)
    assert HEADER.startswith("# Here are some relevant code fragments")


def test_fit_block_budgets_the_retrieved_block_alone():
    sizes = [words(render_block(HITS[:n])) for n in range(4)]
    assert sizes == [0, 36, 55, 74]
    for budget in range(0, sizes[3] + 2):
        block = fit_block(HITS, words, budget)
        expected = max(n for n in range(4) if sizes[n] <= budget)
        assert block.hits == tuple(HITS[:expected])
        assert block.text == render_block(HITS[:expected]) and block.n_tokens == sizes[expected] <= budget
    assert fit_block(HITS, words, sizes[2]).snippets == ["def best():\n    return 1", "MID = 2"]


def test_fit_block_equals_dropping_windows_one_by_one(tiny_tokenizer):
    import random

    rng = random.Random(0)
    words_pool = ["def", "self", "(x)", "return", "camelCase", "snake_case", "=", "0", "\n", "    ", ":"]
    hits = [Hit(Window(f"pkg/m{i}.py", i, i + 3, "".join(rng.choice(words_pool) for _ in range(rng.randrange(1, 30)))),
                10.0 - i, i) for i in range(12)]
    count = as_token_counter(tiny_tokenizer)

    def naive(budget):
        kept = list(hits)
        while kept and count(render_block(kept)) > budget:
            kept.pop()
        return tuple(kept)

    full = count(render_block(hits))
    for budget in list(range(0, full + 5, 7)) + [full - 1, full]:
        assert fit_block(hits, tiny_tokenizer, budget).hits == naive(budget), budget


# --- properties (hypothesis) ---------------------------------------------------------------
# The counters are additive on these texts (the block ends with "\n"), so "the longest prefix /
# tail that fits" has one right answer to compare against.

TOKENIZERS = {"words": words, "chars": len}
word = st.sampled_from(["def", "f(x):", "return", "x", "=", "1", "#", "self.y"])
line = st.lists(word, max_size=4).map(" ".join) | st.just("    ")
code = st.lists(line, min_size=1, max_size=4).map("\n".join)
hit_lists = st.lists(code, max_size=5).map(
    lambda texts: [Hit(Window(f"pkg/m{i}.py", i, i + 2, text), float(len(texts) - i), i) for i, text in enumerate(texts)])
PROPERTY = settings(max_examples=100, deadline=None)


@st.composite
def prompt_cases(draw, left=code):
    """(left, hits, count, budget, share) with a budget anywhere from 0 to a little over what all of it needs."""
    count = TOKENIZERS[draw(st.sampled_from(sorted(TOKENIZERS)))]
    left, hits = draw(left), draw(hit_lists)
    budget = draw(st.integers(0, count(render_block(hits) + left) + 2))
    return left, hits, count, budget, draw(st.floats(0.0, 1.0))


def longest_fitting_prefix(hits, count, budget):
    return max(k for k in range(len(hits) + 1) if count(render_block(hits[:k])) <= budget)


@PROPERTY
@given(case=prompt_cases())
def test_fit_block_keeps_the_longest_best_first_prefix_of_whole_windows(case):
    _, hits, count, budget, _ = case
    block = fit_block(hits, count, budget)
    assert block.hits == tuple(hits[: longest_fitting_prefix(hits, count, budget)])
    assert block.text == render_block(list(block.hits))  # whole windows, best last
    assert block.n_tokens == count(block.text) <= budget


@PROPERTY
@given(case=prompt_cases())
def test_assembled_prompt_never_exceeds_the_budget(case):
    left, hits, count, budget, share = case
    prompt = assemble_prompt(left, hits, count, budget_tokens=budget, retrieved_share=share)
    assert prompt.n_tokens == count(prompt.text) <= budget
    assert prompt.hits == tuple(hits[: len(prompt.hits)])  # a best-first prefix
    assert prompt.text == render_block(list(prompt.hits)) + left[prompt.left_chars_dropped:]


@PROPERTY
@given(case=prompt_cases())
def test_the_block_takes_at_most_its_share_and_all_of_it_it_can(case):
    left, hits, count, budget, share = case
    prompt = assemble_prompt(left, hits, count, budget_tokens=budget, retrieved_share=share)
    # The left context is reserved (1 - share) * budget tokens, or all it needs if less ...
    reserved = min(count(left), math.ceil((1 - Fraction(share)) * budget))
    # ... and the block is the longest prefix of windows that fits in the rest.
    assert prompt.hits == tuple(hits[: longest_fitting_prefix(hits, count, budget - reserved)])


@PROPERTY
@given(case=prompt_cases())
def test_the_left_context_keeps_its_longest_fitting_tail_from_a_line_start(case):
    left, hits, count, budget, share = case
    prompt = assemble_prompt(left, hits, count, budget_tokens=budget, retrieved_share=share)
    room = budget - count(render_block(list(prompt.hits)))
    cut = prompt.left_chars_dropped
    if count(left) <= room:
        assert cut == 0  # a left context that fits is kept whole
    elif cut > 0 and left[cut - 1] == "\n":
        # Cut at a line start: the tail from the line start before it would not fit.
        previous = left.rfind("\n", 0, cut - 1) + 1
        assert count(left[previous:]) > room
    else:
        # Cut mid-line: no later line start has anything after it, and one more character would not fit.
        assert "\n" not in left[cut:-1] and count(left[cut - 1:]) > room


@PROPERTY
@given(case=prompt_cases(left=line))
def test_a_one_line_left_context_keeps_its_share_of_the_budget(case):
    # Only for one line: a longer left context is cut at a line start (module docstring, step 3),
    # which can keep less than its share: left "def\n    ", no hits, len, budget 5, share 0 keeps
    # "    " (4 tokens), not "f\n    " (5). Step 1's "guaranteed ... tokens" is room, not content.
    left, hits, count, budget, share = case
    prompt = assemble_prompt(left, hits, count, budget_tokens=budget, retrieved_share=share)
    kept = count(left[prompt.left_chars_dropped:])
    assert kept >= min(count(left), (1 - Fraction(share)) * budget)


@PROPERTY
@given(text=st.text(max_size=30))
def test_as_token_counter_counts_encode_without_special_tokens(text):
    assert as_token_counter(EncodeTokenizer())(text) == len(text)
    assert as_token_counter(words) is words
