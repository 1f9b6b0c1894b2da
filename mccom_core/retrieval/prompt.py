"""Prompt assembly: retrieved windows as comments ahead of the left context, within a budget.

The layout follows RepoCoder: a header, then each window as a block of ``#`` comments naming
its path, then the left context (the code before the cursor)::

    # Here are some relevant code fragments from other files of the repo:
    # --------------------------------------------------
    # the below code fragment can be found in:
    # pkg/util.py
    # --------------------------------------------------
    # def helper(x):
    #     return x + 1
    # --------------------------------------------------
    <left context>

The most relevant window sits last, nearest the cursor. The budget is counted with the target
model's tokenizer on the whole prompt and is never exceeded:

1. ``(1 - retrieved_share) * budget`` tokens are reserved for the left context (or all it
   needs, if less); the retrieved block may use the rest.
2. Windows are taken best first; while the block is over its share, the least relevant window
   is dropped.
3. The left context then keeps its longest tail that fits in what remains; the code right
   before the cursor matters most. The tail is cut at a line start where possible, so it may
   use fewer tokens than its reserve (a multi-line left context whose last line alone is
   longer than the reserve keeps only whole lines that fit).

To budget only the retrieved block (when ``mccom_core.lm.prompts.build_prompt`` budgets the left
context and takes the block as its ``prefix``), use :func:`fit_block`.

This module does not know about models: pass any ``count_tokens(text) -> int`` callable or a
tokenizer with a Hugging Face style ``encode``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mccom_core.errors import MccomError
from mccom_core.retrieval.queries import Hit

_RULE = "# " + "-" * 50
HEADER = "# Here are some relevant code fragments from other files of the repo:\n" + _RULE + "\n"


def as_token_counter(tokenizer: Callable[[str], int] | Any) -> Callable[[str], int]:
    """A ``count_tokens(text) -> int`` from a callable or an object with ``encode``.

    A Hugging Face tokenizer is asked for ``encode(text, add_special_tokens=False)``: the
    prompt is a continuation, so BOS/EOS tokens do not belong in its count.
    """
    encode = getattr(tokenizer, "encode", None)
    if encode is not None:
        def count(text: str) -> int:
            try:
                return len(encode(text, add_special_tokens=False))
            except TypeError:  # an encode() without that keyword (e.g. tiktoken)
                return len(encode(text))
        return count
    if callable(tokenizer):
        return tokenizer
    raise MccomError(
        f"cannot count tokens with {type(tokenizer).__name__}: pass a callable text -> int "
        "or a tokenizer with an encode(text) method"
    )


def render_window(hit: Hit) -> str:
    """One retrieved window as RepoCoder-style comment lines naming its path."""
    code = "\n".join("# " + line for line in hit.text.split("\n"))
    return f"# the below code fragment can be found in:\n# {hit.window.path}\n{_RULE}\n{code}\n{_RULE}\n"


def render_block(hits: list[Hit]) -> str:
    """The retrieved block for ``hits`` (best first): least relevant first, best last."""
    if not hits:
        return ""
    return HEADER + "".join(render_window(hit) for hit in reversed(hits))


@dataclass(frozen=True)
class RetrievedBlock:
    """The rendered retrieved windows that fit a budget: a prompt prefix."""

    text: str  # render_block(hits): "" when no window fits
    hits: tuple[Hit, ...]  # the windows included, best first
    n_tokens: int  # count_tokens(text), never above the budget

    @property
    def snippets(self) -> list[str]:
        """The included windows' code, best first (extra match material for the drafter)."""
        return [hit.text for hit in self.hits]


@dataclass(frozen=True)
class AssembledPrompt:
    """An assembled prompt and what went into it."""

    text: str
    hits: tuple[Hit, ...]  # the windows included, best first
    n_tokens: int  # count_tokens(text), never above the budget
    left_chars_dropped: int  # characters cut from the start of the left context

    @property
    def snippets(self) -> list[str]:
        """The included windows' code, best first (extra match material for the drafter)."""
        return [hit.text for hit in self.hits]


def fit_block(hits: list[Hit], tokenizer: Callable[[str], int] | Any, budget_tokens: int) -> RetrievedBlock:
    """Render the most relevant windows (``hits`` is best first) within ``budget_tokens``.

    Keeps the longest best-first prefix of ``hits`` whose block fits. Use this when
    something else (e.g. ``mccom_core.lm.prompts.build_prompt(prefix=...)``) budgets the left
    context.

    Counting the whole block once per dropped window cost ~40 ms per prompt with 60
    windows, so the number kept is first estimated from per-window counts (each window is
    whole lines, so counts add up across windows, up to a merge at a border), then the
    estimate is checked by counting the block itself and moved down while it does not fit
    and up while one more window still fits.
    """
    count = as_token_counter(tokenizer)
    if not hits:
        return RetrievedBlock("", (), count(""))
    sizes = [count(render_window(hit)) for hit in hits]
    total, k = count(HEADER), 0
    while k < len(hits) and total + sizes[k] <= budget_tokens:
        total += sizes[k]
        k += 1
    while k > 0 and count(render_block(list(hits[:k]))) > budget_tokens:
        k -= 1
    while k < len(hits) and count(render_block(list(hits[: k + 1]))) <= budget_tokens:
        k += 1
    block = render_block(list(hits[:k]))
    return RetrievedBlock(block, tuple(hits[:k]), count(block))


def _longest_fitting_tail(prefix: str, text: str, count: Callable[[str], int], budget: int) -> int:
    """Smallest cut c such that count(prefix + text[c:]) <= budget, preferring line starts."""
    if count(prefix + text) <= budget:
        return 0
    # Binary search on the cut (token counts grow with the kept text, up to tokenizer merges),
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(prefix + text[mid:]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    # ... then move to the next line start if there is one, ...
    newline = text.find("\n", lo)
    cut = newline + 1 if 0 <= newline < len(text) - 1 and lo > 0 and text[lo - 1] != "\n" else lo
    # ... and step forward in case a merge made the count non-monotone.
    while cut < len(text) and count(prefix + text[cut:]) > budget:
        cut += 1
    return cut


def assemble_prompt(left_context: str, hits: list[Hit], tokenizer: Callable[[str], int] | Any,
                    budget_tokens: int = 2048, retrieved_share: float = 0.5) -> AssembledPrompt:
    """Build the prompt: retrieved windows (best first in ``hits``) as comments, then the left context.

    Never exceeds ``budget_tokens`` as counted by ``tokenizer`` (see the module docstring for
    who gets which share). Raises :class:`MccomError` when even the header cannot fit.
    """
    if budget_tokens < 0 or not 0.0 <= retrieved_share <= 1.0:
        raise MccomError(
            f"budget_tokens must be >= 0 and retrieved_share in [0, 1], got {budget_tokens}, {retrieved_share}"
        )
    count = as_token_counter(tokenizer)
    left_reserved = min(count(left_context), math.ceil((1.0 - retrieved_share) * budget_tokens))
    block = fit_block(hits, count, budget_tokens - left_reserved)
    cut = _longest_fitting_tail(block.text, left_context, count, budget_tokens)
    text = block.text + left_context[cut:]
    n_tokens = count(text)
    if n_tokens > budget_tokens:  # only a tokenizer that counts "" as > 0 tokens gets here
        raise MccomError(f"the prompt cannot fit in {budget_tokens} tokens: raise budget_tokens")
    return AssembledPrompt(text, block.hits, n_tokens, cut)
