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
the same requests: queue, prefill, decode and end-to-end seconds per line (summed over the
line's requests: a healed prompt makes one constrained request before the free one) from
vLLM's Prometheus histograms (``/metrics``: ``vllm:request_queue_time_seconds``,
``..._prefill_time_...``, ``..._decode_time_...``, ``vllm:e2e_request_latency_seconds``),
differenced before and after the level, with the requests per line; the client's latency
beyond the server's end-to-end time (HTTP, the client's own stop checks) is what neither holds.

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
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.cascade.runner import read_results, select_tasks
    from mccom_core.cascade.snapshots import materialize
    from mccom_core.cascade.tasks import read_tasks, task_context
    from mccom_core.lm.models import load_tokenizer
    from mccom_core.paths import DEFAULT_TASKS
    from mccom_core.retrieval.prompt import fit_block
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.retrieval.retrievers import get_retriever, load_index

    config = CascadeConfig()
    # The SLM rows that hold for the default config (read_results: its own, or those of a config
    # that differs only where the SLM branch cannot see).
    rows = read_results(ROOT / "benchmarks" / "results" / "cascade_rows.jsonl", config=config)
    slm = rows[rows["branch"] == "slm"]
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
                  "decode": "vllm:request_decode_time_seconds", "e2e": "vllm:e2e_request_latency_seconds"}


def server_metrics(spec: str) -> dict[str, tuple[float, float]] | None:
    """(sum, count) of each :data:`SERVER_METRICS` histogram; None when the server has no ``/metrics``."""
    from mccom_core.lm.remote import server_metrics as read

    names = [m + suffix for m in SERVER_METRICS.values() for suffix in ("_sum", "_count")]
    sums = read(spec.removeprefix("openai:").rpartition("#")[0], names)
    if sums is None:
        return None
    return {k: (sums[m + "_sum"], sums[m + "_count"]) for k, m in SERVER_METRICS.items()}


def metric_per_line(before, after, lines: int) -> dict[str, float]:
    """Seconds per line of each histogram between two :func:`server_metrics` reads (the sum
    over all requests of the level divided by its ``lines``), and ``requests``: the requests
    the server counted per line."""
    if before is None or after is None or lines <= 0:
        return {}
    out = {name: (after[name][0] - before[name][0]) / lines for name in SERVER_METRICS}
    out["requests"] = (after["e2e"][1] - before["e2e"][1]) / lines
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model>")
    ap.add_argument("--lines", type=int, default=16, help="escalated lines per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--out", default=None, help="markdown file to write the table to")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds a client waits for one request (no retries: a retry would resend under load); "
                         "the cascade's default, 120 s, trips at 4 clients of the 1.5B on 2 cores")
    args = ap.parse_args(argv)

    from mccom_core.lm.decoding import complete
    from mccom_core.errors import MccomError
    from mccom_core.lm.remote import load_remote
    from mccom_core.lm.prompts import PromptConfig, build_prompt
    from mccom_core.provenance import cpu_name

    lines, tok, config = escalated_prompts(args.spec, args.lines)
    llm = load_remote(args.spec, timeout_s=args.timeout, max_retries=0)
    llm.warm_up()

    def one(level: int, i: int):
        task_id, left, right, block, decode = lines[i]
        prompt = build_prompt(left, right, tok, PromptConfig(max_left_tokens=config.max_left_tokens),
                              prefix=f"# concurrency {level}, request {i}\n" + block)
        t0 = time.perf_counter()
        try:
            out = complete(llm, prompt, decode)
        except MccomError as exc:  # a timed-out line is counted, not fatal
            print(f"concurrency {level}, line {i}: {exc}", file=sys.stderr)
            out = None
        return time.perf_counter() - t0, out

    table, first = [], None
    for level in args.concurrency:
        before = server_metrics(args.spec)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=level) as pool:
            results = list(pool.map(lambda i: one(level, i), range(len(lines))))
        wall = time.perf_counter() - t0
        failed = sum(out is None for _, out in results)
        results = [(sec, out) for sec, out in results if out is not None]
        server = metric_per_line(before, server_metrics(args.spec), len(results))
        tokens = [out.token_ids for _, out in results]
        first = first or tokens
        lat = sorted(s for s, _ in results)
        table.append({
            "concurrency": level, "lines": len(lines), "failed": failed, "wall_s": wall,
            "lines_per_s": len(results) / wall,
            "p50_s": statistics.median(lat), "p90_s": lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))],
            "first_token_ms": statistics.mean(o.prefill_ms for _, o in results),
            "rest_ms": statistics.mean(o.decode_ms for _, o in results),
            "prompt_tokens": statistics.mean(o.prompt_tokens for _, o in results),
            "same": sum(a == b for a, b in zip(tokens, first)),
            "client_requests": statistics.mean(o.extra.get("requests", 0) for _, o in results),
            **{f"server_{k}_ms": 1e3 * v for k, v in server.items() if k in SERVER_METRICS},
            "server_requests": server.get("requests"),
        })
        print(f"concurrency {level}: {wall:.1f} s", file=sys.stderr)

    head = ("| clients | lines | wall s | lines/s | latency p50 s | latency p90 s | first token ms (mean) "
            "| rest ms (mean) | requests per line | server queue ms | server prefill ms | server decode ms "
            "| server end to end ms | prompt tokens (mean) | tokens equal to 1 client |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")

    def ms(r, key):
        v = r.get(key)
        return "" if v is None or v != v else f"{v:.0f}"

    body = "".join(
        f"| {r['concurrency']} | {r['lines'] - r['failed']} of {r['lines']} | {r['wall_s']:.1f} | {r['lines_per_s']:.3f} "
        f"| {r['p50_s']:.2f} | {r['p90_s']:.2f} | {r['first_token_ms']:.0f} | {r['rest_ms']:.0f} "
        f"| {r['client_requests']:.2f} | {ms(r, 'server_queue_ms')} | {ms(r, 'server_prefill_ms')} "
        f"| {ms(r, 'server_decode_ms')} | {ms(r, 'server_e2e_ms')} | {r['prompt_tokens']:.0f} "
        f"| {r['same']} of {r['lines']} |\n" for r in table)
    note = ("\nClient columns: per line as the cascade sees it (first token: the first request's time to its "
            "first token). Server columns: the server's own seconds per completed line, summed over that "
            "line's requests, from vLLM's /metrics histograms.\n")
    text = (f"# Cascade clients against one served LLM\n\nCommand: `python benchmarks/server_concurrency.py "
            f"--spec {args.spec} --lines {args.lines} --concurrency {' '.join(map(str, args.concurrency))} "
            f"--timeout {args.timeout:g}` on "
            f"{datetime.date.today()}, {cpu_name()}, Python {platform.python_version()}; "
            f"server and clients on the same machine. 1-minute load average at the end {os.getloadavg()[0]:.1f}.\n\n"
            + head + body + note)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
