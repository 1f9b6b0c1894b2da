"""Model-free diagnostics of the retrieval: what round 2 finds, and what the prompt block holds.

Both re-run only BM25 (milliseconds a query) for the tasks of stored SLM rows, so they cover
every task of a run at no model cost:

* :func:`fusion_sweep`: the fused round 2 with the fusion weight ``w`` swept from 0 (round 1
  alone) to 1 (the round-2 query alone, ``RetrievalConfig.round2_query``), and MCCom's
  ``w = confidence``: does a retrieved window contain the ground truth?
* :func:`retrieval_makeup`: of the windows that fit the prompt's retrieved block, how many
  repeat code the prompt already shows (the target file's own left context), how many show
  code after the cursor (the target file's right side), and how many come from other files.
  A window of the visible left context spends block tokens on nothing new.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.paths import DEFAULT_TASKS
FUSION_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))  # 0 = round 1, 1 = RepoCoder
MAKEUP_RETRIEVERS = ("round1", "repocoder", "mccom-fused")
# Where a window of the prompt's retrieved block comes from (see block_makeup).
ORIGINS = ("visible_left", "left_beyond_prompt", "after_cursor", "other_file")


def slm_sites(results, *, tasks=DEFAULT_TASKS, progress: bool = True, config=None) -> Iterator[tuple]:
    """``(task, slm_row, index, site)`` for every stored ``slm`` row whose task is in ``tasks``.

    ``site`` is the round-2 :class:`~mccom_core.retrieval.retrievers.CompletionSite` (left and right
    context, target span, the SLM's output and confidence). Tasks not in ``tasks``, or whose
    repository cannot be materialized, are left out. One index per repository snapshot, built
    with ``config`` (a :class:`~mccom_core.retrieval.retrievers.RetrievalConfig`; default: the cascade's).
    """
    from tqdm.auto import tqdm

    from mccom_core.cascade.snapshots import materialize
    from mccom_core.cascade.tasks import read_tasks, task_context
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.retrieval.retrievers import load_index

    config = config or CascadeConfig().retrieval
    by_id = {t.task_id: t for t in read_tasks(tasks).tasks}
    df = pd.DataFrame(results)
    slm = df[df["branch"] == "slm"].drop_duplicates("task_id").set_index("task_id") if len(df) else df
    indexes = {}
    for task_id, row in tqdm(list(slm.iterrows()), desc="retrieval diagnostics", disable=not progress):
        task = by_id.get(task_id)
        if task is None:
            continue
        try:
            root = materialize(task.repo, task.repo_hash)
            left, right = task_context(task, root)
            if root not in indexes:
                indexes[root] = load_index(root, config)
        except MccomError:
            continue
        confidence = float(min(max(float(row["confidence"]), 0.0), 1.0))
        yield task, row, indexes[root], CompletionSite(left, right, task.path, task.span0, row["prediction"], confidence)


# --------------------------------------------------------------------------- fusion-weight sweep


def fusion_hits(index, site, ground_truth: str, weights: Sequence[float] = FUSION_WEIGHTS,
                top_k: int = 10, config=None) -> list[dict]:
    """For one completion site with the SLM's output: does the fused round-2 retrieval find the
    ground truth, for each constant weight ``w`` and for MCCom's confidence schedule (w = confidence)?

    A *hit* is a retrieved window that contains the stripped ground truth (windows overlapping
    the target are never retrievable, so a hit is the same code elsewhere in the repository):
    a model-free proxy for what round 2 gives the cloud model. ``rank`` is the best such
    window's rank (None without a hit). Both rounds are scored once; only the fusion varies.
    """
    from mccom_core.retrieval.code_tokens import code_tokens
    from mccom_core.retrieval.queries import (
        RetrievalConfig, fuse_scores, round1_query, round2_query, top_hits,
    )

    config = config or RetrievalConfig()
    truth = ground_truth.strip()
    mask = index.eligible(site.target_path, site.target_span)
    r1 = index.scores(code_tokens(round1_query(site.left_context, site.right_context, config)))
    r2 = index.scores(code_tokens(round2_query(site.left_context, site.slm_output or "", config, site.right_context)))
    settings = [(f"w = {w:.2f}", float(w)) for w in weights]
    settings.append(("confidence (MCCom)", float(min(max(site.slm_confidence or 0.0, 0.0), 1.0))))
    out = []
    for name, w in settings:
        hits = top_hits(index, fuse_scores(r1, r2, w, mask), mask, top_k)
        ranks = [h.rank for h in hits if truth and truth in h.text]
        out.append({"setting": name, "weight": w, "hit": bool(ranks), "rank": ranks[0] if ranks else None})
    return out


def fusion_sweep(results, weights: Sequence[float] = FUSION_WEIGHTS, *, tasks=DEFAULT_TASKS, top_k: int = 10,
                 progress: bool = True) -> pd.DataFrame:
    """:func:`fusion_hits` for every task with an SLM row whose task is found in ``tasks``.

    Per task and setting: ``hit``, ``rank``, ``slm_em`` (the rejected-or-not SLM output was
    right), ``kind``. Tasks not in ``tasks`` (or whose repository cannot be materialized) are
    left out; an empty frame means none could be used.
    """
    from mccom_core.cascade.engine import CascadeConfig

    config = CascadeConfig().retrieval
    rows = []
    for task, row, index, site in slm_sites(results, tasks=tasks, progress=progress, config=config):
        for hit in fusion_hits(index, site, task.ground_truth, weights, top_k, config):
            rows.append({"task_id": task.task_id, "kind": task.kind, "slm_em": bool(row["em"]), **hit})
    return pd.DataFrame(rows, columns=["task_id", "kind", "slm_em", "setting", "weight", "hit", "rank"])


def fusion_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Hit rate and hit@1 per fusion setting (over tasks), from :func:`fusion_sweep`."""
    if frame.empty:
        return pd.DataFrame(columns=["setting", "weight", "n", "hit_rate", "hit_at_1"])
    g = frame.assign(top1=frame["rank"].eq(0)).groupby("setting", sort=False)
    out = g.agg(weight=("weight", "mean"), n=("task_id", "nunique"), hit_rate=("hit", "mean"),
                hit_at_1=("top1", "mean"))
    return out.reset_index()


# --------------------------------------------------------------------------- prompt-block makeup


def window_origin(window, target_path: str, target_span: tuple[int, int], shown_left: str) -> str:
    """Where a retrieved window comes from, as seen by the prompt (one of :data:`ORIGINS`).

    ``visible_left``: the target file, before the cursor, and every line of it is in the left
    context the prompt shows (it repeats the prompt); ``left_beyond_prompt``: before the
    cursor but cut from the prompt by its token budget; ``after_cursor``: the target file
    after the target (code the left-to-right prompt does not show); ``other_file``.
    Windows overlapping the target span are never retrieved, so these cover every window.
    """
    if str(window.path) != str(target_path):
        return "other_file"
    if window.start >= target_span[1]:
        return "after_cursor"
    text = window.text.strip("\n")
    return "visible_left" if text and text in shown_left else "left_beyond_prompt"


def novel_hits(hits, target_path: str, target_span: tuple[int, int], shown_left: str, k: int) -> list:
    """The ``k`` best of ``hits`` (best first) without the windows that repeat the shown left context.

    A window of origin ``visible_left`` (see :func:`window_origin`) spends prompt-block tokens on
    lines the prompt shows anyway. Ask the retriever for more than ``k`` windows, then keep the
    first ``k`` of the others; ranks are renumbered from 0.
    """
    from dataclasses import replace

    kept = [h for h in hits if window_origin(h.window, target_path, target_span, shown_left) != "visible_left"]
    return [replace(h, rank=i) for i, h in enumerate(kept[:k])]


def block_makeup(hits, target_path: str, target_span: tuple[int, int], shown_left: str) -> dict[str, int]:
    """Counts of :func:`window_origin` over the windows of a prompt block (all ORIGINS keys)."""
    counts = dict.fromkeys(ORIGINS, 0)
    for hit in hits:
        counts[window_origin(hit.window, target_path, target_span, shown_left)] += 1
    return counts


def retrieval_makeup(results, tokenizer, retrievers: Sequence[str] = MAKEUP_RETRIEVERS, *, tasks=DEFAULT_TASKS,
                     progress: bool = True, cascade_config=None) -> pd.DataFrame:
    """Per task and retriever: what the prompt's retrieved block holds, as the cascade builds it.

    The block is rebuilt exactly as :class:`mccom_core.cascade.engine.Cascade` does (``fit_block``
    within ``retrieved_tokens`` of the ``tokenizer``, then ``build_prompt`` for the left
    context it leaves), so the counts are of the windows the model saw. ``tokenizer`` may be
    a model spec: its tokenizer is then loaded (:func:`mccom_core.lm.models.load_tokenizer`)
    only once a task can be used. Columns: ``task_id``,
    ``kind``, ``retriever``, ``windows``, one count per :data:`ORIGINS`, ``block_tokens`` and
    ``truth_in_block`` (the stripped ground truth occurs in the block).
    """
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.lm.prompts import PromptConfig, build_prompt
    from mccom_core.retrieval.prompt import fit_block
    from mccom_core.retrieval.retrievers import get_retriever

    config = cascade_config or CascadeConfig()
    strategies = [get_retriever(name, config.retrieval) for name in retrievers]
    rows = []
    for task, _, index, site in slm_sites(results, tasks=tasks, progress=progress, config=config.retrieval):
        if isinstance(tokenizer, str):
            from mccom_core.lm.models import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        for strategy in strategies:
            block = fit_block(strategy.retrieve(index, site), tokenizer, config.retrieved_tokens)
            try:
                prompt = build_prompt(site.left_context, site.right_context, tokenizer,
                                      PromptConfig(max_left_tokens=config.max_left_tokens), prefix=block.text)
            except MccomError:  # nothing to complete from: the cascade skips such a task too
                continue
            truth = task.ground_truth.strip()
            rows.append({"task_id": task.task_id, "kind": task.kind, "retriever": strategy.name,
                         "windows": len(block.hits), **block_makeup(block.hits, task.path, task.span0, prompt.left),
                         "block_tokens": block.n_tokens, "truth_in_block": bool(truth) and truth in block.text})
    return pd.DataFrame(rows, columns=["task_id", "kind", "retriever", "windows", *ORIGINS, "block_tokens",
                                       "truth_in_block"])


def makeup_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per retriever: tasks, mean windows per block, each origin's share of the block's windows,
    and the share of tasks whose block contains the ground truth."""
    columns = ["retriever", "n", "windows", *[f"{o}_share" for o in ORIGINS], "truth_in_block"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    g = frame.groupby("retriever", sort=False)
    out = g.agg(n=("task_id", "nunique"), windows=("windows", "mean"), truth_in_block=("truth_in_block", "mean"))
    total = g["windows"].sum().where(lambda s: s > 0)
    for origin in ORIGINS:
        out[f"{origin}_share"] = g[origin].sum() / total
    return out.reset_index()[columns]
