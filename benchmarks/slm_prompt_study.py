"""Which prompt makes the local model (the 0.5B) right more often? A study for the cascade's config.

MCCom's LLM share can never drop below the SLM's miss rate (every rejected suggestion goes to
the LLM), and in ``benchmarks/results/cascade.md`` that floor, 64%, is what keeps the cascade
from the issue's targets. Two changes could raise the SLM's exact match without a bigger model:

* ``fim``: Qwen2.5-Coder's fill-in-the-middle format, which shows the code after the cursor
  (the cascade shows only the left context). A FIM prompt ends in a special token, so token
  healing cannot re-type the cursor line's last token (its indentation), and the model
  sometimes writes a few more spaces first. Every task's cursor sits right after the line's
  indentation and no ground truth starts with whitespace, so leading spaces and tabs are
  removed from what the user sees (an editor would not insert them either); confidence then
  skips the leading whitespace-only tokens.
* ``novel``: the retrieved block without the windows that repeat left context the prompt
  already shows (57-67% of the block in cascade.md; :func:`mccom_core.lab.retrieval_study.novel_hits`):
  round 1 asks for 4x top-k windows and keeps the best top-k of the others.

Variants (the SLM alone, cold, same tasks, same decoding as the cascade's ``slm`` branch):
``left`` (the cascade's SLM branch, recomputed: its output must equal the stored row's),
``left+novel``, ``fim``, ``fim+novel``. Tasks are the first ``--per-kind`` of each kind in the
runner's order, taken from those with a stored ``slm`` row of the cascade's config.

Rows go to ``benchmarks/results/slm_prompt_rows.jsonl`` as they are measured (reruns resume);
the table goes to ``benchmarks/results/slm_prompt.md``::

    python benchmarks/slm_prompt_study.py --per-kind 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mccom_core.cascade.snapshots import materialize  # noqa: E402
from mccom_core.cascade.tasks import read_tasks, task_context  # noqa: E402
from mccom_core.cascade.engine import CascadeConfig, config_hash  # noqa: E402
from mccom_core.lm.decoding import complete  # noqa: E402
from mccom_core.lm.drafting import make_drafter  # noqa: E402
from mccom_core.errors import MccomError  # noqa: E402
from mccom_core.cascade.metrics import edit_similarity, exact_match  # noqa: E402
from mccom_core.paths import DEFAULT_TASKS  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, build_prompt, truncate_left  # noqa: E402
from mccom_core.retrieval.queries import CompletionSite  # noqa: E402
from mccom_core.retrieval.retrievers import get_retriever, load_index  # noqa: E402
from mccom_core.retrieval.prompt import fit_block  # noqa: E402
from mccom_core.lab.retrieval_study import block_makeup, novel_hits  # noqa: E402
from mccom_core.cascade.runner import read_results, select_tasks  # noqa: E402
from mccom_core.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from mccom_core.provenance import package_versions  # noqa: E402
from mccom_core.lab.study import paired_difference  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("left", "left+novel", "fim", "fim+novel")


def shown_fim(out, tokenizer, n_conf: int) -> tuple[str, float, bool]:
    """What the user sees of a FIM completion at a cursor after indentation (without leading
    spaces), its confidence (mean probability of the first ``n_conf`` tokens after the leading
    whitespace-only ones), and whether it began without extra whitespace."""
    text = out.text
    shown = text.lstrip(" \t")
    ok = shown == text
    probs = list(out.token_probs)
    first = next((i for i, t in enumerate(out.token_ids) if tokenizer.decode([t]).strip()), len(probs))
    head = probs[first:first + n_conf]
    return shown, float(np.mean(head)) if head else 0.0, ok


def run_variant(variant, lm, task, left, right, hits, config: CascadeConfig) -> dict:
    fim = variant.startswith("fim")
    tok = lm.tokenizer
    t0 = time.perf_counter()
    shown_left = truncate_left(left, tok, config.max_left_tokens)
    if variant.endswith("novel"):
        hits = novel_hits(hits, task.path, task.span0, shown_left, config.retrieval.top_k)
    else:
        hits = hits[: config.retrieval.top_k]
    block = fit_block(hits, tok, config.retrieved_tokens) if hits else None
    block_ms = (time.perf_counter() - t0) * 1e3
    prompt = build_prompt(left, right, tok, PromptConfig(max_left_tokens=config.max_left_tokens,
                                                         format="fim" if fim else "left"),
                          prefix=block.text if block else "")
    right_head = "\n".join(right.split("\n")[: config.draft_right_lines])
    extra = tuple(block.snippets if block else ()) + ((right_head,) if right_head else ())
    drafter = make_drafter(config.stage1_drafter, draft_len=config.context_draft_len)
    out = complete(lm, prompt, config.decode_config(task.kind), drafter, extra)
    if fim:
        shown, confidence, indent_ok = shown_fim(out, tok, config.confidence_tokens)
    else:
        shown, confidence, indent_ok = out.text, out.confidence, True
    makeup = block_makeup(block.hits if block else [], task.path, task.span0, shown_left)
    truth = task.ground_truth.strip()
    return {
        "task_id": task.task_id, "kind": task.kind, "variant": variant, "prediction": shown,
        "em": exact_match(shown, task.ground_truth), "es": edit_similarity(shown, task.ground_truth),
        "confidence": confidence, "indent_ok": indent_ok, "stop_reason": out.stop_reason,
        "prompt_tokens": out.prompt_tokens, "right_tokens": prompt.right_tokens,
        "windows": len(block.hits) if block else 0, **{f"block_{k}": v for k, v in makeup.items()},
        "truth_in_block": bool(block) and bool(truth) and truth in block.text,
        "block_ms": block_ms, "prefill_ms": out.prefill_ms, "decode_ms": out.decode_ms + out.draft_ms,
    }


def measure(args, config: CascadeConfig) -> None:
    from mccom_core.lm.models import load_model

    stored = read_results(args.cascade_rows, config_hash(config))
    slm_rows = stored[stored["branch"] == "slm"].set_index("task_id") if len(stored) else stored
    tasks = [t for t in select_tasks(read_tasks(args.tasks).tasks) if t.task_id in slm_rows.index]
    by_kind: dict[str, list] = {}
    for t in tasks:
        by_kind.setdefault(t.kind, []).append(t)
    chosen = [t for k in sorted(by_kind) for t in by_kind[k][: args.per_kind]]
    done = {(r["task_id"], r["variant"]) for r in read_jsonl(args.rows)}
    todo = [t for t in chosen if any((t.task_id, v) not in done for v in VARIANTS)]
    if not todo:
        return
    lm = load_model(config.slm, device=args.device)
    retriever = get_retriever("round1", config.retrieval)
    indexes, meta = {}, {"slm_spec": config.slm, "config_hash": config_hash(config), "versions": package_versions()}
    with JsonlWriter(args.rows) as writer:
        for i, task in enumerate(todo):
            try:
                root = materialize(task.repo, task.repo_hash)
                left, right = task_context(task, root)
                if root not in indexes:
                    indexes[root] = load_index(root, config.retrieval)
            except MccomError as exc:
                print(f"skipped {task.task_id}: {exc}", file=sys.stderr)
                continue
            hits = retriever.retrieve(indexes[root], CompletionSite(left, right, task.path, task.span0),
                                      top_k=4 * config.retrieval.top_k)
            for variant in VARIANTS:
                if (task.task_id, variant) in done:
                    continue
                row = run_variant(variant, lm, task, left, right, hits, config)
                if variant == "left":
                    row["same_as_cascade"] = row["prediction"] == slm_rows.loc[task.task_id, "prediction"]
                writer.write({**row, **meta, "load_average": round(os.getloadavg()[0], 2),
                              "written_at": time.time()})
            print(f"{i + 1}/{len(todo)} {task.task_id}", file=sys.stderr, flush=True)


def _pct(x) -> str:
    return "" if pd.isna(x) else f"{100 * x:.1f}"


def report(rows: pd.DataFrame, args) -> str:
    complete_ids = rows.groupby("task_id")["variant"].nunique().loc[lambda s: s == len(VARIANTS)].index
    rows = rows[rows["task_id"].isin(complete_ids)]
    n = rows["task_id"].nunique()
    per_kind = rows.drop_duplicates("task_id")["kind"].value_counts().to_dict()
    lines = [
        "# The local model's prompt: left context vs fill-in-the-middle, and a block without repeats", "",
        f"Generated by `benchmarks/slm_prompt_study.py --per-kind {args.per_kind}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, 2-core CPU, model `{CascadeConfig().slm}`. "
        f"{n} tasks with every variant ({per_kind}), the first of each kind in the runner's order. "
        f"1-minute load while measuring: median {rows['load_average'].median():.2f}, max {rows['load_average'].max():.2f}.", "",
        "Each variant is the cascade's `slm` branch (1,024-token left budget, 512-token round-1 block, "
        "stage-1 drafting, the cascade's stop rules) with one change; see the script's docstring. "
        "*Block repeats shown left*: share of the block's windows whose lines the prompt shows anyway.", "",
        "| variant | kind | n | EM % | ES % | mean confidence | prompt tokens | windows | block repeats shown left % "
        "| truth in block % | no leading whitespace % | prefill s | decode s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("all", *sorted(rows["kind"].unique())):
        sub = rows if kind == "all" else rows[rows["kind"] == kind]
        for variant in VARIANTS:
            v = sub[sub["variant"] == variant]
            share = v["block_visible_left"].sum() / max(v["windows"].sum(), 1)
            lines.append(
                f"| {variant} | {kind} | {len(v)} | {_pct(v['em'].mean())} | {_pct(v['es'].mean())} "
                f"| {v['confidence'].mean():.2f} | {v['prompt_tokens'].mean():.0f} | {v['windows'].mean():.1f} "
                f"| {_pct(share)} | {_pct(v['truth_in_block'].mean())} | {_pct(v['indent_ok'].mean())} "
                f"| {v['prefill_ms'].mean() / 1e3:.2f} | {v['decode_ms'].mean() / 1e3:.2f} |")
    lines += ["", "Paired against `left` (the cascade's prompt), exact match, same tasks:", ""]
    paired = rows.rename(columns={"variant": "branch"})
    for variant in VARIANTS[1:]:
        d = paired_difference(paired, variant, "left", "em")
        lines.append(f"- `{variant}` minus `left`: {100 * d['diff']:+.1f} points (95% paired bootstrap "
                     f"{100 * d['lo']:+.1f} to {100 * d['hi']:+.1f}); better on {d['wins']}, worse on "
                     f"{d['losses']} of {d['n']} tasks.")
    same = rows.loc[rows["variant"] == "left", "same_as_cascade"]
    lines += ["", f"Check: the recomputed `left` output equals the cascade's stored SLM output on "
                  f"{int(same.sum())} of {len(same)} tasks.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--tasks", default=str(DEFAULT_TASKS))
    parser.add_argument("--cascade-rows", type=Path, default=RESULTS / "cascade_rows.jsonl")
    parser.add_argument("--rows", type=Path, default=RESULTS / "slm_prompt_rows.jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS / "slm_prompt.md")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    config = CascadeConfig()
    if not args.report_only:
        measure(args, config)
    if not args.rows.exists():
        print(f"no rows in {args.rows}", file=sys.stderr)
        return 1
    rows = pd.DataFrame(read_jsonl(args.rows))
    text = report(rows, args)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
