"""The two named ways of searching and scoring the ladder: the authors' and the project's.

Both read the same replayed outcomes (the replay is shared: same sandbox, same dual
agreement, same fallback to the last solution when no pair passes) and differ only in
the plan search. Both savings metrics (:mod:`mccom_core.ladder.savings`) are reported for
both.

``authors`` — Chen et al.'s own pipeline (``check_combinations.py``, ``check_pareto.py`` and
``plotting/plot_avg_curve.py`` of BoyuanJackChen/code_cascading_shared@f13952b):

* acceptance ``a * t >= total * theta`` (their code, not their README's wording);
* their per-token prices, $0.00191 / $0.00665 / $0.02024 per 1k tokens for 7B / 13B /
  34B (their ``humaneval_all_costs.csv``, which the repository does not ship), costs stated
  per 1k questions;
* k in {0, 1, 3, 5, 10} (0: greedy, no tests), l in {2, 4} test lines;
* one split, ``random.seed(7); random.sample(range(164), 49)`` (30/70), and a front per
  theta in 0, 0.1, ..., 1.0.

``project`` — what this project reports by default, and why it differs:

* the README rule (passing pairs > floor(total * theta)): it is what the paper states, and
  at equal theta it adopts less and more precisely (``benchmarks/results/ladder_replay.md``,
  acceptance table);
* prices from the authors' *throughput* table (GPU-seconds per generated token on rented
  RTX 3090s, :mod:`mccom_core.ladder.cost`, 1 : 2.81 : 11.2), because it is published with
  the recordings and its derivation can be checked; the price table cannot;
* ten seeds (0-9): one 49-problem validation split is a single draw, and the saving at the
  best single model ranges from 0% to over 50% across seeds;
* k also in {2, 4}, and a pooled front over all thetas (``theta == "all"``) beside the
  per-theta fronts.
"""

from __future__ import annotations

from dataclasses import dataclass

from mccom_core.errors import MccomError

THETAS = tuple(round(0.1 * i, 1) for i in range(11))  # 0.0, 0.1, ..., 1.0, both configurations
# The authors' prices, $ per 1k generated tokens (check_combinations.py reads them from
# humaneval_all_costs.csv, "Cost per 1k tokens ($)"); see the module docstring.
AUTHORS_PRICES_PER_1K = (("7B", 0.00191), ("13B", 0.00665), ("34B", 0.02024))


@dataclass(frozen=True)
class LadderConfig:
    """How plans are searched and costed; the replayed outcomes are the same for all."""

    name: str
    rule: str  # acceptance rule, a name in mccom_core.ladder.replay.ACCEPTANCE_RULES
    ks: tuple[int, ...] | None  # k values searched; None: every k the replay computed
    thetas: tuple[float, ...] = THETAS
    seeds: tuple[int, ...] = (7,)  # validation/test splits (random.Random(seed).sample)
    val_frac: float = 0.3  # 49 of 164 HumanEval problems, as the authors
    prices_per_1k: tuple[tuple[str, float], ...] = ()  # $ per 1k tokens per model; () = from throughput

    def dollars_per_token(self) -> dict[str, float] | None:
        """The configured prices per generated token, or None (derive them from throughput)."""
        return {m: p / 1000 for m, p in self.prices_per_1k} or None


AUTHORS = LadderConfig("authors", rule="authors-code", ks=(0, 1, 3, 5, 10), seeds=(7,),
                       prices_per_1k=AUTHORS_PRICES_PER_1K)
PROJECT = LadderConfig("project", rule="readme", ks=None, seeds=tuple(range(10)))
CONFIGS: dict[str, LadderConfig] = {c.name: c for c in (AUTHORS, PROJECT)}


def get_config(name: str | LadderConfig) -> LadderConfig:
    """A configuration by name (``authors`` or ``project``), or the one given."""
    if isinstance(name, LadderConfig):
        return name
    if name not in CONFIGS:
        raise MccomError(f"unknown ladder configuration {name!r}: choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]


def parse_prices(items) -> dict[str, float]:
    """``["7B=0.00191", ...]`` ($ per 1k tokens) -> {model: $ per token}."""
    out = {}
    for item in items:
        model, sep, value = str(item).partition("=")
        try:
            out[model] = float(value) / 1000
        except ValueError:
            sep = ""
        if not sep or not model:
            raise MccomError(f"price {item!r} should read MODEL=DOLLARS_PER_1K_TOKENS, e.g. 7B=0.00191")
    return out
