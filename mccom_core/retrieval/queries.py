"""Retrieval queries and score fusion: the completion site, both rounds' queries, fusion, top-k.

MCCom retrieves in up to two rounds (see :mod:`mccom_core.retrieval.index` for how a repository
becomes windows):

* Round 1, before any model runs: the query is the last ``query_left_lines`` lines of the left
  context plus the first ``query_right_lines`` lines of the right context.
* Round 2, after the small model's (SLM's) suggestion was rejected: the query is the SLM
  output joined onto the end of the left context (``round2_query="repocoder"``, RepoCoder's
  iterative query: the last ``query_left_lines - len(SLM lines)`` left lines, then the SLM
  output; it drops the right context), or the round-1 query with the SLM output at the cursor
  (``round2_query="around"``: round 1's left lines, the SLM output, round 1's right lines; the
  brief's "a second query adds the SLM output"). MCCom fuses the two
  rounds per window: each score list is min-max normalized over the retrievable windows, then
  ``score = (1 - w) * round1 + w * round2`` with ``w = f(SLM confidence)``; by default
  ``w = confidence``: the surer the SLM was, the more its draft steers retrieval.

The strategies that combine these live in :mod:`mccom_core.retrieval.retrievers`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from mccom_core.errors import MccomError
from mccom_core.retrieval.index import IndexConfig, RepoIndex, Window

# w = f(confidence, fusion_weight): how much round 2 counts in the fused score.
FUSION_SCHEDULES: dict[str, Callable[[float, float], float]] = {
    "confidence": lambda c, _: c,  # MCCom default: trust the draft as much as the SLM did
    "square": lambda c, _: c * c,  # round 2 only matters for confident drafts
    "sqrt": lambda c, _: math.sqrt(c),  # round 2 matters even for unsure drafts
    "constant": lambda _, weight: weight,  # ignore confidence: w = fusion_weight
}

# What to drop as already shown by the prompt (see mccom_core.retrieval.redundancy).
EXCLUDE_VISIBLE = ("none", "span", "span+text")

# How the round-2 query is built from the site and the SLM output (round2_query below).
ROUND2_QUERIES = ("repocoder", "around")

# Options added after cascade rows were keyed by their config hash, at the values that keep the
# behaviour from before them, one dict per generation of options. While all options of a
# generation are at these values RetrievalConfig.hash_fields leaves them out, so the hashes of
# configs from before that generation, and the rows keyed by them, stay what they were
# (mccom_core.cascade.engine.config_hash). Add any later option as a new generation.
LEGACY_GENERATIONS = (
    {"exclude_visible": "none", "dedupe": False, "near_duplicate": 0.8},  # the redundancy filter
    {"round2_query": "repocoder"},  # round-2 query variants
)
LEGACY_DEFAULTS = {name: value for generation in LEGACY_GENERATIONS for name, value in generation.items()}


@dataclass(frozen=True)
class RetrievalConfig:
    """All retrieval settings; the index-related ones form :attr:`index_config`."""

    window_lines: int = 20  # RepoCoder's window: about one function body
    stride: int = 10  # RepoCoder's slice step: windows overlap by half
    extensions: tuple[str, ...] = (".py",)  # Python by default
    max_file_bytes: int = 1_000_000  # larger files are data or generated code: skipped
    backend: str = "rank-bm25"  # "bm25s" queries 100x faster on 100k+ windows
    query_left_lines: int = 20  # round-1 query: one window's worth of code before the cursor
    query_right_lines: int = 10  # ... plus what follows the cursor (MCCom uses both sides)
    top_k: int = 10  # windows offered to the prompt; the token budget may drop some
    budget_tokens: int = 2048  # whole prompt (retrieved block + left context), RepoCoder's
    retrieved_share: float = 0.5  # the retrieved block gets at most this share of the budget
    fusion_schedule: str = "confidence"  # w = f(confidence): a FUSION_SCHEDULES name
    fusion_weight: float = 0.5  # w for the "constant" schedule
    # Off by default: the ablation's old behaviour, until measured (issue 22). "span": drop
    # target-file windows the prompt mostly shows already; "span+text": also near-duplicates
    # of the shown text in any file (see mccom_core.retrieval.redundancy).
    exclude_visible: str = "none"
    dedupe: bool = False  # drop windows that mostly repeat a higher-ranked one
    # Token-set Jaccard at or above which two stretches of code are near-duplicates: the
    # threshold of Allamanis (2019) for identifier sets in code corpora.
    near_duplicate: float = 0.8
    # The round-2 query: "around" (round 1's query, left and right lines, with the SLM output
    # at the cursor) or "repocoder" (SLM output after the last left lines, right context
    # dropped: the default until issue 22 measured it losing the ground truth that round 1
    # held; benchmarks/results/retrieval_round2_em.md: +5.0 EM points on the held-out split).
    round2_query: str = "around"

    def __post_init__(self):
        if self.fusion_schedule not in FUSION_SCHEDULES:
            raise MccomError(
                f"unknown fusion schedule {self.fusion_schedule!r}: "
                f"choose one of {sorted(FUSION_SCHEDULES)}"
            )
        for name in ("query_left_lines", "query_right_lines", "top_k", "budget_tokens"):
            if getattr(self, name) < 0:
                raise MccomError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("retrieved_share", "fusion_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MccomError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.exclude_visible not in EXCLUDE_VISIBLE:
            raise MccomError(f"unknown exclude_visible {self.exclude_visible!r}: choose one of {EXCLUDE_VISIBLE}")
        if self.round2_query not in ROUND2_QUERIES:
            raise MccomError(f"unknown round2_query {self.round2_query!r}: choose one of {ROUND2_QUERIES}")
        if not 0.0 < self.near_duplicate <= 1.0:
            raise MccomError(f"near_duplicate must lie in (0, 1], got {self.near_duplicate}")
        self.index_config  # validates window_lines, stride, backend, extensions

    @property
    def filters(self) -> bool:
        """Whether retrieved windows pass the redundancy filter (any option off its legacy value)."""
        return self.exclude_visible != "none" or self.dedupe

    def hash_fields(self) -> dict:
        """``asdict(self)`` without each :data:`LEGACY_GENERATIONS` group whose options are all at
        their legacy values."""
        return retrieval_hash_fields(asdict(self))

    @property
    def index_config(self) -> IndexConfig:
        return IndexConfig(
            window_lines=self.window_lines, stride=self.stride,
            extensions=tuple(self.extensions), max_file_bytes=self.max_file_bytes,
            backend=self.backend,
        )


def retrieval_hash_fields(data: dict) -> dict:
    """:meth:`RetrievalConfig.hash_fields` of a config's ``asdict`` (e.g. a stored row's), which
    may predate some options: missing ones are taken at their legacy values."""
    data = {**LEGACY_DEFAULTS, **data}
    for generation in LEGACY_GENERATIONS:
        if all(data[name] == value for name, value in generation.items()):
            for name in generation:
                del data[name]
    return data


@dataclass(frozen=True)
class CompletionSite:
    """Where a completion happens and what the cascade knows about it so far.

    ``left_context`` is the file's text up to the cursor and ``right_context`` the text after
    the target. ``target_span`` is the 0-based half-open line span of the expected completion in
    ``target_path``; windows overlapping it are never retrieved. ``slm_output`` and
    ``slm_confidence`` (in [0, 1]) are the rejected small-model suggestion, for round 2.

    ``shown_left`` and ``shown_right`` are what of the context the prompt shows: a suffix of
    ``left_context`` (the part its token budget keeps; None: all of it) and a prefix of
    ``right_context`` ("" for a left-to-right prompt). Only the redundancy filter
    (``RetrievalConfig.exclude_visible``) reads them; ``redundancy.shown_context`` sets them as
    ``build_prompt`` would cut.
    """

    left_context: str
    right_context: str = ""
    target_path: str | os.PathLike | None = None
    target_span: tuple[int, int] | None = None
    slm_output: str | None = None
    slm_confidence: float | None = None
    shown_left: str | None = None
    shown_right: str = ""

    def __post_init__(self):
        if self.shown_left is not None and not self.left_context.endswith(self.shown_left):
            raise MccomError("shown_left must be a suffix of left_context: the part of it the prompt keeps")
        if not self.right_context.startswith(self.shown_right):
            raise MccomError("shown_right must be a prefix of right_context: the part of it the prompt shows")


@dataclass(frozen=True)
class Hit:
    """A retrieved window with its score (higher is more relevant) and rank (0 = best)."""

    window: Window
    score: float
    rank: int

    @property
    def text(self) -> str:
        return self.window.text


def round1_query(left_context: str, right_context: str, config: RetrievalConfig = RetrievalConfig()) -> str:
    """Last ``query_left_lines`` lines of the left context + first ``query_right_lines`` of the right."""
    left = left_context.split("\n")[-config.query_left_lines:] if config.query_left_lines else []
    right = right_context.split("\n")[: config.query_right_lines]
    return "\n".join(left + right)


def round2_query(left_context: str, slm_output: str, config: RetrievalConfig = RetrievalConfig(),
                 right_context: str = "") -> str:
    """The round-2 query for ``config.round2_query``.

    ``"repocoder"``: the SLM output joined onto the end of the left context (RepoCoder's
    iterative query). The left context keeps ``query_left_lines - len(SLM lines)`` lines (at
    least its cursor line, which the SLM output continues), so the query stays about one window
    long; ``right_context`` is not used. ``"around"``: the round-1 query with the SLM output
    inserted at the cursor (the last ``query_left_lines`` left lines, the SLM output, the first
    ``query_right_lines`` right lines): round 1's evidence plus the draft's.
    """
    if config.round2_query == "around":
        left = left_context.split("\n")[-config.query_left_lines:] if config.query_left_lines else [""]
        right = right_context.split("\n")[: config.query_right_lines]
        return "\n".join(left[:-1] + [left[-1] + slm_output] + right)
    keep = max(config.query_left_lines - len(slm_output.split("\n")) + 1, 1)
    return "\n".join(left_context.split("\n")[-keep:]) + slm_output


def normalize_scores(scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Min-max normalize ``scores`` to [0, 1] over the windows in ``mask`` (others become 0).

    A list whose retrievable scores are all equal carries no ranking and becomes all zeros.
    """
    scores = np.asarray(scores, dtype=np.float64)
    mask = np.ones(len(scores), dtype=bool) if mask is None else mask
    out = np.zeros(len(scores))
    if not mask.any():
        return out
    lo, hi = scores[mask].min(), scores[mask].max()
    if hi > lo:
        with np.errstate(over="ignore"):
            span = hi - lo
        if np.isfinite(span):
            out[mask] = (scores[mask] - lo) / span
        else:  # a span beyond float max: halving is exact, and halves cannot overflow
            out[mask] = (scores[mask] / 2 - lo / 2) / (hi / 2 - lo / 2)
    return out


def fusion_weight(confidence: float, schedule: str = "confidence", constant: float = 0.5) -> float:
    """The round-2 weight w for an SLM confidence under a named schedule."""
    if not 0.0 <= confidence <= 1.0 or math.isnan(confidence):
        raise MccomError(f"SLM confidence must lie in [0, 1], got {confidence}")
    if schedule not in FUSION_SCHEDULES:
        raise MccomError(f"unknown fusion schedule {schedule!r}: choose one of {sorted(FUSION_SCHEDULES)}")
    return float(FUSION_SCHEDULES[schedule](confidence, constant))


def fuse_scores(round1: np.ndarray, round2: np.ndarray, weight: float,
                mask: np.ndarray | None = None) -> np.ndarray:
    """``(1 - weight) * norm(round1) + weight * norm(round2)``, normalized over ``mask``."""
    return (1.0 - weight) * normalize_scores(round1, mask) + weight * normalize_scores(round2, mask)


def top_hits(index: RepoIndex, scores: np.ndarray, mask: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` best retrievable windows with a positive score, best first.

    Ties break by window order (path, then line), so identical inputs give identical results.
    """
    candidates = np.flatnonzero(mask & (scores > 0))
    if k <= 0 or not len(candidates):
        return []
    if len(candidates) > k:
        # argpartition keeps this O(n); the stable lexsort below fixes the order of the k.
        keep = np.argpartition(-scores[candidates], k - 1)[:k]
        kth = scores[candidates[keep]].min()
        candidates = candidates[scores[candidates] >= kth]  # keep every window tied with the k-th
    order = np.lexsort((candidates, -scores[candidates]))[:k]
    return [Hit(index.window(int(i)), float(scores[i]), rank)
            for rank, i in enumerate(candidates[order])]
