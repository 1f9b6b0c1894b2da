"""The mccom CLI wraps the library: complete and quickstart on a tiny checkpoint, clear errors,
and every option's default read from the library config it feeds."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import subprocess
import sys

import pytest

from mccom_core.cli import build_parser, main
from mccom_core.lab.quickstart import QuickstartConfig, pick_lines, run_quickstart
from mccom_core.paths import DEFAULT_TASKS
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


def test_complete_reads_the_declared_encoding_and_rejects_undecodable_files(tiny_ckpt, tmp_path, capsys):
    f = tmp_path / "latin.py"
    body = "def greet():\n    name = 'Jos\u00e9'\n    return name\n"
    f.write_bytes(("# -*- coding: latin-1 -*-\n" + body).encode("latin-1"))
    assert main(["complete", str(f), "--line", "4", "--model", tiny_ckpt, "--max-new-tokens", "2"]) == 0
    assert "completion " in capsys.readouterr().out
    f.write_bytes(body.encode("latin-1"))  # the same bytes without the cookie
    assert main(["complete", str(f), "--line", "3", "--model", tiny_ckpt]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mccom: error: cannot read {f}: line 2 has byte 0xe9") and err.count("\n") == 1
    f.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    assert main(["complete", str(f), "--line", "1", "--model", tiny_ckpt]) == 1
    assert capsys.readouterr().err == f"mccom: error: {f} looks like a binary file (it contains NUL bytes), " \
                                      "not source code: pass a text source file\n"


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


# --- Defaults come from the library (mccom_core.cli._defaults), never restated by the CLI ---

def _leaf_parsers(parser, path=()):
    """(command path, parser) of every runnable sub-command under ``parser``."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _leaf_parsers(child, path + (name,))


def _param(func, name):
    return inspect.signature(func).parameters[name].default


def _expected():
    """Each sub-command's minimal argv and the namespace it must parse to: every option, with
    the value of the library config field (or function parameter) it feeds."""
    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.cascade.runner import run_benchmark
    from mccom_core.cascade.tasks import BenchmarkConfig
    from mccom_core.lab.jupyterlab import LabConfig
    from mccom_core.lab.reproduce import reproduce
    from mccom_core.ladder.live import LiveConfig
    from mccom_core.ladder.plans import run_plans
    from mccom_core.ladder.replay import ReplayConfig, run_replay
    from mccom_core.lm.decoding import DecodeConfig
    from mccom_core.lm.models import load_model
    from mccom_core.lm.prompts import PromptConfig
    from mccom_core.lm.serve import ServeConfig
    from mccom_core.retrieval.queries import RetrievalConfig

    decode, prompt, cascade, bench = DecodeConfig(), PromptConfig(), CascadeConfig(), BenchmarkConfig()
    quick, retrieval, replay, live = QuickstartConfig(), RetrievalConfig(), ReplayConfig(), LiveConfig()
    lab, serve = LabConfig(), ServeConfig()
    index = {"repo": "r", "backend": retrieval.backend, "extensions": retrieval.extensions,
             "window_lines": retrieval.window_lines, "stride": retrieval.stride, "no_cache": False}
    return {
        ("complete",): (["f.py", "--line", "3"], {
            "file": "f.py", "line": 3, "col": None, "model": cascade.slm,
            "device": _param(load_model, "device"), "dtype": _param(load_model, "dtype"),
            "drafter": cascade.stage1_drafter, "stop": decode.stop, "max_new_tokens": decode.max_new_tokens,
            "max_left_tokens": prompt.max_left_tokens, "format": prompt.format, "heal": decode.token_healing}),
        ("quickstart",): ([], {
            "file": None, "lines": None, "n_lines": quick.n_lines, "seed": quick.seed, "models": quick.models,
            "device": quick.device, "drafter": quick.drafter, "out": None}),
        ("bench", "build"): (["--spec", "pkg==1.0"], {
            "definition": None, "spec": "pkg==1.0", "repo": None, "out": None, "record": False, "check": False,
            "kind": bench.kind, "tasks": bench.tasks_per_repo, "seed": bench.seed}),
        ("bench", "run"): (["--out", "o.jsonl"], {
            "tasks": str(DEFAULT_TASKS), "out": "o.jsonl", "limit": None, "kind": None,
            "device": _param(run_benchmark, "device"), "slm": cascade.slm, "llm": cascade.llm, "ablation": [],
            "max_left_tokens": cascade.max_left_tokens, "retrieved_tokens": cascade.retrieved_tokens,
            "stage1_drafter": cascade.stage1_drafter, "context_draft_len": cascade.context_draft_len,
            "stage2_drafter": cascade.stage2_drafter, "warm": cascade.warm, "workers": None, "ray_address": None,
            "quiet": False}),
        ("retrieve", "index"): (["r"], index),
        ("retrieve", "query"): (["r", "f.py", "--line", "3"], {
            **index, "file": "f.py", "line": 3, "strategy": "round1",
            "top_k": 5,  # intentionally not retrieval.top_k: a listing to read (see cli/retrieve.py)
            "slm_output": None, "confidence": None, "show_text": False}),
        ("ladder", "replay"): (["--out", "o"], {
            "data": None, "models": None, "runs": _param(run_replay, "runs"),
            "samples": _param(run_replay, "samples"), "problems": None, "timeout": replay.sandbox.timeout_s,
            "k_grid": replay.k_grid, "fallback": replay.fallback, "cache": None, "out": "o"}),
        ("ladder", "plans"): (["--outcomes", "x.parquet", "--out", "o"], {
            "outcomes": "x.parquet", "config": _param(run_plans, "config"), "prices": None, "throughput": None,
            "cost_json": None, "models": None, "seeds": None, "thetas": None, "rule": None, "val_frac": None,
            "out": "o"}),
        ("ladder", "live"): (["--out", "o"], {
            "benchmark": live.benchmark, "models": live.models, "problems": live.problems, "k": live.k,
            "runs": live.runs, "seed": live.seed, "max_new_tokens": live.max_new_tokens,
            "batch_size": live.batch_size, "chunk": live.chunk, "device": live.device, "threads": live.threads,
            "workers": None, "ray_address": None, "out": "o"}),
        ("lab",): ([], {
            "root": lab.root, "port": lab.port, "ip": lab.ip, "no_browser": False, "setup_only": False, "extra": []}),
        ("reproduce",): ([], {
            "profile": _param(reproduce, "profile"), "out": None, "notebooks": None, "slm": None, "llm": None,
            "device": None, "param": [], "no_progress": False}),
        ("serve",): ([], {
            "model": serve.model, "host": serve.host, "port": serve.port, "dtype": serve.dtype,
            "max_model_len": serve.max_model_len, "kv_cache_gb": serve.kv_cache_gb,
            "prefix_caching": serve.prefix_caching, "eager": serve.enforce_eager, "package": serve.package,
            "env_dir": serve.env_dir, "ngram_tokens": serve.ngram_tokens, "setup_only": False}),
    }


SUBCOMMAND_DESTS = {"func", "command", "bench_command", "retrieve_command", "ladder_command"}
# Defaults the CLI states itself: no library config holds them (or, top_k, differs on purpose).
CLI_LITERALS = {("bench", "run"): {"tasks"}, ("retrieve", "query"): {"strategy", "top_k"}}


def test_every_option_defaults_to_the_library_value():
    from mccom_core.cli._defaults import LibraryDefault

    expected = _expected()
    leaves = dict(_leaf_parsers(build_parser()))
    assert set(leaves) == set(expected)
    for path, (argv, values) in expected.items():
        parsed = vars(build_parser().parse_args([*path, *argv]))
        got = {k: v for k, v in parsed.items() if k not in SUBCOMMAND_DESTS}
        assert got == values, path
        # and the value is read from the library, not restated (None/False/[] mean "not given")
        for action in leaves[path]._actions:
            unset = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
            if not unset and action.dest not in CLI_LITERALS.get(path, ()):
                assert isinstance(action.default, LibraryDefault), (path, action.dest)


def test_every_option_has_help_showing_its_default():
    from mccom_core.cli._defaults import LibraryDefault

    for path, parser in _leaf_parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            text = formatter._expand_help(action) if action.help else ""
            assert text.strip(), (path, action.dest)
            if isinstance(action.default, LibraryDefault):
                value = action.default.value
                shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
                # None ("not set") is explained in words, e.g. "(default: all)"
                assert (f"(default: {shown})" if value is not None else "(default: ") in text, (path, action.dest)
            elif action.default not in (None, False, [], argparse.SUPPRESS):  # literal CLI defaults
                assert f"(default: {action.default})" in text, (path, action.dest, text)


def test_changing_a_config_default_changes_the_cli(monkeypatch):
    from mccom_core.lm.decoding import DecodeConfig

    monkeypatch.setattr(DecodeConfig.__dataclass_fields__["max_new_tokens"], "default", 7)
    parser = build_parser()
    assert parser.parse_args(["complete", "f.py", "--line", "1"]).max_new_tokens == 7
    complete = dict(_leaf_parsers(parser))[("complete",)]
    assert "cap on generated tokens (default: 7)" in " ".join(complete.format_help().split())


def test_library_default_reads_fields_factories_and_parameters():
    from mccom_core.cli._defaults import library_default

    @dataclasses.dataclass(frozen=True)
    class Config:
        required: str
        n: int = 3
        xs: list = dataclasses.field(default_factory=lambda: [1, 2])

    def fn(a, b=4.5):
        return a, b

    assert library_default(Config, "n") == 3
    assert library_default(Config, "xs") == [1, 2]
    assert library_default(fn, "b") == 4.5
    with pytest.raises(TypeError, match="no default"):
        library_default(Config, "required")
    with pytest.raises(TypeError, match="no default"):
        library_default(fn, "a")


def test_flags_override_library_defaults():
    parser = build_parser()
    ns = parser.parse_args(["retrieve", "index", "r", "--ext", ".pyi", "--ext", ".pyx"])
    assert ns.extensions == [".pyi", ".pyx"]  # replaces the default, does not append to it
    assert parser.parse_args(["complete", "f.py", "--line", "1", "--no-heal"]).heal is False
    assert parser.parse_args(["bench", "run", "--out", "o", "--no-warm"]).warm is False
    ns = parser.parse_args(["ladder", "plans", "--outcomes", "x", "--out", "o", "--thetas", "0.5", "--seeds", "3"])
    assert (ns.thetas, ns.seeds) == ([0.5], [3])


def test_top_level_help_imports_no_heavy_module():
    code = ("import sys; from mccom_core.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
