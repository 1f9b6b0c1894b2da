"""benchmarks/retrieval_span.py: the held-out split and the paired comparison, on hand-made rows."""

import importlib.util
import sys
from dataclasses import replace

import pandas as pd
import pytest

from mccom_core.cascade.engine import CascadeConfig, config_hash
from mccom_core.cascade.tasks import read_tasks
from mccom_core.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def span():
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("retrieval_span", PROJECT_ROOT / "benchmarks" / "retrieval_span.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_filtered_config_differs_from_the_legacy_default_only_in_the_filter(span):
    config, legacy = span.filtered_config(), span.legacy_config()
    assert config.retrieval.exclude_visible == "span"
    assert config_hash(config) != config_hash(legacy) == span.BASELINE_HASH
    assert replace(config, retrieval=replace(config.retrieval, exclude_visible="none")) == legacy
    # The legacy config is today's default with RepoCoder's round-2 query (issue 22 changed it).
    assert replace(legacy, retrieval=replace(legacy.retrieval, round2_query="around")) == CascadeConfig()


def test_split_is_fixed_disjoint_and_thirty_percent_validation_per_kind(span):
    tasks = read_tasks(span.TASKS).tasks
    first, again = span.split(tasks), span.split(tasks)
    ids = {name: [t.task_id for t in ts] for name, ts in first.items()}
    assert ids == {name: [t.task_id for t in ts] for name, ts in again.items()}
    assert not set(ids["test"]) & set(ids["validation"])
    for kind in ("line", "stmt"):
        assert sum(t.kind == kind for t in first["validation"]) == 30
        assert sum(t.kind == kind for t in first["test"]) == 70
    other = span.split(tasks, seed=span.SPLIT_SEED + 1)
    assert {t.task_id for t in other["test"]} != set(ids["test"])


def _rows(cells):
    return pd.DataFrame([{"task_id": t, "branch": b, "em": em} for t, branches in cells.items() for b, em in branches.items()])


def test_compare_pairs_tasks_of_both_runs_only(span):
    base = _rows({"a": {"slm": 0, "llm": 1, "llm_rejected": 0}, "b": {"slm": 1, "llm": 1, "llm_rejected": 1},
                  "c": {"slm": 0, "llm": 0, "llm_rejected": 0}})
    filt = _rows({"a": {"slm": 1, "llm": 1, "llm_rejected": 1}, "b": {"slm": 1, "llm": 0, "llm_rejected": 1}})
    table = span.compare(base, filt, {"a", "b", "c"}).set_index("comparison")
    slm = table.loc["SLM, round 1: filter off -> span"]
    assert (slm.n, slm.only_round1, slm.only_round2) == (2, 0, 1)
    llm = table.loc["LLM, round 1: filter off -> span"]
    assert (llm.n, llm.only_round1, llm.only_round2) == (2, 1, 0)
    within = table.loc["filter span: LLM round 1 -> fused round 2"]
    assert (within.n, within.em_round1, within.em_round2) == (2, 0.5, 1.0)
    assert table.loc["filter span, SLM wrong: LLM round 1 -> fused round 2"].n == 0  # both SLM answers right
    verdict = span.decision(span.compare(base, filt, {"a", "b", "c"}))
    assert "n = 2" in verdict and "do not adopt" in verdict  # SLM +50 points but LLM -50: lower, not adopted
    assert span.compare(base, filt, {"c"}).n.max() == 0
