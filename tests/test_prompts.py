"""Prompt building: budgets from the far end, line snapping, formats, cursor splitting."""

from __future__ import annotations

import pytest

from mccom_core.errors import MccomError
from mccom_core.lm.prompts import (
    PromptConfig,
    build_prompt,
    split_at_cursor,
    truncate_left,
    truncate_right,
)
from mccom_core.retrieval.prompt import as_token_counter as count_tokens
from tests.conftest import CORPUS

SOURCE = "".join(CORPUS) * 3


@pytest.mark.parametrize("budget", [1, 5, 17, 40, 100, 10_000])
def test_truncate_left_keeps_the_end_within_budget(tiny_tokenizer, budget):
    count = count_tokens(tiny_tokenizer)
    kept = truncate_left(SOURCE, tiny_tokenizer, budget)
    assert SOURCE.endswith(kept)
    assert count(kept) <= budget
    if budget >= count(SOURCE):
        assert kept == SOURCE
    elif budget >= 40:
        assert SOURCE[len(SOURCE) - len(kept) - 1] == "\n"  # starts at a line boundary


@pytest.mark.parametrize("budget", [0, 1, 5, 17, 40, 10_000])
def test_truncate_right_keeps_the_start_within_budget(tiny_tokenizer, budget):
    count = count_tokens(tiny_tokenizer)
    kept = truncate_right(SOURCE, tiny_tokenizer, budget)
    assert SOURCE.startswith(kept)
    assert count(kept) <= budget
    if 40 <= budget < count(SOURCE):
        assert kept.endswith("\n")


def test_left_format_ignores_right_context(tiny_tokenizer):
    p = build_prompt("x = 1\ny = ", "2\nz = 3\n", tiny_tokenizer, PromptConfig(max_left_tokens=50), prefix="# a.py\n")
    assert p.text == "# a.py\nx = 1\ny = "
    assert p.right == "" and p.right_tokens == 0 and p.format == "left"
    assert p.left_tokens == count_tokens(tiny_tokenizer)("x = 1\ny = ")


def test_fim_format_layout(tiny_tokenizer):
    p = build_prompt("x = 1\ny = ", "2\nz = 3\n", tiny_tokenizer, PromptConfig(format="fim"))
    assert p.text == "<|fim_prefix|>x = 1\ny = <|fim_suffix|>2\nz = 3\n<|fim_middle|>"


def test_prompt_errors(tiny_tokenizer):
    with pytest.raises(MccomError, match="empty context"):
        build_prompt("   \n", "x = 1", tiny_tokenizer)
    with pytest.raises(MccomError, match="unknown prompt format"):
        PromptConfig(format="chat")
    with pytest.raises(MccomError, match="budgets must be positive"):
        PromptConfig(max_left_tokens=0)


def test_split_at_cursor():
    src = "def f(x):\n    return x + 1\n\nprint(f(2))\n"
    left, right = split_at_cursor(src, 2)
    assert left == "def f(x):\n    " and right == "return x + 1\n\nprint(f(2))\n"
    left, right = split_at_cursor(src, 2, col=12)
    assert left.endswith("return x") and left + right == src
    with pytest.raises(MccomError, match="outside the file"):
        split_at_cursor(src, 9)
    with pytest.raises(MccomError, match="column 40 is outside line 2"):
        split_at_cursor(src, 2, col=40)
