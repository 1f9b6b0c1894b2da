import os

import numpy as np
import pytest

from mccom_core.retrieval import index as repo_index
from mccom_core.errors import MccomError
from mccom_core.retrieval.index import IndexConfig, build_index, window_spans


def numbered(n, name="line"):
    """n lines 'name_0 = 0', 'name_1 = 1', ... (each line's identifier is unique)."""
    return "\n".join(f"{name}_{i} = {i}" for i in range(n)) + "\n"


def write(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def spans(index):
    return [(w.path, w.start, w.end) for w in map(index.window, range(len(index)))]


def test_window_spans_boundaries():
    assert window_spans(0) == []
    assert window_spans(5) == [(0, 5)]
    assert window_spans(20) == [(0, 20)]
    assert window_spans(21) == [(0, 20), (10, 21)]
    assert window_spans(25) == [(0, 20), (10, 25)]
    assert window_spans(30) == [(0, 20), (10, 30)]
    assert window_spans(31) == [(0, 20), (10, 30), (20, 31)]
    assert window_spans(7, window_lines=3, stride=2) == [(0, 3), (2, 5), (4, 7)]
    assert window_spans(4, window_lines=2, stride=3) == [(0, 2), (3, 4)]


def test_index_windows_keep_path_span_and_text(tmp_path, cache):
    repo = write(tmp_path / "repo", {
        "pkg/a.py": numbered(25, "a"),
        "b.py": "def f():\n    return 1\n",
        "notes.txt": "not indexed\n",
    })
    index = build_index(repo, cache_root=cache)
    assert index.paths == ["b.py", "pkg/a.py"]
    assert spans(index) == [("b.py", 0, 2), ("pkg/a.py", 0, 20), ("pkg/a.py", 10, 25)]
    assert index.window(0).text == "def f():\n    return 1"
    assert index.window(2).text == "\n".join(f"a_{i} = {i}" for i in range(10, 25))
    assert (index.stats.files_indexed, index.stats.windows, index.stats.lines) == (2, 3, 27)
    assert index.stats.skipped == ()


def test_configurable_window_stride_and_extensions(tmp_path, cache):
    repo = write(tmp_path / "repo", {"a.py": numbered(7), "b.pyi": numbered(3), "c.js": "x\n"})
    config = IndexConfig(window_lines=3, stride=2, extensions=(".py", ".pyi"))
    index = build_index(repo, config, cache_root=cache)
    assert spans(index) == [("a.py", 0, 3), ("a.py", 2, 5), ("a.py", 4, 7), ("b.pyi", 0, 3)]


def test_windows_overlapping_the_target_are_not_eligible(tmp_path, cache):
    repo = write(tmp_path / "repo", {"t.py": numbered(45), "u.py": numbered(45)})
    index = build_index(repo, cache_root=cache)
    assert spans(index)[:4] == [("t.py", 0, 20), ("t.py", 10, 30), ("t.py", 20, 40), ("t.py", 30, 45)]
    assert index.eligible().tolist() == [True] * 8
    assert index.eligible("t.py", (35, 36)).tolist() == [True, True, False, False] + [True] * 4
    # An empty span (a cursor on line 20) counts as line 20; the span end is exclusive.
    assert index.eligible("t.py", (20, 20)).tolist() == [True, False, False, True] + [True] * 4
    assert index.eligible("t.py", (5, 10)).tolist() == [False, True, True, True] + [True] * 4
    # Absolute paths name the same file; a file outside the index excludes nothing.
    assert index.eligible(repo / "t.py", (35, 36)).tolist() == [True, True, False, False] + [True] * 4
    assert index.eligible("new.py", (0, 5)).tolist() == [True] * 8
    with pytest.raises(MccomError, match="half-open"):
        index.eligible("t.py", (5, 4))
    with pytest.raises(MccomError, match="not inside"):
        index.eligible(tmp_path / "elsewhere.py", (0, 1))


@pytest.mark.parametrize("backend", ["rank-bm25", "bm25s"])
def test_backends_rank_the_matching_window_first(tmp_path, cache, backend):
    repo = write(tmp_path / "repo", {
        "io.py": "def read_config(path):\n    return parse_toml(open(path).read())\n",
        "math.py": "def add(a, b):\n    return a + b\n",
        "net.py": "def fetch(url):\n    return http_get(url)\n",
    })
    index = build_index(repo, IndexConfig(backend=backend), cache_root=cache)
    scores = index.scores(["parse_toml", "parse", "toml", "config"])
    assert [index.window(i).path for i in np.argsort(-scores, kind="stable")] == ["io.py", "math.py", "net.py"]
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    assert index.scores([]).tolist() == [0.0, 0.0, 0.0]
    assert index.scores(["unknown_word"]).tolist() == [0.0, 0.0, 0.0]
    cached = build_index(repo, IndexConfig(backend=backend), cache_root=cache)  # unpickled
    assert cached.scores(["parse_toml", "config"]).tolist() == index.scores(["parse_toml", "config"]).tolist()


def test_identical_inputs_give_identical_indexes(tmp_path, cache):
    files = {"a.py": numbered(33, "a"), "sub/b.py": numbered(12, "b")}
    one = build_index(write(tmp_path / "one", files), use_cache=False)
    two = build_index(write(tmp_path / "two", files), use_cache=False)
    assert one.snapshot == two.snapshot
    assert spans(one) == spans(two)
    query = ["a_3", "b_7", "a", "b"]
    assert one.scores(query).tolist() == two.scores(query).tolist()


def test_cache_hit_then_invalidation_when_a_file_changes(tmp_path, cache, monkeypatch):
    repo = write(tmp_path / "repo", {"a.py": numbered(5, "old")})
    first = build_index(repo, cache_root=cache)
    assert sorted(p.name for p in cache.iterdir()) == [f"{first.snapshot}.pkl"]

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt although the snapshot is cached")

    monkeypatch.setattr(repo_index, "_build", no_rebuild)
    again = build_index(repo, cache_root=cache)
    assert again.snapshot == first.snapshot and spans(again) == spans(first)
    monkeypatch.undo()

    (repo / "a.py").write_text(numbered(5, "new"), encoding="utf-8")
    changed = build_index(repo, cache_root=cache)
    assert changed.snapshot != first.snapshot
    assert changed.window(0).text.startswith("new_0 = 0")
    assert len(list(cache.iterdir())) == 2
    # Another configuration is another snapshot too.
    assert build_index(repo, IndexConfig(stride=5), cache_root=cache).snapshot != changed.snapshot


def test_cache_defaults_to_the_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "usercache"))
    index = build_index(write(tmp_path / "repo", {"a.py": "x = 1\n"}))
    assert (tmp_path / "usercache" / "retrieval" / f"{index.snapshot}.pkl").is_file()


def test_missing_or_empty_repository_is_a_user_error(tmp_path, cache):
    with pytest.raises(MccomError, match="not a directory"):
        build_index(tmp_path / "missing", cache_root=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MccomError, match="nothing to index.*no files"):
        build_index(tmp_path / "empty", cache_root=cache)
    repo = write(tmp_path / "blank", {"a.py": "", "readme.md": "# hi\n"})
    with pytest.raises(MccomError, match=r"1 empty file\(s\)"):
        build_index(repo, cache_root=cache)


def test_binary_non_utf8_and_large_files_are_skipped_and_counted(tmp_path, cache):
    repo = write(tmp_path / "repo", {
        "good.py": "x = 1\n",
        "blob.py": b"\x00\x01\x02binary",
        "latin.py": "name = 'caf\xe9'\n".encode("latin-1"),
        "big.py": "y = 2\n" * 100,
    })
    index = build_index(repo, IndexConfig(max_file_bytes=200), cache_root=cache)
    assert index.paths == ["good.py"]
    assert index.stats.skipped == (("big.py", "too-large"), ("blob.py", "binary"), ("latin.py", "not-utf8"))
    assert index.stats.skipped_counts == {"binary": 1, "not-utf8": 1, "too-large": 1}


def test_symlinks_and_symlink_loops_are_skipped_not_followed(tmp_path, cache):
    repo = write(tmp_path / "repo", {"real.py": "x = 1\n", "sub/inner.py": "y = 2\n"})
    os.symlink(repo, repo / "sub" / "loop")  # a directory loop back to the root
    os.symlink("self.py", repo / "self.py")  # a file that points at itself
    os.symlink("real.py", repo / "alias.py")  # a duplicate of real.py
    index = build_index(repo, cache_root=cache)
    assert index.paths == ["real.py", "sub/inner.py"]
    assert index.stats.skipped == (("alias.py", "symlink"), ("self.py", "symlink"), ("sub/loop", "symlink"))


def test_bad_index_config_is_a_user_error():
    with pytest.raises(MccomError, match="stride"):
        IndexConfig(stride=0)
    with pytest.raises(MccomError, match="unknown BM25 backend"):
        IndexConfig(backend="lucene")
    with pytest.raises(MccomError, match="extensions"):
        IndexConfig(extensions=())


def test_an_unwritable_cache_warns_and_still_returns_the_index(tmp_path):
    repo = write(tmp_path / "repo", {"a.py": "x = 1\n"})
    blocker = tmp_path / "cache_is_a_file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="not cached"):
        index = build_index(repo, cache_root=blocker / "sub")
    assert index.paths == ["a.py"]
