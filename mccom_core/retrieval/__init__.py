"""Repository retrieval for completion: windows and BM25 (index, bm25, code_tokens), both rounds'
queries and score fusion (queries), retriever strategies by name (retrievers), dropping windows the
prompt already shows (redundancy), prompt assembly (prompt)."""

from mccom_core.retrieval.index import IndexConfig, RepoIndex, Window, build_index
from mccom_core.retrieval.prompt import AssembledPrompt, RetrievedBlock, assemble_prompt, fit_block
from mccom_core.retrieval.queries import (CompletionSite, Hit, RetrievalConfig, fuse_scores, fusion_weight,
                                          round1_query, round2_query)
from mccom_core.retrieval.redundancy import shown_context
from mccom_core.retrieval.retrievers import RETRIEVERS, Retriever, get_retriever, load_index, retrieve

__all__ = [
    "AssembledPrompt", "CompletionSite", "Hit", "IndexConfig", "RETRIEVERS", "RepoIndex", "RetrievalConfig",
    "RetrievedBlock", "Retriever", "Window", "assemble_prompt", "build_index", "fit_block",
    "fuse_scores", "fusion_weight", "get_retriever", "load_index", "retrieve", "round1_query", "round2_query",
    "shown_context",
]
