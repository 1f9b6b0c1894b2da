import pytest

from mccom_core.cli import main

REPO = {
    "util.py": "def parse_header(raw):\n    return raw.split(':', 1)\n",
    "app.py": "from util import parse_header\n\nname, value = parse_header(line)\nprint(name)\n",
    "blob.py": b"\x00binary",
}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "repo"
    root.mkdir()
    for name, content in REPO.items():
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            (root / name).write_text(content, encoding="utf-8")
    return root


def test_index_prints_counts_and_skips(repo, capsys):
    assert main(["retrieve", "index", str(repo), "--backend", "bm25s"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{repo}: 2 files, 6 lines, 2 windows (bm25s); snapshot ")
    assert out[1:] == ["  skipped 1 file(s): binary"]


def test_query_lists_windows_excluding_the_target_line(repo, capsys):
    # bm25s: with only two windows, rank-bm25's Robertson idf is 0 or below for every word.
    argv = ["retrieve", "query", str(repo), "app.py", "--line", "3", "--show-text", "--backend", "bm25s"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    # app.py's only window (lines 1-4) holds line 3, so only util.py can be retrieved.
    assert out[0].split() == ["1", out[0].split()[1], "util.py:1-2"]
    assert out[1:] == ["      | def parse_header(raw):", "      |     return raw.split(':', 1)"]


def test_query_errors_are_reported_not_raised(repo, capsys):
    assert main(["retrieve", "query", str(repo), "app.py", "--line", "99"]) == 1
    assert "--line 99 is outside" in capsys.readouterr().err
    assert main(["retrieve", "query", str(repo), "app.py", "--line", "3", "--strategy", "repocoder"]) == 1
    assert "slm_output" in capsys.readouterr().err
    assert main(["retrieve", "index", str(repo / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err
