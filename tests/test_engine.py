"""The cascade engine: branch rows from tiny random models on a tiny repository."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mccom_core.cascade.tasks import BenchmarkConfig, build_tasks, task_context
from mccom_core.cascade.engine import (
    ABLATIONS, BRANCHES, CORE_BRANCHES, Cascade, CascadeConfig, branch_stats, config_hash,
    line_start_prefix,
)
from mccom_core.lm.decoding import complete
from mccom_core.lm.drafting import DRAFTERS, Drafter
from mccom_core.errors import MccomError
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.lm.prompts import PromptConfig, build_prompt
from mccom_core.retrieval.retrievers import RETRIEVERS, load_index
from mccom_core.retrieval.queries import RetrievalConfig
from tests.conftest import as_loaded, tiny_qwen

# A tiny repository: main.py calls helpers defined in the other two files.
REPO = {
    "pkg/geometry.py": (
        "import math\n\n\ndef area_of_circle(radius):\n    return math.pi * radius ** 2\n\n\n"
        "def perimeter(radius):\n    return 2 * math.pi * radius\n"
    ),
    "pkg/store.py": (
        "import json\n\n\ndef save_result(value, path='out.json'):\n    with open(path, 'w') as fh:\n"
        "        json.dump(value, fh)\n    return path\n"
    ),
    "pkg/main.py": (
        "from pkg.geometry import area_of_circle\nfrom pkg.store import save_result\n\n\n"
        "def main(radius):\n    value = area_of_circle(radius)\n    save_result(value)\n    return value\n"
    ),
}

# Small budgets and windows, so the tiny repository yields hits and the test stays fast.
TINY = CascadeConfig(
    slm="tiny-slm", llm="tiny-llm", stage1_drafter="none", stage2_drafter="none",
    max_left_tokens=128, retrieved_tokens=400, max_line_tokens=8, max_stmt_tokens=8,
    retrieval=RetrievalConfig(window_lines=4, stride=2),
)


def write_repo(root):
    for name, text in REPO.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def pair(tiny_tokenizer):
    slm = as_loaded(tiny_qwen(tiny_tokenizer, seed=0), tiny_tokenizer, "tiny-slm")
    llm = as_loaded(tiny_qwen(tiny_tokenizer, seed=1, layers=3), tiny_tokenizer, "tiny-llm")
    return slm, llm


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A line task on main.py ("value = area_of_circle(radius)"), its context and the index."""
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    root = write_repo(tmp_path / "repo")
    tasks = build_tasks(str(root), BenchmarkConfig(kind="stmt", tasks_per_repo=3)).tasks
    task = next(t for t in tasks if t.ground_truth == "value = area_of_circle(radius)")
    left, right = task_context(task, root)
    return task, left, right, load_index(root, TINY.retrieval)


class Recorder(Drafter):
    """Stage-2 test drafter: proposes the rest of ``draft_ids`` while the output follows it."""

    name = "test-recorder"
    seen: list = []

    def begin(self, context):
        super().begin(context)
        Recorder.seen.append(context)

    def propose(self, generated, budget):
        ids = self.context.draft_ids or ()
        if tuple(generated) != tuple(ids[: len(generated)]):
            return []
        return list(ids[len(generated): len(generated) + budget])


# --------------------------------------------------------------------------- config


def test_config_validates_branches_and_dependencies():
    with pytest.raises(MccomError, match="unknown branches"):
        CascadeConfig(branches=("slm", "nope"))
    with pytest.raises(MccomError, match="needs the output of 'slm'"):
        CascadeConfig(branches=("llm", "llm_rejected"))
    with pytest.raises(MccomError, match="unknown ablation"):
        CascadeConfig().with_ablations("faster")
    full = CascadeConfig().with_ablations("repocoder", "no-drafting")
    assert full.branches == ("slm", "llm", "llm_rejected", "slm_nodraft", "llm_nodraft",
                             "llm_rejected_nodraft", "llm_rejected_repocoder")
    assert all(BRANCHES[b].retriever in RETRIEVERS for b in BRANCHES)
    assert all(b in BRANCHES for names in ABLATIONS.values() for b in names)


def test_config_hash_ignores_branches_only():
    base = CascadeConfig()
    assert config_hash(base) == config_hash(base.with_ablations("no-retrieval"))
    assert config_hash(base) != config_hash(replace(base, max_left_tokens=512))
    assert config_hash(base) != config_hash(replace(base, retrieval=RetrievalConfig(top_k=5)))
    assert config_hash(base) != config_hash(replace(base, context_draft_len=10))
    with pytest.raises(MccomError, match="context_draft_len"):
        CascadeConfig(context_draft_len=0)
    assert len(config_hash(base)) == 16


def test_decode_config_per_kind():
    line, stmt = CascadeConfig().decode_config("line"), CascadeConfig().decode_config("stmt")
    assert (line.stop, line.max_new_tokens) == ("line", 48)
    assert (stmt.stop, stmt.max_new_tokens) == ("statement", 64)


def test_line_start_prefix_drops_what_was_typed_on_the_line():
    assert line_start_prefix("# ctx\ndef f():\n    ", "def f():\n    ") == "# ctx\ndef f():\n"
    assert line_start_prefix("a = 1\n", "a = 1\n") == "a = 1\n"  # cursor at column 0
    assert line_start_prefix("x = f(y", "x = f(y") == ""


# --------------------------------------------------------------------------- branches


def test_core_branches_on_a_tiny_repository(pair, site):
    slm, llm = pair
    task, left, right, index = site
    rows = list(Cascade(slm, llm, TINY).run(task, left, right, index))
    assert [r["branch"] for r in rows] == list(CORE_BRANCHES)
    s, l, e = rows
    assert (s["model"], l["model"], e["model"]) == ("tiny-slm", "tiny-llm", "tiny-llm")
    assert (s["retriever"], l["retriever"], e["retriever"]) == ("round1", "round1", "mccom-fused")
    # The SLM row is exactly what complete() gives on the same prompt.
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.retrieval.retrievers import get_retriever
    from mccom_core.retrieval.prompt import fit_block

    hits = get_retriever("round1", TINY.retrieval).retrieve(index, CompletionSite(left, right, task.path, task.span0))
    block = fit_block(hits, slm.tokenizer, TINY.retrieved_tokens)
    prompt = build_prompt(left, right, slm.tokenizer, PromptConfig(max_left_tokens=128), prefix=block.text)
    direct = complete(slm, prompt, TINY.decode_config("stmt"))
    assert s["prediction"] == direct.text and s["token_ids"] == list(direct.token_ids)
    assert s["confidence"] == direct.confidence and s["prompt_tokens"] == direct.prompt_tokens
    assert s["retrieved_windows"] == len(block.hits) > 0
    # The answer's own window is never retrieved.
    assert all(not (h.window.path == task.path and h.window.start < task.span0[1]
                    and h.window.end > task.span0[0]) for h in hits)
    for row in rows:
        assert row["em"] == exact_match(row["prediction"], task.ground_truth)
        assert row["es"] == edit_similarity(row["prediction"], task.ground_truth)
        assert row["output_in_left"] == (bool(row["prediction"].strip()) and row["prediction"].strip() in prompt.left)
        assert row["retrieval_ms"] > 0 and row["prefill_ms"] > 0
    # Warm accounting: only the SLM, same output, the prompt up to the line start reused.
    n_line_start = len(slm.tokenizer(line_start_prefix(prompt.text, left), add_special_tokens=False)["input_ids"])
    assert s["warm_same_output"] is True
    assert s["warm_reused_tokens"] == min(n_line_start, direct.prompt_tokens - 1)
    assert l["warm_prefill_ms"] is None and e["warm_reused_tokens"] is None


def test_stage2_gets_the_slm_ids_and_drafting_does_not_change_outputs(pair, site, monkeypatch):
    slm, llm = pair
    task, left, right, index = site
    monkeypatch.setitem(DRAFTERS, Recorder.name, Recorder)
    Recorder.seen = []
    config = replace(TINY, stage2_drafter=Recorder.name).with_ablations("no-drafting")
    rows = {r["branch"]: r for r in Cascade(slm, llm, config).run(task, left, right, index)}
    contexts = list(Recorder.seen)
    assert len(contexts) == 1  # only llm_rejected uses the stage-2 drafter
    assert list(contexts[0].draft_ids) == rows["slm"]["token_ids"]
    assert contexts[0].draft_text == slm.tokenizer.decode(rows["slm"]["token_ids"], skip_special_tokens=True)
    assert rows["llm_rejected"]["drafter"] == Recorder.name and rows["llm_rejected"]["n_drafted"] > 0
    for name in ("slm", "llm", "llm_rejected"):
        assert rows[name]["token_ids"] == rows[f"{name}_nodraft"]["token_ids"]
        assert rows[name]["prediction"] == rows[f"{name}_nodraft"]["prediction"]
    assert rows["llm_rejected_nodraft"]["n_drafted"] == 0


def test_real_drafters_are_exact_and_stage2_accepts_an_identical_draft(pair, site):
    slm, _ = pair
    task, left, right, index = site
    twin = replace(slm, spec="tiny-llm")  # the LLM has the SLM's weights: it agrees with the draft
    names = ABLATIONS["no-retrieval"]
    plain = Cascade(slm, twin, replace(TINY, branches=names))
    drafted = Cascade(slm, twin, replace(TINY, branches=names, stage1_drafter="context",
                                         stage2_drafter="cross-model+context"))
    long = Cascade(slm, twin, replace(TINY, branches=names, context_draft_len=10))
    a = {r["branch"]: r for r in plain.run(task, left, right)}
    b = {r["branch"]: r for r in drafted.run(task, left, right)}
    c = {r["branch"]: r for r in long.run(task, left, right)}
    for name in names:
        assert b[name]["token_ids"] == a[name]["token_ids"] and b[name]["prediction"] == a[name]["prediction"]
        assert c[name]["token_ids"] == a[name]["token_ids"]
    s, e = b["slm_noretrieval"], b["llm_rejected_noretrieval"]
    assert (s["drafter"], e["drafter"]) == ("context", "cross-model+context")
    # Same prompt, same weights: the whole SLM output is verified in one pass.
    assert e["token_ids"] == s["token_ids"]
    assert e["n_forward"] == 1 and e["n_accepted"] == len(s["token_ids"]) - 1
    assert a["llm_rejected_noretrieval"]["n_forward"] == len(s["token_ids"])


def test_no_retrieval_and_repocoder_ablations(pair, site):
    slm, llm = pair
    task, left, right, index = site
    config = TINY.with_ablations("no-retrieval", "repocoder")
    rows = {r["branch"]: r for r in Cascade(slm, llm, config).run(task, left, right, index)}
    for name in ABLATIONS["no-retrieval"]:
        assert rows[name]["retrieved_windows"] == 0 and rows[name]["retrieval_ms"] == 0.0
    assert rows["slm_noretrieval"]["prompt_tokens"] < rows["slm"]["prompt_tokens"]
    assert rows["llm_rejected_repocoder"]["retriever"] == "repocoder"
    # Without retrieval no index is needed.
    only = replace(TINY, branches=ABLATIONS["no-retrieval"])
    assert len(list(Cascade(slm, llm, only).run(task, left, right, None))) == 3
    with pytest.raises(MccomError, match="pass the repository index"):
        list(Cascade(slm, llm, TINY).run(task, left, right, None))


def test_done_rows_are_reused_not_recomputed(pair, site):
    slm, llm = pair
    task, left, right, index = site
    cascade = Cascade(slm, llm, TINY)
    first = {r["branch"]: r for r in cascade.run(task, left, right, index)}
    stored = {"slm": {**first["slm"], "prediction": "value = stored", "confidence": 0.25}}
    rest = list(cascade.run(task, left, right, index, done=stored))
    assert [r["branch"] for r in rest] == ["llm", "llm_rejected"]
    assert rest[0]["prediction"] == first["llm"]["prediction"]


def test_branch_stats(pair, site):
    slm, llm = pair
    task, left, right, index = site
    rows = list(Cascade(slm, llm, replace(TINY, warm=False)).run(task, left, right, index))
    stats = branch_stats(rows).set_index("branch")
    assert list(stats.index) == list(CORE_BRANCHES)
    assert (stats["n"] == 1).all()
    s = rows[0]
    assert stats.loc["slm", "cold_ms"] == pytest.approx(
        s["retrieval_ms"] + s["prefill_ms"] + s["decode_ms"] + s["draft_ms"])
    assert stats.loc["slm", "warm_ms"] == pytest.approx(stats.loc["slm", "cold_ms"])  # no warm run


def test_span_filter_drops_windows_the_prompt_already_shows(pair, site):
    """With exclude_visible="span", the engine's prompt holds no window of the target file that
    repeats the left context the prompt shows; the default keeps the old retrieval."""
    from mccom_core.retrieval.prompt import fit_block
    from mccom_core.retrieval.queries import CompletionSite
    from mccom_core.retrieval.redundancy import shown_context, shown_spans
    from mccom_core.retrieval.retrievers import get_retriever

    slm, llm = pair
    task, left, right, index = site
    config = replace(TINY, retrieval=replace(TINY.retrieval, exclude_visible="span"), warm=False)
    row = Cascade(slm, llm, config).branch(BRANCHES["slm"], task, left, right, index)
    site_ = shown_context(CompletionSite(left, right, task.path, task.span0), slm.tokenizer, PromptConfig(max_left_tokens=128))
    old = get_retriever("round1", TINY.retrieval).retrieve(index, CompletionSite(left, right, task.path, task.span0))
    new = get_retriever("round1", config.retrieval).retrieve(index, site_)
    spans = shown_spans(site_)

    def repeats(h):
        overlap = sum(max(0, min(h.window.end, b) - max(h.window.start, a)) for a, b in spans)
        return h.window.path == task.path and 2 * overlap >= h.window.end - h.window.start

    assert any(repeats(h) for h in old)  # the tiny repository has such windows to drop
    assert not any(repeats(h) for h in new)
    block = fit_block(new, slm.tokenizer, TINY.retrieved_tokens)
    assert row["retrieved_windows"] == len(block.hits)
    assert config_hash(config) != config_hash(TINY)
