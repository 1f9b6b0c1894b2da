"""BM25 scoring backends: rank-bm25 (default) and bm25s (fast path for large repositories).

Both take the same tokenized corpus and return one score per document for a tokenized query,
so the retrievers never know which one is in use. Their scores differ, by design of the
libraries, so never compare raw scores across backends (rankings mostly agree; the fused
retriever min-max normalizes each list anyway):

* ``rank-bm25`` (``rank_bm25.BM25Okapi``, k1=1.5, b=0.75): Robertson idf
  ``log((N - n + 0.5) / (n + 0.5))``; a term present in more than half the windows would get a
  negative idf, which rank-bm25 floors at ``epsilon * mean idf`` (epsilon=0.25), and a term in
  exactly half gets idf 0: on a tiny repository (a handful of windows) most words then score
  0 or less and nothing is retrieved. Scoring walks
  every document in Python for every query token, so a query costs O(windows x query tokens):
  fine for small repositories, slow (hundreds of ms) on 100k+ windows.
* ``bm25s`` (``bm25s.BM25``, method "lucene", k1=1.5, b=0.75): Lucene idf
  ``log(1 + (N - n + 0.5) / (n + 0.5))``, always positive, and the per-(term, window) scores are
  precomputed into a sparse matrix at index time, so a query sums a few sparse rows: a few ms
  even on 100k+ windows. Scores are float32.

Both count a repeated query token once per occurrence.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mccom_core.errors import MccomError

# Okapi BM25 parameters shared by both backends (the usual defaults, also RepoCoder's).
K1 = 1.5
B = 0.75


class BM25Backend:
    """Scores a fixed corpus of token lists against token-list queries."""

    name: ClassVar[str]

    def __init__(self, corpus: list[list[str]]):
        self.n_docs = len(corpus)

    def scores(self, query: list[str]) -> np.ndarray:
        """Return a float64 array of shape (n_docs,): the BM25 score of every document."""
        raise NotImplementedError


class RankBM25Backend(BM25Backend):
    """``rank_bm25.BM25Okapi``: the reference implementation, pure Python scoring."""

    name = "rank-bm25"

    def __init__(self, corpus: list[list[str]]):
        from rank_bm25 import BM25Okapi

        super().__init__(corpus)
        # rank-bm25 divides by the average document length, which is 0 for a corpus of
        # empty documents; such a corpus matches nothing anyway.
        self._empty = not any(corpus)
        self._bm25 = None if self._empty else BM25Okapi(corpus, k1=K1, b=B)

    def scores(self, query: list[str]) -> np.ndarray:
        if self._bm25 is None or not query:
            return np.zeros(self.n_docs)
        return np.asarray(self._bm25.get_scores(query), dtype=np.float64)


class BM25sBackend(BM25Backend):
    """``bm25s.BM25``: precomputed sparse scores, for repositories with 100k+ windows."""

    name = "bm25s"

    def __init__(self, corpus: list[list[str]]):
        try:
            import bm25s
        except ImportError as exc:  # optional dependency
            raise MccomError(
                "the bm25s backend needs the bm25s package: pip install bm25s, "
                "or use backend='rank-bm25'"
            ) from exc
        super().__init__(corpus)
        self._bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
        self._bm25.index(corpus, show_progress=False)

    def scores(self, query: list[str]) -> np.ndarray:
        ids = self._bm25.get_tokens_ids(query)
        if not ids:
            return np.zeros(self.n_docs)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)


BACKENDS: dict[str, type[BM25Backend]] = {
    cls.name: cls for cls in (RankBM25Backend, BM25sBackend)
}


def make_backend(name: str, corpus: list[list[str]]) -> BM25Backend:
    """Build the backend called ``name`` over ``corpus`` (a list of token lists)."""
    if name not in BACKENDS:
        raise MccomError(f"unknown BM25 backend {name!r}: choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](corpus)
