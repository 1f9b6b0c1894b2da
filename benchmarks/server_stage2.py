"""Stage 2 over the API against plain greedy on the server (issue 20, item 3).

On the first ``--n-lines`` escalated lines of the default benchmark's `line` tasks (round-robin
over repositories; escalated: the in-process SLM's output is not an exact match, so the user
rejects it and the cascade asks the LLM), with the cascade's prompt (no retrieval, left context
up to ``--max-left-tokens``) and decoding (line stop, token healing), the served LLM completes:

* plain: :func:`~mccom_core.lm.remote_decoding.complete_remote` without a draft, the first
  request of that prompt on the server (cold);
* stage 2: the same with the SLM's tokens as the draft, verified in one ``prompt_logprobs``
  request (which vLLM 0.32 prefills in full: it does not read the prefix cache for it), then
  greedy requests from the accepted prefix (those read the cache);
* plain warm: plain again, the prompt now in the server's prefix cache (what a server that
  had seen the prompt costs; stage 2 cannot use that).

So that "cold" is cold on a server that ran this script before, each LLM prompt starts with a
comment line unique to the run (like a retrieved block would). Latency is the wall time of
the call as the client sees it (local tokenization, healing and the network included). The
three outputs are compared token for token.

    mccom serve qwen2.5-coder-1.5b --port 8000 --eager &   # wait for "ready"
    python benchmarks/server_stage2.py --spec openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b --n-lines 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speculative import pick_tasks  # noqa: E402

from mccom_core.cascade.engine import CascadeConfig  # noqa: E402
from mccom_core.cascade.metrics import exact_match  # noqa: E402
from mccom_core.cascade.snapshots import materialize  # noqa: E402
from mccom_core.cascade.tasks import task_context  # noqa: E402
from mccom_core.errors import MccomError  # noqa: E402
from mccom_core.lm.decoding import complete  # noqa: E402
from mccom_core.lm.models import load_model, tokenizers_identical  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, build_prompt  # noqa: E402
from mccom_core.lm.remote_decoding import complete_remote  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "server_stage2.md"
NOTE = ("Order per line: plain cold, stage 2, plain warm. With token healing the first request of "
        "stage 2 is the healing one, and it finds the prompt in the prefix cache that plain cold "
        "wrote; only the verification request (prompt_logprobs) prefills everything again. So stage 2 "
        "here costs what it costs on a server that already holds the prompt; on a prompt the server has "
        "not seen, add one cold prefill (about plain cold minus plain warm). A dropped or empty draft "
        "makes stage 2 a warm plain request.")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1e3


def measure(task, snapshot, slm, llm, config: CascadeConfig, tag: str) -> dict | None:
    """One line's row, or None when the SLM's output is an exact match (not escalated)."""
    left, right = task_context(task, snapshot)
    decode = config.decode_config("line")
    pcfg = PromptConfig(max_left_tokens=config.max_left_tokens)
    draft = complete(slm, build_prompt(left, right, slm.tokenizer, pcfg), decode)
    if exact_match(draft.text, task.ground_truth):
        return None
    prompt = build_prompt(left, right, llm.tokenizer, pcfg, prefix=f"# {tag} {task.task_id}\n")
    plain, plain_ms = timed(lambda: complete_remote(llm, prompt, decode))
    stage2, stage2_ms = timed(lambda: complete_remote(llm, prompt, decode, draft_ids=draft.token_ids))
    warm, warm_ms = timed(lambda: complete_remote(llm, prompt, decode))
    return {
        "task_id": task.task_id, "prompt_tokens": plain.prompt_tokens, "tokens": len(plain.token_ids),
        "slm_tokens": len(draft.token_ids), "drafted": stage2.n_drafted, "accepted": stage2.n_accepted,
        "dropped": stage2.extra["draft_dropped"],
        "draft_right": list(plain.token_ids[: len(draft.token_ids)]) == list(draft.token_ids),
        "plain_ms": plain_ms, "stage2_ms": stage2_ms,
        "verify_ms": stage2.extra["verify_request_ms"], "warm_ms": warm_ms,
        "plain_requests": plain.extra["requests"], "stage2_requests": stage2.extra["requests"],
        "identical": plain.token_ids == stage2.token_ids == warm.token_ids and plain.text == stage2.text,
        "llm_em": exact_match(plain.text, task.ground_truth), "load": os.getloadavg()[0],
    }


def server_version(base_url: str) -> str:
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/version", timeout=10) as r:
            return "vLLM " + json.load(r).get("version", "?")
    except (OSError, ValueError):
        return "unknown server version"


def report(rows: list[dict], header: str) -> str:
    lines = [header, "", "| line | prompt tok | tokens | drafted | accepted | plain cold ms | stage 2 ms | "
             "of it verification ms | plain warm ms | requests plain / stage 2 | identical |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        drafted = "dropped" if r["dropped"] else r["drafted"]
        lines.append(f"| {r['task_id']} | {r['prompt_tokens']} | {r['tokens']} | {drafted} | {r['accepted']} "
                     f"| {r['plain_ms']:.0f} | {r['stage2_ms']:.0f} | {r['verify_ms']:.0f} | {r['warm_ms']:.0f} "
                     f"| {r['plain_requests']} / {r['stage2_requests']} | {'yes' if r['identical'] else 'NO'} |")
    if rows:
        med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        ratio = statistics.median(r["stage2_ms"] / r["plain_ms"] for r in rows)
        drafted, accepted = sum(r["drafted"] for r in rows), sum(r["accepted"] for r in rows)
        full = sum(r["draft_right"] for r in rows)
        share = f" ({accepted / drafted:.0%})" if drafted else ""
        lines += ["", f"Medians over {len(rows)} escalated lines: plain cold {med('plain_ms'):.0f} ms, stage 2 "
                  f"{med('stage2_ms'):.0f} ms (of it the verification request {med('verify_ms'):.0f} ms), plain "
                  f"warm {med('warm_ms'):.0f} ms; stage 2 / plain cold, median of per-line ratios: {ratio:.2f}x. "
                  f"Draft tokens accepted: {accepted} of {drafted}{share}; drafts dropped (healed token differs): "
                  f"{sum(r['dropped'] for r in rows)}; SLM outputs that are a prefix of the LLM's (the whole "
                  f"draft right; its last token, when it ends the line, is uncounted as in-process): {full}.",
                  "", f"LLM exact match: {sum(r['llm_em'] for r in rows)} of {len(rows)}. Outputs identical (plain "
                  f"cold, stage 2, plain warm): {sum(r['identical'] for r in rows)} of {len(rows)}. 1-minute load "
                  f"average while measuring: median {statistics.median(r['load'] for r in rows):.1f}, max "
                  f"{max(r['load'] for r in rows):.1f} (2 cores: above 2, other work shared the CPU).", "", NOTE]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model> (the LLM)")
    ap.add_argument("--slm", default="qwen2.5-coder-0.5b", help="the in-process SLM (same tokenizer as the LLM)")
    ap.add_argument("--n-lines", type=int, default=10, help="escalated lines to measure")
    ap.add_argument("--max-left-tokens", type=int, default=CascadeConfig().max_left_tokens)
    ap.add_argument("--server-note", default="", help="how the server was started, for the report")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    llm = load_model(args.spec)
    slm = load_model(args.slm, device="cpu")
    if not tokenizers_identical(slm.tokenizer, llm.tokenizer):
        raise MccomError(f"{args.slm} and {args.spec} tokenize differently: stage 2 over the API takes "
                         "the SLM's token ids; use an SLM of the LLM's family")
    config = CascadeConfig(slm=args.slm, llm=args.spec, max_left_tokens=args.max_left_tokens)
    llm.warm_up()
    tag = f"mccom server_stage2 {time.time_ns()}"
    rows, snapshots, seen = [], {}, 0
    for task in pick_tasks(10 * args.n_lines):
        if len(rows) >= args.n_lines:
            break
        seen += 1
        try:
            snap = snapshots.setdefault(task.repo, materialize(task.repo, task.repo_hash))
            row = measure(task, snap, slm, llm, config, tag)
        except MccomError as exc:
            print(f"skipped {task.task_id}: {exc}", file=sys.stderr)
            continue
        if row is not None:
            rows.append(row)
            print(f"[{len(rows)}/{args.n_lines}] {row['task_id']}: plain {row['plain_ms']:.0f} ms, stage 2 "
                  f"{row['stage2_ms']:.0f} ms, accepted {row['accepted']}/{row['drafted']}", flush=True)
    command = "python benchmarks/server_stage2.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"# Stage 2 over the API: plain server greedy vs the SLM's draft verified on the server\n\n"
              f"Generated by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
              f"Machine: {cpu_name()} (client and server on the same machine). Server: {args.spec}, "
              f"{server_version(llm.config.base_url)}{', ' + args.server_note if args.server_note else ''}. "
              f"SLM in-process: {args.slm}. Left context up to {args.max_left_tokens} tokens, no retrieval, "
              f"line stop, token healing. {len(rows)} escalated lines (SLM output not an exact match) of the "
              f"first {seen} `line` tasks (round-robin over repositories). Times are wall ms per line as the "
              f"client sees them; see the script's docstring for what each column is.")
    text = report(rows, header)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
