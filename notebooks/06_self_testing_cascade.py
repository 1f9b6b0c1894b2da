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
# # 06 · The self-testing cascade for code generation
#
# Chen et al., *Model Cascading for Code* (arXiv 2405.15842): a ladder of models, small to
# large. Each rung writes `k` solutions and `k` test blocks (first `l` lines each), runs every
# (solution, test) pair in the sandbox, picks its best solution by dual agreement and adopts it
# when the acceptance rule holds; otherwise the next rung is asked, and the last rung always
# answers. Plans (k, l, theta per rung) are chosen on a seeded 30% validation split as a
# cost/pass@1 Pareto front and evaluated on the other 70%.
#
# This notebook is glue: it replays the authors' recorded WizardCoder-Python 7B/13B/34B
# generations through `mccom_core.ladder.replay` (the execution cache makes a warm replay take
# about a minute; see `benchmarks/results/ladder_replay.md` for the cold time), then searches
# plans under two named configurations (`mccom_core.ladder.configs`) and reports them side by side:
#
# * **authors** — their code's acceptance rule (`a * t >= total * theta`), their per-token prices
#   ($0.00191 / $0.00665 / $0.02024 per 1k tokens, costs per 1k questions), k in {0, 1, 3, 5, 10},
#   the seed-7 30/70 split, a front per theta;
# * **project** — the README's rule (passing pairs > floor(total * theta)), prices derived from the
#   authors' throughput table, k also 2 and 4, ten seeds, plus a front pooled over theta.
#
# Both share the replay (same verdicts; with no passing pair a rung names its *last* solution, as
# the authors' `select.py`) and both are scored by both savings metrics
# (`mccom_core.ladder.savings`): the authors' (each front plan against the mean cost of the
# single-model plans within ±0.5 points of its pass@1) and the project's (the cheapest front plan
# at least as accurate as each single-model front plan).

# %% tags=["parameters"]
data_dir = ""  # WizardCoder recordings of Chen et al.; empty: code_cascading_wizardcoder in MCCOM_SHARED_DATA or ../shared/data
results_dir = "build/notebooks/results/06_self_testing_cascade"  # tables (relative to the project root, or absolute)
figures_dir = "build/notebooks/figures"  # PNG + SVG (relative to the project root, or absolute)
problems = 0  # first N problems only (0 means all 164)
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # the project configuration's splits (the authors' is seed 7)
thetas_to_plot = [0.3, 0.5, 0.7, 0.9]
live_dirs = ["benchmarks/results/ladder_live/humaneval",  # `mccom ladder live` outputs (relative to the project root, or absolute)
             "benchmarks/results/ladder_live/mbpp"]  # (recorded by benchmarks/ladder_live.py)

# %%
from dataclasses import replace
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from mccom_core.errors import MccomError
from mccom_core.lab import ladder_plots, plots
from mccom_core.papers import SELF_TESTING_CLAIMS
from mccom_core.ladder import configs as ladder_configs, cost as ladder_cost, data as ladder_data
from mccom_core.ladder import plans as ladder_plans, replay as ladder, savings as ladder_savings
from mccom_core.paths import project_path, shared_data_dir

problems = int(problems)
seeds = [int(s) for s in seeds]
# Paths are project-relative by default, so the notebook runs in any clone.
results_dir, figures_dir = (str(project_path(p)) for p in (results_dir, figures_dir))
live_dirs = [str(project_path(d)) for d in live_dirs]
results = Path(results_dir)
results.mkdir(parents=True, exist_ok=True)
BENCHMARK = "HumanEval, WizardCoder-Python 7B/13B/34B"
CONFIGS = {"authors": ladder_configs.AUTHORS, "project": replace(ladder_configs.PROJECT, seeds=tuple(seeds))}

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
# ## Per-token cost: the authors' prices and the project's throughput-derived costs
#
# Only ratios between models matter to the plan search; both are shown relative to the 7B.

# %%
if have_recordings:
    table = ladder_cost.read_throughput(Path(data_dir) / "wizard_he_throughput.csv")
    costs = ladder_cost.cost_table(table, ladder_cost.mean_greedy_tokens(outcomes))
    costs.to_csv(results / "cost_per_token.csv", index=False)
    dollars_per_token = {name: ladder_plans.plan_costs(outcomes, cfg, Path(data_dir) / "wizard_he_throughput.csv")
                         for name, cfg in CONFIGS.items()}
    price_table = pd.DataFrame([{"configuration": name, "model": m, "dollars_per_1k_tokens": 1000 * d[m],
                                 "relative_to_7B": d[m] / d[gens.models[0]]}
                                for name, d in dollars_per_token.items() for m in gens.models])
    price_table.to_csv(results / "prices.csv", index=False)
    display(price_table)

# %% [markdown]
# ## Plan search under both configurations
#
# `fronts_<configuration>.csv` holds one row per (seed, theta, plan): the plans on that theta's
# validation front and every single-model plan; `savings_<configuration>.csv` both savings metrics
# per (seed, theta).

# %%
if have_recordings:
    arr = ladder_plans.OutcomeArrays.from_frame(outcomes, gens.models)
    fronts, tables = {}, {}
    for name, cfg in CONFIGS.items():
        fronts[name] = ladder_plans.search(arr, dollars_per_token[name], seeds=cfg.seeds, thetas=cfg.thetas,
                                           ks=cfg.ks, val_frac=cfg.val_frac, rule=cfg.rule)
        tables[name] = ladder_savings.savings_table(fronts[name])
        fronts[name].to_csv(results / f"fronts_{name}.csv", index=False)
        tables[name].to_csv(results / f"savings_{name}.csv", index=False)
    side_by_side = pd.concat([ladder_savings.by_theta(tables[n], n) for n in CONFIGS], ignore_index=True)
    side_by_side.to_csv(results / "savings_by_theta.csv", index=False)
    display(side_by_side.pivot(index="theta", columns="configuration",
                               values=["authors_average_saving", "saving_at_best_single"])
            .reindex(list(dict.fromkeys(side_by_side["theta"]))).mul(100).round(1))

# %% [markdown]
# ## Side by side: savings per theta under both metrics
#
# Left, the authors' metric (mean over the validation front of the saving against single models
# of about the same test pass@1); right, the project's (the saving at the best single model).
# Each bar is a configuration: the authors' is one split (seed 7), the project's the mean over
# its seeds.

# %%
if have_recordings:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    ladder_plots.plot_savings_by_theta(side_by_side, "authors_average_saving", ax=axes[0],
                                       title=f"{BENCHMARK}: the authors' metric (±0.5 points)")
    ladder_plots.plot_savings_by_theta(side_by_side, "saving_at_best_single", ax=axes[1],
                                       title=f"{BENCHMARK}: the project's metric (at the best single model)")
    fig.tight_layout()
    save(fig, "savings_by_theta")
    save(ladder_plots.plot_fronts(fronts["authors"], split="test", seed=7, thetas=[1.0],
                                  benchmark=BENCHMARK + ", the authors' configuration"), "fronts_authors_test")
    for split in ("val", "test"):
        save(ladder_plots.plot_fronts(fronts["project"], split=split, seed=seeds[0], thetas=thetas_to_plot,
                                      benchmark=BENCHMARK), f"fronts_{split}")

# %% [markdown]
# ## The one HumanEval problem whose verdict differs: #76
#
# The authors' files grade the 34B greedy answer to HumanEval/76 (`is_simple_power`) wrong
# (`"indeed": false` in `selected/34B/34B_p0_t0_l0.json` and in every k = 1 selection holding it);
# the replay grades it right. It passes all ten asserts of the problem's test in
# `data/HumanEval.json`. Their grader (`fill_selected_accuracy.py`) ran against another copy of
# HumanEval, outside their repository, so its test for #76 cannot be checked. The answer is not
# sound, though: `while power < x: power = power * n` never ends when `n == 1 < x`, which is the
# docstring's own example `is_simple_power(3, 1)`; HumanEval's test never tries it. On every
# other problem the greedy verdicts of all three models agree with theirs.

# %%
if have_recordings and ("34B", -1, 76) in verdicts:
    v76 = verdicts[("34B", -1, 76)]
    print(f"34B greedy answer to HumanEval/76: {v76['reasons'][0]} (the authors' files: failed)")

# %% [markdown]
# ## Cost saving at equal or better pass@1 than the best single model, per seed (project)
#
# Each bar is labelled with its value, so a seed without a saving shows "0%" where its bar
# would be.

# %%
paper = SELF_TESTING_CLAIMS
if have_recordings:
    pooled = tables["project"][tables["project"]["theta"].astype(str) == "all"]
    pooled.to_csv(results / "savings.csv", index=False)
    authors_t1 = tables["authors"][tables["authors"]["theta"].astype(str) == "1.0"].iloc[0]
    wizard = f"WizardCoder-Python {paper['wizardcoder_saving'][0]:.0%}-{paper['wizardcoder_saving'][1]:.0%}"
    comparison = pd.DataFrame([  # percent, as the paper states them
        {"measure": "authors' configuration and metric, seed 7, theta 1.0",
         "measured": 100 * authors_t1["authors_average_saving"], "paper": wizard},
        {"measure": "saving at the best single model (project, mean over seeds)",
         "measured": 100 * pooled["saving_at_best_single"].mean(), "paper": wizard},
        {"measure": "mean saving over single-model front points", "measured": 100 * pooled["mean_saving"].mean(),
         "paper": f"{paper['average_saving']:.0%} average (all families)"},
        {"measure": "max saving", "measured": 100 * pooled["max_saving"].max(),
         "paper": f"up to {paper['max_saving']:.0%}"},
    ]).assign(unit="%")
    comparison.to_csv(results / "savings_vs_paper.csv", index=False)
    save(ladder_plots.plot_savings(pooled, paper, benchmark=BENCHMARK), "savings")
    display(comparison)

# %% [markdown]
# ## Live: the Qwen2.5-Coder 0.5B → 1.5B ladder on this machine
#
# `benchmarks/ladder_live.py` had the two real models write greedy and sampled solutions and
# CodeT-style tests for HumanEval and MBPP-sanitized on this CPU, and recorded them in the
# authors' layout; here they are replayed (the sandbox verdicts come from the execution cache)
# and searched with the project's configuration. The cost unit is seconds of generation per
# token, measured per model while generating. Only the first problems of each benchmark were
# run (a 2-core CPU writes about a problem a minute with both models), so the splits are small:
# read the savings as indicative.

# %%
live_rows = []
project = CONFIGS["project"]
for live in map(Path, live_dirs):
    if not (live / "outcomes.parquet").is_file():
        print(f"no live run at {live}: run `mccom ladder live --out {live}` to add one")
        continue
    name = live.name
    live_outcomes = ladder.load_outcomes(live / "outcomes.parquet")
    live_models = list(live_outcomes.attrs["source"]["models"])
    live_cost = ladder_cost.read_cost_json(live / "cost_per_token.json")
    live_arr = ladder_plans.OutcomeArrays.from_frame(live_outcomes, live_models)
    live_fronts = ladder_plans.search(live_arr, live_cost, seeds=project.seeds, thetas=project.thetas,
                                      rule=project.rule)
    live_fronts.to_csv(results / f"live_{name}_fronts.csv", index=False)
    live_savings = ladder_savings.savings_table(live_fronts)
    live_savings = live_savings[live_savings["theta"].astype(str) == "all"]
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

# %% [markdown]
# ## What we found
#
# The summary below is computed from the tables above (nothing in it is typed by hand).

# %%
if have_recordings:
    a, p = (side_by_side[side_by_side["configuration"] == n].set_index("theta") for n in ("authors", "project"))
    grid = [t for t in a.index if t != "all"]
    best_a = max(grid, key=lambda t: a.loc[t, "authors_average_saving"])
    lines = [
        f"* **The authors' configuration** (their rule, prices, k values, seed-7 split), scored by their metric: "
        f"{100 * a.loc['1.0', 'authors_average_saving']:.1f}% average saving at theta 1.0 (their plotting "
        f"script's setting), {100 * a.loc[best_a, 'authors_average_saving']:.1f}% at its best theta ({best_a}); "
        f"per theta from {100 * a.loc[grid, 'authors_average_saving'].min():.1f}% to "
        f"{100 * a.loc[grid, 'authors_average_saving'].max():.1f}%. The paper reports "
        f"{paper['wizardcoder_saving'][0]:.0%}-{paper['wizardcoder_saving'][1]:.0%} for this family.",
        f"* Scored by the project's metric, the same configuration saves "
        f"{100 * a.loc['1.0', 'saving_at_best_single']:.1f}% at the best single model at theta 1.0 and "
        f"{100 * a.loc['all', 'saving_at_best_single']:.1f}% with theta pooled.",
        f"* **The project's configuration** (README rule, throughput-derived prices, {len(seeds)} seeds): "
        f"{100 * p.loc['all', 'saving_at_best_single']:.1f}% at the best single model with theta pooled "
        f"(mean over seeds), {100 * p.loc['all', 'authors_average_saving']:.1f}% by the authors' metric; per theta "
        f"{100 * p.loc[grid, 'saving_at_best_single'].min():.1f}% to {100 * p.loc[grid, 'saving_at_best_single'].max():.1f}% "
        f"at the best single model.",
        f"* Greedy pass@1 recomputed in the sandbox: " + ", ".join(
            f"{r['model']} {100 * r['greedy_pass@1']:.1f}%" for _, r in pass1.iterrows()) +
        ". The only greedy verdict that differs from the authors' files is HumanEval/76 (34B), graded right here.",
    ]
    display(Markdown("\n".join(lines)))
else:
    display(Markdown("* The authors' recordings were not found, so only the live ladder is summarised above."))
