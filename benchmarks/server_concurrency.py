"""Cascade clients against one served LLM: throughput and latency at concurrency 1, 2, 4, 8 (issue 20).

Takes ``--lines`` escalated lines of the shipped benchmark (tasks whose committed SLM row is
not an exact match, so every cascade policy sends them to the LLM), builds each one's
LLM-direct prompt as the cascade does (round-1 retrieval, the retrieved block ahead of the
left context, the cascade's token budgets and stop rules), and sends them to the server from
``c`` client threads at once, for each ``c`` of ``--concurrency``. Every level starts with an
empty prefix cache for its prompts: each prompt opens with a comment naming the level, so no
level reuses another's cached prefixes (the server's prefix cache still works within a level).

Reported per level: wall time, lines per second, per-line client latency (median and p90;
what a user waiting for that line would see, queueing included), the mean time to the first
token and the mean rest, and whether each line's tokens equal those of concurrency 1
(a batched server may round differently). Beside the client's view, the server's own split of
the same requests: mean queue, prefill and decode seconds per request from vLLM's Prometheus
histograms (``/metrics``: ``vllm:request_queue_time_seconds``, ``..._prefill_time_...``,
``..._decode_time_...``), differenced before and after the level; the rest of the client's
latency (HTTP, tokenization, the client's own stop checks) is what neither of those holds.

    mccom serve qwen2.5-coder-0.5b --port 8000 &   # wait for "ready"
    python benchmarks/server_concurrency.py --spec openai:http://127.0.0.1:8000/v1#qwen2.5-coder-0.5b \
        --lines 16 --out benchmarks/results/server_concurrency.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def escalated_prompts(spec: str, n: int):
    """(task id, prompt, decode config) of the first ``n`` escalated lines, prompts built as
    the cascade's LLM-direct branch builds them."""
    import pandas as pd

    from mccom_core.cascade.engine import CascadeConfig, config_hash
    from mccom_core.cascade.runner import select_tasks
    from mccom_core.cascade.snapshots import materialize
    from mccom_core.cascade.tasks import read_tasks, task_context
    from mccom_core.lm.models import load_tokenizer
    from mccom_core.paths import DEFAULT_TASKS
    from mccom_core.retrieval.prompt import fit_block
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.retrieval.retrievers import get_retriever, load_index

    config = CascadeConfig()
    rows = pd.read_json(ROOT / "benchmarks" / "results" / "cascade_rows.jsonl", lines=True)
    slm = rows[(rows["config_hash"] == config_hash(config)) & (rows["branch"] == "slm")]
    wrong = set(slm.loc[~slm["em"].astype(bool), "task_id"])
    tasks = [t for t in read_tasks(DEFAULT_TASKS).tasks if t.task_id in wrong]
    if len(tasks) < n:
        raise SystemExit(f"only {len(tasks)} escalated lines in the committed rows, asked for {n}")
    # Round robin over repositories within each kind (the runner's --limit), then alternate kinds.
    chosen = select_tasks(tasks, None, (n + 1) // 2)
    by_kind = [[t for t in chosen if t.kind == k] for k in ("line", "stmt")]
    picked = [t for pair in zip(*by_kind) for t in pair][:n]
    tok = load_tokenizer(spec.rpartition("#")[2] if spec.startswith("openai:") else spec)
    retriever = get_retriever("round1", config.retrieval)
    out, indexes = [], {}
    for task in picked:
        root = Path(materialize(task.repo, task.repo_hash))
        left, right = task_context(task, root)
        if root not in indexes:
            indexes[root] = load_index(root, config.retrieval)
        hits = retriever.retrieve(indexes[root], CompletionSite(left, right, task.path, task.span0))
        block = fit_block(hits, tok, config.retrieved_tokens) if hits else None
        out.append((task.task_id, left, right, block.text if block else "", config.decode_config(task.kind)))
    return out, tok, config


SERVER_METRICS = {"queue": "vllm:request_queue_time_seconds", "prefill": "vllm:request_prefill_time_seconds",
                  "decode": "vllm:request_decode_time_seconds"}


def server_metrics(spec: str) -> dict[str, tuple[float, float]] | None:
    """(sum, count) of each :data:`SERVER_METRICS` histogram, summed over label sets; None when
    the server has no ``/metrics`` (not vLLM)."""
    import httpx

    base = spec.removeprefix("openai:").rpartition("#")[0].rstrip("/").removesuffix("/v1")
    try:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    out = {}
    for name, metric in SERVER_METRICS.items():
        total = {"_sum": 0.0, "_count": 0.0}
        for line in text.splitlines():
            for suffix in total:
                if line.startswith(metric + suffix):
                    total[suffix] += float(line.rsplit(" ", 1)[1])
        out[name] = (total["_sum"], total["_count"])
    return out


def metric_means(before, after) -> dict[str, float]:
    """Mean seconds per request of each histogram between two :func:`server_metrics` reads."""
    if before is None or after is None:
        return {}
    means = {}
    for name in SERVER_METRICS:
        n = after[name][1] - before[name][1]
        means[name] = (after[name][0] - before[name][0]) / n if n > 0 else float("nan")
    return means


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model>")
    ap.add_argument("--lines", type=int, default=16, help="escalated lines per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--out", default=None, help="markdown file to write the table to")
    args = ap.parse_args(argv)

    from mccom_core.lm.decoding import complete
    from mccom_core.lm.models import load_model
    from mccom_core.lm.prompts import PromptConfig, build_prompt
    from mccom_core.provenance import cpu_name

    lines, tok, config = escalated_prompts(args.spec, args.lines)
    llm = load_model(args.spec)
    llm.warm_up()

    def one(level: int, i: int):
        task_id, left, right, block, decode = lines[i]
        prompt = build_prompt(left, right, tok, PromptConfig(max_left_tokens=config.max_left_tokens),
                              prefix=f"# concurrency {level}, request {i}\n" + block)
        t0 = time.perf_counter()
        out = complete(llm, prompt, decode)
        return time.perf_counter() - t0, out

    table, first = [], None
    for level in args.concurrency:
        before = server_metrics(args.spec)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=level) as pool:
            results = list(pool.map(lambda i: one(level, i), range(len(lines))))
        wall = time.perf_counter() - t0
        server = metric_means(before, server_metrics(args.spec))
        tokens = [out.token_ids for _, out in results]
        first = first or tokens
        lat = sorted(s for s, _ in results)
        table.append({
            "concurrency": level, "lines": len(lines), "wall_s": wall, "lines_per_s": len(lines) / wall,
            "p50_s": statistics.median(lat), "p90_s": lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))],
            "first_token_ms": statistics.mean(o.prefill_ms for _, o in results),
            "rest_ms": statistics.mean(o.decode_ms for _, o in results),
            "prompt_tokens": statistics.mean(o.prompt_tokens for _, o in results),
            "same": sum(a == b for a, b in zip(tokens, first)),
            **{f"server_{k}_ms": 1e3 * v for k, v in server.items()},
        })
        print(f"concurrency {level}: {wall:.1f} s", file=sys.stderr)

    head = ("| clients | lines | wall s | lines/s | latency p50 s | latency p90 s | first token ms (mean) "
            "| rest ms (mean) | server queue ms | server prefill ms | server decode ms | prompt tokens (mean) "
            "| tokens equal to 1 client |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")

    def ms(r, key):
        v = r.get(key)
        return "" if v is None or v != v else f"{v:.0f}"

    body = "".join(
        f"| {r['concurrency']} | {r['lines']} | {r['wall_s']:.1f} | {r['lines_per_s']:.3f} | {r['p50_s']:.2f} "
        f"| {r['p90_s']:.2f} | {r['first_token_ms']:.0f} | {r['rest_ms']:.0f} | {ms(r, 'server_queue_ms')} "
        f"| {ms(r, 'server_prefill_ms')} | {ms(r, 'server_decode_ms')} | {r['prompt_tokens']:.0f} "
        f"| {r['same']} of {r['lines']} |\n" for r in table)
    text = (f"# Cascade clients against one served LLM\n\nCommand: `python benchmarks/server_concurrency.py "
            f"--spec {args.spec} --lines {args.lines} --concurrency {' '.join(map(str, args.concurrency))}` on "
            f"{datetime.date.today()}, {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"server and clients on the same machine. 1-minute load average at the end {os.getloadavg()[0]:.1f}.\n\n"
            + head + body)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
