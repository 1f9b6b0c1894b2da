"""Greedy line completion with the KV cache, token healing and draft verification.

:func:`complete` is the one decoding loop of the workbench. Plain greedy decoding is the
special case of a drafter that proposes nothing; with a drafter, each forward pass runs the
target on the pending token plus the draft, keeps the longest draft prefix equal to the
target's own choices, appends the target's next token, and crops the cache back. Stop
rules, token healing and probability bookkeeping are applied token by token in the same
order either way, so speculative and plain outputs are identical by construction (and
tests assert it).

Token healing (:mod:`mccom_core.lm.healing`), the KV cache (:mod:`mccom_core.lm.kv_cache`)
and stop rules (:mod:`mccom_core.lm.stopping`) live in their own modules; this one holds
the loop, split into the steps of one forward pass (propose, verify, accept, book, advance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from mccom_core.lm.drafting import DraftContext, Drafter, NoDrafter
from mccom_core.errors import MccomError
from mccom_core.lm.healing import _HealIndex, _allowed_ids, _count_heal_tokens, _heal_index, _split_heal
from mccom_core.lm.kv_cache import PrefixCache, _crop, _forward, _new_cache
from mccom_core.lm.prompts import Prompt
from mccom_core.lm.stopping import STOP_MODES, _visible_stop


@dataclass(frozen=True)
class DecodeConfig:
    """How one completion is decoded."""

    stop: str = "line"  # "line": first newline; "statement": first newline ending a complete logical line; "none": EOS/max only
    max_new_tokens: int = 48  # caps worst-case latency; a code line rarely needs more than ~40 tokens
    token_healing: bool = True  # back off the prompt's last token (see mccom_core.lm.healing)
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


@dataclass
class _State:
    """One completion while it is decoded: what the next pass feeds, what came out, the counts."""

    ids: list[int]  # prompt ids fed in the prefill (after healing)
    heal: str  # the prompt text that was backed off ("" without healing)
    index: _HealIndex | None  # healing constraint (None without healing)
    eos: set[int]
    cache: Any  # KV cache of ids + gen[:-1] between passes
    reused: int  # prompt tokens taken from the prefix cache
    feed: list[int]  # tokens the next pass feeds ahead of the draft
    gen: list[int] = field(default_factory=list)  # every generated id
    probs: list[float] = field(default_factory=list)  # probability of each generated id
    heal_typed: str = ""  # healed text re-typed so far (while healing is still active)
    timings: dict = field(default_factory=lambda: {"prefill": 0.0, "decode": 0.0, "verify": 0.0, "draft": 0.0})
    n_forward: int = 0
    n_drafted: int = 0
    n_accepted: int = 0
    n_rounds: int = 0
    result: tuple[str | None, str] | None = None  # (shown text or None, stop reason) once stopped


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
    lm:
        A :class:`~mccom_core.lm.models.LoadedModel`, or a served model
        (:class:`~mccom_core.lm.remote.RemoteModel`), which decodes on its server
        (:func:`~mccom_core.lm.remote_decoding.complete_remote`).
    prompt:
        A :class:`~mccom_core.lm.prompts.Prompt` or a raw prompt string.
    config:
        Stop rule, token cap, token healing.
    drafter:
        A :class:`~mccom_core.lm.drafting.Drafter`; ``None`` means plain greedy decoding.
    extra_texts, draft_text, draft_ids:
        Material for drafters (see :class:`~mccom_core.lm.drafting.DraftContext`).
    prefix_cache:
        A :class:`~mccom_core.lm.kv_cache.PrefixCache` to reuse and refresh (warm accounting);
        the prefill then covers only the tokens after the common prefix
        (``Completion.extra["reused_tokens"]``).
    """
    if getattr(lm, "served", False):
        # A model behind a server (mccom_core.lm.remote) decodes there, under the same rules;
        # its server keeps its own prefix cache, so ``prefix_cache`` has nothing to hold.
        return lm.complete(prompt, config, drafter=drafter, draft_ids=draft_ids)
    # Tokenize the prompt, back off its last token for healing, check it fits the context.
    ids, heal = _prepare_prompt(lm, prompt, config)
    # Tell the drafter what it drafts from.
    drafter = _begin_drafter(lm, drafter or NoDrafter(), ids, extra_texts, draft_text, draft_ids)
    # Start from the reusable part of the prefix cache, or an empty cache.
    state = _start(lm, ids, heal, prefix_cache)
    while state.result is None:
        # The drafter proposes tokens within what is left of the token budget.
        draft = _propose(drafter, state, config)
        # One timed pass over the pending token plus the draft; keep the target's own choices.
        accepted, elapsed = _verify(lm, state, draft, config)
        # Book the pass; after the prefill, refresh the prefix cache (bookkeeping, not latency).
        _book(state, draft, accepted, elapsed)
        if state.n_forward == 1 and prefix_cache is not None:
            prefix_cache.store(ids, state.cache)
        drafter.update(len(draft), accepted)
        # Crop the cache back to the accepted tokens and feed the last one next.
        if state.result is None:
            _advance(state)
    # Cut the shown text and assemble the result.
    return _build_completion(lm.tokenizer, state, config, drafter.name)


def _prepare_prompt(lm, prompt: Prompt | str, config: DecodeConfig) -> tuple[list[int], str]:
    """The prompt ids to prefill and the healed text, or an error a user can act on."""
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise MccomError("empty prompt: there is nothing to complete from; give some left context")
    ids, heal = _split_heal(lm.tokenizer, text, config.token_healing)
    n_ctx = getattr(lm.model.config, "max_position_embeddings", None)
    if n_ctx and len(ids) + config.max_new_tokens > n_ctx:
        raise MccomError(
            f"prompt of {len(ids)} tokens plus {config.max_new_tokens} new tokens exceeds the model's "
            f"context of {n_ctx}: build the prompt with a smaller PromptConfig.max_left_tokens"
        )
    return ids, heal


def _begin_drafter(lm, drafter: Drafter, ids: list[int], extra_texts, draft_text, draft_ids) -> Drafter:
    drafter.begin(DraftContext(tuple(ids), lm.tokenizer, tuple(extra_texts), draft_text,
                               tuple(draft_ids) if draft_ids is not None else None,
                               torch.device(lm.device).type))
    return drafter


def _eos_ids(lm) -> set[int]:
    ids = set()
    for src in (getattr(lm.model, "generation_config", None), lm.tokenizer):
        eos = getattr(src, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif eos:
            ids.update(eos)
    return ids


def _start(lm, ids: list[int], heal: str, prefix_cache: PrefixCache | None) -> _State:
    """The state before the prefill: a cropped copy of the prefix cache when one matches."""
    index = _heal_index(lm.tokenizer) if heal else None
    eos = _eos_ids(lm)
    cache, reused = prefix_cache.take(ids) if prefix_cache is not None else (None, 0)
    if cache is None:
        cache = _new_cache(lm.model)
    return _State(ids, heal, index, eos, cache, reused, ids[reused:])


def _propose(drafter: Drafter, s: _State, config: DecodeConfig) -> list[int]:
    """The draft for the next pass, leaving room in the budget for the target's own token."""
    t0 = time.perf_counter()
    budget = config.max_new_tokens - len(s.gen) - 1
    draft = list(drafter.propose(tuple(s.gen), budget))[: max(budget, 0)] if budget > 0 else []
    s.timings["draft"] += (time.perf_counter() - t0) * 1e3
    return draft


def _verify(lm, s: _State, draft: list[int], config: DecodeConfig) -> tuple[int, float]:
    """One forward pass and the token choices it settles: (draft tokens accepted, elapsed ms)."""
    t0 = time.perf_counter()
    logits = _target_logits(lm, s, draft)
    accepted = _accept(lm.tokenizer, s, logits, draft, config)
    return accepted, (time.perf_counter() - t0) * 1e3


def _target_logits(lm, s: _State, draft: list[int]) -> torch.Tensor:
    """Float logits ``[len(draft) + 1, vocab]``: the target's next-token scores after the last
    fed token and after each draft token."""
    n = len(draft) + 1
    inp = torch.tensor([s.feed + draft], device=lm.device)
    logits = _forward(lm.model, inp, s.cache, n).logits[0, -n:]
    logits = logits.float()
    _sync(lm.device)
    s.n_forward += 1
    return logits


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _accept(tok, s: _State, logits: torch.Tensor, draft: list[int], config: DecodeConfig) -> int:
    """Take the target's token for each row of ``logits`` ``[len(draft) + 1, vocab]`` until a
    stop rule fires or the draft disagrees; return how many draft tokens were accepted."""
    accepted = 0
    for i in range(len(draft) + 1):
        token, healing = _next_token(tok, s, logits[i])
        s.result = _stop_check(tok, s, token, healing, config)
        if s.result is not None or i >= len(draft) or draft[i] != token:
            break
        accepted += 1
    return accepted


def _next_token(tok, s: _State, row: torch.Tensor) -> tuple[int, bool]:
    """Append the greedy token for ``row`` ``[vocab]`` and its probability; while the healed
    text is not yet re-typed, only tokens agreeing with it compete (renormalized). Returns the
    token and whether the healing constraint applied."""
    remaining = s.heal[len(s.heal_typed):] if s.heal and len(s.heal_typed) < len(s.heal) else ""
    if remaining:
        allowed = _allowed_ids(s.index, remaining).to(row.device)
        sub = torch.log_softmax(row[allowed], dim=-1)
        j = int(torch.argmax(sub))
        token, prob = int(allowed[j]), float(sub[j].exp())
        s.heal_typed += tok.decode([token])
    else:
        token = int(torch.argmax(row))
        prob = float(torch.softmax(row, dim=-1)[token])
    s.gen.append(token)
    s.probs.append(prob)
    return token, bool(remaining)


def _stop_check(tok, s: _State, token: int, healing: bool, config: DecodeConfig) -> tuple | None:
    """(shown text or None, stop reason) once the newest token ends the completion, else None."""
    if token in s.eos:
        return None, "eos"
    result = None
    if not healing or len(s.heal_typed) > len(s.heal):
        decoded = tok.decode(s.gen, skip_special_tokens=True)
        if decoded.startswith(s.heal):
            result = _visible_stop(decoded[len(s.heal):], config.stop)
    if result is None and len(s.gen) >= config.max_new_tokens:
        result = (None, "max_tokens")
    return result


def _book(s: _State, draft: list[int], accepted: int, elapsed: float) -> None:
    """Add the pass's time (the first one is the prefill) and its draft counts."""
    if s.n_forward == 1:
        s.timings["prefill"] += elapsed
    else:
        s.timings["decode"] += elapsed
        if draft:
            s.timings["verify"] += elapsed
    s.n_drafted += len(draft)
    s.n_accepted += accepted
    s.n_rounds += bool(draft)


def _advance(s: _State) -> None:
    """Crop the cache to the prompt plus the accepted tokens; the newest token is fed next."""
    _crop(s.cache, len(s.ids) + len(s.gen) - 1)
    s.feed = [s.gen[-1]]


def _build_completion(tok, s: _State, config: DecodeConfig, drafter_name: str) -> Completion:
    """The :class:`Completion`: shown text cut at the stop, healing tokens counted, confidence."""
    decoded = tok.decode(s.gen, skip_special_tokens=True)
    shown = s.result[0] if s.result[0] is not None else decoded[len(s.heal):] if decoded.startswith(s.heal) else ""
    n_heal_tokens = _count_heal_tokens(tok, s.gen, s.heal)
    shown_probs = s.probs[n_heal_tokens:][: config.confidence_tokens]
    confidence = sum(shown_probs) / len(shown_probs) if shown_probs else 0.0
    return Completion(
        text=shown,
        token_ids=tuple(s.gen),
        token_probs=tuple(s.probs),
        n_heal_tokens=n_heal_tokens,
        heal_text=s.heal,
        stop_reason=s.result[1],
        prompt_tokens=len(s.ids),
        prefill_ms=s.timings["prefill"],
        decode_ms=s.timings["decode"],
        verify_ms=s.timings["verify"],
        draft_ms=s.timings["draft"],
        n_forward=s.n_forward,
        n_drafted=s.n_drafted,
        n_accepted=s.n_accepted,
        n_draft_rounds=s.n_rounds,
        confidence=confidence,
        drafter=drafter_name,
        extra={"reused_tokens": s.reused},
    )
