"""The decoding loop: stop rules, token healing, probability and timing bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from mccom_core.lm.decoding import Completion, DecodeConfig, complete
from mccom_core.lm.healing import _allowed_ids, _heal_index, _split_heal
from mccom_core.lm.stopping import _statement_complete, _visible_stop
from mccom_core.errors import MccomError
from tests.conftest import tiny_qwen, as_loaded

NO_HEAL = DecodeConfig(token_healing=False)
V = 320  # tiny tokenizer's vocabulary


def scripted_prob(n_candidates: int) -> float:
    """Probability of the scripted token: logit 4 against n_candidates - 1 logits of -4."""
    return 1.0 / (1.0 + (n_candidates - 1) * math.exp(-8.0))


# --------------------------------------------------------------------------- pure stop rules


@pytest.mark.parametrize(
    "code, complete_",
    [
        ("x = 1", True),
        ("x = f(", False),
        ("x = f(\n    1,", False),
        ("x = f(\n    1)", True),
        ("s = '''abc", False),
        ("y = a + \\", False),
        ("if x:", True),
        ("d = {'a': [1, 2]}", True),
    ],
)
def test_statement_complete(code, complete_):
    assert _statement_complete(code) is complete_


def test_visible_stop_modes():
    text = "f(a,\n  b)\nnext"
    assert _visible_stop(text, "line") == ("f(a,", "newline")
    assert _visible_stop(text, "statement") == ("f(a,\n  b)", "statement")
    assert _visible_stop(text, "none") is None
    assert _visible_stop("no newline yet", "line") is None


# --------------------------------------------------------------------------- scripted model


def test_line_stop_tokens_probs_and_passes(bigram_factory, tiny_tokenizer):
    lm = bigram_factory(["=", "Ġitem", "Ġ+", "Ġx", "Ċ", "ĠĠĠĠ"])
    out = complete(lm, "total +=", NO_HEAL)
    tok = tiny_tokenizer
    assert out.text == " item + x"
    assert out.stop_reason == "newline"
    assert list(out.token_ids) == tok.convert_tokens_to_ids(["Ġitem", "Ġ+", "Ġx", "Ċ"])
    assert out.n_forward == 4  # plain greedy: one pass per token
    assert out.n_drafted == out.n_accepted == 0
    assert out.token_probs == pytest.approx([scripted_prob(V)] * 4, rel=1e-6)
    assert out.confidence == pytest.approx(scripted_prob(V), rel=1e-6)
    assert out.heal_text == "" and out.n_heal_tokens == 0
    assert out.prompt_tokens == len(tok("total +=", add_special_tokens=False)["input_ids"])


def test_max_tokens_cap(bigram_factory):
    lm = bigram_factory(["=", "Ġitem", "Ġ+", "Ġitem"])  # item -> + -> item -> ... forever
    out = complete(lm, "total +=", DecodeConfig(token_healing=False, max_new_tokens=5))
    assert out.stop_reason == "max_tokens"
    assert len(out.token_ids) == 5
    assert out.text == " item + item + item"


def test_eos_stops_and_is_kept_in_ids(bigram_factory, tiny_tokenizer):
    lm = bigram_factory(["=", "Ġitem"])  # then the default successor: EOS
    out = complete(lm, "total +=", NO_HEAL)
    assert out.stop_reason == "eos"
    assert out.text == " item"
    assert out.token_ids[-1] == tiny_tokenizer.eos_token_id


def test_statement_mode_spans_lines(bigram_factory):
    chain = ["Ġ=", "Ġself", "(", "Ċ", "ĠĠĠĠ", "Ġx", ")Ċ", "Ġy"]
    lm = bigram_factory(chain)
    stmt = complete(lm, "total =", DecodeConfig(token_healing=False, stop="statement"))
    assert stmt.text == " self(\n     x)"
    assert stmt.stop_reason == "statement"
    line = complete(lm, "total =", NO_HEAL)
    assert line.text == " self("


def test_token_healing_retypes_indentation(bigram_factory, tiny_tokenizer):
    # Prompt ends in 4 spaces after a newline; the natural split is "   " + " return".
    prompt = "def add(a, b):\n    "
    lm = bigram_factory(["):Ċ", "ĠĠĠ", "Ġreturn", "Ġx", "Ċ"])
    tok = tiny_tokenizer
    assert tok.tokenize(prompt)[-2:] == ["):Ċ", "ĠĠĠĠ"]
    healed = complete(lm, prompt)
    assert healed.heal_text == "    "
    assert healed.text == "return x"  # no stray leading space: what the user sees
    assert healed.n_heal_tokens == 1
    assert list(healed.token_ids[:2]) == tok.convert_tokens_to_ids(["ĠĠĠ", "Ġreturn"])
    # The healed token's probability is renormalized over the tokens allowed there.
    n_allowed = _allowed_ids(_heal_index(tok), "    ").numel()
    assert healed.token_probs[0] == pytest.approx(scripted_prob(n_allowed), rel=1e-6)
    # " return" is still chosen under the constraint (one space left to re-type), so its
    # probability is renormalized too; confidence covers the shown tokens " return", " x", "\n".
    n_space = _allowed_ids(_heal_index(tok), " ").numel()
    assert healed.token_probs[1] == pytest.approx(scripted_prob(n_space), rel=1e-6)
    expected = (scripted_prob(n_space) + 2 * scripted_prob(V)) / 3
    assert healed.confidence == pytest.approx(expected, rel=1e-6)
    # Without healing the prompt ends in an unusual token and the model gives up.
    plain = complete(lm, "def add(a, b):\n" + "    ", NO_HEAL)
    assert plain.text == "" and plain.stop_reason == "eos"


def test_a_prompt_ending_in_a_fim_marker_is_not_healed(tiny_tokenizer):
    # The FIM markers are added special tokens that are not in all_special_ids.
    tok = tiny_tokenizer
    assert tok.convert_tokens_to_ids("<|fim_middle|>") not in tok.all_special_ids
    text = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>"
    ids, heal = _split_heal(tok, text, True)
    assert heal == "" and ids == tok(text, add_special_tokens=False)["input_ids"]
    assert _split_heal(tok, "def add(a, b):\n    ", True)[1] == "    "  # plain prompts still heal


def test_heal_constraint_allows_prefixes_and_extensions(tiny_tokenizer):
    tok = tiny_tokenizer
    allowed = {tok.decode([i]) for i in _allowed_ids(_heal_index(tok), "    ").tolist()}
    assert {" ", "  ", "   ", "    "} <= allowed
    assert all("    ".startswith(t) or t.startswith("    ") for t in allowed)
    assert " return" not in allowed


# --------------------------------------------------------------------------- tiny random Qwen2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_greedy_equals_transformers_generate(tiny_tokenizer, seed):
    lm = as_loaded(tiny_qwen(tiny_tokenizer, seed=seed), tiny_tokenizer)
    for prompt in ["def add(a, b):\n    return", "for item in items:\n    if", "x ="]:
        out = complete(lm, prompt, DecodeConfig(stop="none", token_healing=False, max_new_tokens=24))
        ids = torch.tensor([tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        ref = lm.model.generate(ids, do_sample=False, max_new_tokens=24, pad_token_id=0)[0, ids.shape[1]:]
        assert list(out.token_ids) == ref.tolist()
        assert out.n_forward == len(out.token_ids)


def test_probs_match_a_full_forward(tiny_lm, tiny_tokenizer):
    prompt = "class Point:\n    def"
    out = complete(tiny_lm, prompt, DecodeConfig(stop="none", token_healing=False, max_new_tokens=8))
    ids = tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"] + list(out.token_ids)
    with torch.no_grad():
        logits = tiny_lm.model(torch.tensor([ids])).logits[0]
    n = len(ids) - len(out.token_ids)
    expected = [torch.softmax(logits[n - 1 + k], -1)[t].item() for k, t in enumerate(out.token_ids)]
    assert out.token_probs == pytest.approx(expected, rel=1e-4)


def test_healed_output_is_consistent(tiny_lm, tiny_tokenizer):
    for prompt in ["def add(a, b):\n    ", "for item in items:\n    if item", "x = compute(values, "]:
        out = complete(tiny_lm, prompt, DecodeConfig(max_new_tokens=16))
        decoded = tiny_tokenizer.decode(list(out.token_ids), skip_special_tokens=True)
        assert out.heal_text and prompt.endswith(out.heal_text)
        assert decoded.startswith(out.heal_text)
        assert decoded[len(out.heal_text):].startswith(out.text)
        assert "\n" not in out.text


def test_timings_are_consistent(tiny_lm):
    out = complete(tiny_lm, "import os\nimport", DecodeConfig(max_new_tokens=6))
    assert isinstance(out, Completion)
    assert out.prefill_ms > 0 and out.decode_ms >= 0 and out.draft_ms >= 0
    assert out.total_ms == pytest.approx(out.prefill_ms + out.decode_ms + out.draft_ms)
    assert out.n_forward == len(out.token_ids)
    assert out.decode_ms == 0 or out.n_forward > 1


# --------------------------------------------------------------------------- bad input


def test_bad_input_errors(tiny_lm):
    with pytest.raises(MccomError, match="empty prompt"):
        complete(tiny_lm, "")
    with pytest.raises(MccomError, match="stop rule"):
        DecodeConfig(stop="paragraph")
    with pytest.raises(MccomError, match="max_new_tokens"):
        DecodeConfig(max_new_tokens=0)
    with pytest.raises(MccomError, match="exceeds the model's context"):
        complete(tiny_lm, "x = 1\n" * 800)


# --------------------------------------------------------------------------- transformers API


def test_the_kv_cache_goes_under_the_keyword_the_model_takes(tiny_lm, bigram_factory):
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40):
    the loop passes the cache under the name the model's forward declares, so a real model
    never sees the deprecated keyword and an old-style one still gets its cache."""
    import warnings

    from mccom_core.lm.kv_cache import _cache_keyword

    expected = "cache" if "cache" in __import__("inspect").signature(type(tiny_lm.model).forward).parameters \
        else "past_key_values"
    assert _cache_keyword(type(tiny_lm.model)) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        complete(tiny_lm, "def f(x):\n    return", NO_HEAL)

    seen = []
    old = bigram_factory(["=", "Ġitem", "Ċ"])
    forward = type(old.model).forward

    class OldStyle(type(old.model)):
        def forward(self, input_ids, past_key_values=None, use_cache=True, **kw):
            seen.append(type(past_key_values).__name__)
            assert "cache" not in kw
            return forward(self, input_ids, past_key_values=past_key_values, use_cache=use_cache, **kw)

    old.model.__class__ = OldStyle
    assert _cache_keyword(OldStyle) == "past_key_values"
    complete(old, "total +=", NO_HEAL)
    assert seen and set(seen) == {"DynamicCache"}
