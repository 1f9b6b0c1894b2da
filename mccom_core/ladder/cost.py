"""What a generated token costs on each rung.

Replay (the authors' WizardCoder runs). ``wizard_he_throughput.csv`` gives, per model and
k, the GPUs occupied, the largest batch and the seconds per batch, on RTX 3090s rented at
$0.44/h. Its "Cost on full run ($)" column is exactly
``gpus * 0.44/3600 * seconds_per_batch / max_batch * 1000/22`` on every row (checked by
:func:`check_throughput_formula`), i.e. proportional to GPU-seconds per generated sample.
We take the greedy (k = 0) row of each model, so one sample is one answer, and divide by
the mean number of generated tokens of that model's recorded greedy answers::

    dollars_per_token(m) = gpus(m) * 0.44 / 3600 * seconds_per_batch(m, k=0)
                           / (max_batch(m, k=0) * mean_greedy_answer_tokens(m))

Only ratios between models matter for the plan search; costs are reported relative to
the cheapest single-model plan, as the paper does.

Live runs: seconds per generated token measured on this machine, per model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mccom_core.errors import MccomError

GPU_DOLLARS_PER_HOUR = 0.44  # RTX 3090 rental price the authors used (data README)


def read_throughput(path: str | Path) -> pd.DataFrame:
    """The authors' throughput table with the model name filled down."""
    path = Path(path)
    if not path.is_file():
        raise MccomError(f"throughput table {path} not found: pass wizard_he_throughput.csv")
    df = pd.read_csv(path)
    df["Model"] = df["Model"].ffill()
    df["Num GPUs Occupied"] = df["Num GPUs Occupied"].ffill()
    return df


def check_throughput_formula(table: pd.DataFrame) -> pd.Series:
    """The constant C in cost = gpus * $/s * s_per_batch / batch * C, per row (1000/22 if consistent)."""
    per_sample = (table["Num GPUs Occupied"] * GPU_DOLLARS_PER_HOUR / 3600
                  * table["time per batch (s)"] / table["max batch"])
    return table["Cost on full run ($)"] / per_sample


def mean_greedy_tokens(outcomes: pd.DataFrame) -> dict[str, float]:
    """Mean generated tokens of each model's greedy answer (the k = 0 rows of an outcomes frame)."""
    greedy = outcomes[outcomes["k"] == 0]
    return {str(m): float(v) for m, v in greedy.groupby("model")["tokens"].mean().items()}


def dollars_per_token(table: pd.DataFrame, greedy_tokens: dict[str, float]) -> dict[str, float]:
    """$ per generated token per model, from the k = 0 rows and the greedy answers' mean length."""
    return {r["model"]: r["dollars_per_token"] for r in cost_table(table, greedy_tokens).to_dict("records")}


def cost_table(table: pd.DataFrame, greedy_tokens: dict[str, float]) -> pd.DataFrame:
    """How the per-token costs were derived, one row per model (for reports)."""
    rows = []
    for model, row in table[table["k"] == 0].set_index("Model").iterrows():
        if model not in greedy_tokens:
            continue
        per_sample = (row["Num GPUs Occupied"] * GPU_DOLLARS_PER_HOUR / 3600
                      * row["time per batch (s)"] / row["max batch"])
        rows.append({"model": str(model), "gpus": int(row["Num GPUs Occupied"]),
                     "max_batch": int(row["max batch"]), "s_per_batch": float(row["time per batch (s)"]),
                     "dollars_per_sample": per_sample, "mean_greedy_tokens": greedy_tokens[model],
                     "dollars_per_token": per_sample / greedy_tokens[model]})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["relative_to_smallest"] = out["dollars_per_token"] / out["dollars_per_token"].iloc[0]
    return out


def read_cost_json(path: str | Path) -> dict[str, float]:
    """A ``{model: cost per token}`` JSON (a live run writes ``cost_per_token.json``)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise MccomError(f"cost file {path} not found: pass the cost_per_token.json a live run wrote")
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise MccomError(f"{path} should hold a JSON object {{model: cost per token}} ({exc})") from exc
