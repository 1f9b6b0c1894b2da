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
# # 02 · The observations behind MCCom
#
# The paper motivates its design with four measurements on real code completion:
#
# 1. **14.4 %** of the local model's outputs occur verbatim in the left context, so drafts
#    copied from the context are often accepted (stage-1 speculative decoding);
# 2. the local and the cloud model's outputs have a mean edit similarity of **78.4 %**, so a
#    rejected local suggestion is a good draft for the cloud model (stage 2);
# 3. the local model alone, without retrieval, completes **37.8 %** of lines exactly;
# 4. it reaches **73.8 %** of the cloud model's exact match.
#
# Here they are measured on the default benchmark's real repositories with the models named
# in the parameters (`slm_noretrieval` is the local model without retrieval, an ablation run on
# the first `ablation_per_kind` tasks of each kind; `n_tasks` says how many tasks each number has).

# %% tags=["parameters"]
slm = "qwen2.5-coder-0.5b"  # local model: a registry name or a checkpoint folder (absolute)
llm = "qwen2.5-coder-1.5b"  # cloud model
per_kind = 300  # tasks per kind (line, stmt); the paper uses up to 1,000
ablation_per_kind = 100  # of those, tasks per kind that also run the local model without retrieval
compute = True  # run the branches missing from cascade_rows; False: read the rows as stored
device = "auto"
cascade_rows = "benchmarks/results/cascade_rows.jsonl"  # branch rows, resumed (relative to the project root, or absolute)
results_dir = "build/notebooks/results/02_observations"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from mccom_core.lab import findings, plots
from mccom_core.paths import project_path
from mccom_core.cascade.engine import CORE_BRANCHES, branch_stats
from mccom_core.lab.study import cascade_results, observations

per_kind, ablation_per_kind, compute = int(per_kind), int(ablation_per_kind), bool(compute)
# Paths are project-relative by default, so the notebook runs in any clone.
cascade_rows, results_dir, figures_dir = (str(project_path(p)) for p in (cascade_rows, results_dir, figures_dir))
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
# The cascade's three branches on every task; the no-retrieval local model is an ablation
# branch, computed (as in notebook 05) on the first `ablation_per_kind` tasks of each kind.
cascade_results(cascade_rows, slm=slm, llm=llm, per_kind=per_kind, compute=compute, device=device)
rows = cascade_results(cascade_rows, slm=slm, llm=llm, per_kind=min(ablation_per_kind, per_kind), compute=compute,
                       device=device, branches=CORE_BRANCHES + ("slm_noretrieval",))
print(f"{rows['task_id'].nunique()} tasks, {len(rows)} branch rows; local {slm}, cloud {llm}")

# %% [markdown]
# ## Paper vs measured

# %%
named = {k: rows[f"{k}_spec"].iloc[0] if f"{k}_spec" in rows else v for k, v in (("slm", slm), ("llm", llm))}
obs = observations(rows).assign(**named)
obs.to_csv(results / "observations.csv", index=False)
obs[["metric", "paper", "measured"]].assign(unit="%").to_csv(results / "key_numbers.csv", index=False)
display(obs)
fig = plots.paper_vs_measured(obs)
plots.save(fig, figures_dir, "02_observations")

# %% [markdown]
# ## Per branch
# Exact match, edit similarity, mean timings and draft acceptance of every stored branch.

# %%
stats = branch_stats(rows)
stats.to_csv(results / "branches.csv", index=False)
stats.round(3)

# %% [markdown]
# ## What we found
# Computed from this run's tables (`mccom_core.lab.findings`): rerun with other models,
# parameters or rows and these sentences change with the numbers.

# %%
display(Markdown(findings.observations(obs)))
