"""The mccom CLI wraps the library: complete and quickstart on a tiny checkpoint, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mccom_core.cli import build_parser, main
from mccom_core.lab.quickstart import QuickstartConfig, pick_lines, run_quickstart
from tests.conftest import build_tiny_tokenizer, tiny_qwen

SOURCE = '''import os


def mean(values):
    total = sum(values)
    count = len(values)
    result = total / count
    return result


def main():
    data = [1, 2, 3]
    print(mean(data))
'''


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    tok = build_tiny_tokenizer()
    tiny_qwen(tok, seed=7).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def source_file(tmp_path):
    f = tmp_path / "stats.py"
    f.write_text(SOURCE)
    return str(f)


def test_complete_prints_completion_probs_and_timings(tiny_ckpt, source_file, capsys):
    assert main(["complete", source_file, "--line", "8", "--model", tiny_ckpt, "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    for key in ("completion ", "confidence ", "tokens ", "prefill ", "decode ", "passes"):
        assert key in out
    assert "healed: '    '" in out  # cursor after the indentation of line 8


def test_errors_exit_1_with_a_message(tiny_ckpt, source_file, capsys):
    assert main(["complete", source_file, "--line", "99", "--model", tiny_ckpt]) == 1
    assert "line 99 is outside the file" in capsys.readouterr().err
    assert main(["complete", source_file, "--line", "2", "--model", "no-such-model"]) == 1
    assert "unknown model spec" in capsys.readouterr().err
    assert main(["complete", "/no/such/file.py", "--line", "1", "--model", tiny_ckpt]) == 1
    assert "file not found" in capsys.readouterr().err


def test_commands_are_registered():
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"complete", "quickstart"} <= names


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "mccom_core", "--help"], capture_output=True, text=True, check=True)
    assert "complete" in out.stdout and "quickstart" in out.stdout


def test_quickstart_table(tiny_ckpt, source_file):
    cfg = QuickstartConfig(models=(tiny_ckpt, tiny_ckpt), n_lines=3, min_line=1)
    df = run_quickstart(source_file, cfg)
    assert len(df) == 6
    assert set(df["line"]) == {c.start_line for c in pick_lines(SOURCE, 3, 0)}
    assert {"completion", "exact_match", "edit_similarity", "confidence", "prefill_ms", "decode_ms"} <= set(df.columns)
    assert df["edit_similarity"].between(0, 1).all() and df["confidence"].between(0, 1).all()
    picked = run_quickstart(source_file, cfg, lines=[5, 7])
    assert sorted(set(picked["line"])) == [5, 7]


def test_pick_lines_is_seeded_and_skips_trivial():
    a = pick_lines(SOURCE, 3, seed=1)
    assert a == pick_lines(SOURCE, 3, seed=1)
    assert all(c.ground_truth.strip() and not c.ground_truth.startswith("#") for c in a)
