"""Prompt building: budgets from the far end, line snapping, formats, cursor splitting."""

from __future__ import annotations

import pytest

from mccom_core.errors import MccomError
from mccom_core.lm.prompts import (
    PromptConfig,
    build_prompt,
    read_source,
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


def test_read_source_decodes_as_python_does(tmp_path):
    f = tmp_path / "m.py"
    f.write_bytes(b"# -*- coding: latin-1 -*-\nname = 'Jos\xe9'\n")
    assert read_source(f) == "# -*- coding: latin-1 -*-\nname = 'Jos\u00e9'\n"
    f.write_bytes(b"\xef\xbb\xbfname = 'Jos\xc3\xa9'\r\n")  # UTF-8 with a BOM and CRLF
    assert read_source(f) == "name = 'Jos\u00e9'\n"


@pytest.mark.parametrize("data, pattern", [
    (b"import os\n\nname = 'Jos\xe9'\n", r"line 3 has byte 0xe9, which is not valid utf-8; .*coding: latin-1"),
    (b"name = 'Jos\xe9'\n", r"line 1 has byte 0xe9, which is not valid utf-8; save the file as UTF-8"),
    (b"# coding: ascii\nname = 'Jos\xe9'\n", r"line 2 has byte 0xe9, which is not valid ascii"),
    (b"# coding: klingon\nx = 1\n", r"unknown encoding.*klingon; fix the coding cookie"),
    (b"\x7fELF\x02\x01\x01\x00\x00\xff\n", r"looks like a binary file \(it contains NUL bytes\)"),
    (b"x = 1\n\x00\x00\n", r"looks like a binary file"),  # valid UTF-8, still not source
])
def test_read_source_errors_say_what_to_do(tmp_path, data, pattern):
    f = tmp_path / "bad.py"
    f.write_bytes(data)
    with pytest.raises(MccomError, match=pattern):
        read_source(f)


def test_read_source_missing_file(tmp_path):
    with pytest.raises(MccomError, match="file not found"):
        read_source(tmp_path / "absent.py")
    with pytest.raises(MccomError, match="file not found"):
        read_source(tmp_path)  # a folder


@pytest.mark.parametrize("fmt", ["left", "fim"])
def test_a_precomputed_cut_gives_the_same_prompt(tiny_tokenizer, fmt):
    from mccom_core.lm.prompts import cut_context

    left, right = SOURCE[: len(SOURCE) // 2], SOURCE[len(SOURCE) // 2:]
    config = PromptConfig(max_left_tokens=40, max_right_tokens=17, format=fmt)
    cut = cut_context(left, right, tiny_tokenizer, config)
    assert cut == (build_prompt(left, right, tiny_tokenizer, config).left,
                   build_prompt(left, right, tiny_tokenizer, config).right)
    assert build_prompt(left, right, tiny_tokenizer, config, prefix="# x\n", cut=cut) == \
        build_prompt(left, right, tiny_tokenizer, config, prefix="# x\n")
    with pytest.raises(MccomError, match="cut must be cut_context"):
        build_prompt(left, right, tiny_tokenizer, config, cut=("not a suffix", ""))
