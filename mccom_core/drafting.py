"""Drafting strategies for speculative decoding.

A drafter proposes tokens that the target model then verifies in one forward pass (see
:func:`mccom_core.decoding.complete`), in the style of transformers'
``CandidateGenerator``. Drafters never change the output: verification keeps only the
draft tokens that equal the target's own greedy choice, so every drafter yields exactly
the plain greedy completion, only with fewer forward passes.

Registry names (:data:`DRAFTERS`, :func:`make_drafter`):

``none``
    No draft: plain greedy decoding, one forward pass per token.
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
    """

    prompt_ids: Sequence[int]
    tokenizer: object
    extra_texts: tuple[str, ...] = ()
    draft_text: str | None = None
    draft_ids: tuple[int, ...] | None = None


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
