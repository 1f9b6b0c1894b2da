"""Greedy line completion with the KV cache, token healing and draft verification.

:func:`complete` is the one decoding loop of the workbench. Plain greedy decoding is the
special case of a drafter that proposes nothing; with a drafter, each forward pass runs the
target on the pending token plus the draft, keeps the longest draft prefix equal to the
target's own choices, appends the target's next token, and crops the cache back. Stop
rules, token healing and probability bookkeeping are applied token by token in the same
order either way, so speculative and plain outputs are identical by construction (and
tests assert it).

Token healing
-------------
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

import io
import time
import tokenize
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import torch

from mccom_core.lm.drafting import DraftContext, Drafter, NoDrafter
from mccom_core.errors import MccomError
from mccom_core.lm.prompts import Prompt

STOP_MODES = ("line", "statement", "none")


@dataclass(frozen=True)
class DecodeConfig:
    """How one completion is decoded."""

    stop: str = "line"  # "line": first newline; "statement": first newline ending a complete logical line; "none": EOS/max only
    max_new_tokens: int = 48  # caps worst-case latency; a code line rarely needs more than ~40 tokens
    token_healing: bool = True  # back off the prompt's last token (see module docstring)
    confidence_tokens: int = 3  # MCCom's confidence: mean probability of the first 3 shown tokens

    def __post_init__(self):
        if self.stop not in STOP_MODES:
            raise MccomError(f"unknown stop rule {self.stop!r}: use one of {STOP_MODES}")
        if self.max_new_tokens < 1:
            raise MccomError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Completion:
    """One completion: what the user sees, the tokens behind it, and where the time went."""

    text: str  # what the user sees: healed prefix removed, cut at the stop
    token_ids: tuple[int, ...]  # every generated id, healed-prefix tokens included
    token_probs: tuple[float, ...]  # probability of each generated id (see healing note)
    n_heal_tokens: int  # leading generated tokens that only re-typed the healed text
    heal_text: str  # the prompt text that was backed off ("" without healing)
    stop_reason: str  # "newline", "statement", "eos", "max_tokens"
    prompt_tokens: int  # tokens fed in the prefill (after healing)
    prefill_ms: float  # first forward pass over the prompt (and any initial draft)
    decode_ms: float  # forward passes after the prefill, with token selection
    verify_ms: float  # part of decode_ms spent in passes that checked draft tokens
    draft_ms: float  # time the drafter spent proposing (not part of prefill or decode)
    n_forward: int  # forward passes of the target model
    n_drafted: int  # draft tokens proposed
    n_accepted: int  # draft tokens accepted
    n_draft_rounds: int  # forward passes that verified a non-empty draft (prefill included)
    confidence: float  # mean probability of the first `confidence_tokens` shown tokens
    drafter: str = "none"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def total_ms(self) -> float:
        return self.prefill_ms + self.decode_ms + self.draft_ms

    @property
    def shown_probs(self) -> tuple[float, ...]:
        return self.token_probs[self.n_heal_tokens:]


# --------------------------------------------------------------------------- token healing


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


# --------------------------------------------------------------------------- stop rules


def _statement_complete(code: str) -> bool:
    """True when ``code`` (one or more physical lines) is a complete logical line."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            pass
    except tokenize.TokenError:
        return False  # EOF inside brackets, a multi-line string, or after a backslash
    except (IndentationError, SyntaxError):
        return True
    return True


def _visible_stop(visible: str, mode: str) -> tuple[str, str] | None:
    """Return (shown text, reason) when ``visible`` has reached the stop rule."""
    if mode == "none":
        return None
    start = 0
    while (pos := visible.find("\n", start)) != -1:
        if mode == "line":
            return visible[:pos], "newline"
        if _statement_complete(visible[:pos]):
            return visible[:pos], "statement"
        start = pos + 1
    return None


# --------------------------------------------------------------------------- prefix reuse


class PrefixCache:
    """The KV cache of an earlier prompt, kept between requests (editor-style cache reuse).

    Pass one to :func:`complete` as ``prefix_cache``: the request then prefills only the
    tokens after the longest common prefix of its prompt and the cached ids, and the
    cache is replaced by the new prompt's. :func:`warm` fills one ahead of time (the work a
    local model does while the user is still typing, which no request waits for).
    """

    def __init__(self):
        self.ids: list[int] = []
        self.cache = None

    def common_prefix(self, ids: Sequence[int]) -> int:
        n = 0
        for a, b in zip(self.ids, ids):
            if a != b:
                break
            n += 1
        return min(n, len(ids) - 1)  # the last prompt token must be fed to get logits

    def take(self, ids: Sequence[int]):
        """A private copy of the cache cropped to the common prefix, and its length."""
        import copy

        n = self.common_prefix(ids) if self.cache is not None else 0
        if n <= 0:
            return None, 0
        cache = copy.deepcopy(self.cache)
        _crop(cache, n)
        return cache, n

    def store(self, ids: Sequence[int], cache) -> None:
        import copy

        self.cache = copy.deepcopy(cache)
        _crop(self.cache, len(ids))
        self.ids = list(ids)


@torch.inference_mode()
def warm(lm, text: str, prefix_cache: PrefixCache | None = None) -> PrefixCache:
    """Prefill ``text`` into a :class:`PrefixCache` (untimed background work)."""
    pc = prefix_cache or PrefixCache()
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        return pc
    cache = _new_cache(lm.model)
    lm.model(input_ids=torch.tensor([ids], device=lm.device), **_cache_arg(lm.model, cache), use_cache=True,
             **_keep_logits(lm.model, 1))
    pc.store(ids, cache)
    return pc


# --------------------------------------------------------------------------- the loop


def _eos_ids(lm) -> set[int]:
    ids = set()
    for src in (getattr(lm.model, "generation_config", None), lm.tokenizer):
        eos = getattr(src, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif eos:
            ids.update(eos)
    return ids


def _keep_logits(model, n: int) -> dict:
    """``logits_to_keep=n`` when the model takes it: only the last ``n`` positions get logits.

    A prefill otherwise projects every prompt position onto the 151,936-token vocabulary: for
    a 1,024-token prompt that took the 0.5B from 3.1 s to 4.6-5.8 s and the 1.5B from 11.1 s
    to 12.3-13.3 s on the 2-core CPU, for logits nobody reads.
    """
    return {"logits_to_keep": n} if _takes_logits_to_keep(type(model)) else {}


@lru_cache(maxsize=None)
def _takes_logits_to_keep(cls) -> bool:
    import inspect

    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def _cache_arg(model, cache) -> dict:
    """The KV cache as the keyword the model's ``forward`` takes.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns, and goes
    in 5.40); older releases and simple test doubles only know ``past_key_values``.
    """
    return {_cache_keyword(type(model)): cache}


@lru_cache(maxsize=None)
def _cache_keyword(cls) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _new_cache(model):
    from transformers import DynamicCache, PretrainedConfig

    # The config tells the cache about sliding-window layers (Gemma 3); test doubles have none.
    if isinstance(getattr(model, "config", None), PretrainedConfig):
        return DynamicCache(config=model.config)
    return DynamicCache()


def _crop(cache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # transformers 5: a negative count of tokens to remove


@torch.inference_mode()
def complete(
    lm,
    prompt: Prompt | str,
    config: DecodeConfig = DecodeConfig(),
    drafter: Drafter | None = None,
    extra_texts: Sequence[str] = (),
    draft_text: str | None = None,
    draft_ids: Sequence[int] | None = None,
    prefix_cache: PrefixCache | None = None,
) -> Completion:
    """Greedily complete ``prompt`` with the loaded model ``lm`` (a :class:`LoadedModel`).

    Parameters
    ----------
    prompt:
        A :class:`~mccom_core.lm.prompts.Prompt` or a raw prompt string.
    config:
        Stop rule, token cap, token healing.
    drafter:
        A :class:`~mccom_core.lm.drafting.Drafter`; ``None`` means plain greedy decoding.
    extra_texts, draft_text, draft_ids:
        Material for drafters (see :class:`~mccom_core.lm.drafting.DraftContext`).
    prefix_cache:
        A :class:`PrefixCache` to reuse and refresh (warm accounting); the prefill then
        covers only the tokens after the common prefix (``Completion.extra["reused_tokens"]``).
    """
    model, tok, device = lm.model, lm.tokenizer, lm.device
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise MccomError("empty prompt: there is nothing to complete from; give some left context")
    ids, heal = _split_heal(tok, text, config.token_healing)
    n_ctx = getattr(model.config, "max_position_embeddings", None)
    if n_ctx and len(ids) + config.max_new_tokens > n_ctx:
        raise MccomError(
            f"prompt of {len(ids)} tokens plus {config.max_new_tokens} new tokens exceeds the model's "
            f"context of {n_ctx}: build the prompt with a smaller PromptConfig.max_left_tokens"
        )
    drafter = drafter or NoDrafter()
    drafter.begin(DraftContext(tuple(ids), tok, tuple(extra_texts), draft_text,
                               tuple(draft_ids) if draft_ids is not None else None,
                               torch.device(device).type))
    index = _heal_index(tok) if heal else None
    eos = _eos_ids(lm)

    gen: list[int] = []
    probs: list[float] = []
    heal_typed = ""  # healed text re-typed so far (while healing is still active)
    reused = 0
    cache = None
    if prefix_cache is not None:
        cache, reused = prefix_cache.take(ids)
    if cache is None:
        cache = _new_cache(model)
    feed = ids[reused:]
    timings = {"prefill": 0.0, "decode": 0.0, "verify": 0.0, "draft": 0.0}
    n_forward = n_drafted = n_accepted = n_rounds = 0
    result: tuple[str, str] | None = None

    while result is None:
        t0 = time.perf_counter()
        budget = config.max_new_tokens - len(gen) - 1
        draft = list(drafter.propose(tuple(gen), budget))[: max(budget, 0)] if budget > 0 else []
        timings["draft"] += (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        inp = torch.tensor([feed + draft], device=device)
        logits = model(input_ids=inp, **_cache_arg(model, cache), use_cache=True,
                       **_keep_logits(model, len(draft) + 1)).logits[0, -(len(draft) + 1):]
        logits = logits.float()
        _sync(device)
        n_forward += 1

        accepted = 0
        for i in range(len(draft) + 1):
            row = logits[i]
            remaining = heal[len(heal_typed):] if heal and len(heal_typed) < len(heal) else ""
            if remaining:
                allowed = _allowed_ids(index, remaining).to(row.device)
                sub = torch.log_softmax(row[allowed], dim=-1)
                j = int(torch.argmax(sub))
                token, prob = int(allowed[j]), float(sub[j].exp())
                heal_typed += tok.decode([token])
            else:
                token = int(torch.argmax(row))
                prob = float(torch.softmax(row, dim=-1)[token])
            gen.append(token)
            probs.append(prob)
            if token in eos:
                result = (None, "eos")
            elif not remaining or len(heal_typed) > len(heal):
                decoded = tok.decode(gen, skip_special_tokens=True)
                if decoded.startswith(heal):
                    result = _visible_stop(decoded[len(heal):], config.stop)
            if result is None and len(gen) >= config.max_new_tokens:
                result = (None, "max_tokens")
            if result is not None:
                break
            if i < len(draft) and draft[i] == token:
                accepted += 1
                continue
            break

        elapsed = (time.perf_counter() - t0) * 1e3
        if n_forward == 1:
            timings["prefill"] += elapsed
            if prefix_cache is not None:  # outside the timed region: bookkeeping, not latency
                prefix_cache.store(ids, cache)
        else:
            timings["decode"] += elapsed
            if draft:
                timings["verify"] += elapsed
        n_drafted += len(draft)
        n_accepted += accepted
        n_rounds += bool(draft)
        drafter.update(len(draft), accepted)
        if result is None:
            _crop(cache, len(ids) + len(gen) - 1)
            feed = [gen[-1]]

    decoded = tok.decode(gen, skip_special_tokens=True)
    shown = result[0] if result[0] is not None else decoded[len(heal):] if decoded.startswith(heal) else ""
    n_heal_tokens = _count_heal_tokens(tok, gen, heal)
    shown_probs = probs[n_heal_tokens:][: config.confidence_tokens]
    confidence = sum(shown_probs) / len(shown_probs) if shown_probs else 0.0
    return Completion(
        text=shown,
        token_ids=tuple(gen),
        token_probs=tuple(probs),
        n_heal_tokens=n_heal_tokens,
        heal_text=heal,
        stop_reason=result[1],
        prompt_tokens=len(ids),
        prefill_ms=timings["prefill"],
        decode_ms=timings["decode"],
        verify_ms=timings["verify"],
        draft_ms=timings["draft"],
        n_forward=n_forward,
        n_drafted=n_drafted,
        n_accepted=n_accepted,
        n_draft_rounds=n_rounds,
        confidence=confidence,
        drafter=drafter.name,
        extra={"reused_tokens": reused},
    )


def _count_heal_tokens(tok, gen: Sequence[int], heal: str) -> int:
    """Leading generated tokens whose text lies wholly inside the healed prefix."""
    if not heal:
        return 0
    for n in range(len(gen) + 1):
        if len(tok.decode(list(gen[: n + 1]), skip_special_tokens=True)) > len(heal):
            return n
    return len(gen)
