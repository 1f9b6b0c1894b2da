"""Retriever strategies, selected by name (``RETRIEVERS``): ``none``, ``round1``, ``repocoder``
(round-2 query alone, no fusion: the RepoCoder baseline) and ``mccom-fused``.

Queries and fusion are in :mod:`mccom_core.retrieval.queries`, the filter of windows the prompt
already shows in :mod:`mccom_core.retrieval.redundancy`, prompt assembly in
:mod:`mccom_core.retrieval.prompt`. Typical use::

    config = RetrievalConfig(backend="bm25s")
    index = load_index(repo_root, config)  # cached per content snapshot
    site = CompletionSite(left, right, task.path, task.span0, slm_output=draft, slm_confidence=0.62)
    site = shown_context(site, tokenizer, prompt_config)  # only read with exclude_visible on
    hits = get_retriever("mccom-fused", config).retrieve(index, site)
    block = fit_block(hits, tokenizer, 1024)  # block.text -> prompt prefix, block.snippets -> drafter
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import ClassVar

import numpy as np

from mccom_core.errors import MccomError
from mccom_core.retrieval.code_tokens import code_tokens
from mccom_core.retrieval.index import RepoIndex, build_index
from mccom_core.retrieval.queries import (CompletionSite, Hit, RetrievalConfig, fuse_scores, fusion_weight,
                                          round1_query, round2_query)
from mccom_core.retrieval.redundancy import novel_top_hits


def load_index(repo: str | os.PathLike, config: RetrievalConfig = RetrievalConfig(),
               **kwargs) -> RepoIndex:
    """Index ``repo`` with ``config`` (cached per content snapshot; see ``build_index``)."""
    return build_index(repo, config.index_config, **kwargs)


class Retriever:
    """A retrieval strategy: scores every window of an index for a completion site."""

    name: ClassVar[str]

    def __init__(self, config: RetrievalConfig = RetrievalConfig()):
        self.config = config

    def scores(self, index: RepoIndex, site: CompletionSite, mask: np.ndarray) -> np.ndarray | None:
        """Score per window, shape (len(index),), or None to retrieve nothing."""
        raise NotImplementedError

    def retrieve(self, index: RepoIndex, site: CompletionSite, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` (default ``config.top_k``) most relevant windows, best first.

        Every strategy's windows pass the same redundancy filter when the config asks for it
        (``exclude_visible``, ``dedupe``; see :mod:`mccom_core.retrieval.redundancy`). It runs
        after scoring, so the fused normalization is the same with and without it.
        """
        mask = index.eligible(site.target_path, site.target_span)
        scores = self.scores(index, site, mask)
        if scores is None:
            return []
        k = self.config.top_k if top_k is None else top_k
        return novel_top_hits(index, scores, mask, k, site, self.config)

    def _round1(self, index: RepoIndex, site: CompletionSite) -> np.ndarray:
        return index.scores(code_tokens(round1_query(site.left_context, site.right_context, self.config)))

    def _round2(self, index: RepoIndex, site: CompletionSite, config: RetrievalConfig | None = None) -> np.ndarray:
        if site.slm_output is None:
            raise MccomError(
                f"the {self.name!r} retriever needs the rejected SLM output (slm_output); "
                "use 'round1' before the small model has run"
            )
        query = round2_query(site.left_context, site.slm_output, config or self.config, site.right_context)
        return index.scores(code_tokens(query))


class NoRetriever(Retriever):
    """No retrieval: the in-file context only."""

    name = "none"

    def scores(self, index, site, mask):
        return None


class Round1Retriever(Retriever):
    """BM25 on the left + right context around the cursor."""

    name = "round1"

    def scores(self, index, site, mask):
        return self._round1(index, site)


class RepoCoderRetriever(Retriever):
    """RepoCoder's round 2: BM25 on the SLM output + left context alone (baseline).

    Always RepoCoder's query, whatever ``config.round2_query`` says: that option is MCCom's
    fused round 2's (and reading it here would change the baseline under a changed default).
    """

    name = "repocoder"

    def scores(self, index, site, mask):
        return self._round2(index, site, replace(self.config, round2_query="repocoder"))


class FusedRetriever(Retriever):
    """MCCom's round 2: confidence-weighted fusion of the normalized round-1 and round-2 scores."""

    name = "mccom-fused"

    def scores(self, index, site, mask):
        round2 = self._round2(index, site)
        if site.slm_confidence is None:
            raise MccomError("the 'mccom-fused' retriever needs slm_confidence in [0, 1]")
        weight = fusion_weight(site.slm_confidence, self.config.fusion_schedule, self.config.fusion_weight)
        return fuse_scores(self._round1(index, site), round2, weight, mask)


RETRIEVERS: dict[str, type[Retriever]] = {
    cls.name: cls for cls in (NoRetriever, Round1Retriever, RepoCoderRetriever, FusedRetriever)
}


def get_retriever(name: str, config: RetrievalConfig = RetrievalConfig()) -> Retriever:
    """The retriever strategy called ``name`` (one of ``RETRIEVERS``)."""
    if name not in RETRIEVERS:
        raise MccomError(f"unknown retriever {name!r}: choose one of {sorted(RETRIEVERS)}")
    return RETRIEVERS[name](config)


def retrieve(index: RepoIndex, site: CompletionSite, strategy: str = "round1",
             config: RetrievalConfig = RetrievalConfig()) -> list[Hit]:
    """Shorthand for ``get_retriever(strategy, config).retrieve(index, site)``."""
    return get_retriever(strategy, config).retrieve(index, site)


def snippet_texts(hits: list[Hit]) -> list[str]:
    """The retrieved windows' code, best first: extra match material for the stage-1 drafter."""
    return [hit.text for hit in hits]
