"""The shipped default benchmark (data/benchmarks/): its task files agree with its definition,
and (slow, needs the sdists in the cache) a rebuild reproduces them byte for byte."""

from collections import Counter

import pytest

from mccom_core.cascade.definition import check_definition, load_definition
from mccom_core.cascade.tasks import read_tasks
from mccom_core.paths import PROJECT_ROOT
from mccom_core.cascade.snapshots import cached_sdist, parse_spec

DEFAULT = PROJECT_ROOT / "data" / "benchmarks" / "default.json"


@pytest.mark.parametrize("kind", ["line", "stmt"])
def test_shipped_tasks_match_the_definition(kind):
    definition = load_definition(DEFAULT)
    loaded = read_tasks(definition.out_dir / kind)
    assert loaded.skipped == []
    repos = definition.raw["repos"]
    assert len(repos) >= 8
    per_repo = Counter(t.repo for t in loaded.tasks)
    assert per_repo == {e["spec"]: e["counts"][kind] for e in repos}
    assert set(per_repo.values()) == {definition.raw["tasks_per_repo"]}  # balanced
    assert len(loaded.tasks) >= 800
    hashes = {e["spec"]: e["sha256"] for e in repos}
    assert all(t.repo_hash == hashes[t.repo] and t.kind == kind for t in loaded.tasks)
    assert len({t.task_id for t in loaded.tasks}) == len(loaded.tasks)


@pytest.mark.slow
def test_default_benchmark_rebuilds_byte_identically():
    definition = load_definition(DEFAULT)
    cached = [e["spec"] for e in definition.repos() if cached_sdist(e["spec"])]
    if not cached:
        pytest.skip("no default sdist in the cache: run `mccom bench build --definition "
                    "data/benchmarks/default.json --check` once (downloads with pip)")
    assert check_definition(DEFAULT, only=[parse_spec(s).name for s in cached]) == []
