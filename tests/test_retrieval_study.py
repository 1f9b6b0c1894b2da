"""Model-free retrieval diagnostics: the fusion-weight sweep and the prompt block's makeup."""

from __future__ import annotations

import pandas as pd
import pytest

from mccom_core.cascade.tasks import BenchmarkConfig, build_tasks, save_tasks
from mccom_core.retrieval.index import Window
from mccom_core.retrieval.queries import Hit
from mccom_core.lab.retrieval_study import (ORIGINS, block_makeup, fusion_hits, fusion_summary, fusion_sweep,
                                        novel_hits,
                                        makeup_summary, retrieval_makeup, window_origin)
from tests.notebook_helpers import cascade_rows
from tests.test_engine import write_repo


def test_fusion_hits_on_a_tiny_repository(tmp_path):
    from mccom_core.retrieval.queries import CompletionSite, RetrievalConfig
    from mccom_core.retrieval.retrievers import load_index
    
    files = {
        "target.py": "from geometry import area_of_circle\nfrom store import save_result\n\n"
                     "def main(radius):\n    value = area_of_circle(radius)\n    save_result(value)\n    return value\n",
        "geometry.py": "import math\n\ndef area_of_circle(radius):\n    return math.pi * radius ** 2\n",
        "store.py": "import json\n\ndef save_result(value, path='out.json'):\n    with open(path, 'w') as fh:\n"
                    "        json.dump(value, fh)\n",
    }
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    config = RetrievalConfig(window_lines=4, stride=2, top_k=10)
    index = load_index(root, config, cache_root=tmp_path / "cache")
    site = CompletionSite("def main(radius):\n    value = ", "", "target.py", (0, 7),
                          slm_output="save_result(radius)", slm_confidence=0.6)
    # Round 1 (w = 0) ranks geometry.py first; RepoCoder's query (w = 1) ranks store.py first.
    got = fusion_hits(index, site, "def save_result(value, path='out.json'):", (0.0, 1.0), top_k=1, config=config)
    assert [(h["setting"], h["weight"], h["hit"], h["rank"]) for h in got] == [
        ("w = 0.00", 0.0, False, None), ("w = 1.00", 1.0, True, 0), ("confidence (MCCom)", 0.6, True, 0)]
    wide = fusion_hits(index, site, "def save_result(value, path='out.json'):", (0.0,), top_k=3, config=config)
    assert wide[0]["hit"] and wide[0]["rank"] == 1


def test_fusion_summary():
    frame = pd.DataFrame([
        {"task_id": "a", "setting": "w = 0.00", "weight": 0.0, "hit": True, "rank": 0},
        {"task_id": "b", "setting": "w = 0.00", "weight": 0.0, "hit": True, "rank": 3},
        {"task_id": "a", "setting": "confidence (MCCom)", "weight": 0.7, "hit": False, "rank": None},
        {"task_id": "b", "setting": "confidence (MCCom)", "weight": 0.2, "hit": True, "rank": 0},
    ])
    s = fusion_summary(frame).set_index("setting")
    assert s.loc["w = 0.00", "hit_rate"] == 1.0 and s.loc["w = 0.00", "hit_at_1"] == 0.5
    assert s.loc["confidence (MCCom)", "weight"] == pytest.approx(0.45) and s.loc["confidence (MCCom)", "n"] == 2
    assert fusion_summary(frame.iloc[:0]).empty


def test_fusion_sweep_leaves_out_tasks_not_in_the_benchmark():
    out = fusion_sweep(cascade_rows(), progress=False)  # t1..t8 are not default-benchmark ids
    assert out.empty and list(out.columns) == ["task_id", "kind", "slm_em", "setting", "weight", "hit", "rank"]


LEFT = "import os\n\ndef load(path):\n    with open(path) as fh:\n        return fh.read()\n\ndef main():\n    "


def hit(path, start, end, text, rank=0):
    return Hit(Window(path, start, end, text), 1.0, rank)


def test_window_origin_and_block_makeup_exact():
    shown = LEFT[LEFT.index("def load"):]  # the prompt kept only the last lines (budget)
    span = (7, 8)  # the target: line 8 (0-based 7), after "def main():"
    hits = [
        hit("t.py", 2, 5, "def load(path):\n    with open(path) as fh:\n        return fh.read()"),  # repeats the prompt
        hit("t.py", 0, 3, "import os\n\ndef load(path):"),  # before the cursor, cut from the prompt
        hit("t.py", 8, 10, "    print(load('x'))\n"),  # after the target
        hit("u.py", 0, 3, "def load(path):\n    with open(path) as fh:\n        return fh.read()"),  # same text elsewhere
    ]
    assert [window_origin(h.window, "t.py", span, shown) for h in hits] == [
        "visible_left", "left_beyond_prompt", "after_cursor", "other_file"]
    assert block_makeup(hits, "t.py", span, shown) == dict(zip(ORIGINS, (1, 1, 1, 1)))
    assert block_makeup(hits[:1] * 3, "t.py", span, LEFT) == {
        "visible_left": 3, "left_beyond_prompt": 0, "after_cursor": 0, "other_file": 0}
    assert block_makeup([], "t.py", span, LEFT) == dict.fromkeys(ORIGINS, 0)


def test_novel_hits_drop_windows_the_prompt_shows_and_renumber():
    shown = LEFT[LEFT.index("def load"):]
    span = (7, 8)
    hits = [
        hit("t.py", 2, 5, "def load(path):\n    with open(path) as fh:\n        return fh.read()", 0),  # shown
        hit("u.py", 0, 3, "def load(path):", 1),
        hit("t.py", 0, 3, "import os\n\ndef load(path):", 2),  # cut from the prompt: kept
        hit("t.py", 8, 10, "    print(load('x'))\n", 3),
    ]
    kept = novel_hits(hits, "t.py", span, shown, k=2)
    assert [(h.window.path, h.window.start, h.rank) for h in kept] == [("u.py", 0, 0), ("t.py", 0, 1)]
    assert [h.window.start for h in novel_hits(hits, "t.py", span, shown, k=10)] == [0, 0, 8]
    assert novel_hits(hits[:1], "t.py", span, shown, k=3) == []


def test_makeup_summary_exact():
    frame = pd.DataFrame([
        {"task_id": "a", "retriever": "round1", "windows": 2, "visible_left": 1, "left_beyond_prompt": 0,
         "after_cursor": 1, "other_file": 0, "truth_in_block": True},
        {"task_id": "b", "retriever": "round1", "windows": 2, "visible_left": 2, "left_beyond_prompt": 0,
         "after_cursor": 0, "other_file": 0, "truth_in_block": False},
        {"task_id": "a", "retriever": "repocoder", "windows": 0, "visible_left": 0, "left_beyond_prompt": 0,
         "after_cursor": 0, "other_file": 0, "truth_in_block": False},
    ])
    s = makeup_summary(frame).set_index("retriever")
    assert s.loc["round1", "n"] == 2 and s.loc["round1", "windows"] == 2.0
    assert s.loc["round1", "visible_left_share"] == 0.75 and s.loc["round1", "after_cursor_share"] == 0.25
    assert s.loc["round1", "truth_in_block"] == 0.5
    assert pd.isna(s.loc["repocoder", "visible_left_share"])  # no windows: no share
    assert makeup_summary(frame.iloc[:0]).empty


def test_retrieval_makeup_rebuilds_the_cascade_block(tmp_path, monkeypatch, tiny_tokenizer):
    """On a tiny repository: one row per (task, retriever), origins that add up to the block's
    windows, visible-left windows really inside the prompt, and no row for unknown tasks."""
    from dataclasses import replace

    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.retrieval.queries import RetrievalConfig

    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    root = write_repo(tmp_path / "repo")
    tasks = build_tasks(str(root), BenchmarkConfig(kind="line", tasks_per_repo=3)).tasks
    path = save_tasks(tasks, tmp_path / "tasks.jsonl")
    rows = [{"task_id": t.task_id, "branch": "slm", "prediction": "x = 1", "confidence": 0.7, "em": False}
            for t in tasks] + [{"task_id": "not-a-task", "branch": "slm", "prediction": "", "confidence": 0.1, "em": False}]
    config = replace(CascadeConfig(), retrieved_tokens=4096, max_left_tokens=4096,
                     retrieval=RetrievalConfig(window_lines=4, stride=2, top_k=3))
    frame = retrieval_makeup(rows, tiny_tokenizer, tasks=path, progress=False, cascade_config=config)
    from mccom_core.cascade.tasks import task_context

    assert sorted(set(frame["task_id"])) == sorted(t.task_id for t in tasks)
    # a task with code before the cursor gets all three; one with none only where a block was found
    # (the cascade cannot complete from nothing either)
    per_task = frame.groupby("task_id")["retriever"].agg(set)
    for t in tasks:
        if task_context(t, root)[0].strip():
            assert per_task[t.task_id] == {"round1", "repocoder", "mccom-fused"}
        else:
            assert (frame[frame["task_id"] == t.task_id]["windows"] > 0).all()
    assert (frame[list(ORIGINS)].sum(axis=1) == frame["windows"]).all()
    assert (frame["windows"] <= 3).all() and frame["windows"].sum() > 0
    # with a budget this large the whole file before the cursor is shown: nothing is cut from it
    assert (frame["left_beyond_prompt"] == 0).all()
