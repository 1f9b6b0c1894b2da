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
# # 03 · Cascade trade-offs and the threshold explorer
#
# Every task of the benchmark is run once per *branch* (the local model; the cloud model
# called directly; the cloud model after the local suggestion was rejected, with round-2
# retrieval and the rejected output as its draft). Each routing policy is then a pure
# function of those stored rows (`mccom_core.cascade.policies`), so sweeping thresholds, network
# round trips or the simulated user's acceptance rule never reruns a model.
#
# Policies: `always-slm`, `always-llm`, `confidence-only` (escalate when unsure),
# `rejection-only` (escalate when the user rejects), `mccom` (both), and `oracle` (escalate
# exactly when the local model is wrong: the bound). Latency is accounted *cold* (each request
# prefills its whole prompt) and *warm* (the local model kept its cache up to the cursor's line).

# %% tags=["parameters"]
slm = "qwen2.5-coder-0.5b"  # local model: a registry name or a checkpoint folder (absolute)
llm = "qwen2.5-coder-1.5b"  # cloud model
per_kind = 300  # tasks per kind (line, stmt) of the default benchmark
compute = True  # run the branches missing from cascade_rows; False: read the rows as stored
device = "auto"
cascade_rows = "benchmarks/results/cascade_rows.jsonl"  # branch rows, resumed (relative to the project root, or absolute)
accounting = "warm"  # latency accounting the figures and the explorer show: warm or cold
threshold = 0.5  # the explorer's initial confidence threshold
network_ms = 0.0  # modeled network round trip per cloud call
reaction_ms = 0.0  # the user's reaction time before a rejection registers
rule = "exact"  # acceptance rule of the simulated user: exact, prefix, edit-similarity
align_timings = True  # rescale rows timed in another session than their task's first (a rerun's reused rows)
results_dir = "build/notebooks/results/03_cascade_tradeoffs"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from mccom_core.lab import findings, plots
from mccom_core.paths import project_path
from mccom_core.cascade.policies import DEFAULT_THRESHOLDS, paper_comparison, summary, sweep
from mccom_core.cascade.timing import align_sessions, mixed_tasks
from mccom_core.lab.study import cascade_results
from mccom_core.lab.widgets import ThresholdExplorer

per_kind, compute, align_timings = int(per_kind), bool(compute), bool(align_timings)
threshold, network_ms, reaction_ms = float(threshold), float(network_ms), float(reaction_ms)
# Paths are project-relative by default, so the notebook runs in any clone.
cascade_rows, results_dir, figures_dir = (str(project_path(p)) for p in (cascade_rows, results_dir, figures_dir))
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
rows = cascade_results(cascade_rows, slm=slm, llm=llm, per_kind=per_kind, compute=compute, device=device)
print(f"{rows['task_id'].nunique()} tasks, {len(rows)} branch rows; local {slm}, cloud {llm}")

# %% [markdown]
# ## Timing sessions
# A rerun that changes one branch (say, the round-2 query) recomputes only that branch and
# reuses the others' rows, timed in another session, possibly on a faster or slower machine.
# Adding a reused local-model time to a new cloud time would then mix machines, so the rows
# timed outside their task's first session are rescaled to that session's speed (prefill by
# prefill ms per token, decode by ms per decoding step, per model; see
# `mccom_core.cascade.timing`). `align_timings = False` shows the raw timings.

# %%
measured = rows
aligned = align_sessions(rows)
mixed = mixed_tasks(aligned)
if align_timings:
    rows = aligned
print(f"{mixed} of {rows['task_id'].nunique()} tasks have rows timed in another session than their first; "
      f"timings {'aligned' if align_timings and mixed else 'as measured'}")

# %% [markdown]
# ## The main table
# Every policy, threshold policies at their best threshold (the lowest mean latency among
# thresholds whose exact match reaches always-LLM's, else the highest exact match), with the
# changes relative to always-LLM and the distance to the oracle.

# %%
params = dict(user=rule, network_ms=network_ms, reaction_ms=reaction_ms)
table = summary(rows, DEFAULT_THRESHOLDS, **params)
table.to_csv(results / "policies.csv", index=False)
display(table[["policy", "accounting", "threshold", "em", "es", "mean_ms", "p90_ms", "llm_share",
               "latency_vs_llm_pct", "em_vs_llm_pct", "llm_calls_vs_llm_pct"]].round(3))

# %%
curves = sweep(rows, DEFAULT_THRESHOLDS, **params)
curves.to_csv(results / "sweep.csv", index=False)
fig = plots.latency_vs_em(curves, accounting)
plots.save(fig, figures_dir, "03_latency_vs_em")

# %%
fig = plots.llm_share_vs_threshold(curves, accounting)
plots.save(fig, figures_dir, "03_llm_share_vs_threshold")

# %% [markdown]
# ## Beside the paper
# MCCom reports, against always-LLM: 25.6 % lower latency, 46.3 % fewer LLM calls, and 8.9 %
# higher exact match; plus the two observations that motivate it (see notebook 02).

# %%
compare = paper_comparison(rows, table, accounting=accounting)
compare.assign(unit="%").to_csv(results / "key_numbers.csv", index=False)
compare

# %% [markdown]
# ## The threshold explorer
# Move the threshold, the modeled network round trip, the user's reaction time or the
# acceptance rule: the summary is `sweep(rows, [threshold], ...)` for the current values and
# the plots redraw from the stored rows (the circle marks the current threshold, the star the
# oracle, the red cross where the paper's reported changes would put MCCom). No model runs.

# %%
explorer = ThresholdExplorer(rows, sweep, accounting=accounting, threshold=threshold,
                             network_ms=network_ms, reaction_ms=reaction_ms, rule=rule)
explorer.summary_frame.to_csv(results / "explorer_initial.csv", index=False)
display(explorer)  # the live controls, and a static snapshot for readers without a kernel

# %% [markdown]
# ## What we found
# Computed from this run's tables (`mccom_core.lab.findings`): rerun with other models,
# parameters or rows and these sentences change with the numbers.

# %%
display(Markdown(findings.cascade(table, accounting)))
if align_timings and mixed:
    raw_table = summary(measured, DEFAULT_THRESHOLDS, accountings=(accounting,), **params)
    display(Markdown(findings.timing_alignment(raw_table, table, mixed, accounting)))
