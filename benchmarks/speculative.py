"""Two-stage speculative decoding on real lines, against plain greedy and transformers.

For each `line` task of the default benchmark (real repositories, see data/benchmarks/):

* the 0.5B (SLM): plain greedy, stage 1 (`context` drafter), and transformers'
  `generate(prompt_lookup_num_tokens=10)`;
* the 1.5B (LLM), on the tasks where the SLM's output is not an exact match: plain greedy,
  stage 2 (`cross-model`: the SLM output as the draft), stage 2 with the stage-1 fallback
  (`cross-model+context`), and transformers' `generate(assistant_model=<the 0.5B>)`.

So that transformers sees exactly the prompt ids our loop sees, the cursor is put at the start
of the target line (the model writes the indentation too) and token healing is off; the
transformers runs generate exactly as many tokens as plain greedy did, and every output is
checked to be identical. Decode time of a transformers run is its total minus the time of the
same call with max_new_tokens=1 (its prefill).

Rows are appended to a JSONL file as they are measured; rerunning resumes. The summary is
printed and written as Markdown.

    python benchmarks/speculative.py --n-tasks 120 --max-left-tokens 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mccom_core.benchmarks import load_tasks, materialize, task_context  # noqa: E402
from mccom_core.decoding import DecodeConfig, complete  # noqa: E402
from mccom_core.drafting import make_drafter  # noqa: E402
from mccom_core.errors import MccomError  # noqa: E402
from mccom_core.metrics import exact_match  # noqa: E402
from mccom_core.models import load_model  # noqa: E402
from mccom_core.prompts import PromptConfig, build_prompt  # noqa: E402

CFG = DecodeConfig(stop="line", max_new_tokens=48, token_healing=False)


def pick_tasks(n: int):
    tasks = load_tasks(ROOT / "data" / "benchmarks" / "default" / "line")
    by_repo: dict[str, list] = {}
    for t in tasks:
        by_repo.setdefault(t.repo, []).append(t)
    out, i = [], 0
    while len(out) < n and any(i < len(v) for v in by_repo.values()):
        for repo in sorted(by_repo):
            if i < len(by_repo[repo]) and len(out) < n:
                out.append(by_repo[repo][i])
        i += 1
    return out


def timed_generate(model, ids, n_new: int, **kw):
    """(token list, total ms, prefill ms) of a greedy transformers generate call."""
    mask = torch.ones_like(ids)
    common = dict(attention_mask=mask, do_sample=False, pad_token_id=0, **kw)
    t0 = time.perf_counter()
    model.generate(ids, max_new_tokens=1, min_new_tokens=1, **common)
    prefill = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n_new, min_new_tokens=n_new, **common)
    total = (time.perf_counter() - t0) * 1e3
    return out[0, ids.shape[1]:].tolist(), total, prefill


def ours(c):
    return {"total_ms": c.total_ms, "prefill_ms": c.prefill_ms, "decode_ms": c.decode_ms + c.draft_ms,
            "passes": c.n_forward, "drafted": c.n_drafted, "accepted": c.n_accepted, "tokens": len(c.token_ids)}


def measure(task, snapshot, slm, llm, max_left: int) -> dict:
    left, right = task_context(task, snapshot)
    line_start = left.rfind("\n") + 1
    left, right = left[:line_start], left[line_start:] + task.ground_truth + right
    truth = right.split("\n", 1)[0]
    prompt = build_prompt(left, right, slm.tokenizer, PromptConfig(max_left_tokens=max_left))
    ids = slm.tokenizer(prompt.text, return_tensors="pt", add_special_tokens=False).input_ids
    row = {"task_id": task.task_id, "repo": task.repo, "prompt_tokens": ids.shape[1],
           "load": os.getloadavg()[0]}

    plain = complete(slm, prompt, CFG)
    stage1 = complete(slm, prompt, CFG, drafter=make_drafter("context"))
    n = len(plain.token_ids)
    pld, total, pre = timed_generate(slm.model, ids, n, prompt_lookup_num_tokens=10)
    row["slm"] = {
        "em": exact_match(plain.text, truth), "plain": ours(plain), "stage1": ours(stage1),
        "pld": {"total_ms": total, "prefill_ms": pre, "decode_ms": total - pre, "tokens": n},
        "identical": stage1.token_ids == plain.token_ids and pld == list(plain.token_ids),
    }
    if row["slm"]["em"]:
        return row

    draft = dict(draft_ids=plain.token_ids, draft_text=slm.tokenizer.decode(list(plain.token_ids)))
    lplain = complete(llm, prompt, CFG)
    stage2 = complete(llm, prompt, CFG, drafter=make_drafter("cross-model"), **draft)
    stage2c = complete(llm, prompt, CFG, drafter=make_drafter("cross-model+context"), **draft)
    m = len(lplain.token_ids)
    assisted, total, pre = timed_generate(llm.model, ids, m, assistant_model=slm.model)
    row["llm"] = {
        "plain": ours(lplain), "stage2": ours(stage2), "stage2_context": ours(stage2c),
        "assisted": {"total_ms": total, "prefill_ms": pre, "decode_ms": total - pre, "tokens": m},
        "identical": stage2.token_ids == lplain.token_ids == stage2c.token_ids
        and assisted == list(lplain.token_ids),
    }
    return row


def q(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] if values else float("nan")


def summarize(rows: list[dict]) -> str:
    lines = []
    def block(title, key, methods, base):
        sub = [r[key] for r in rows if key in r]
        if not sub:
            return
        lines.append(f"\n### {title} ({len(sub)} lines, outputs identical on {sum(s['identical'] for s in sub)})\n")
        lines.append("| method | decode median ms | decode p90 ms | total median ms | total p90 ms | decode speedup vs plain (median of ratios) | total speedup |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for name in methods:
            dec = [s[name]["decode_ms"] for s in sub]
            tot = [s[name]["total_ms"] for s in sub]
            sd = statistics.median(s[base]["decode_ms"] / max(s[name]["decode_ms"], 1e-6) for s in sub if s[base]["tokens"] > 1)
            st = statistics.median(s[base]["total_ms"] / s[name]["total_ms"] for s in sub)
            lines.append(f"| {name} | {statistics.median(dec):.0f} | {q(dec, .9):.0f} | {statistics.median(tot):.0f} | {q(tot, .9):.0f} | {sd:.2f}x | {st:.2f}x |")
        for name in methods:
            if "drafted" not in sub[0][name] or name == base:
                continue
            drafted = sum(s[name]["drafted"] for s in sub)
            accepted = sum(s[name]["accepted"] for s in sub)
            passes = sum(s[name]["passes"] for s in sub)
            tokens = sum(s[name]["tokens"] for s in sub)
            rounds = sum(s[name]["passes"] for s in sub if s[name]["drafted"])  # upper bound on draft rounds
            a = accepted / drafted if drafted else 0.0
            g = drafted / rounds if rounds else 0.0
            theory = (1 - a ** (g + 1)) / (1 - a) if a < 1 else g + 1
            lines.append(f"\n{name}: acceptance rate a = {a:.2f}, mean draft length g = {g:.1f}, "
                         f"accepted per pass = {accepted / passes:.2f}; tokens per pass: measured "
                         f"{tokens / passes:.2f}, theoretical (1 - a^(g+1)) / (1 - a) = {theory:.2f}")
    block("Stage 1 on the 0.5B", "slm", ["plain", "stage1", "pld"], "plain")
    block("Stage 2 on the 1.5B (lines where the 0.5B missed)", "llm", ["plain", "stage2", "stage2_context", "assisted"], "plain")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tasks", type=int, default=120)
    ap.add_argument("--max-left-tokens", type=int, default=512)
    ap.add_argument("--rows", default=str(ROOT / "benchmarks" / "results" / "speculative_rows.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speculative.md"))
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    rows_path = Path(args.rows)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["task_id"]] = r
    if not args.summary_only:
        slm = load_model("qwen2.5-coder-0.5b", device="auto")
        llm = load_model("qwen2.5-coder-1.5b", device="auto")
        snapshots: dict[str, Path] = {}
        with rows_path.open("a") as fh:
            for i, task in enumerate(pick_tasks(args.n_tasks)):
                if task.task_id in done:
                    continue
                try:
                    snap = snapshots.setdefault(task.repo, materialize(task.repo, task.repo_hash))
                    row = measure(task, snap, slm, llm, args.max_left_tokens)
                except MccomError as exc:
                    print(f"skipped {task.task_id}: {exc}", file=sys.stderr)
                    continue
                row["max_left_tokens"] = args.max_left_tokens
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                done[task.task_id] = row
                print(f"[{i + 1}/{args.n_tasks}] {task.task_id} slm {row['slm']['plain']['tokens']} tok "
                      f"identical={row['slm']['identical']}{' llm identical=' + str(row['llm']['identical']) if 'llm' in row else ''}",
                      flush=True)
    rows = list(done.values())
    loads = [r["load"] for r in rows]
    header = (f"# Speculative decoding on real lines\n\nMachine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, device "
              f"{'cuda' if torch.cuda.is_available() else 'cpu'}. Left context up to "
              f"{rows[0]['max_left_tokens'] if rows else '?'} tokens; cursor at line start, token healing off (see the "
              f"script's docstring). 1-minute load average while measuring: median {statistics.median(loads) if loads else 0:.1f} "
              f"(2 cores: above 2 means other work shared the CPU).\n\nCommand: `python benchmarks/speculative.py "
              f"--n-tasks {args.n_tasks} --max-left-tokens {args.max_left_tokens}`\n")
    text = header + summarize(rows) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
