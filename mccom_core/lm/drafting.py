"""Drafting strategies for speculative decoding.

A drafter proposes tokens that the target model then verifies in one forward pass (see
:func:`mccom_core.lm.decoding.complete`), in the style of transformers'
``CandidateGenerator``. Drafters never change the output: verification keeps only the
draft tokens that equal the target's own greedy choice, so every drafter yields exactly
the plain greedy completion, only with fewer forward passes.

Registry names (:data:`DRAFTERS`, :func:`make_drafter`):

``none``
    No draft: plain greedy decoding, one forward pass per token.
``context`` (MCCom stage 1, for the SLM)
    Find the longest recent n-gram of the token sequence (``max_ngram`` down to
    ``min_ngram``) that occurred earlier in the prompt, the right context or retrieved
    snippets, and propose the tokens that followed its most recent occurrence. Costs no
    model call: code repeats identifiers and whole phrases from nearby lines.
``cross-model`` (MCCom stage 2, for the LLM)
    Propose the rest of another model's completion (the SLM output the user rejected).
    With identical tokenizers the SLM's ids are used directly; otherwise, and whenever
    the ids diverge, the draft is aligned by text: if the target's text so far is a prefix
    of the draft text, the remaining draft text is tokenized with the target's tokenizer.
    Once the target has left the draft behind, it proposes nothing (plain decoding).
``cross-model+context``
    The same, but once the draft is exhausted or diverged, fall back to ``context``, with the
    other model's output as the first match material, so a draft that diverged for a word
    can be picked up again where the two outputs re-join.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from mccom_core.errors import MccomError


@dataclass(frozen=True)
class DraftContext:
    """What a drafter may look at for one completion call.

    Attributes
    ----------
    prompt_ids:
        Target-model token ids of the prompt (after token healing backed off its tail).
    tokenizer:
        The target model's tokenizer.
    extra_texts:
        Other text the completion may copy from: right context, retrieved snippets.
    draft_text:
        A whole candidate completion from elsewhere (stage 2: the SLM's rejected output,
        including any healed prefix), or ``None``.
    draft_ids:
        The same candidate as target-model ids when it was produced with an identical
        tokenizer, else ``None`` (then ``draft_text`` is re-tokenized).
    device:
        Device type of the target model (``"cpu"``, ``"cuda"``, ...): what a rejected
        draft token costs depends on it (see :class:`ContextDrafter`).
    """

    prompt_ids: Sequence[int]
    tokenizer: object
    extra_texts: tuple[str, ...] = ()
    draft_text: str | None = None
    draft_ids: tuple[int, ...] | None = None
    device: str = "cpu"


class Drafter:
    """Base class: propose tokens to follow what has been generated so far.

    Subclasses implement :meth:`propose`; :meth:`begin` resets per-call state and
    :meth:`update` receives verification feedback (how many proposed tokens were
    accepted), which adaptive drafters may use.
    """

    name: ClassVar[str] = "base"

    def begin(self, context: DraftContext) -> None:
        self.context = context

    def propose(self, generated: Sequence[int], budget: int) -> list[int]:
        """Return at most ``budget`` token ids expected to follow ``prompt + generated``."""
        raise NotImplementedError

    def update(self, proposed: int, accepted: int) -> None:
        """Feedback after verification; the default ignores it."""


class NoDrafter(Drafter):
    """Plain greedy decoding: never proposes anything."""

    name = "none"

    def propose(self, generated, budget):
        return []


DRAFTERS: dict[str, type[Drafter]] = {"none": NoDrafter}


def register_drafter(cls: type[Drafter]) -> type[Drafter]:
    """Class decorator adding a drafter to :data:`DRAFTERS` under ``cls.name``."""
    DRAFTERS[cls.name] = cls
    return cls


def make_drafter(name: str, **kwargs) -> Drafter:
    """Build a drafter by registry name."""
    if name not in DRAFTERS:
        raise MccomError(f"unknown drafter {name!r}: use one of {', '.join(sorted(DRAFTERS))}")
    return DRAFTERS[name](**kwargs)


def _newline_cut(tokenizer, draft: list[int]) -> list[int]:
    """Cut a draft after its first token that contains a newline.

    Line completion stops there, so drafting past it only adds verification work.
    """
    for i, token in enumerate(draft):
        if "\n" in tokenizer.decode([token]):
            return draft[: i + 1]
    return draft


@register_drafter
class ContextDrafter(Drafter):
    """Stage 1: n-gram lookup in the prompt and extra texts (prompt-lookup decoding).

    Parameters
    ----------
    min_ngram, max_ngram:
        Lengths of the sequence suffix that is looked up, longest first.
    draft_len:
        Tokens proposed after a match. ``None`` (default) picks by device: 2 on a CPU,
        10 elsewhere. On a CPU a rejected draft token is not free: with the 0.5B on the
        2-core benchmark machine, a forward pass over 1, 2, 3 new tokens took 103, 113,
        117 ms but over 4 tokens 217 ms and over 11 tokens 294 ms (the BLAS kernel
        changes at 4 rows; the lm_head alone went from 28 to 72 ms). With drafts of up to
        10 tokens stage 1 was no faster than plain greedy there (0.98x median decode
        speedup on 30 real lines), with 2 it was 1.41x (benchmarks/results/speculative.md
        has the full measurement). On a GPU a pass over 11 tokens costs about as much as
        over one.
    stop_at_newline:
        Cut drafts after the first newline token (line completion stops there).
    """

    name = "context"

    def __init__(self, min_ngram: int = 1, max_ngram: int = 4, draft_len: int | None = None,
                 stop_at_newline: bool = True):
        if not 1 <= min_ngram <= max_ngram:
            raise MccomError(f"context drafter needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        if draft_len is not None and draft_len < 1:
            raise MccomError(f"context drafter needs draft_len >= 1, got {draft_len}")
        self.min_ngram, self.max_ngram = min_ngram, max_ngram
        self.draft_len, self.stop_at_newline = draft_len, stop_at_newline

    def begin(self, context: DraftContext) -> None:
        import numpy as np

        super().begin(context)
        self.limit = self.draft_len or (2 if context.device == "cpu" else 10)
        tok = context.tokenizer
        # Extra texts are separate segments: a match never runs across their borders.
        self.segments = [np.asarray(tok(t, add_special_tokens=False)["input_ids"], dtype=np.int64)
                         for t in context.extra_texts if t]
        self.prompt = np.asarray(context.prompt_ids, dtype=np.int64)

    def propose(self, generated: Sequence[int], budget: int) -> list[int]:
        import numpy as np

        if budget <= 0:
            return []
        seq = np.concatenate([self.prompt, np.asarray(generated, dtype=np.int64)])
        limit = min(self.limit, budget)
        for n in range(min(self.max_ngram, len(seq) - 1), self.min_ngram - 1, -1):
            pattern = seq[-n:]
            # The running sequence itself (excluding the suffix being matched), then extras.
            for segment in [seq[:-1]] + self.segments:
                draft = _lookup(segment, pattern, limit)
                if draft:
                    if self.stop_at_newline:
                        draft = _newline_cut(self.context.tokenizer, draft)
                    return draft
        return []


def _lookup(segment, pattern, limit: int) -> list[int]:
    """Tokens after the most recent occurrence of ``pattern`` in ``segment``."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    n = len(pattern)
    if len(segment) <= n:
        return []
    windows = sliding_window_view(segment[:-1], n)  # an occurrence needs >= 1 following token
    hits = np.flatnonzero((windows == pattern).all(axis=1))
    if hits.size == 0:
        return []
    start = int(hits[-1]) + n
    return segment[start: start + limit].tolist()


@register_drafter
class CrossModelDrafter(Drafter):
    """Stage 2: propose another model's completion, aligned by ids or by text.

    Parameters
    ----------
    fallback:
        Drafter used once the draft is exhausted or the target has diverged from it
        (``None``: plain decoding from there on).
    """

    name = "cross-model"

    def __init__(self, fallback: Drafter | None = None):
        self.fallback = fallback

    def begin(self, context: DraftContext) -> None:
        super().begin(context)
        if context.draft_text is None and context.draft_ids is None:
            raise MccomError("the cross-model drafter needs the other model's output: pass draft_text (and draft_ids when the tokenizers are identical)")
        self.ids = list(context.draft_ids) if context.draft_ids is not None else None
        tok = context.tokenizer
        self.text = context.draft_text if context.draft_text is not None else tok.decode(self.ids)
        if self.fallback is not None:
            # After a divergence the other model's output is still the best match material:
            # the target often re-joins it a few tokens later ("doc" vs "document" in a line).
            texts = (self.text,) + tuple(context.extra_texts)
            self.fallback.begin(DraftContext(context.prompt_ids, tok, texts, context.draft_text,
                                             context.draft_ids, context.device))

    def propose(self, generated: Sequence[int], budget: int) -> list[int]:
        if budget <= 0:
            return []
        n = len(generated)
        if self.ids is not None and list(self.ids[:n]) == list(generated) and n < len(self.ids):
            return self.ids[n: n + budget]
        tok = self.context.tokenizer
        done = tok.decode(list(generated), skip_special_tokens=True)
        if len(done) < len(self.text) and self.text.startswith(done):
            rest = self.text[len(done):]
            return tok(rest, add_special_tokens=False)["input_ids"][:budget]
        return self.fallback.propose(generated, budget) if self.fallback is not None else []

    def update(self, proposed: int, accepted: int) -> None:
        if self.fallback is not None:
            self.fallback.update(proposed, accepted)


@register_drafter
class CrossModelContextDrafter(CrossModelDrafter):
    """Stage 2 with stage 1 as the fallback once the other model's draft is used up."""

    name = "cross-model+context"

    def __init__(self, **context_kwargs):
        super().__init__(fallback=ContextDrafter(**context_kwargs))
