"""Per escalated line, where the LLM's time goes: in-process vs served cold, warm and stage 2 (issue 20, item 4).

Takes ``--lines`` escalated lines of the shipped benchmark (tasks whose committed SLM row is
not an exact match, alternating `line` and `stmt`), each with the cascade's LLM-direct prompt
(round-1 retrieval, the retrieved block ahead of the left context, the cascade's budgets,
stop rules and token healing; :func:`server_concurrency.escalated_prompts`), made unique per
run by a comment line ahead of the block so the server has not seen it. One client, one
request at a time, server and client on this machine. Per line, in this order:

* **server cold**: plain greedy on the server, the first time it sees the prompt;
* **server warm**: the same again (the prompt in vLLM's prefix cache);
* **stage 2**: the same with the SLM's rejected output (its committed row's token ids) as the
  draft, verified in one ``prompt_logprobs`` request, then greedy from the accepted prefix
  (:func:`mccom_core.lm.remote_decoding.complete_remote`). It runs after warm, so its healing
  and continuation requests read the cache; its verification request prefills in full;
* **in-process**: plain greedy with the same model loaded here
  (:func:`mccom_core.lm.decoding.complete`), while the server idles.

Client columns: the wall time of the call, split into the first request's time to its first
token ("first token", streamed) and the rest. Server columns: vLLM's own seconds for the
line's requests (a healed prompt makes a constrained one-token request before the free one),
from its Prometheus histograms (``vllm:request_queue_time_seconds``, ``..._prefill_...``,
``..._decode_...``, ``vllm:e2e_request_latency_seconds``) read before and after each call:
queue, prefill, decode, end to end. "Outside" is the client's wall time minus the server's
end-to-end time: HTTP, JSON, the client's tokenization and stop checks (the network here is
the loopback). Tokens of all four are compared.

Rows go to ``--rows`` as they are measured; a rerun with the same file resumes.

    mccom serve qwen2.5-coder-1.5b --port 8391 --eager --kv-cache-gb 1 &   # wait for "ready"
    python benchmarks/server_lines.py --spec openai:http://127.0.0.1:8391/v1#qwen2.5-coder-1.5b --lines 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from server_concurrency import escalated_prompts, metric_per_line, server_metrics  # noqa: E402
from server_stage2 import server_version  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "server_lines.md"
MODES = ("server cold", "server warm", "stage 2", "in-process")
SERVER_KEYS = ("queue", "prefill", "decode", "e2e")


def slm_token_ids(task_ids) -> dict[str, list[int]]:
    """The committed SLM row's output token ids per task (the draft stage 2 verifies)."""
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.cascade.runner import read_results

    rows = read_results(ROOT / "benchmarks" / "results" / "cascade_rows.jsonl", config=CascadeConfig())
    rows = rows[rows["branch"] == "slm"]
    return {r.task_id: list(r.token_ids) for r in rows.itertuples() if r.task_id in set(task_ids)}


def timed_call(spec: str, fn, stage2: bool = False) -> dict:
    """Run ``fn`` (one completion) with the server's histograms read around it."""
    before = server_metrics(spec) if spec else None
    t0 = time.perf_counter()
    out = fn()
    wall = (time.perf_counter() - t0) * 1e3
    server = {}
    if spec:  # the server may log a finished request's histograms just after the response: wait for them
        deadline = time.monotonic() + 5.0
        while True:
            server = metric_per_line(before, server_metrics(spec), 1)
            if not server or server["requests"] >= (out.extra.get("requests") or 1) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    row = {"wall_ms": wall, "first_ms": out.prefill_ms, "rest_ms": out.decode_ms,
           "token_ids": list(out.token_ids), "text": out.text, "requests": out.extra.get("requests"),
           "prompt_tokens": out.prompt_tokens,
           **{f"server_{k}_ms": 1e3 * server[k] for k in SERVER_KEYS if k in server},
           "server_requests": server.get("requests")}
    if "e2e" in server:
        row["outside_ms"] = wall - 1e3 * server["e2e"]
    if stage2:
        row.update(verify_ms=out.extra["verify_request_ms"], drafted=out.n_drafted, accepted=out.n_accepted,
                   dropped=bool(out.extra.get("draft_dropped")))
    return row


def measure(line, llm, local, spec: str, tok, config, draft_ids, tag: str) -> dict:
    from mccom_core.lm.decoding import complete
    from mccom_core.lm.prompts import PromptConfig, build_prompt
    from mccom_core.lm.remote_decoding import complete_remote

    task_id, left, right, block, decode = line
    prompt = build_prompt(left, right, tok, PromptConfig(max_left_tokens=config.max_left_tokens),
                          prefix=f"# {tag} {task_id}\n" + block)
    modes = {
        "server cold": timed_call(spec, lambda: complete_remote(llm, prompt, decode)),
        "server warm": timed_call(spec, lambda: complete_remote(llm, prompt, decode)),
        "stage 2": timed_call(spec, lambda: complete_remote(llm, prompt, decode, draft_ids=draft_ids), True),
    }
    if local is not None:
        modes["in-process"] = timed_call("", lambda: complete(local, prompt, decode))
    ref = modes["server cold"]["token_ids"]
    return {"task_id": task_id, "kind": task_id.split("/")[1], "prompt_tokens": modes["server cold"]["prompt_tokens"],
            "tokens": len(ref), "slm_tokens": len(draft_ids), "modes": modes,
            "identical": all(m["token_ids"] == ref for m in modes.values()),
            "load": os.getloadavg()[0], "measured_at": time.time()}


def _ms(v) -> str:
    return "" if v is None else f"{v:.0f}"


def report(rows: list[dict], header: str) -> str:
    out = [header, "", "## Per line", "",
           "Client wall ms (first token + rest) and, in brackets, the server's queue / prefill / decode ms.", "",
           "| line | prompt tok | tokens | server cold | server warm | stage 2 (accepted of drafted) "
           "| in-process | same tokens |", "|---|---:|---:|---|---|---|---|---|"]

    def cell(m: dict | None, stage2: bool = False) -> str:
        if m is None:
            return ""
        server = (f" [{_ms(m.get('server_queue_ms'))} / {_ms(m.get('server_prefill_ms'))} / "
                  f"{_ms(m.get('server_decode_ms'))}]" if m.get("server_e2e_ms") is not None else "")
        draft = ""
        if stage2:
            draft = " (dropped)" if m.get("dropped") else f" ({m.get('accepted')} of {m.get('drafted')})"
        return f"{m['wall_ms']:.0f} = {m['first_ms']:.0f} + {m['rest_ms']:.0f}{server}{draft}"

    for r in rows:
        m = r["modes"]
        out.append(f"| {r['task_id']} | {r['prompt_tokens']} | {r['tokens']} | {cell(m['server cold'])} "
                   f"| {cell(m['server warm'])} | {cell(m['stage 2'], True)} | {cell(m.get('in-process'))} "
                   f"| {'yes' if r['identical'] else 'NO'} |")
    if not rows:
        return "\n".join(out) + "\n"
    out += ["", "## Medians over the lines", "",
            "| mode | lines | client wall ms | first token ms | rest ms | requests | server queue ms "
            "| server prefill ms | server decode ms | server end to end ms | outside the server ms "
            "| wall / server cold (median per line) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in MODES:
        have = [r for r in rows if mode in r["modes"]]
        if not have:
            continue

        def med(key):
            vals = [r["modes"][mode].get(key) for r in have]
            vals = [v for v in vals if v is not None]
            return statistics.median(vals) if vals else None

        ratio = statistics.median(r["modes"][mode]["wall_ms"] / r["modes"]["server cold"]["wall_ms"] for r in have)
        req = med("requests")
        out.append(f"| {mode} | {len(have)} | {_ms(med('wall_ms'))} | {_ms(med('first_ms'))} | {_ms(med('rest_ms'))} "
                   f"| {'' if req is None else f'{req:g}'} | {_ms(med('server_queue_ms'))} "
                   f"| {_ms(med('server_prefill_ms'))} | {_ms(med('server_decode_ms'))} | {_ms(med('server_e2e_ms'))} "
                   f"| {_ms(med('outside_ms'))} | {ratio:.2f}x |")
    s2 = [r["modes"]["stage 2"] for r in rows]
    drafted, accepted = sum(m.get("drafted") or 0 for m in s2), sum(m.get("accepted") or 0 for m in s2)
    loads = [r["load"] for r in rows]
    out += ["", f"Same tokens in all modes: {sum(r['identical'] for r in rows)} of {len(rows)} lines. "
            f"Stage 2 accepted {accepted} of {drafted} drafted tokens; drafts dropped (healed token differs): "
            f"{sum(bool(m.get('dropped')) for m in s2)}; median verification request "
            f"{statistics.median(m.get('verify_ms') or 0 for m in s2):.0f} ms. 1-minute load average after each "
            f"line: median {statistics.median(loads):.1f}, max {max(loads):.1f} (2 cores)."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model> (the LLM)")
    ap.add_argument("--lines", type=int, default=10, help="escalated lines (alternating line / stmt)")
    ap.add_argument("--no-local", action="store_true", help="skip the in-process model")
    ap.add_argument("--server-note", default="", help="how the server was started, for the report")
    ap.add_argument("--rows", type=Path, default=ROOT / "build" / "server_lines_rows.jsonl",
                    help="rows, appended as measured (a rerun resumes)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds a client waits for one request")
    args = ap.parse_args(argv)

    from mccom_core.errors import MccomError
    from mccom_core.lm.models import load_model
    from mccom_core.lm.remote import load_remote
    from mccom_core.provenance import cpu_name

    lines, tok, config = escalated_prompts(args.spec, args.lines)
    drafts = slm_token_ids([line[0] for line in lines])
    done = {}
    if args.rows.exists():
        for raw in args.rows.read_text().splitlines():
            if raw.strip():
                row = json.loads(raw)
                done[row["task_id"]] = row
    llm = load_remote(args.spec, timeout_s=args.timeout, max_retries=0)
    llm.warm_up()
    local = None if args.no_local else load_model(llm.config.model, device="cpu")
    tag = f"mccom server_lines {time.time_ns()}"
    args.rows.parent.mkdir(parents=True, exist_ok=True)
    for i, line in enumerate(lines):
        if line[0] in done:
            continue
        try:
            row = measure(line, llm, local, args.spec, tok, config, drafts.get(line[0], []), tag)
        except MccomError as exc:
            print(f"skipped {line[0]}: {exc}", file=sys.stderr)
            continue
        done[line[0]] = row
        with args.rows.open("a") as f:
            f.write(json.dumps(row) + "\n")
        m = row["modes"]
        print(f"[{i + 1}/{len(lines)}] {line[0]}: " + ", ".join(f"{k} {v['wall_ms']:.0f} ms" for k, v in m.items()),
              file=sys.stderr, flush=True)
    rows = [done[line[0]] for line in lines if line[0] in done]
    command = "python benchmarks/server_lines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = datetime.fromtimestamp(max(r["measured_at"] for r in rows), timezone.utc) if rows else None
    header = (f"# Where an escalated line's LLM time goes: in-process vs served\n\n"
              f"Generated by `{command}`; last line measured {stamp:%Y-%m-%d %H:%M} UTC. Machine: {cpu_name()}, "
              f"Python {platform.python_version()}, client and server on the same machine (loopback network). "
              f"Server: {args.spec}, {server_version(llm.config.base_url)}"
              f"{', ' + args.server_note if args.server_note else ''}. In-process: {llm.config.model}, float32, "
              f"this process. {len(rows)} escalated lines of the shipped benchmark (the committed SLM row is not an "
              f"exact match), the cascade's LLM-direct prompts (round-1 retrieval, token healing). See the script's "
              f"docstring for the order and what each column is.") if rows else "# no rows"
    text = report(rows, header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
