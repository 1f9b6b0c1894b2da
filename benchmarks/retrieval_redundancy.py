"""Benchmark the redundancy filter (issue 22): its latency, and how much of the top-k it drops.

For each repository, the completion sites of ``benchmarks/retrieval_index.py`` (seeded random
lines of random files), with the prompt showing the last ``--shown-lines`` lines of the left
context (about the cascade's 1,024-token left budget; no tokenizer is needed to cut by lines).
Each variant of :class:`RetrievalConfig` (filter off, ``exclude_visible="span"``,
``"span+text"``, ``"span+text"`` with ``dedupe``) is timed as full ``Retriever.retrieve`` calls
of round 1 and the fused round 2 (bm25s, the cascade's backend). **dropped** is the mean share
of the unfiltered round-1 top-k that the variant leaves out.

Targets (issue 22 item 5): round-1 p90 < 20 ms and fused p90 < 40 ms on the 15k-file index.

Run (``--repos`` labels are downloaded once, as by retrieval_index.py; ``--root`` takes any
local folder)::

    .venv/bin/python benchmarks/retrieval_redundancy.py                  # requests, django, plotly
    .venv/bin/python benchmarks/retrieval_redundancy.py --repos --root ~/.cache/mccom/snapshots/<name>

It prints a Markdown table and writes it to ``benchmarks/results/retrieval_redundancy.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_index import REPOS, fetch_repo, sample_sites  # noqa: E402

from mccom_core.paths import PROJECT_ROOT  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402
from mccom_core.retrieval.queries import RetrievalConfig  # noqa: E402
from mccom_core.retrieval.retrievers import get_retriever, load_index  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "retrieval_redundancy.md"
VARIANTS = {
    "off (legacy)": {},
    "span": {"exclude_visible": "span"},
    "span+text": {"exclude_visible": "span+text"},
    "span+text, dedupe": {"exclude_visible": "span+text", "dedupe": True},
}


def with_shown_lines(site, n: int):
    """``site`` with the prompt showing the last ``n`` lines of the left context (and the cursor line)."""
    left = site.left_context.split("\n")
    return replace(site, shown_left="\n".join(left[-(n + 1):]))


def time_variants(index, configs: dict[str, RetrievalConfig], strategy: str, sites):
    """Per variant: latencies (ms) per site and the windows found. Variants alternate site by
    site, so load from other processes on a shared CPU falls on all of them alike."""
    retrievers = {name: get_retriever(strategy, config) for name, config in configs.items()}
    latencies = {name: [] for name in configs}
    found = {name: [] for name in configs}
    for site in sites:
        for name, retriever in retrievers.items():
            start = time.perf_counter()
            hits = retriever.retrieve(index, site)
            latencies[name].append((time.perf_counter() - start) * 1e3)
            found[name].append({(h.window.path, h.window.start) for h in hits})
    return {name: np.array(v) for name, v in latencies.items()}, found


def bench_root(label: str, root: Path, args) -> list[dict]:
    base = RetrievalConfig(backend="bm25s")
    index = load_index(root, base)
    sites = [with_shown_lines(s, args.shown_lines) for s in sample_sites(index, args.queries, args.seed)]
    configs = {name: replace(base, **options) for name, options in VARIANTS.items()}
    lat1, found = time_variants(index, configs, "round1", sites)
    lat2, _ = time_variants(index, configs, "mccom-fused", sites)
    legacy, rows = found["off (legacy)"], []
    for name in configs:
        dropped = np.mean([len(a - b) / max(len(a), 1) for a, b in zip(legacy, found[name])])
        rows.append(dict(repo=label, files=index.stats.files_indexed, windows=len(index), variant=name,
                         r1_p50=np.median(lat1[name]), r1_p90=np.percentile(lat1[name], 90),
                         fu_p50=np.median(lat2[name]), fu_p90=np.percentile(lat2[name], 90),
                         extra=np.median(lat1[name] - lat1["off (legacy)"]), dropped=dropped))
        print(f"  {label} {name}: round1 p90 {rows[-1]['r1_p90']:.1f} ms, fused p90 {rows[-1]['fu_p90']:.1f} ms,"
              f" dropped {dropped:.2f}", flush=True)
    return rows


def render(rows: list[dict], args, started: str, load: tuple) -> str:
    head = ("| repo | .py files | windows | filter | round 1 p50 (ms) | round 1 p90 (ms) | fused p50 (ms) "
            "| fused p90 (ms) | round 1 extra, paired median (ms) | dropped from the top-10 |\n"
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['repo']} | {r['files']:,} | {r['windows']:,} | {r['variant']} | {r['r1_p50']:.1f} | {r['r1_p90']:.1f} "
        f"| {r['fu_p50']:.1f} | {r['fu_p90']:.1f} | {r['extra']:+.2f} | {r['dropped']:.2f} |\n" for r in rows)
    return (
        "# Retrieval redundancy filter: latency and what it drops\n\n"
        f"Generated by `benchmarks/retrieval_redundancy.py {' '.join(args.argv)}` on {started}.\n"
        f"CPU: {cpu_name()} (shared; load average {load[0]:.1f} at start, {load[1]:.1f} at end). "
        f"{args.queries} sites per repository (seed {args.seed}), the prompt showing the last "
        f"{args.shown_lines} left lines; bm25s, windows of 20 lines, stride 10, top-k 10.\n\n"
        + head + body + "\n"
        "* Each latency is a full `Retriever.retrieve` call (BM25, target exclusion, fusion, top-k,"
        " and the filter: shown-window mask, then per candidate window its identifier set against"
        " the shown text and the windows kept). The variants alternate site by site; **extra** is"
        " the median over sites of a variant's round-1 latency minus the unfiltered one's.\n"
        "* **dropped**: mean share of the unfiltered round-1 top-10 the variant leaves out (random"
        " target lines, not the benchmark's tasks; the ablation's share is in issue 22).\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", nargs="*", default=[label for label, _ in REPOS],
                        help="retrieval_index.py repositories (downloaded once)")
    parser.add_argument("--root", type=Path, action="append", default=[], help="a local repository folder")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--shown-lines", type=int, default=100, help="left lines the prompt shows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = [a.replace(str(Path.home()), "~") for a in (sys.argv[1:] if argv is None else argv)]
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]
    rows = []
    for label, requirement in REPOS:
        if label in args.repos:
            rows += bench_root(label, fetch_repo(requirement), args)
    for root in args.root:
        rows += bench_root(root.expanduser().resolve().name, root.expanduser(), args)
    table = render(rows, args, started, (load_start, os.getloadavg()[0]))
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
