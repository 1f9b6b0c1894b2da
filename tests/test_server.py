"""The cloud model behind a real vLLM server: spec parsing and clear errors (fast), and greedy
output over the server equal, token for token, to the in-process greedy output (slow).

The slow tests start one real server for the session (``mccom serve``, eager mode, on a free
port) in the engine's own environment; they are skipped, saying why, only when that environment
cannot be built. No mock servers: a "server down" is a closed port.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mccom_core.errors import MccomError
from mccom_core.lm.decoding import DecodeConfig, complete
from mccom_core.lm.models import load_model
from mccom_core.lm.prompts import PromptConfig, build_prompt, split_at_cursor
from mccom_core.lm.remote import RemoteConfig, load_remote, parse_spec
from mccom_core.lm.remote_decoding import complete_remote
from mccom_core.lm.serve import ServeConfig, engine_env, server_command, wait_ready

MODEL = "qwen2.5-coder-0.5b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- fast


def test_spec_parses_url_and_served_name():
    cfg = parse_spec("openai:http://127.0.0.1:8000/v1/#qwen2.5-coder-1.5b")
    assert (cfg.base_url, cfg.model) == ("http://127.0.0.1:8000/v1", "qwen2.5-coder-1.5b")
    assert cfg.spec == "openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b"
    assert parse_spec("openai:https://h/v1#Qwen/Qwen2.5-Coder-1.5B", max_retries=0).model == "Qwen/Qwen2.5-Coder-1.5B"
    assert ServeConfig(model=MODEL, port=8123).spec == f"openai:http://127.0.0.1:8123/v1#{MODEL}"


@pytest.mark.parametrize("spec, message", [
    ("openai:http://127.0.0.1:8000/v1", "not of the form openai:<base URL>#<served model name>"),
    ("openai:127.0.0.1:8000/v1#m", "must start with http:// or https://"),
    ("openai:http://127.0.0.1:8000/v1#", "no served model name"),
])
def test_malformed_specs_say_what_to_write(spec, message):
    with pytest.raises(MccomError, match=message):
        load_model(spec)


def test_server_down_is_one_clear_error():
    port = free_port()  # nothing listens there
    spec = f"openai:http://127.0.0.1:{port}/v1#{MODEL}"
    with pytest.raises(MccomError) as err:
        load_remote(spec, max_retries=1)
    assert str(err.value) == (f"no server answers at http://127.0.0.1:{port}/v1 (1 retries): start one with "
                              f"`mccom serve {MODEL}` or check the URL of the spec")
    with pytest.raises(MccomError, match="no server answers"):  # the same through load_model, default retries
        load_model(spec)


def test_bad_config_values_are_refused():
    with pytest.raises(MccomError, match="timeout_s must be > 0"):
        RemoteConfig("http://h/v1", "m", timeout_s=0)
    with pytest.raises(MccomError, match="port must be 1-65535"):
        ServeConfig(port=0)


def test_server_command_serves_the_spec_name_with_prefix_caching():
    cmd = server_command(ServeConfig(model=MODEL, port=8123), Path("/env/bin/python"), "/cache/ckpt")
    assert cmd == ["/env/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/cache/ckpt",
                   "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", "8123", "--dtype", "float32",
                   "--max-model-len", "4096", "--logprobs-mode", "processed_logprobs", "--enable-prefix-caching"]
    eager = server_command(ServeConfig(enforce_eager=True, prefix_caching=False), Path("p"), "f")
    assert eager[-2:] == ["--no-enable-prefix-caching", "--enforce-eager"]


def test_failed_engine_build_names_the_step_and_the_log(tmp_path):
    cfg = ServeConfig(package=str(tmp_path / "no-such-wheel.whl"), env_dir=str(tmp_path / "env"))
    with pytest.raises(MccomError, match=r"failed at `-m pip install .*no-such-wheel.whl`: see .*env-build.log"):
        engine_env(cfg, progress=False)
    assert not (tmp_path / "env" / "mccom-ready.json").exists()


# ----------------------------------------------------------------------------- slow: a real server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``mccom serve qwen2.5-coder-0.5b --eager`` on a free port, for the whole session."""
    cfg = ServeConfig(model=MODEL, port=free_port(), enforce_eager=True)
    try:
        engine_env(cfg)
    except MccomError as exc:
        pytest.skip(f"the vLLM engine's environment cannot be built here: {exc}")
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mccom_core", "serve", MODEL, "--port", str(cfg.port),
                                 "--eager"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_ready(cfg, proc, timeout_s=1800)
        except MccomError as exc:
            pytest.fail(f"{exc}\n{log.read_text()[-4000:]}")
        yield cfg
    finally:
        proc.send_signal(signal.SIGTERM)  # mccom serve stops vLLM and its engine processes
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the session is left
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def pair(server):
    return load_model(MODEL, device="cpu"), load_model(server.spec)


def real_prompts(tok, n: int):
    """Cursors after the indentation of real lines of rank_bm25.py (a file installed with the
    workbench), every 7th non-blank line from line 20."""
    source = Path(importlib.util.find_spec("rank_bm25").origin).read_text()
    lines = source.splitlines()
    numbers = [i + 1 for i, line in enumerate(lines) if i >= 19 and line.strip()][::7][:n]
    out = []
    for number in numbers:
        left, right = split_at_cursor(source, number)
        out.append(build_prompt(left, right, tok, PromptConfig(max_left_tokens=512)))
    return out


def assert_same(local, remote):
    assert remote.token_ids == local.token_ids
    assert (remote.text, remote.stop_reason, remote.n_heal_tokens, remote.heal_text, remote.prompt_tokens) == (
        local.text, local.stop_reason, local.n_heal_tokens, local.heal_text, local.prompt_tokens)
    assert remote.token_probs == pytest.approx(local.token_probs, abs=2e-3)
    assert remote.confidence == pytest.approx(local.confidence, abs=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("decode", [
    DecodeConfig(),  # line stop, token healing: the cascade's line tasks
    DecodeConfig(stop="statement", max_new_tokens=64),  # the cascade's stmt tasks
    DecodeConfig(stop="none", token_healing=False, max_new_tokens=12),
], ids=["line", "statement", "none"])
def test_server_greedy_equals_in_process_greedy(pair, decode):
    local_lm, remote_lm = pair
    for prompt in real_prompts(local_lm.tokenizer, 6):
        local = complete(local_lm, prompt, decode)
        remote = complete_remote(remote_lm, prompt, decode)
        assert_same(local, remote)
        assert remote.prefill_ms > 0 and remote.extra["requests"] >= 1


@pytest.mark.slow
def test_server_serving_another_model_is_one_clear_error(server):
    with pytest.raises(MccomError) as err:
        load_model(f"openai:{server.base_url}#qwen2.5-coder-1.5b")
    assert str(err.value).startswith(f"the server at {server.base_url} serves {MODEL}, not 'qwen2.5-coder-1.5b'")


@pytest.mark.slow
def test_prompt_beyond_the_server_context_says_what_to_change(pair):
    _, remote_lm = pair
    with pytest.raises(MccomError, match="exceeds the server's context of 4096"):
        complete_remote(remote_lm, "x = 1\n" * 3000, DecodeConfig())


@pytest.mark.slow
def test_bench_run_with_the_served_llm_gives_the_in_process_rows(pair, server, tmp_path):
    """`mccom bench run --llm <server spec>` on real tasks: every row's output equals the row of
    the same run with the LLM in-process (same tokens), stage-2 drafts or not."""
    from dataclasses import replace

    from mccom_core.cascade.engine import CascadeConfig
    from mccom_core.cascade.runner import read_results, run_benchmark
    from mccom_core.cli import main
    from mccom_core.paths import DEFAULT_TASKS

    local_lm, _ = pair
    config = CascadeConfig(slm=MODEL, llm=MODEL, warm=False)
    run_benchmark(DEFAULT_TASKS, tmp_path / "local.jsonl", config, limit=2, kind="line", slm=local_lm,
                  llm=local_lm, progress=False)
    assert main(["bench", "run", "--out", str(tmp_path / "served.jsonl"), "--limit", "2", "--kind", "line",
                 "--slm", MODEL, "--llm", server.spec, "--no-warm", "--device", "cpu", "--quiet"]) == 0
    local = read_results(tmp_path / "local.jsonl").set_index(["task_id", "branch"]).sort_index()
    served = read_results(tmp_path / "served.jsonl").set_index(["task_id", "branch"]).sort_index()
    assert list(served.index) == list(local.index) and len(local) == 2 * len(config.branches)
    assert set(served["llm_spec"]) == {server.spec} and set(local["llm_spec"]) == {MODEL}
    for column in ("prediction", "token_ids", "em", "stop_reason", "n_heal_tokens", "prompt_tokens"):
        assert served[column].tolist() == local[column].tolist(), column
    assert served["confidence"].tolist() == pytest.approx(local["confidence"].tolist(), abs=2e-3)
    llm_rows = served[served["role"] == "llm"]
    assert (llm_rows["model"] == server.spec).all() and (llm_rows["prefill_ms"] > 0).all()
    assert replace(config, llm=server.spec) != config  # the served rows are a config of their own
