"""What the notebooks compute from the cascade's branch rows, beyond the policies.

* :func:`cascade_results`: run the missing branches of a config (resumable; committed rows are
  read, new rows go to build/rows/) or only read the
  stored rows, and return them as the long results frame every analysis reads;
* :func:`observations`: the MCCom paper's four motivating observations beside ours;
* :func:`retrieval_ablation`: EM/ES of each branch by retrieval setting (none, round 1,
  RepoCoder round 2, fused round 2), on the tasks every setting answered;
* :func:`paired_difference`: one branch against another on the same tasks (mean difference,
  paired bootstrap interval, tasks won and lost), e.g. fused round 2 against RepoCoder's;
* :func:`quickstart_trace`: per quickstart line, which model's answer a confidence cascade
  shows and where the time went.

The fusion-weight sweep and the prompt-block makeup (BM25 only, no model) are in
:mod:`mccom_core.lab.retrieval_study`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.papers import MCCOM_OBSERVATIONS
from mccom_core.paths import BUILD_DIR, DEFAULT_TASKS, PROJECT_ROOT


# Retrieval settings of the ablation: setting -> (SLM branch, LLM branch).
RETRIEVAL_SETTINGS = {
    "none": ("slm_noretrieval", "llm_noretrieval"),
    "round 1": ("slm", "llm"),
    "RepoCoder round 2": (None, "llm_rejected_repocoder"),
    "fused round 2 (MCCom)": (None, "llm_rejected"),
}


def cascade_results(rows_path, *, slm: str, llm: str, per_kind: int, branches: Sequence[str] | None = None,
                    compute: bool = True, device: str = "auto", tasks=DEFAULT_TASKS,
                    progress: bool = True) -> pd.DataFrame:
    """The branch rows of ``rows_path`` for the (slm, llm) config, computing missing ones first.

    With ``compute`` the runner (:func:`mccom_core.cascade.runner.run_benchmark`) runs the branches not
    yet stored for up to ``per_kind`` tasks per kind; without it, the stored rows are only read.
    Either way only the rows that hold for this config are returned
    (:func:`~mccom_core.cascade.runner.config_rows`: its own, and rows of another config whose
    branch cannot see the difference): a file may hold runs of several configs, and their rows must not mix.

    A file of the project outside ``build/`` (the committed rows) is only read: rows computed
    beside it go to its mirror under ``build/rows/`` (:func:`new_rows_path`), so a notebook run
    never modifies a tracked file. Any other file is resumed in place.
    """
    from mccom_core.cascade.engine import CORE_BRANCHES, CascadeConfig, config_hash
    from mccom_core.cascade.runner import read_results, run_benchmark

    rows_path = Path(rows_path)
    config = CascadeConfig(slm=slm, llm=llm, branches=tuple(branches or CORE_BRANCHES))
    written = new_rows_path(rows_path)
    sources = [rows_path] + ([written] if written != rows_path else [])
    if compute:
        run_benchmark(tasks, written, config, limit=per_kind, device=device, progress=progress,
                      seed=[p for p in sources if p != written])
    elif not any(p.is_file() for p in sources):
        raise MccomError(f"no cascade rows at {rows_path}: run with compute=True or pass an existing file")
    chash = config_hash(config)
    frames = [read_results(p, config=config) for p in sources if p.is_file()]
    rows = pd.concat([f for f in frames if not f.empty] or [pd.DataFrame()], ignore_index=True)
    if not rows.empty:
        rows = rows.drop_duplicates(["task_id", "branch"]).reset_index(drop=True)
    if rows.empty and not compute:
        stored = pd.concat([read_results(p) for p in sources if p.is_file()], ignore_index=True)
        held = (sorted(stored.groupby("config_hash")[["slm_spec", "llm_spec"]].first().itertuples(name=None))
                if {"config_hash", "slm_spec", "llm_spec"} <= set(stored.columns) else [])
        raise MccomError(
            f"{rows_path} holds no rows of the config slm={slm!r}, llm={llm!r} (config_hash "
            f"{chash}); it holds (config_hash, slm, llm) {held}: run with compute=True, "
            f"or point cascade_rows at a file with rows of this config")
    return rows


def new_rows_path(rows_path) -> Path:
    """Where :func:`cascade_results` appends the rows it computes for ``rows_path``.

    The file itself, unless it lies in the project outside ``build/`` (committed results, read
    only): then ``build/rows/<path relative to the project>``.
    """
    rows_path = Path(rows_path).resolve()
    root, build = PROJECT_ROOT.resolve(), BUILD_DIR.resolve()
    if rows_path.is_relative_to(root) and not rows_path.is_relative_to(build):
        return build / "rows" / rows_path.relative_to(root)
    return rows_path


def complete_tasks(results, branches: Sequence[str]) -> pd.DataFrame:
    """The rows of the tasks that have every one of ``branches`` stored (so settings compare
    on the same tasks)."""
    df = pd.DataFrame(results)
    have = df.groupby("task_id")["branch"].agg(set)
    keep = have[have.apply(lambda s: set(branches) <= s)].index
    return df[df["task_id"].isin(keep)].reset_index(drop=True)


def _branch(results: pd.DataFrame, name: str) -> pd.DataFrame:
    return results[results["branch"] == name].drop_duplicates("task_id").set_index("task_id")


def observations(results) -> pd.DataFrame:
    """The paper's four observations beside ours (percent); a missing branch gives NaN."""
    from mccom_core.cascade.engine import output_similarity, verbatim_share

    df = pd.DataFrame(results)
    slm, llm, slm_nr = _branch(df, "slm"), _branch(df, "llm"), _branch(df, "slm_noretrieval")
    both = slm[["em"]].join(llm[["em"]].rename(columns={"em": "em_llm"}), how="inner")
    measured = {
        "slm_output_in_left_pct": 100 * verbatim_share(df),
        "slm_llm_es_pct": 100 * output_similarity(df),
        "slm_em_no_retrieval_pct": 100 * slm_nr["em"].astype(float).mean() if not slm_nr.empty else np.nan,
        "slm_vs_llm_em_pct": (100 * both["em"].astype(float).mean() / both["em_llm"].astype(float).mean()
                              if not both.empty and both["em_llm"].astype(bool).any() else np.nan),
    }
    return pd.DataFrame({"metric": list(MCCOM_OBSERVATIONS), "paper": list(MCCOM_OBSERVATIONS.values()),
                         "measured": [float(measured[k]) for k in MCCOM_OBSERVATIONS],
                         "n_tasks": [len(slm_nr) if k == "slm_em_no_retrieval_pct" else
                                     len(both) if k == "slm_vs_llm_em_pct" else len(slm)
                                     for k in MCCOM_OBSERVATIONS]})


def slm_missed_tasks(results) -> set[str]:
    """Tasks whose ``slm`` row is not an exact match: where MCCom's round 2 actually runs."""
    slm = _branch(pd.DataFrame(results), "slm")
    if slm.empty:
        raise MccomError("no 'slm' rows in the results: the SLM branch decides which tasks it missed")
    return set(slm.index[~slm["em"].astype(bool)])


def retrieval_ablation(results, *, slm_missed: bool = False) -> pd.DataFrame:
    """EM, ES and mean latency per (setting, role) on the tasks present in every stored branch.

    Settings whose branch is not stored are left out; ``n`` is the number of common tasks.
    ``slm_missed=True`` keeps only the tasks the SLM got wrong (:func:`slm_missed_tasks`), the
    ones on which a deployed MCCom would run round 2 after a rejection.
    """
    df = pd.DataFrame(results)
    pairs = [(setting, role, name) for setting, names in RETRIEVAL_SETTINGS.items()
             for role, name in zip(("slm", "llm"), names) if name]
    present = [(s, r, n) for s, r, n in pairs if (df["branch"] == n).any()]
    if not present:
        raise MccomError("no retrieval-ablation branches in the results: compute them "
                         "(CascadeConfig.with_ablations('no-retrieval', 'repocoder'))")
    common = set.intersection(*(set(_branch(df, n).index) for _, _, n in present))
    if slm_missed:
        common &= slm_missed_tasks(df)
    rows = []
    for setting, role, name in present:
        sub = _branch(df, name).loc[sorted(common)]
        ms = sub["retrieval_ms"] + sub["prefill_ms"] + sub["decode_ms"] + sub["draft_ms"]
        rows.append({"setting": setting, "role": role, "branch": name, "n": len(sub),
                     "em": float(sub["em"].astype(float).mean()), "es": float(sub["es"].astype(float).mean()),
                     "mean_ms": float(ms.mean())})
    return pd.DataFrame(rows)


def paired_difference(results, branch: str, baseline: str, metric: str = "em", *,
                      tasks=None, n_boot: int = 2000, seed: int = 0) -> dict:
    """``branch`` minus ``baseline`` on ``metric`` over the tasks both answered (and in
    ``tasks``, when given).

    Returns ``n``, the two means, ``diff`` (branch - baseline), a 95% paired bootstrap
    interval ``lo``..``hi`` (tasks resampled with replacement, seeded), and ``wins`` /
    ``losses``: tasks where the branch scored higher / lower.
    """
    df = pd.DataFrame(results)
    a, b = _branch(df, branch), _branch(df, baseline)
    common = sorted(set(a.index) & set(b.index) & (set(tasks) if tasks is not None else set(a.index)))
    if not common:
        raise MccomError(f"no task has both {branch!r} and {baseline!r} stored: compute both branches")
    x = a.loc[common, metric].astype(float).to_numpy()
    y = b.loc[common, metric].astype(float).to_numpy()
    d = x - y
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"branch": branch, "baseline": baseline, "metric": metric, "n": len(d),
            "branch_mean": float(x.mean()), "baseline_mean": float(y.mean()), "diff": float(d.mean()),
            "lo": float(lo), "hi": float(hi), "wins": int((d > 0).sum()), "losses": int((d < 0).sum())}


def quickstart_trace(frame: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per line of a quickstart frame (:func:`mccom_core.lab.quickstart.run_quickstart`, two models):
    which model a confidence cascade answers with, what it shows, drafts and time spent.

    The local model (first in the frame) answers when its confidence is at least
    ``threshold``; otherwise the cloud model is called after it, and both times add up.
    """
    if not 0.0 <= threshold <= 1.0:
        raise MccomError(f"threshold must lie in [0, 1], got {threshold}")
    models = list(dict.fromkeys(frame["model"]))
    if len(models) != 2:
        raise MccomError(f"the quickstart frame needs exactly two models (local, cloud), got {models}")
    local, cloud = (frame[frame["model"] == m].set_index("line") for m in models)
    rows = []
    for line, s in local.iterrows():
        c = cloud.loc[line]
        slm_ms = s["prefill_ms"] + s["decode_ms"]
        use_slm = s["confidence"] >= threshold
        rows.append({
            "line": line, "ground_truth": s["ground_truth"], "answered_by": models[0] if use_slm else models[1],
            "shown": s["completion"] if use_slm else c["completion"],
            "exact_match": bool(s["exact_match"] if use_slm else c["exact_match"]),
            "slm_confidence": s["confidence"], "slm_drafted": s["drafted"], "slm_accepted": s["accepted"],
            "llm_drafted": 0 if use_slm else c["drafted"], "llm_accepted": 0 if use_slm else c["accepted"],
            "slm_prefill_ms": s["prefill_ms"], "slm_decode_ms": s["decode_ms"],
            "llm_prefill_ms": 0.0 if use_slm else c["prefill_ms"], "llm_decode_ms": 0.0 if use_slm else c["decode_ms"],
            "total_ms": slm_ms if use_slm else slm_ms + c["prefill_ms"] + c["decode_ms"],
        })
    return pd.DataFrame(rows)
