"""The real Qwen2.5-Coder pair on real code (slow: minutes on a CPU).

Lines come from real repository files installed with the workbench's own dependencies
(rank_bm25.py, papermill's execute.py and parameterize.py), picked with a fixed seed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from mccom_core.lm.decoding import DecodeConfig, complete
from mccom_core.lm.drafting import make_drafter
from mccom_core.cascade.metrics import exact_match
from mccom_core.lm.models import load_model, tokenizers_identical
from mccom_core.lm.prompts import PromptConfig, build_prompt, split_at_cursor
from mccom_core.lab.quickstart import pick_lines

pytestmark = pytest.mark.slow

SLM, LLM = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
# Short contexts keep the 50-line exactness check within CI's time; exactness does not
# depend on the context length.
SHORT = PromptConfig(max_left_tokens=256)


def module_file(name: str) -> Path:
    return Path(importlib.util.find_spec(name).origin)


def real_lines(n: int, seed: int = 0):
    files = [module_file("rank_bm25"), module_file("papermill.execute"), module_file("papermill.parameterize")]
    out = []
    per_file = -(-n // len(files))
    for path in files:
        source = path.read_text()
        for cand in pick_lines(source, per_file, seed, min_line=10):
            out.append((path.name, source, cand))
    return out[:n]


@pytest.fixture(scope="module")
def slm():
    return load_model(SLM, device="cpu")


@pytest.fixture(scope="module")
def llm():
    return load_model(LLM, device="cpu")


def test_pair_shares_a_tokenizer(slm, llm):
    assert tokenizers_identical(slm.tokenizer, llm.tokenizer)


def test_converted_cache_matches_the_gguf(slm):
    """The safetensors cache gives exactly the logits of transformers' own GGUF load."""
    from transformers import AutoModelForCausalLM

    from mccom_core.lm.registry import REGISTRY, assemble_gguf

    gguf = assemble_gguf(REGISTRY[SLM])
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = slm.tokenizer("def mean(values):\n    return sum(values) / len(values)\n", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(ref(ids).logits, slm.model(ids).logits)


def test_real_lines_exact_match(slm, llm):
    """Lines a 0.5B coder gets right: the return of a just-computed variable, a repeated call."""
    source = module_file("rank_bm25").read_text()
    lines = source.splitlines()
    targets = [i + 1 for i, line in enumerate(lines) if line.strip() in ("return score", "score = np.zeros(len(doc_ids))")]
    assert len(targets) >= 4
    for lm in (slm, llm):
        hits = 0
        for number in targets:
            left, right = split_at_cursor(source, number)
            out = complete(lm, build_prompt(left, right, lm.tokenizer), DecodeConfig())
            hits += exact_match(out.text, lines[number - 1].strip())
            assert out.text == out.text.strip() or not out.text.startswith(" ")  # no stray space
        assert hits >= len(targets) - 1, (lm.spec, hits, len(targets))


def test_llm_greedy_equals_generate(llm):
    tok = llm.tokenizer
    for name, source, cand in real_lines(3, seed=1):
        left, _ = split_at_cursor(source, cand.start_line, cand.cursor_col)
        prompt = build_prompt(left.rstrip(" "), "", tok, SHORT)  # no trailing partial token
        out = complete(llm, prompt, DecodeConfig(stop="none", token_healing=False, max_new_tokens=12))
        ids = tok(prompt.text, return_tensors="pt").input_ids
        ref = llm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12)
        assert list(out.token_ids) == ref[0, ids.shape[1]:].tolist(), (name, cand.start_line)


def test_speculative_equals_plain_on_50_real_lines(slm, llm):
    cfg = DecodeConfig()
    for name, source, cand in real_lines(51, seed=0):
        left, right = split_at_cursor(source, cand.start_line, cand.cursor_col)
        p_slm = build_prompt(left, right, slm.tokenizer, SHORT)
        plain_slm = complete(slm, p_slm, cfg)
        stage1 = complete(slm, p_slm, cfg, drafter=make_drafter("context"), extra_texts=(right,))
        assert stage1.token_ids == plain_slm.token_ids, (name, cand.start_line)
        p_llm = build_prompt(left, right, llm.tokenizer, SHORT)
        plain_llm = complete(llm, p_llm, cfg)
        stage2 = complete(llm, p_llm, cfg, drafter=make_drafter("cross-model"),
                          draft_ids=plain_slm.token_ids, draft_text=slm.tokenizer.decode(list(plain_slm.token_ids)))
        assert stage2.token_ids == plain_llm.token_ids, (name, cand.start_line)
        if plain_slm.token_ids == plain_llm.token_ids:
            assert stage2.n_forward == 1
