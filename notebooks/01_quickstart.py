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
# # 01 · Quickstart: one local and one cloud model on real lines
#
# MCCom (Lu et al., arXiv 2603.05974) lets a small local model (SLM) answer first and calls
# the large "cloud" model (LLM) when the SLM is unsure. This notebook loads the pair,
# completes a few lines of a real source file (by default `rank_bm25.py`, as installed) with
# each model, and shows for every line which model a confidence cascade would answer with,
# how many draft tokens the stage-1 drafter proposed and the model accepted, and where the
# time went (prefill of the prompt vs token-by-token decoding).

# %% tags=["parameters"]
slm = "qwen2.5-coder-0.5b"  # local model: a registry name or a checkpoint folder (absolute)
llm = "qwen2.5-coder-1.5b"  # cloud model
file = ""  # source file to complete (relative to the project root, or absolute); empty: the installed rank_bm25.py
n_lines = 5  # lines picked (seeded)
seed = 0
device = "auto"
drafter = "context"  # stage-1 drafting (mccom_core.lm.drafting); outputs equal plain greedy
threshold = 0.5  # the cascade's confidence threshold for the trace
results_dir = "build/notebooks/results/01_quickstart"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from mccom_core.lab import findings, plots
from mccom_core.paths import project_path
from mccom_core.lab.quickstart import QuickstartConfig, default_file, run_quickstart
from mccom_core.lab.study import quickstart_trace

n_lines, seed, threshold = int(n_lines), int(seed), float(threshold)
# Paths are project-relative by default, so the notebook runs in any clone.
file = str(project_path(file)) if file else ""
results_dir, figures_dir = (str(project_path(p)) for p in (results_dir, figures_dir))
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
source = Path(file) if file else default_file()

# %% [markdown]
# ## Every line with both models
# One row per (model, line): the completion, exact match against the real line, the SLM's
# confidence (mean probability of the first three shown tokens), and the timings.

# %%
config = QuickstartConfig(models=(slm, llm), n_lines=n_lines, seed=seed, device=device, drafter=drafter)
frame = run_quickstart(source, config).assign(drafter=drafter)
frame.to_csv(results / "quickstart.csv", index=False)
print(f"file: {source}")
display(frame[["model", "line", "ground_truth", "completion", "exact_match", "confidence",
               "prefill_ms", "decode_ms", "drafted", "accepted"]])

# %% [markdown]
# ## The cascade's trace
# Which model answers each line at the threshold above, what the user sees, the drafts
# proposed and accepted by each model, and the latency split.

# %%
trace = quickstart_trace(frame, threshold)
trace.to_csv(results / "trace.csv", index=False)
display(trace)

# %% [markdown]
# ## Latency breakdown
# Prefill (reading the prompt) dominates on a CPU; decoding grows with the line's length,
# and drafting cuts it when drafts are accepted.

# %%
fig = plots.latency_breakdown(frame)
plots.save(fig, figures_dir, "01_latency_breakdown")

# %%
summary = frame.groupby("model", sort=False).agg(
    exact_match=("exact_match", "mean"), edit_similarity=("edit_similarity", "mean"),
    prefill_ms=("prefill_ms", "median"), decode_ms=("decode_ms", "median"),
    drafted=("drafted", "sum"), accepted=("accepted", "sum"), load_s=("load_s", "first")).reset_index()
summary.to_csv(results / "summary.csv", index=False)
summary

# %% [markdown]
# ## What we found
# Computed from this run's tables (`mccom_core.lab.findings`): rerun with other models,
# parameters or rows and these sentences change with the numbers.

# %%
display(Markdown(findings.quickstart(frame, trace, threshold)))
