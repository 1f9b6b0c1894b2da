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
# # 04 · Two-stage speculative decoding
#
# MCCom speeds both models up with drafts that cost nothing to propose. **Stage 1** (local
# model): the drafter looks for the last generated tokens in the prompt and the retrieved
# code and proposes what followed them there. **Stage 2** (cloud model, after the local
# model's suggestion was rejected): the rejected suggestion itself is the draft, since the two
# models agree on most of a line. The target model verifies a draft in one forward pass and
# keeps its longest agreeing prefix, so outputs are identical to plain greedy decoding.
#
# The rows come from `benchmarks/speculative.py` (real lines of the default benchmark, both
# Qwen2.5-Coder models), which also times transformers' own prompt lookup
# (`prompt_lookup_num_tokens`) and assisted generation (`assistant_model`) on the same prompts.
# This notebook only aggregates them (`mccom_core.lab.speculative`) and draws them.

# %% tags=["parameters"]
speculative_rows = "benchmarks/results/speculative_rows.jsonl"  # benchmarks/speculative.py --rows (relative to the project root, or absolute)
results_dir = "build/notebooks/results/04_speculative_decoding"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from mccom_core.lab import findings, plots
from mccom_core.paths import project_path
from mccom_core.lab.speculative import acceptance, method_frame, read_rows, speedups

# Paths are project-relative by default, so the notebook runs in any clone.
speculative_rows, results_dir, figures_dir = (str(project_path(p)) for p in (speculative_rows, results_dir, figures_dir))
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
rows = read_rows(speculative_rows)
frame = method_frame(rows)
frame.to_csv(results / "methods.csv", index=False)
print(f"{len(rows)} lines; the 1.5B ran on the {frame.loc[frame.role == 'llm', 'task_id'].nunique()} "
      "the 0.5B missed; outputs identical to plain greedy on "
      f"{frame.groupby('role')['identical'].mean().round(3).to_dict()} of them")

# %% [markdown]
# ## Acceptance and accepted lengths
# The acceptance rate is accepted / drafted tokens; the mean draft length `g` is drafted tokens
# per pass that verified a draft. `stage1` uses the context drafter's CPU default (drafts of
# at most 2 tokens), `stage1_long` drafts of up to 10 tokens (its default on a GPU).
#
# A rejected draft token is not free on a CPU. The table below (when the benchmark recorded
# it) is the time of one forward pass over `m` new tokens after a 512-token cache: on the
# 2-core benchmark machine it jumps at `m = 4` (the BLAS kernel changes), so long drafts
# with a low acceptance rate cost more than they save. On a GPU the row is nearly flat.

# %%
import json

cost_file = Path(speculative_rows).with_name("speculative_pass_cost.json")
if cost_file.exists():
    pass_cost = pd.DataFrame(json.loads(cost_file.read_text())).rename_axis("m new tokens")
    pass_cost.to_csv(results / "pass_cost_ms.csv")
    display(pass_cost.round(0))
else:
    print(f"no {cost_file.name} next to the rows: the benchmark predates the pass-cost table")

# %%
acc = acceptance(frame)
acc.to_csv(results / "acceptance.csv", index=False)
display(acc)
fig = plots.acceptance_bars(acc)
plots.save(fig, figures_dir, "04_acceptance")

# %%
fig = plots.accepted_lengths(frame)
plots.save(fig, figures_dir, "04_accepted_lengths")

# %% [markdown]
# ## Speedups vs plain greedy and vs transformers
# Per line: the plain run's time over each method's (above 1 is faster). `pld` is
# transformers' prompt lookup on the 0.5B, `assisted` its assisted generation with the 0.5B
# drafting for the 1.5B.
#
# **Verification inside the prefill pass.** Stage 2 feeds the prompt and the whole rejected
# suggestion to the 1.5B in one forward pass. When the 1.5B agrees with every draft token and
# the line ends there, that pass is the only one: the run has no decode time at all
# (`decode_ms` is about 0, see `n_no_decode`), and a decode-only ratio divides by zero. So the
# figure shows the time **after the prompt's prefill**: each run's total minus the plain run's
# prefill of the same prompt (ours count the draft's verification in their own prefill), and
# the **end-to-end** time beside it. Two timings of one prefill differ by a few percent, so a
# post-prefill time below 5 % of the prompt's prefill is noise: such a line's ratio is taken
# at that floor, a lower bound (`n_floored` counts them; the median stays exact while fewer
# than half are floored). The decode-only median in the table covers only lines with a
# measurable decode, so it leaves out stage 2's best lines.

# %%
sp = speedups(frame)
sp.to_csv(results / "speedups.csv", index=False)
display(sp)
import matplotlib.pyplot as plt

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
plots.speedup_boxes(frame, "post_prefill_speedup", ax=left)
plots.speedup_boxes(frame, "total_speedup", ax=right)
plots.save(fig, figures_dir, "04_speedups")

# %% [markdown]
# ## Against the theory
# With acceptance rate `a` and drafts of `g` tokens, a verification pass yields
# `(1 - a^(g+1)) / (1 - a)` tokens on average. The points are the measured tokens per pass.

# %%
fig = plots.theoretical_curve(acc)
plots.save(fig, figures_dir, "04_theoretical_speedup")

# %%
def _speedup(role, method, column):
    sel = sp[(sp.role == role) & (sp.method == method)]
    return float(sel[column].iloc[0]) if not sel.empty else float("nan")


key = pd.DataFrame([
    {"metric": f"speedup after the prompt's prefill (median per line; end to end "
               f"{_speedup(r, m, 'total_speedup'):.2f}x), {m} ({r})", "paper": float("nan"),
     "measured": _speedup(r, m, "post_prefill_speedup"), "unit": "x"}
    for r, m in (("slm", "stage1"), ("slm", "stage1_long"), ("slm", "pld"), ("llm", "stage2"), ("llm", "stage2_context"), ("llm", "assisted"))
    if ((sp.role == r) & (sp.method == m)).any()  # rows before session 2 have no stage1_long
] + [{"metric": f"acceptance rate, {row.method} ({row.role})", "paper": float("nan"),
      "measured": row.acceptance, "unit": "share"} for row in acc.itertuples()])
key.to_csv(results / "key_numbers.csv", index=False)
key

# %% [markdown]
# ## What we found
# Computed from this run's tables (`mccom_core.lab.findings`): rerun with other models,
# parameters or rows and these sentences change with the numbers.

# %%
display(Markdown(findings.speculative(sp, acc)))
