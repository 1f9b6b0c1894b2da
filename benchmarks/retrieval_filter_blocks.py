"""What the redundancy filter changes in the cascade's retrieved block, on the benchmark's tasks.

No model runs: for the tasks of stored SLM rows (default: the committed cascade rows, the 200
tasks that also ran the retrieval ablation), each retriever's block is rebuilt as the cascade
builds it (``fit_block`` within ``retrieved_tokens`` of the LLM's tokenizer), once per filter
variant, with the prompt's shown context cut as ``build_prompt`` cuts it
(``redundancy.shown_context``). Per variant and retriever: windows per block, the share of them
by origin (``mccom_core.lab.retrieval_study.window_origin``: repeating the shown left context,
left beyond the prompt, after the cursor, other files) and how often the block holds the
ground truth, and holds it while the shown left context does not (a model-free proxy of what
the block adds for the LLM).

Run (about a minute for 200 tasks)::

    .venv/bin/python benchmarks/retrieval_filter_blocks.py [--all-tasks]

It prints Markdown and writes it to ``benchmarks/results/retrieval_filter_blocks.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mccom_core.cascade.engine import CascadeConfig
from mccom_core.lab.retrieval_study import ORIGINS, block_makeup, slm_sites
from mccom_core.lm.prompts import PromptConfig
from mccom_core.paths import PROJECT_ROOT
from mccom_core.retrieval.prompt import fit_block
from mccom_core.retrieval.redundancy import shown_context
from mccom_core.retrieval.retrievers import get_retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_round2 import CONFIG_HASH, legacy_config  # noqa: E402  (the rows and config studied)

ROWS = PROJECT_ROOT / "benchmarks" / "results" / "cascade_rows.jsonl"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "retrieval_filter_blocks.md"
RETRIEVERS = ("round1", "repocoder", "mccom-fused")
VARIANTS = {
    "off (legacy)": {},
    "span": {"exclude_visible": "span"},
    "span+text": {"exclude_visible": "span+text"},
    "span+text, dedupe": {"exclude_visible": "span+text", "dedupe": True},
}


def filter_blocks(results, tokenizer, config: CascadeConfig | None = None) -> pd.DataFrame:
    """One row per task, variant and retriever: the block's windows by origin and truth_in_block
    (``config``: the legacy one, RepoCoder's round-2 query, as when the table was made)."""
    config = config or legacy_config()
    prompt_config = PromptConfig(max_left_tokens=config.max_left_tokens)
    rows = []
    for task, _, index, site in slm_sites(results, config=config.retrieval, progress=False):
        site = shown_context(site, tokenizer, prompt_config)
        truth = task.ground_truth.strip()
        for variant, options in VARIANTS.items():
            retrieval = replace(config.retrieval, **options)
            for name in RETRIEVERS:
                block = fit_block(get_retriever(name, retrieval).retrieve(index, site), tokenizer,
                                  config.retrieved_tokens)
                rows.append({"task_id": task.task_id, "variant": variant, "retriever": name,
                             "windows": len(block.hits), "block_tokens": block.n_tokens,
                             **block_makeup(block.hits, task.path, task.span0, site.shown_left),
                             "truth_in_block": bool(truth) and truth in block.text,
                             "truth_new": bool(truth) and truth in block.text and truth not in site.shown_left})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.groupby(["variant", "retriever"], sort=False)
    out = g.agg(n=("task_id", "nunique"), windows=("windows", "mean"), block_tokens=("block_tokens", "mean"),
                truth_in_block=("truth_in_block", "mean"), truth_new=("truth_new", "mean"))
    total = g["windows"].sum().where(lambda s: s > 0)
    for origin in ORIGINS:
        out[origin] = g[origin].sum() / total
    return out.reset_index()


def render(table: pd.DataFrame) -> str:
    head = ("| filter | retriever | tasks | windows per block | block tokens | repeats the shown left % "
            "| left, beyond the prompt % | after the cursor % | other files % | ground truth in block % "
            "| ... and not in the shown left % |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r.variant} | {r.retriever} | {r.n} | {r.windows:.2f} | {r.block_tokens:.0f} | {100 * r.visible_left:.1f} "
        f"| {100 * r.left_beyond_prompt:.1f} | {100 * r.after_cursor:.1f} | {100 * r.other_file:.1f} "
        f"| {100 * r.truth_in_block:.1f} | {100 * r.truth_new:.1f} |\n" for r in table.itertuples())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument("--config-hash", default=CONFIG_HASH)
    parser.add_argument("--all-tasks", action="store_true", help="every task with an SLM row, not only the ablation's")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from mccom_core.lm.models import load_tokenizer

    rows = pd.read_json(args.rows, lines=True)
    rows = rows[rows["config_hash"] == args.config_hash]
    if not args.all_tasks:
        rows = rows[rows["task_id"].isin(rows.loc[rows["branch"] == "llm_rejected_repocoder", "task_id"])]
    slm = rows[rows["branch"] == "slm"]
    table = summary(filter_blocks(slm.to_dict("records"), load_tokenizer(slm["llm_spec"].iloc[0])))
    text = ("# The redundancy filter and the cascade's retrieved block\n\n"
            f"Generated by `benchmarks/retrieval_filter_blocks.py {' '.join(sys.argv[1:] if argv is None else argv)}` "
            f"from the SLM rows of config `{args.config_hash}` (BM25 only, no model runs); the block is "
            f"{CascadeConfig().retrieved_tokens} tokens of the LLM's tokenizer, the shown left context "
            f"{CascadeConfig().max_left_tokens} tokens.\n\n" + render(table))
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
