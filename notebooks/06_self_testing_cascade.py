# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · The self-testing cascade for code generation
#
# Chen et al., *Model Cascading for Code* (arXiv 2405.15842): a ladder of models, small to
# large. Each rung writes `k` solutions and `k` test blocks (first `l` lines each), runs every
# (solution, test) pair in the sandbox, and adopts its best solution when the passing pairs
# exceed `floor(total * theta)`; otherwise the next rung is asked. Plans (k, l, theta per rung)
# are chosen on a seeded 30% validation split as a cost/pass@1 Pareto front and evaluated on
# the other 70%.
#
# This notebook is glue: it replays the authors' recorded WizardCoder-Python 7B/13B/34B
# generations through `mccom_core.ladder.replay` (the execution cache makes a warm replay take
# well under a minute; see `benchmarks/results/ladder_replay.md` for the cold time), then
# searches plans and draws the fronts.

# %% tags=["parameters"]
data_dir = ""  # WizardCoder recordings of Chen et al.; empty: code_cascading_wizardcoder in MCCOM_SHARED_DATA or ../shared/data
results_dir = "build/notebooks/results/06_self_testing_cascade"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)
problems = 0  # first N problems only (0 means all 164)
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
thetas_to_plot = [0.3, 0.5, 0.7, 0.9]
rule = "readme"  # acceptance rule: "readme" or "authors-code"
live_dirs = ["benchmarks/results/ladder_live/humaneval",  # `mccom ladder live` outputs (relative to the project root, or absolute)
             "benchmarks/results/ladder_live/mbpp"]  # (recorded by benchmarks/ladder_live.py)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from mccom_core.errors import MccomError
from mccom_core.lab import ladder_plots, plots
from mccom_core.papers import SELF_TESTING_CLAIMS
from mccom_core.ladder import cost as ladder_cost, data as ladder_data, plans as ladder_plans, replay as ladder
from mccom_core.paths import project_path, shared_data_dir

problems = int(problems)
seeds = [int(s) for s in seeds]
# Paths are project-relative by default, so the notebook runs in any clone.
results_dir, figures_dir = (str(project_path(p)) for p in (results_dir, figures_dir))
live_dirs = [str(project_path(d)) for d in live_dirs]
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)

# The authors' recordings are not shipped with the project (they carry no licence): without
# them the WizardCoder replay below is skipped and only the live Qwen ladder is shown.
try:
    data_dir = str(project_path(data_dir) if data_dir else shared_data_dir() / "code_cascading_wizardcoder")
    have_recordings = (Path(data_dir) / "answer").is_dir()
except MccomError:
    have_recordings = False
if not have_recordings:
    print(f"The authors' WizardCoder recordings were not found{f' at {data_dir}' if data_dir else ''}; the replay "
          "is skipped. Get them from https://github.com/BoyuanJackChen/code_cascading_shared (commit "
          "f13952b0f97819dc282b02691836a13dcb2b0817) and pass their folder as data_dir, or set MCCOM_SHARED_DATA "
          "to the folder that holds code_cascading_wizardcoder/.")


def save(fig, name):
    plots.save(fig, figures_dir, f"06_{name}")


# %% [markdown]
# ## Replay: every recorded solution against the hidden tests and its model's own tests

# %%
if have_recordings:
    gens = ladder_data.read_replay_dir(data_dir)
    if problems:
        gens = ladder_data.subset(gens, numbers=range(problems))
    outcomes, verdicts = ladder.replay(gens, progress=True)
    print(verdicts["_stats"])
    pass1 = ladder.per_model_pass_at_1(gens, verdicts)
    pass1.to_csv(results / "pass_at_1.csv", index=False)
    outcomes.to_parquet(results / "outcomes.parquet")
    save(ladder_plots.plot_pass_at_1(pass1), "pass_at_1")
    display(pass1)

# %% [markdown]
# ## Per-token cost from the authors' throughput table

# %%
if have_recordings:
    table = ladder_cost.read_throughput(Path(data_dir) / "wizard_he_throughput.csv")
    costs = ladder_cost.cost_table(table, ladder_cost.mean_greedy_tokens(outcomes))
    costs.to_csv(results / "cost_per_token.csv", index=False)
    display(costs)

# %% [markdown]
# ## Plan search: Pareto fronts on validation and test
#
# One line per distinct front: thetas whose fronts hold the same plans share a line and a
# legend entry, and a theta whose front is just the single-model plans is named in the
# single-model entry instead of drawing over it.

# %%
if have_recordings:
    arr = ladder_plans.OutcomeArrays.from_frame(outcomes, gens.models)
    dpt = dict(zip(costs["model"], costs["dollars_per_token"]))
    fronts = ladder_plans.search(arr, dpt, seeds=seeds, rule=rule)
    fronts.to_csv(results / "fronts.csv", index=False)
    for split in ("val", "test"):
        save(ladder_plots.plot_fronts(fronts, split=split, seed=seeds[0], thetas=thetas_to_plot,
                                     benchmark="HumanEval, WizardCoder-Python 7B/13B/34B"), f"fronts_{split}")

# %% [markdown]
# ## Cost saving at equal or better pass@1 than the best single model
#
# Each bar is labelled with its value, so a seed without a saving shows "0%" where its bar
# would be.

# %%
paper = SELF_TESTING_CLAIMS
if have_recordings:
    savings = ladder_plans.cost_savings(fronts)
    savings.to_csv(results / "savings.csv", index=False)
    comparison = pd.DataFrame([  # percent, as the paper states them
        {"measure": "saving at the best single model (mean over seeds)",
         "measured": 100 * savings["saving_at_best_single"].mean(),
         "paper": f"WizardCoder-Python {paper['wizardcoder_saving'][0]:.0%}-{paper['wizardcoder_saving'][1]:.0%}"},
        {"measure": "mean saving over single-model front points", "measured": 100 * savings["mean_saving"].mean(),
         "paper": f"{paper['average_saving']:.0%} average (all families)"},
        {"measure": "max saving", "measured": 100 * savings["max_saving"].max(),
         "paper": f"up to {paper['max_saving']:.0%}"},
    ]).assign(unit="%")
    comparison.to_csv(results / "savings_vs_paper.csv", index=False)
    save(ladder_plots.plot_savings(savings, paper, benchmark="HumanEval, WizardCoder-Python 7B/13B/34B"), "savings")
    display(comparison)

# %% [markdown]
# ## Live: the Qwen2.5-Coder 0.5B → 1.5B ladder on this machine
#
# `benchmarks/ladder_live.py` had the two real models write greedy and sampled solutions and
# CodeT-style tests for HumanEval and MBPP-sanitized on this CPU, and recorded them in the
# authors' layout; here they are replayed (the sandbox verdicts come from the execution cache)
# and searched like the WizardCoder ladder. The cost unit is seconds of generation per token,
# measured per model while generating. Only the first problems of each benchmark were run (a
# 2-core CPU writes about a problem a minute with both models), so the splits are small: read
# the savings as indicative.

# %%
live_rows = []
for live in map(Path, live_dirs):
    if not (live / "outcomes.parquet").is_file():
        print(f"no live run at {live}: run `mccom ladder live --out {live}` to add one")
        continue
    name = live.name
    live_outcomes = ladder.load_outcomes(live / "outcomes.parquet")
    live_models = list(live_outcomes.attrs["source"]["models"])
    live_cost = ladder_cost.read_cost_json(live / "cost_per_token.json")
    live_arr = ladder_plans.OutcomeArrays.from_frame(live_outcomes, live_models)
    live_fronts = ladder_plans.search(live_arr, live_cost, seeds=seeds, rule=rule)
    live_fronts.to_csv(results / f"live_{name}_fronts.csv", index=False)
    live_savings = ladder_plans.cost_savings(live_fronts)
    live_savings.to_csv(results / f"live_{name}_savings.csv", index=False)
    save(ladder_plots.plot_fronts(live_fronts, split="test", seed=seeds[0],
                                 benchmark=f"{name}, Qwen2.5-Coder 0.5B → 1.5B"), f"live_{name}_fronts_test")
    live_pass1 = pd.read_csv(live / "pass_at_1.csv")
    display(live_pass1.assign(benchmark=name))
    live_rows += [
        {"measure": f"live {name} ({len(live_arr.numbers)} problems): saving at the best single model",
         "measured": 100 * live_savings["saving_at_best_single"].mean(),
         "paper": f"{paper['average_saving']:.0%} average (all families)", "unit": "%"},
        {"measure": f"live {name}: greedy pass@1 " + " / ".join(live_models),
         "measured": " / ".join(f"{100 * x:.1f}" for x in live_pass1["greedy_pass@1"]), "paper": "", "unit": "%"},
    ]
live_comparison = pd.DataFrame(live_rows, columns=["measure", "measured", "paper", "unit"])
live_comparison.to_csv(results / "live_vs_paper.csv", index=False)
live_comparison
