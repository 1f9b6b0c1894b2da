"""Token healing: back off the prompt's last token and constrain generation to re-type it.

The cursor usually sits right after indentation. Byte-level BPE tokenizers merge a run of
spaces with the following word (``"       " + " return"``), so a prompt that ends in
spaces ends in a token the model rarely saw at that place, and it then emits a stray
leading space or an odd split. We back off the prompt's last token and constrain the
first generated tokens to re-type the removed text: a token is allowed while the removed
text is not yet covered if it is a prefix of what remains, or extends it. The user sees
only what comes after the removed text. Probabilities of constrained tokens are
renormalized over the allowed set (the probability of the token given that it must agree
with what the user already typed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch

from mccom_core.errors import MccomError


@dataclass(frozen=True)
class _HealIndex:
    """Token texts grouped by first character, for the healing constraint."""

    by_first: dict  # first char -> (ids tensor, list of texts)


@lru_cache(maxsize=8)
def _heal_index(tokenizer) -> _HealIndex:
    vocab = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=False)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    groups: dict[str, tuple[list[int], list[str]]] = {}
    for i, t in enumerate(texts):
        if not t or i in special or "\ufffd" in t:
            continue
        ids, strs = groups.setdefault(t[0], ([], []))
        ids.append(i)
        strs.append(t)
    return _HealIndex({c: (torch.tensor(ids), strs) for c, (ids, strs) in groups.items()})


def _allowed_ids(index: _HealIndex, remaining: str) -> torch.Tensor:
    ids, texts = index.by_first.get(remaining[0], (torch.tensor([], dtype=torch.long), []))
    keep = [k for k, t in enumerate(texts) if remaining.startswith(t) or t.startswith(remaining)]
    return ids[keep]


def _special_ids(tokenizer) -> set[int]:
    """Ids of every special token, including added ones outside ``all_special_ids``.

    Qwen's FIM markers (``<|fim_middle|>``...) are added tokens flagged special but are not
    in ``all_special_ids``; a prompt ending in one must not be healed (re-typing a control
    token would force it into the output).
    """
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)}


def _split_heal(tokenizer, text: str, enabled: bool) -> tuple[list[int], str]:
    """Tokenize the prompt; with healing, drop its last token and return its text."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    if not ids:
        raise MccomError("empty prompt: there is nothing to complete from; give some left context")
    if not enabled or len(ids) < 2 or ids[-1] in _special_ids(tokenizer):
        return ids, ""
    heal = text[offsets[-1][0]:]
    if not heal or _allowed_ids(_heal_index(tokenizer), heal).numel() == 0:
        return ids, ""
    return ids[:-1], heal


def _count_heal_tokens(tok, gen: Sequence[int], heal: str) -> int:
    """Leading generated tokens whose text lies wholly inside the healed prefix."""
    if not heal:
        return 0
    for n in range(len(gen) + 1):
        if len(tok.decode(list(gen[: n + 1]), skip_special_tokens=True)) > len(heal):
            return n
    return len(gen)
