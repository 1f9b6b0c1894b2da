# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Iterative retrieval: ablation
#
# MCCom retrieves twice. Round 1 queries BM25 over the repository with the code around the
# cursor (left and right). When the local suggestion is rejected, round 2 adds that suggestion
# to the query (RepoCoder's idea) and *fuses* the two rounds' scores, weighting round 2 by the
# local model's confidence, so an unsure suggestion cannot pull retrieval off course.
#
# The ablation compares, on the same tasks: no retrieval, round 1, RepoCoder's round 2 alone,
# and the fused round 2, for the models that use each; then the whole cascade with each
# escalation branch. The fused round 2's query is round 1's with the local output put at the
# cursor (`RetrievalConfig.round2_query = "around"`, the default since it beat RepoCoder's
# query, which drops the code after the cursor, on a held-out split:
# `benchmarks/results/retrieval_round2_em.md`). RepoCoder's round 2 keeps its own query.

# %% tags=["parameters"]
slm = "qwen2.5-coder-0.5b"  # local model: a registry name or a checkpoint folder (absolute)
llm = "qwen2.5-coder-1.5b"  # cloud model
ablation_per_kind = 100  # tasks per kind (line, stmt): the ablation runs four more branches per task
compute = True  # run the branches missing from cascade_rows; False: read the rows as stored
device = "auto"
cascade_rows = "benchmarks/results/cascade_rows.jsonl"  # branch rows, resumed (relative to the project root, or absolute)
accounting = "warm"  # latency accounting of the cascade table: warm or cold
results_dir = "build/notebooks/results/05_retrieval_ablation"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from mccom_core.lab import findings, plots
from mccom_core.paths import project_path
from mccom_core.cascade.engine import CascadeConfig
from mccom_core.cascade.policies import CascadeBranches, DEFAULT_THRESHOLDS, summary
from mccom_core.lab.retrieval_study import fusion_summary, fusion_sweep
from mccom_core.lab.study import cascade_results, complete_tasks, retrieval_ablation

ablation_per_kind, compute = int(ablation_per_kind), bool(compute)
# Paths are project-relative by default, so the notebook runs in any clone.
cascade_rows, results_dir, figures_dir = (str(project_path(p)) for p in (cascade_rows, results_dir, figures_dir))
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
branches = CascadeConfig().with_ablations("no-retrieval", "repocoder").branches
rows = cascade_results(cascade_rows, slm=slm, llm=llm, per_kind=ablation_per_kind, compute=compute, device=device,
                       branches=branches)
stored = set(rows["branch"])
rows = complete_tasks(rows, [b for b in branches if b in stored])  # every setting on the same tasks
print(f"{rows['task_id'].nunique()} tasks, {len(rows)} branch rows; local {slm}, cloud {llm}")

# %% [markdown]
# ## Each model by retrieval setting
# The local model runs with no retrieval or round 1; the cloud model with each of the four.

# %%
ablation = retrieval_ablation(rows)
ablation.to_csv(results / "ablation.csv", index=False)
display(ablation.round(3))
fig = plots.ablation_bars(ablation, "em", hue="role")
plots.save(fig, figures_dir, "05_retrieval_ablation")

# %% [markdown]
# ## The cascade with each escalation
# MCCom at its best threshold when the cloud model, after a rejection, retrieves with the
# fused round 2 (the default), with RepoCoder's round 2, or not at all (the naive cascade:
# no retrieval anywhere).

# %%
variants = {
    "fused round 2 (MCCom)": CascadeBranches(),
    "RepoCoder round 2": CascadeBranches(escalation="llm_rejected_repocoder"),
    "no retrieval": CascadeBranches("slm_noretrieval", "llm_noretrieval", "llm_rejected_noretrieval"),
}
variants = {name: b for name, b in variants.items() if {b.slm, b.llm, b.escalation} <= stored}  # those stored
cascade = pd.concat([
    summary(rows, DEFAULT_THRESHOLDS, branches=b, accountings=(accounting,)).assign(setting=name)
    for name, b in variants.items()], ignore_index=True)
cascade = cascade[cascade["policy"] == "mccom"]
cascade.to_csv(results / "cascade_by_retrieval.csv", index=False)
display(cascade[["setting", "threshold", "em", "es", "mean_ms", "llm_share"]].round(3))

# %% [markdown]
# ## The fusion-weight sweep
# Round 2 scores every window twice (round-1 query; the round-2 query with the local output)
# and fuses the normalized scores with weight `w`. Here `w` is swept from 0 (round 1 alone) to
# 1 (the round-2 query alone) with no model run: for each task with a stored local output, does
# a retrieved window contain the ground truth (the same code elsewhere in the repository)?
# MCCom's schedule sets `w` to the local model's confidence (red line). Tasks not in the
# default benchmark (e.g. hand-made rows) are skipped.

# %%
fusion = fusion_sweep(rows)
fusion.to_csv(results / "fusion_sweep.csv", index=False)
fusion_table = fusion_summary(fusion)
fusion_table.to_csv(results / "fusion_summary.csv", index=False)
if fusion_table.empty:
    print("no task of these rows is in the default benchmark: no fusion sweep")
else:
    display(fusion_table.round(3))
    fig = plots.fusion_curve(fusion_table)
    plots.save(fig, figures_dir, "05_fusion_weight")

# %% [markdown]
# ## What the retrieved block holds
# The retrieved block has a token budget (half the prompt's), so only the best few windows
# make it in. Rebuilt exactly as the cascade builds it (BM25 and the cloud model's tokenizer,
# no model run): how many of those windows repeat the target file's left context that the
# prompt already shows, how many show the target file *after* the cursor (which a
# left-to-right prompt otherwise never sees), and how many come from other files. Round 1's
# query includes the code after the cursor, and so does the fused round 2's; RepoCoder's (the
# local output joined to the left context) does not.

# %%
from mccom_core.lab.retrieval_study import makeup_summary, retrieval_makeup

makeup = retrieval_makeup(rows, llm)
makeup.to_csv(results / "block_makeup.csv", index=False)
makeup_table = makeup_summary(makeup)
makeup_table.to_csv(results / "block_makeup_summary.csv", index=False)
if makeup_table.empty:
    print("no task of these rows is in the default benchmark: no block makeup")
else:
    display(makeup_table.round(3))

# %%
fused = ablation.set_index(["setting", "role"])["em"]
key = pd.DataFrame([
    {"metric": f"cloud EM, {s}", "paper": float("nan"), "measured": 100 * fused.get((s, "llm"), float("nan")),
     "unit": "%"} for s in ablation.loc[ablation.role == "llm", "setting"]]
    + [{"metric": f"ground truth retrieved, {row.setting}", "paper": float("nan"), "measured": 100 * row.hit_rate,
        "unit": "%"} for row in fusion_table.itertuples() if row.setting in ("w = 0.00", "w = 1.00", "confidence (MCCom)")]
    + [{"metric": f"retrieved windows repeating the shown left context, {row.retriever}", "paper": float("nan"),
        "measured": 100 * row.visible_left_share, "unit": "%"} for row in makeup_table.itertuples()])
key.to_csv(results / "key_numbers.csv", index=False)
key

# %% [markdown]
# ## What we found
# Computed from this run's tables (`mccom_core.lab.findings`): rerun with other models,
# parameters or rows and these sentences change with the numbers.

# %%
display(Markdown(findings.retrieval(ablation, makeup_table)))
