"""Two-stage speculative decoding on real lines, against plain greedy and transformers.

For each `line` task of the default benchmark (real repositories, see data/benchmarks/):

* the 0.5B (SLM): plain greedy, stage 1 (`context` drafter with its defaults: drafts of up
  to 2 tokens on a CPU), stage 1 with drafts of up to 10 tokens (`stage1_long`, the GPU
  default), and transformers' `generate(prompt_lookup_num_tokens=10)`;
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

    python benchmarks/speculative.py --n-tasks 100 --max-left-tokens 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mccom_core.cascade.tasks import load_tasks, task_context  # noqa: E402
from mccom_core.cascade.snapshots import materialize  # noqa: E402
from mccom_core.lm.decoding import DecodeConfig, complete  # noqa: E402
from mccom_core.lm.drafting import make_drafter  # noqa: E402
from mccom_core.errors import MccomError  # noqa: E402
from mccom_core.cascade.metrics import exact_match  # noqa: E402
from mccom_core.lm.models import load_model  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, build_prompt  # noqa: E402
from mccom_core.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402
from mccom_core.lab.speculative import acceptance, method_frame, speedups  # noqa: E402

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
            "passes": c.n_forward, "drafted": c.n_drafted, "accepted": c.n_accepted,
            "rounds": c.n_draft_rounds, "tokens": len(c.token_ids)}


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
    stage1_long = complete(slm, prompt, CFG, drafter=make_drafter("context", draft_len=10))
    n = len(plain.token_ids)
    pld, total, pre = timed_generate(slm.model, ids, n, prompt_lookup_num_tokens=10)
    row["slm"] = {
        "em": exact_match(plain.text, truth), "plain": ours(plain), "stage1": ours(stage1),
        "stage1_long": ours(stage1_long),
        "pld": {"total_ms": total, "prefill_ms": pre, "decode_ms": total - pre, "tokens": n},
        "identical": stage1.token_ids == plain.token_ids == stage1_long.token_ids
        and pld == list(plain.token_ids),
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


def pass_costs(lm, context: int = 512, sizes=(1, 2, 3, 4, 5, 8, 11), reps: int = 7) -> dict[int, float]:
    """Median ms of one forward pass over ``m`` new tokens after a ``context``-token cache.

    What a verification pass with ``m - 1`` draft tokens costs; it decides how long a draft
    may be before rejected tokens cost more than accepted ones save.
    """
    from mccom_core.lm.kv_cache import _crop, _new_cache

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 20000, (1, context), generator=gen, device="cpu").to(lm.device)
    cache = _new_cache(lm.model)
    lm.model(input_ids=ids, past_key_values=cache, use_cache=True)
    out = {}
    for m in sizes:
        times = []
        for _ in range(reps):
            inp = torch.randint(100, 20000, (1, m), generator=gen, device="cpu").to(lm.device)
            t0 = time.perf_counter()
            lm.model(input_ids=inp, past_key_values=cache, use_cache=True)
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
            _crop(cache, context)
        out[m] = statistics.median(times)
    return out


def summarize(rows: list[dict]) -> str:
    """Markdown tables from the rows, computed by :mod:`mccom_core.lab.speculative`."""
    frame = method_frame(rows)
    sp, acc = speedups(frame), acceptance(frame)
    titles = {"slm": "Stage 1 on the 0.5B", "llm": "Stage 2 on the 1.5B (lines where the 0.5B missed)"}
    lines = []
    for role, title in titles.items():
        sub = sp[sp.role == role]
        if sub.empty:
            continue
        block = [r[role] for r in rows if role in r]
        lines.append(f"\n### {title} ({len(block)} lines, outputs identical on {sum(b['identical'] for b in block)})\n")
        lines.append("| method | decode median ms | decode p90 ms | total median ms | total p90 ms | "
                     "decode speedup vs plain (median of ratios) | total speedup (median of ratios) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in sub.itertuples():
            lines.append(f"| {r.method} | {r.decode_ms:.0f} | {r.decode_p90_ms:.0f} | {r.total_ms:.0f} | "
                         f"{r.total_p90_ms:.0f} | {r.decode_speedup:.2f}x | {r.total_speedup:.2f}x |")
        for r in acc[acc.role == role].itertuples():
            lines.append(f"\n{r.method}: acceptance rate a = {r.acceptance:.2f}, mean draft length g = "
                         f"{r.draft_len:.1f}, accepted per pass = {r.accepted_per_pass:.2f}; tokens per pass: "
                         f"measured {r.tokens_per_pass:.2f}, theoretical (1 - a^(g+1)) / (1 - a) = "
                         f"{r.theoretical_tokens_per_pass:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tasks", type=int, default=100)
    ap.add_argument("--max-left-tokens", type=int, default=512)
    ap.add_argument("--rows", default=str(ROOT / "benchmarks" / "results" / "speculative_rows.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speculative.md"))
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    rows_path = Path(args.rows)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["task_id"]: r for r in read_jsonl(rows_path)}
    if not args.summary_only:
        slm = load_model("qwen2.5-coder-0.5b", device="auto")
        llm = load_model("qwen2.5-coder-1.5b", device="auto")
        costs = {name: pass_costs(lm) for name, lm in (("0.5B", slm), ("1.5B", llm))}
        Path(args.rows).with_name("speculative_pass_cost.json").write_text(json.dumps(costs, indent=1))
        snapshots: dict[str, Path] = {}
        with JsonlWriter(rows_path) as writer:
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
                writer.write(row)
                done[task.task_id] = row
                print(f"[{i + 1}/{args.n_tasks}] {task.task_id} slm {row['slm']['plain']['tokens']} tok "
                      f"identical={row['slm']['identical']}{' llm identical=' + str(row['llm']['identical']) if 'llm' in row else ''}",
                      flush=True)
    rows = list(done.values())
    loads = [r["load"] for r in rows]
    cost_path = Path(args.rows).with_name("speculative_pass_cost.json")
    cost_md = ""
    if cost_path.exists():
        costs = json.loads(cost_path.read_text())
        sizes = list(next(iter(costs.values())))
        cost_md = ("\n### Cost of one forward pass over m new tokens (512 cached), median ms\n\n"
                   "A verification pass with g draft tokens feeds m = g + 1 tokens.\n\n| model | "
                   + " | ".join(f"m={m}" for m in sizes) + " |\n|---|" + "---:|" * len(sizes) + "\n"
                   + "".join(f"| {name} | " + " | ".join(f"{v:.0f}" for v in c.values()) + " |\n"
                             for name, c in costs.items()))
    header = (f"# Speculative decoding on real lines\n\nMachine: {cpu_name()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, device "
              f"{'cuda' if torch.cuda.is_available() else 'cpu'}. Left context up to "
              f"{rows[0]['max_left_tokens'] if rows else '?'} tokens; cursor at line start, token healing off (see the "
              f"script's docstring). 1-minute load average while measuring: median {statistics.median(loads) if loads else 0:.1f} "
              f"(2 cores: above 2 means other work shared the CPU); "
              f"{sum(x > 2.5 for x in loads)} of {len(loads)} lines measured above 2.5.\n\nCommand: `python benchmarks/speculative.py "
              f"--n-tasks {args.n_tasks} --max-left-tokens {args.max_left_tokens}`\n")
    text = header + cost_md + summarize(rows) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
