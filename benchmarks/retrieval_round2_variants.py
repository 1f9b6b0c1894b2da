"""Round-2 variants on block statistics, on tuning tasks only (issue 22, item 2).

No model runs. Round 2 (MCCom's fused retrieval after a rejected SLM suggestion) loses to round 1
on the committed ablation (``benchmarks/retrieval_round2.py``: -3.0 EM points on 600 tasks, mostly
tasks where round 1's block held the ground truth and round 2's did not). Two measured suspects:

* the round-2 query (``RetrievalConfig.round2_query="repocoder"``) drops the right context that
  round 1's query uses, so the fused score mixes a two-sided query with a one-sided one;
  ``"around"`` is round 1's query with the SLM output at the cursor;
* the fusion weight ``w = confidence`` lets a confident SLM draft dominate the ranking; the
  schedules ``square`` and ``constant`` (w = 0.25) trust it less.

For every task of the stored SLM rows except the held-out test split of
``benchmarks/retrieval_span.py`` (seed 22; so these numbers choose a variant without looking at
the test tasks), each variant's block is rebuilt as the cascade builds it (``fit_block`` within
``retrieved_tokens`` of the LLM's tokenizer, the prompt's shown context cut as the prompt cuts it),
with and without the redundancy filter (``exclude_visible="span"``). The SLM output and confidence
that steer round 2 are those of the stored rows (without the filter: the filter changes the SLM's
prompt, so with it they are an approximation for the 400 tasks that never ran filtered).

Per variant: how often the block holds the ground truth while the shown left context does not
("truth new", the model-free proxy of what the block adds for the LLM), paired with round 1 under
the same filter (tasks gained / lost), over all tuning tasks and over those where the SLM was wrong
(the cascade runs round 2 only after a rejection or a low-confidence suggestion).

Run (a few minutes)::

    .venv/bin/python benchmarks/retrieval_round2_variants.py

It prints Markdown and writes it to ``benchmarks/results/retrieval_round2_variants.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_span import BASELINE_HASH, TASKS, legacy_config, split  # noqa: E402  (the one held-out split)

from mccom_core.cascade.engine import CascadeConfig  # noqa: E402
from mccom_core.cascade.tasks import read_tasks  # noqa: E402
from mccom_core.lab.retrieval_study import slm_sites  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, cut_context  # noqa: E402
from mccom_core.paths import PROJECT_ROOT  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402
from mccom_core.retrieval.prompt import fit_block  # noqa: E402
from mccom_core.retrieval.retrievers import get_retriever  # noqa: E402

ROWS = PROJECT_ROOT / "benchmarks" / "results" / "cascade_rows.jsonl"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "retrieval_round2_variants.md"
FILTERS = ("none", "span")
# name -> (retriever, RetrievalConfig options); "round 1" is the reference of each filter.
VARIANTS = {
    "round 1": ("round1", {}),
    "fused, repocoder query, w = conf (legacy)": ("mccom-fused", {}),
    "fused, repocoder query, w = conf^2": ("mccom-fused", {"fusion_schedule": "square"}),
    "fused, repocoder query, w = 0.25": ("mccom-fused", {"fusion_schedule": "constant", "fusion_weight": 0.25}),
    "fused, around query, w = conf": ("mccom-fused", {"round2_query": "around"}),
    "fused, around query, w = conf^2": ("mccom-fused", {"round2_query": "around", "fusion_schedule": "square"}),
    "fused, around query, w = 0.25": ("mccom-fused", {"round2_query": "around", "fusion_schedule": "constant",
                                                      "fusion_weight": 0.25}),
    "fused, around query, w = 0.5": ("mccom-fused", {"round2_query": "around", "fusion_schedule": "constant",
                                                     "fusion_weight": 0.5}),
    # w = 1: the round-2 scores alone (min-max normalization keeps their ranking)
    "around query alone": ("mccom-fused", {"round2_query": "around", "fusion_schedule": "constant",
                                           "fusion_weight": 1.0}),
}


def variant_blocks(results, tokenizer, config: CascadeConfig | None = None) -> pd.DataFrame:
    """One row per task, filter and variant: truth in block, truth new, SLM right (``config``:
    the legacy one, whose round-2 options the variants change)."""
    config = config or legacy_config()
    prompt_config = PromptConfig(max_left_tokens=config.max_left_tokens)
    rows = []
    for task, slm_row, index, site in slm_sites(results, config=config.retrieval, progress=False):
        left, right = cut_context(site.left_context, site.right_context, tokenizer, prompt_config)
        site = replace(site, shown_left=left, shown_right=right)
        truth = task.ground_truth.strip()
        for filt in FILTERS:
            for name, (retriever, options) in VARIANTS.items():
                retrieval = replace(config.retrieval, exclude_visible=filt, **options)
                block = fit_block(get_retriever(retriever, retrieval).retrieve(index, site), tokenizer,
                                  config.retrieved_tokens)
                in_block = bool(truth) and truth in block.text
                rows.append({"task_id": task.task_id, "filter": filt, "variant": name,
                             "slm_right": bool(slm_row["em"]), "truth_in_block": in_block,
                             "truth_new": in_block and truth not in site.shown_left})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per filter and variant: truth-new rates and tasks gained/lost against round 1."""
    ref = frame[frame["variant"] == "round 1"].set_index(["filter", "task_id"])["truth_new"]
    frame = frame.assign(ref=ref.reindex(pd.MultiIndex.from_frame(frame[["filter", "task_id"]])).to_numpy())
    out = []
    for (filt, variant), g in frame.groupby(["filter", "variant"], sort=False):
        wrong = g[~g["slm_right"]]
        out.append({
            "filter": filt, "variant": variant, "tasks": len(g),
            "truth_in_block": g["truth_in_block"].mean(), "truth_new": g["truth_new"].mean(),
            "gained": int((g["truth_new"] & ~g["ref"]).sum()), "lost": int((~g["truth_new"] & g["ref"]).sum()),
            "wrong_tasks": len(wrong), "wrong_truth_new": wrong["truth_new"].mean(),
            "wrong_gained": int((wrong["truth_new"] & ~wrong["ref"]).sum()),
            "wrong_lost": int((~wrong["truth_new"] & wrong["ref"]).sum()),
        })
    return pd.DataFrame(out)


def render(table: pd.DataFrame) -> str:
    head = ("| filter | variant | tasks | truth in block % | truth new % | gained vs round 1 | lost vs round 1 "
            "| SLM wrong: tasks | truth new % | gained | lost |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r.filter} | {r.variant} | {r.tasks} | {100 * r.truth_in_block:.1f} | {100 * r.truth_new:.1f} "
        f"| {r.gained} | {r.lost} | {r.wrong_tasks} | {100 * r.wrong_truth_new:.1f} | {r.wrong_gained} "
        f"| {r.wrong_lost} |\n" for r in table.itertuples())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument("--limit", type=int, default=None, help="at most this many tuning tasks (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from mccom_core.lm.models import load_tokenizer

    rows = pd.read_json(args.rows, lines=True)
    rows = rows[(rows["config_hash"] == BASELINE_HASH) & (rows["branch"] == "slm")]
    test = {t.task_id for t in split(read_tasks(TASKS).tasks)["test"]}
    tuning = rows[~rows["task_id"].isin(test)].drop_duplicates("task_id")
    if args.limit:
        tuning = tuning.head(args.limit)
    frame = variant_blocks(tuning.to_dict("records"), load_tokenizer(tuning["llm_spec"].iloc[0]))
    table = summary(frame)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    text = ("# Round-2 variants on block statistics (issue 22)\n\n"
            f"Generated by `benchmarks/retrieval_round2_variants.py` on {date}, {cpu_name()}, from the SLM rows of "
            f"config `{BASELINE_HASH}` (BM25 only, no model runs) on the {frame['task_id'].nunique()} tuning tasks: "
            f"every stored task except the {len(test)} of the held-out test split of `retrieval_span.py` (seed 22). "
            "**truth new**: the block holds the ground-truth line while the prompt's shown left context does not. "
            "Gained / lost: tasks where the variant's block has truth new and round 1's (same filter) has not, "
            "and the reverse. With the filter the SLM outputs steering round 2 are those without it "
            "(an approximation; see the script's docstring).\n\n" + render(table))
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
