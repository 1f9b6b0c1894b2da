"""Retrieval that does not re-show what the prompt already holds.

On the committed ablation (issue 22) 56-65% of the windows in the prompt's retrieved block were
lines of the target file's own left context, which the prompt shows anyway: block tokens spent
on nothing new. :func:`novel_top_hits` is one filter after scoring, the same for every
retriever (round 1, RepoCoder, fused), switched by two :class:`RetrievalConfig` options:

* ``exclude_visible="span"``: drop a window of the target file when at least half of its lines
  are lines the prompt shows: the left context its token budget keeps
  (``CompletionSite.shown_left``) and the right context it shows (``shown_right``, "" for a
  left-to-right prompt).
* ``exclude_visible="span+text"``: also drop a window of any file whose identifier set is a
  near-duplicate of a stretch of the shown text as many lines long (token-set Jaccard >=
  ``near_duplicate``): copies of the target file, such as ``build/lib`` or py2/py3 twins.
* ``dedupe=True``: drop a window when at least half of its lines are lines of a higher-ranked
  kept window of the same file (with the default stride, a neighbour overlapping it by half),
  or when its identifier set is a near-duplicate of a higher-ranked kept window's.

"At least half" (:data:`SHOWN_SHARE`): a window earns its tokens only if most of it is new;
a window straddling the edge of the shown context by fewer lines stays. Scores are not changed,
so the windows kept are in their unfiltered order; ranks are renumbered from 0. With both
options off (the defaults) retrieval is exactly what it was before them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mccom_core.retrieval.code_tokens import code_tokens, line_tokens
from mccom_core.retrieval.index import RepoIndex
from mccom_core.retrieval.queries import CompletionSite, Hit, RetrievalConfig, top_hits

SHOWN_SHARE = 0.5  # a window with at least this share of its lines already shown is dropped


def shown_context(site: CompletionSite, tokenizer, prompt_config=None) -> CompletionSite:
    """``site`` with ``shown_left``/``shown_right`` cut as ``build_prompt`` cuts the context.

    ``prompt_config`` is the :class:`mccom_core.lm.prompts.PromptConfig` of the prompt the
    retrieved block goes into (default: ``PromptConfig()``); ``tokenizer`` is its model's.
    Like ``build_prompt`` it tokenizes the whole left context: with Qwen2.5's tokenizer on the
    project's 2-core CPU about 5 ms for a 250-line left context and 27 ms for 2,000 lines, so
    a caller that builds the prompt too computes ``mccom_core.lm.prompts.cut_context`` once,
    sets ``shown_left``/``shown_right`` to it and passes it to ``build_prompt(cut=...)``, as the
    cascade engine does.
    """
    from mccom_core.lm.prompts import PromptConfig, cut_context

    left, right = cut_context(site.left_context, site.right_context, tokenizer, prompt_config or PromptConfig())
    return replace(site, shown_left=left, shown_right=right)


def shown_spans(site: CompletionSite) -> list[tuple[int, int]]:
    """0-based half-open line spans of the target file that the prompt shows, target lines excluded.

    The cursor is on line ``target_span[0]`` (or, without a span, on the last line of
    ``left_context``); the right context starts on the target's last line.
    """
    left = site.left_context if site.shown_left is None else site.shown_left
    cursor = site.target_span[0] if site.target_span else site.left_context.count("\n")
    after = site.target_span[1] - 1 if site.target_span else cursor  # the right context's first line
    spans = [(max(cursor - left.count("\n"), 0), cursor)]
    if site.shown_right:  # its first piece is on the target's last line; a final "\n" shows no line
        lines = site.shown_right.count("\n") - site.shown_right.endswith("\n")
        spans.append((after + 1, after + 1 + lines))
    return [(a, b) for a, b in spans if b > a]


def shown_mask(index: RepoIndex, site: CompletionSite) -> np.ndarray:
    """Windows of the target file with at least :data:`SHOWN_SHARE` of their lines shown."""
    mask = np.zeros(len(index), dtype=bool)
    file_id = None if site.target_path is None else index.file_id(site.target_path)
    if file_id is None:
        return mask
    ids = np.flatnonzero(index.window_file == file_id)
    start, end = index.window_start[ids], index.window_end[ids]
    seen = np.zeros(len(ids), dtype=np.int64)
    for a, b in shown_spans(site):  # the spans are disjoint, so their overlaps add up
        seen += np.clip(np.minimum(end, b) - np.maximum(start, a), 0, None)
    mask[ids[seen >= SHOWN_SHARE * (end - start)]] = True
    return mask


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 0 for two empty sets (no evidence of duplication)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


class ShownText:
    """The shown text's identifier sets over every stretch of n lines, built once per n."""

    def __init__(self, *texts: str):
        self.texts = [line_tokens(text.split("\n")) for text in texts if text]
        self.tokens = {tok for lines in self.texts for line in lines for tok in line}
        self._stretches: dict[int, list[set]] = {}

    def stretches(self, n: int) -> list[set]:
        if n not in self._stretches:
            self._stretches[n] = [
                {tok for line in lines[i:i + n] for tok in line}
                for lines in self.texts for i in range(max(len(lines) - n, 0) + 1)
            ]
        return self._stretches[n]

    def near_duplicate(self, tokens: set, n_lines: int, threshold: float) -> bool:
        """Whether ``tokens`` (of an ``n_lines``-line window) has Jaccard >= ``threshold`` with a stretch.

        Jaccard with a part of the shown text is at most the share of ``tokens`` found in all
        of it, so a window below the threshold on that share is decided without the stretches.
        """
        if not tokens or len(tokens & self.tokens) < threshold * len(tokens):
            return False
        return any(jaccard(tokens, s) >= threshold for s in self.stretches(n_lines))


class _Kept:
    """The windows kept so far: their lines per file and their identifier sets."""

    def __init__(self):
        self.lines: dict[str, set[int]] = {}
        self.tokens: list[set] = []

    def repeats(self, hit: Hit, tokens: set, threshold: float) -> bool:
        w = hit.window
        covered = len(self.lines.get(w.path, set()).intersection(range(w.start, w.end)))
        if covered >= SHOWN_SHARE * (w.end - w.start):
            return True
        return any(jaccard(tokens, other) >= threshold for other in self.tokens)

    def add(self, hit: Hit, tokens: set) -> None:
        self.lines.setdefault(hit.window.path, set()).update(range(hit.window.start, hit.window.end))
        self.tokens.append(tokens)


def novel_top_hits(index: RepoIndex, scores: np.ndarray, mask: np.ndarray, k: int,
                   site: CompletionSite, config: RetrievalConfig) -> list[Hit]:
    """``top_hits(index, scores, mask, k)`` without the windows ``config`` calls redundant.

    Exactly ``top_hits`` when ``config.filters`` is off. Otherwise the ranking is read best
    first, 2k windows at a time (the order of the first n windows does not depend on how many
    are asked for), until ``k`` windows are kept or none is left.
    """
    if not config.filters:
        return top_hits(index, scores, mask, k)
    if config.exclude_visible != "none":
        mask = mask & ~shown_mask(index, site)
    shown = None
    if config.exclude_visible == "span+text":
        left = site.left_context if site.shown_left is None else site.shown_left
        shown = ShownText(left, site.shown_right)
    kept, state, seen, ask = [], _Kept(), 0, 2 * k
    while len(kept) < k:
        ranked = top_hits(index, scores, mask, ask)
        for hit in ranked[seen:]:
            tokens = set(code_tokens(hit.text)) if shown is not None or config.dedupe else set()
            n_lines = hit.window.end - hit.window.start
            if shown is not None and shown.near_duplicate(tokens, n_lines, config.near_duplicate):
                continue
            if config.dedupe:
                if state.repeats(hit, tokens, config.near_duplicate):
                    continue
                state.add(hit, tokens)
            kept.append(replace(hit, rank=len(kept)))
            if len(kept) == k:
                break
        if len(ranked) < ask:  # the ranking is exhausted
            break
        seen, ask = len(ranked), 2 * ask
    return kept
