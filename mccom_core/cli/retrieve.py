"""``mccom retrieve``: index a repository, or show what a retriever finds for a line.

    mccom retrieve index REPO [--backend bm25s] [--ext .py --ext .pyi]
    mccom retrieve query REPO FILE --line N [--strategy round1] [--slm-output TEXT --confidence C]

``query`` treats line N (1-based) of FILE as the completion target: the lines before it are the
left context, the lines after it the right context, and windows overlapping it are excluded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mccom_core.cli._defaults import AppendReplacingDefault, default
from mccom_core.errors import MccomError

RETRIEVAL = "mccom_core.retrieval.queries:RetrievalConfig"


def register(subparsers) -> None:
    parser = subparsers.add_parser("retrieve", help="BM25 repository retrieval: build an index, run a query")
    sub = parser.add_subparsers(dest="retrieve_command", metavar="ACTION", required=True)

    def add_index_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("repo", help="repository root folder")
        p.add_argument("--backend", default=default(RETRIEVAL, "backend"),
                       help="rank-bm25 or bm25s (default: %(default)s)")
        p.add_argument("--ext", action=AppendReplacingDefault, dest="extensions", metavar="EXT",
                       default=default(RETRIEVAL, "extensions"),
                       help="file extension to index, repeatable (default: %(default)s)")
        p.add_argument("--window-lines", type=int, default=default(RETRIEVAL, "window_lines"),
                       help="lines per indexed window (default: %(default)s)")
        p.add_argument("--stride", type=int, default=default(RETRIEVAL, "stride"),
                       help="lines between window starts (default: %(default)s)")
        p.add_argument("--no-cache", action="store_true", help="rebuild and do not write the cache")

    index = sub.add_parser("index", help="index a repository (cached per content snapshot)")
    add_index_options(index)
    index.set_defaults(func=_index)

    query = sub.add_parser("query", help="retrieve windows for a target line of a file")
    add_index_options(query)
    query.add_argument("file", help="target file, inside REPO")
    query.add_argument("--line", type=int, required=True, help="1-based target line")
    query.add_argument("--strategy", default="round1",
                       help="retriever: none, round1, repocoder or mccom-fused (default: %(default)s)")
    # Not RetrievalConfig.top_k (what a prompt is offered, larger): this is a listing for a person
    # to read, and 5 has been this command's default since it was added.
    query.add_argument("--top-k", type=int, default=5, help="windows to list (default: %(default)s)")
    query.add_argument("--slm-output", help="the rejected small-model suggestion (round 2)")
    query.add_argument("--confidence", type=float, help="the small model's confidence (mccom-fused)")
    query.add_argument("--show-text", action="store_true", help="print each window's code")
    query.set_defaults(func=_query)


def _config(args):
    from mccom_core.retrieval.queries import RetrievalConfig

    # ``index`` has no --top-k: the index does not depend on it, so RetrievalConfig's stands.
    top_k = {"top_k": args.top_k} if hasattr(args, "top_k") else {}
    return RetrievalConfig(
        window_lines=args.window_lines, stride=args.stride, backend=args.backend,
        extensions=tuple(args.extensions), **top_k,
    )


def _index(args) -> int:
    from mccom_core.retrieval.retrievers import load_index

    idx = load_index(args.repo, _config(args), use_cache=not args.no_cache)
    stats = idx.stats
    print(f"{idx.root}: {stats.files_indexed} files, {stats.lines} lines, {stats.windows} windows"
          f" ({idx.config.backend}); snapshot {idx.snapshot[:12]}")
    for reason, n in stats.skipped_counts.items():
        print(f"  skipped {n} file(s): {reason}")
    return 0


def _query(args) -> int:
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.lm.prompts import read_source
    from mccom_core.retrieval.retrievers import get_retriever, load_index

    config = _config(args)
    idx = load_index(args.repo, config, use_cache=not args.no_cache)
    path = Path(args.file)
    if not path.is_absolute():
        path = Path(args.repo) / path
    lines = read_source(path).split("\n")
    if not 1 <= args.line <= len(lines):
        raise MccomError(f"--line {args.line} is outside {path} (1..{len(lines)})")
    target = args.line - 1
    site = CompletionSite(
        left_context="\n".join(lines[:target]) + "\n",
        right_context="\n".join(lines[target + 1:]),
        target_path=path.resolve(), target_span=(target, target + 1),
        slm_output=args.slm_output, slm_confidence=args.confidence,
    )
    hits = get_retriever(args.strategy, config).retrieve(idx, site)
    for hit in hits:
        w = hit.window
        print(f"{hit.rank + 1:>3}  {hit.score:9.4f}  {w.path}:{w.start + 1}-{w.end}")
        if args.show_text:
            print("\n".join("      | " + line for line in w.text.split("\n")))
    if not hits:
        print("no windows retrieved")
    return 0
