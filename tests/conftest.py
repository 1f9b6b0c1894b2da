"""Shared fixtures: a tiny byte-level BPE tokenizer and tiny models, built offline in seconds.

The tokenizer uses Qwen2's pre-tokenizer regex, so it merges whitespace the way the real
models' tokenizer does (a run of spaces before a word splits as ``"   " + " word"``), which
is what token healing is about.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")  # pure-library tests only; never around papermill

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for item in items:\n    if item is None:\n        continue\n    total += item\n",
    "import os\nimport sys\n\nresult = compute(values, axis=0)\nprint(result)\n",
    "    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n",
    "with open(path) as fh:\n        data = fh.read()\n        lines = data.splitlines()\n",
]


def build_tiny_tokenizer(vocab_size: int = 320):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


def tiny_qwen(tokenizer, seed: int = 0, layers: int = 2):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config).eval()


def as_loaded(model, tokenizer, spec="tiny-random"):
    from mccom_core.lm.models import LoadedModel

    return LoadedModel(spec, model, tokenizer, torch.device("cpu"), torch.float32, "<memory>", 0.0, False)


@pytest.fixture(scope="session")
def tiny_lm(tiny_tokenizer):
    return as_loaded(tiny_qwen(tiny_tokenizer), tiny_tokenizer)


class BigramLM(torch.nn.Module):
    """A causal LM whose next token depends only on the current token: ``table[current]``.

    Its greedy output is fully scripted by ``table``, so stop rules and bookkeeping can be
    asserted exactly. It ignores the KV cache (it needs no history).
    """

    def __init__(self, vocab_size: int, table: dict[int, int], default: int, eos: int):
        super().__init__()
        logits = torch.full((vocab_size, vocab_size), -4.0)
        for cur in range(vocab_size):
            logits[cur, table.get(cur, default)] = 4.0
        self.emb = torch.nn.Embedding.from_pretrained(logits)
        self.config = SimpleNamespace(max_position_embeddings=4096, eos_token_id=eos)
        self.generation_config = SimpleNamespace(eos_token_id=eos)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids, past_key_values=None, use_cache=True, **_):
        return SimpleNamespace(logits=self.emb(input_ids), past_key_values=past_key_values)


@pytest.fixture
def bigram_factory(tiny_tokenizer):
    def make(chain: list[str], default: str = "<|endoftext|>"):
        """Model that, after the prompt's last token, emits the tokens of ``chain`` in order."""
        tok = tiny_tokenizer
        ids = [tok.convert_tokens_to_ids(t) for t in chain]
        assert None not in ids and tok.unk_token_id not in ids, chain
        table = {a: b for a, b in zip(ids, ids[1:])}
        model = BigramLM(len(tok), table, tok.convert_tokens_to_ids(default), tok.eos_token_id)
        return as_loaded(model, tok, "bigram")

    return make
