"""vLLM's own server-side n-gram speculation against plain server greedy, on escalated lines (issue 20, item 3).

One served model at a time (two 1.5B servers do not fit beside the SLM in 24 GB), so the
comparison runs in two passes over the same lines and prompts, then a report:

    mccom serve qwen2.5-coder-1.5b --port 8000 --eager &                      # plain
    python benchmarks/server_ngram.py measure --spec openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b \\
        --label plain --rows build/ngram_plain.jsonl --n-lines 10
    # stop it; serve the same model with vLLM's n-gram speculation
    mccom serve qwen2.5-coder-1.5b --port 8000 --eager --ngram-tokens 2 &
    python benchmarks/server_ngram.py measure --spec ... --label ngram --rows build/ngram_ngram.jsonl \\
        --lines-from build/ngram_plain.jsonl
    python benchmarks/server_ngram.py report build/ngram_plain.jsonl build/ngram_ngram.jsonl

The lines are those of ``server_stage2.py`` (escalated: the in-process SLM's output is not an
exact match; the cascade's prompt without retrieval, left context up to ``--max-left-tokens``,
line stop, token healing); the second pass takes the first pass's task ids and does not run
the SLM. Per line, plain greedy over the API (:func:`~mccom_core.lm.remote_decoding.complete_remote`):
cold (each prompt opens with a comment unique to the pass, so the server has not seen it) and
warm (the same prompt again, prefix-cached). The server's speculative-decoding counters are
read from ``/metrics`` before and after a pass. Tokens of the two servers are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from server_stage2 import server_version, timed  # noqa: E402
from speculative import pick_tasks  # noqa: E402

from mccom_core.cascade.engine import CascadeConfig  # noqa: E402
from mccom_core.cascade.metrics import exact_match  # noqa: E402
from mccom_core.cascade.snapshots import materialize  # noqa: E402
from mccom_core.cascade.tasks import task_context  # noqa: E402
from mccom_core.errors import MccomError  # noqa: E402
from mccom_core.lm.decoding import complete  # noqa: E402
from mccom_core.lm.models import load_model  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, build_prompt  # noqa: E402
from mccom_core.lm.remote import server_metrics  # noqa: E402
from mccom_core.lm.remote_decoding import complete_remote  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "server_ngram.md"
SPEC_COUNTERS = ("vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                 "vllm:spec_decode_num_accepted_tokens")


def measure(args) -> int:
    llm = load_model(args.spec)
    config = CascadeConfig(llm=args.spec, max_left_tokens=args.max_left_tokens)
    decode, pcfg = config.decode_config("line"), PromptConfig(max_left_tokens=args.max_left_tokens)
    wanted = None
    if args.lines_from:
        wanted = [json.loads(line)["task_id"] for line in Path(args.lines_from).read_text().splitlines()
                  if line.startswith("{") and "task_id" in line]
    slm = None if wanted else load_model(args.slm, device="cpu")
    llm.warm_up()
    before = server_metrics(llm.config.base_url, SPEC_COUNTERS) or dict.fromkeys(SPEC_COUNTERS, 0.0)
    tag, rows, snapshots = f"mccom server_ngram {args.label} {time.time_ns()}", [], {}
    for task in pick_tasks(10 * args.n_lines if wanted is None else 10 * len(wanted)):
        if (wanted is None and len(rows) >= args.n_lines) or (wanted is not None and len(rows) == len(wanted)):
            break
        if wanted is not None and task.task_id not in wanted:
            continue
        try:
            snap = snapshots.setdefault(task.repo, materialize(task.repo, task.repo_hash))
            left, right = task_context(task, snap)
            if slm is not None:
                draft = complete(slm, build_prompt(left, right, slm.tokenizer, pcfg), decode)
                if exact_match(draft.text, task.ground_truth):
                    continue  # not escalated
            prompt = build_prompt(left, right, llm.tokenizer, pcfg, prefix=f"# {tag} {task.task_id}\n")
            cold, cold_ms = timed(lambda: complete_remote(llm, prompt, decode))
            warm, warm_ms = timed(lambda: complete_remote(llm, prompt, decode))
        except MccomError as exc:
            print(f"skipped {task.task_id}: {exc}", file=sys.stderr)
            continue
        rows.append({"task_id": task.task_id, "prompt_tokens": cold.prompt_tokens, "tokens": cold.token_ids,
                     "warm_same": warm.token_ids == cold.token_ids, "cold_ms": cold_ms, "warm_ms": warm_ms,
                     "requests": cold.extra["requests"], "em": exact_match(cold.text, task.ground_truth),
                     "load": os.getloadavg()[0]})
        print(f"[{len(rows)}] {task.task_id}: cold {cold_ms:.0f} ms, warm {warm_ms:.0f} ms", flush=True)
    after = server_metrics(llm.config.base_url, SPEC_COUNTERS) or dict.fromkeys(SPEC_COUNTERS, 0.0)
    meta = {"label": args.label, "spec": args.spec, "server": server_version(llm.config.base_url),
            "note": args.server_note, "max_left_tokens": args.max_left_tokens, "cpu": cpu_name(),
            "at": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "spec_decode": {k: after[k] - before[k] for k in SPEC_COUNTERS}}
    Path(args.rows).parent.mkdir(parents=True, exist_ok=True)
    Path(args.rows).write_text(json.dumps({"meta": meta}) + "\n" + "".join(json.dumps(r) + "\n" for r in rows))
    return 0


def read(path):
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return lines[0]["meta"], {r["task_id"]: r for r in lines[1:]}


def report(args) -> int:
    (pm, plain), (nm, ngram) = read(args.plain), read(args.ngram)
    ids = [t for t in plain if t in ngram]
    if not ids:
        raise SystemExit("the two passes share no line: run the second with --lines-from the first's rows")
    out = ["# vLLM's n-gram speculation vs plain greedy on the server, escalated lines", "",
           f"Generated by `python benchmarks/server_ngram.py report {args.plain} {args.ngram}` from two passes "
           f"on {cpu_name()} (client and server on the same machine, one server at a time): plain "
           f"({pm['spec']}, {pm['server']}, {pm['note']}; {pm['at']}) and n-gram ({nm['spec']}, {nm['server']}, "
           f"{nm['note']}; {nm['at']}). The lines of `server_stage2.py`: escalated (the in-process SLM's output is "
           f"not an exact match), no retrieval, left context up to {pm['max_left_tokens']} tokens, line stop, "
           "token healing. Wall ms per line as the client sees it; cold: the server has not seen the prompt; "
           "warm: the same prompt again (prefix-cached).", "",
           "| line | prompt tok | tokens | plain cold ms | n-gram cold ms | plain warm ms | n-gram warm ms | requests | same tokens |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    same = 0
    for t in ids:
        p, n = plain[t], ngram[t]
        ok = p["tokens"] == n["tokens"] and p["warm_same"] and n["warm_same"]
        same += ok
        out.append(f"| {t} | {p['prompt_tokens']} | {len(p['tokens'])} | {p['cold_ms']:.0f} | {n['cold_ms']:.0f} "
                   f"| {p['warm_ms']:.0f} | {n['warm_ms']:.0f} | {p['requests']} | {'yes' if ok else 'NO'} |")
    med = lambda rows, k: statistics.median(rows[t][k] for t in ids)  # noqa: E731
    ratio = lambda k: statistics.median(ngram[t][k] / plain[t][k] for t in ids)  # noqa: E731
    sd = nm["spec_decode"]
    drafted, accepted = sd["vllm:spec_decode_num_draft_tokens"], sd["vllm:spec_decode_num_accepted_tokens"]
    share = f" ({accepted / drafted:.0%})" if drafted else ""
    loads = [r["load"] for r in list(plain.values()) + list(ngram.values())]
    out += ["", f"Medians over {len(ids)} lines: plain cold {med(plain, 'cold_ms'):.0f} ms, n-gram cold "
            f"{med(ngram, 'cold_ms'):.0f} ms (per-line ratio {ratio('cold_ms'):.2f}x); plain warm "
            f"{med(plain, 'warm_ms'):.0f} ms, n-gram warm {med(ngram, 'warm_ms'):.0f} ms ({ratio('warm_ms'):.2f}x). "
            f"The n-gram server drafted {drafted:.0f} tokens in {sd['vllm:spec_decode_num_drafts']:.0f} drafts and "
            f"accepted {accepted:.0f}{share} (cold and warm passes together, its warm-up request included).",
            "", f"Same tokens on both servers, cold and warm: {same} of {len(ids)}. LLM exact match: "
            f"{sum(plain[t]['em'] for t in ids)} of {len(ids)}. 1-minute load average while measuring: median "
            f"{statistics.median(loads):.1f}, max {max(loads):.1f} (2 cores)."]
    text = "\n".join(out) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="one pass against one server")
    m.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model>")
    m.add_argument("--label", required=True, help="plain or ngram, for the report")
    m.add_argument("--rows", required=True, help="the pass's JSONL (under build/)")
    m.add_argument("--n-lines", type=int, default=10)
    m.add_argument("--lines-from", default=None, help="take the task ids of this earlier pass (no SLM run)")
    m.add_argument("--slm", default="qwen2.5-coder-0.5b")
    m.add_argument("--max-left-tokens", type=int, default=512)
    m.add_argument("--server-note", default="")
    m.set_defaults(func=measure)
    r = sub.add_parser("report", help="the markdown table from a plain and an n-gram pass")
    r.add_argument("plain")
    r.add_argument("ngram")
    r.add_argument("--out", default=str(OUT))
    r.set_defaults(func=report)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
