"""Speculative decoding: every drafter yields exactly the plain greedy output."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mccom_core.lm.decoding import DecodeConfig, complete
from mccom_core.lm.kv_cache import PrefixCache, warm
from mccom_core.lm.drafting import (
    DRAFTERS,
    ContextDrafter,
    CrossModelDrafter,
    DraftContext,
    _lookup,
    make_drafter,
)
from mccom_core.errors import MccomError
from tests.conftest import CORPUS, as_loaded, build_tiny_tokenizer, tiny_qwen

PROMPTS = [
    "def add(a, b):\n    return",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        ",
    "for item in items:\n    if item is None:\n        continue\n    total +=",
    "import os\nimport sys\n\nresult = compute(values, axis=0)\nprint(result)\nresult = compute(",
    "with open(path) as fh:\n        data = fh.read()\n        lines = data.",
    "x",
]
CONFIGS = [
    DecodeConfig(stop="line", max_new_tokens=12),
    DecodeConfig(stop="none", max_new_tokens=12, token_healing=False),
    DecodeConfig(stop="statement", max_new_tokens=9),
]


def random_prompts(tokenizer, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    text = "".join(CORPUS)
    out = []
    for _ in range(n):
        a = rng.randrange(0, len(text) - 10)
        out.append(text[a: a + rng.randrange(3, 120)] or "x")
    return out


def drafts_for(plain, rng: random.Random, vocab: int) -> dict[str, list[int]]:
    """Adversarial stage-2 drafts built from the plain output."""
    ids = list(plain.token_ids)
    return {
        "all-right": ids,
        "all-wrong": [(t + 1 + rng.randrange(vocab - 1)) % vocab for t in ids] or [5],
        "empty": [],
        "longer-than-budget": ids + [rng.randrange(vocab) for _ in range(40)],
        "right-then-wrong": ids[: len(ids) // 2] + [rng.randrange(vocab) for _ in range(6)],
        "crosses-stop": ids + ids,
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_every_drafter_equals_plain_greedy(tiny_tokenizer, seed):
    lm = as_loaded(tiny_qwen(tiny_tokenizer, seed=seed), tiny_tokenizer)
    rng = random.Random(seed)
    prompts = PROMPTS + random_prompts(tiny_tokenizer, 12, seed)
    for prompt in prompts:
        for cfg in CONFIGS:
            plain = complete(lm, prompt, cfg)
            extra = (rng.choice(CORPUS),)
            for name, kw in (("context", {}), ("context", {"draft_len": 10}), ("none", {})):
                out = complete(lm, prompt, cfg, drafter=make_drafter(name, **kw), extra_texts=extra)
                assert out.token_ids == plain.token_ids, (name, kw, prompt)
                assert out.text == plain.text and out.stop_reason == plain.stop_reason
                assert out.token_probs == pytest.approx(plain.token_probs, abs=1e-5)
            for label, draft in drafts_for(plain, rng, len(tiny_tokenizer)).items():
                for name in ("cross-model", "cross-model+context"):
                    out = complete(lm, prompt, cfg, drafter=make_drafter(name),
                                   draft_ids=draft, draft_text=tiny_tokenizer.decode(draft))
                    assert out.token_ids == plain.token_ids, (name, label, prompt)
                    assert out.text == plain.text
                    assert out.n_accepted <= out.n_drafted
                    if label == "all-right":
                        assert out.n_forward == 1  # verified in the prefill pass
                        assert out.n_accepted == len(plain.token_ids) - 1


def test_cross_tokenizer_draft_is_aligned_by_text(tiny_tokenizer):
    other = build_tiny_tokenizer(vocab_size=290)  # different merges, different ids
    assert other.get_vocab() != tiny_tokenizer.get_vocab()
    lm = as_loaded(tiny_qwen(tiny_tokenizer, seed=3), tiny_tokenizer)
    cfg = DecodeConfig(stop="none", max_new_tokens=10)
    for prompt in PROMPTS:
        plain = complete(lm, prompt, cfg)
        full_text = tiny_tokenizer.decode(list(plain.token_ids))
        foreign_ids = other(full_text, add_special_tokens=False)["input_ids"]
        # The draft comes as text from a model with another tokenizer: ids are not usable.
        out = complete(lm, prompt, cfg, drafter=make_drafter("cross-model"),
                       draft_text=other.decode(foreign_ids))
        assert out.token_ids == plain.token_ids
        if "\ufffd" not in full_text and plain.stop_reason != "eos":
            assert out.n_forward <= 2  # the whole text re-tokenized is (almost) all accepted


def test_context_drafter_saves_passes_on_repeated_code(bigram_factory, tiny_tokenizer):
    tok = tiny_tokenizer
    prompt = "result = compute(values, axis=0)\nprint(result)\nresult = compute("
    target = tok.tokenize("values, axis=0)\n")
    last = tok.tokenize(prompt)[-1]
    chain = [last] + target
    assert len(set(chain)) == len(chain)  # a bigram can script each token once
    lm = bigram_factory(chain)
    cfg = DecodeConfig(token_healing=False)
    plain = complete(lm, prompt, cfg)
    fast = complete(lm, prompt, cfg, drafter=ContextDrafter(draft_len=10))
    assert plain.text == fast.text == "values, axis=0)"
    assert fast.token_ids == plain.token_ids
    assert plain.n_forward == len(target)
    assert fast.n_forward == 1 and fast.n_accepted == len(target) - 1


def test_lookup_takes_most_recent_occurrence():
    seg = np.array([1, 2, 3, 9, 1, 2, 4, 5, 1, 2])
    assert _lookup(seg, np.array([1, 2]), 3) == [4, 5, 1]
    assert _lookup(seg, np.array([7]), 3) == []
    assert _lookup(np.array([1, 2]), np.array([1, 2]), 3) == []


def test_context_drafter_proposals(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok("a = f(x)\nb = f(", add_special_tokens=False)["input_ids"]
    d = ContextDrafter(min_ngram=1, max_ngram=3, draft_len=4, stop_at_newline=True)
    d.begin(DraftContext(ids, tok))
    proposal = d.propose((), 8)
    assert tok.decode(proposal) == "x)\n"  # continues the earlier "f(" and stops at the newline
    assert d.propose((), 0) == []
    d2 = ContextDrafter(draft_len=4)
    d2.begin(DraftContext(tok("zz", add_special_tokens=False)["input_ids"], tok, extra_texts=("zz top\n",)))
    assert tok.decode(d2.propose((), 8)).startswith(" top")


def test_context_draft_length_defaults_by_device(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok("a b c d e f g h i j k l m n o p q r s t u v w x y z a b", add_special_tokens=False)["input_ids"]
    lengths = {}
    for device in ("cpu", "cuda"):
        d = ContextDrafter(stop_at_newline=False)
        d.begin(DraftContext(ids, tok, device=device))
        lengths[device] = len(d.propose((), 50))
    assert lengths == {"cpu": 2, "cuda": 10}
    d = ContextDrafter(draft_len=5, stop_at_newline=False)
    d.begin(DraftContext(ids, tok, device="cpu"))
    assert len(d.propose((), 50)) == 5 and len(d.propose((), 3)) == 3


def test_cross_model_drafter_follows_and_stops(tiny_tokenizer):
    tok = tiny_tokenizer
    draft = tok(" return a + b\n", add_special_tokens=False)["input_ids"]
    d = CrossModelDrafter()
    d.begin(DraftContext([1, 2], tok, draft_text=tok.decode(draft), draft_ids=tuple(draft)))
    assert d.propose((), 50) == draft
    assert d.propose(tuple(draft[:2]), 50) == draft[2:]
    assert d.propose(tuple(draft[:2]), 1) == draft[2:3]
    assert d.propose((tok.convert_tokens_to_ids("Ġx"),), 50) == []  # diverged, no fallback
    assert d.propose(tuple(draft), 50) == []  # exhausted


def test_registry_and_errors(tiny_tokenizer):
    assert {"none", "context", "cross-model", "cross-model+context"} <= set(DRAFTERS)
    with pytest.raises(MccomError, match="unknown drafter"):
        make_drafter("medusa")
    with pytest.raises(MccomError, match="min_ngram"):
        ContextDrafter(min_ngram=3, max_ngram=2)
    with pytest.raises(MccomError, match="draft_text"):
        make_drafter("cross-model").begin(DraftContext([1], tiny_tokenizer))


def test_prefix_cache_reuse_is_exact(tiny_lm):
    prompt = "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self."
    cold = complete(tiny_lm, prompt, DecodeConfig(max_new_tokens=10))
    pc = warm(tiny_lm, prompt[: prompt.rindex("\n") + 1])
    hot = complete(tiny_lm, prompt, DecodeConfig(max_new_tokens=10), prefix_cache=pc)
    assert hot.token_ids == cold.token_ids
    assert hot.extra["reused_tokens"] > 0
    assert pc.ids == tiny_lm.tokenizer(prompt, add_special_tokens=False)["input_ids"][: hot.prompt_tokens]
    again = complete(tiny_lm, prompt, DecodeConfig(max_new_tokens=10), prefix_cache=pc)
    assert again.token_ids == cold.token_ids
    assert again.extra["reused_tokens"] == again.prompt_tokens - 1
    assert isinstance(PrefixCache().take([1, 2])[0], type(None))
