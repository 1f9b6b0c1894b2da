"""The cloud model behind a real vLLM server: spec parsing and clear errors (fast), and greedy
output over the server equal, token for token, to the in-process greedy output (slow).

The slow tests start one real server for the session (``mccom serve``, eager mode, on a free
port) in the engine's own environment; they are skipped, saying why, only when that environment
cannot be built. No mock servers: a "server down" is a closed port.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mccom_core.errors import MccomError
from mccom_core.lm.decoding import DecodeConfig, _State, complete
from mccom_core.lm.models import load_model
from mccom_core.lm.prompts import PromptConfig, build_prompt, split_at_cursor
from mccom_core.lm.remote import RemoteConfig, load_remote, parse_spec
from mccom_core.lm.remote_decoding import _take, complete_remote, greedy_choices, take_verified, usable_draft
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


def test_cache_salt_is_checked_and_sent_with_every_request():
    from mccom_core.lm.remote import RemoteModel
    from mccom_core.lm.remote_decoding import _body

    for bad in ("", "a/b", "a@b", "x" * 129):
        with pytest.raises(MccomError, match="cache_salt .* must be 1-128 characters"):
            parse_spec("openai:http://h/v1#m", cache_salt=bad)

    def model(salt):
        return RemoteModel("openai:http://h/v1#m", parse_spec("openai:http://h/v1#m", cache_salt=salt), tokenizer=None,
                           client=None, max_model_len=None, load_seconds=0.0)

    assert _body(model("branch-llm"), prompt_logprobs=1) == {
        "return_tokens_as_token_ids": True, "repetition_penalty": 1.0, "cache_salt": "branch-llm", "prompt_logprobs": 1}
    assert "cache_salt" not in _body(model(None))


def test_server_command_serves_the_spec_name_with_prefix_caching():
    cmd = server_command(ServeConfig(model=MODEL, port=8123), Path("/env/bin/python"), "/cache/ckpt")
    assert cmd == ["/env/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/cache/ckpt",
                   "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", "8123", "--dtype", "float32",
                   "--max-model-len", "4096", "--logprobs-mode", "processed_logprobs", "--enable-prefix-caching"]
    eager = server_command(ServeConfig(enforce_eager=True, prefix_caching=False), Path("p"), "f")
    assert eager[-2:] == ["--no-enable-prefix-caching", "--enforce-eager"]
    ngram = server_command(ServeConfig(ngram_tokens=3), Path("p"), "f")
    assert ngram[-2] == "--speculative-config"
    assert json.loads(ngram[-1]) == {"method": "ngram", "num_speculative_tokens": 3,
                                     "prompt_lookup_min": 1, "prompt_lookup_max": 4}
    with pytest.raises(MccomError, match="n-gram speculation needs"):
        ServeConfig(ngram_tokens=2, ngram_min=3, ngram_max=2)


def test_failed_engine_build_names_the_step_and_the_log(tmp_path):
    cfg = ServeConfig(package=str(tmp_path / "no-such-wheel.whl"), env_dir=str(tmp_path / "env"))
    with pytest.raises(MccomError, match=r"failed at `-m pip install .*no-such-wheel.whl`: see .*env-build.log"):
        engine_env(cfg, progress=False)
    assert not (tmp_path / "env" / "mccom-ready.json").exists()


def test_usable_draft_is_the_draft_after_the_healing_tokens_within_the_budget():
    assert usable_draft([], [5, 6, 7], 48) == [5, 6, 7]  # no healing: the whole draft
    assert usable_draft([5], [5, 6, 7], 48) == [6, 7]  # the server re-typed the draft's healed token
    assert usable_draft([5], [4, 6, 7], 48) is None  # it re-typed another: the draft is dropped
    assert usable_draft([5, 6], [5], 48) is None  # the draft ends inside the healing tokens
    assert usable_draft([5], [], 48) == [] and usable_draft([5], [5], 48) == []  # nothing to verify
    assert usable_draft([], list(range(10, 20)), 4) == [10, 11, 12]  # room for the server's own token
    assert usable_draft([5, 6], [5, 6, 7, 8], 3) == []


def test_greedy_choices_read_the_rank_1_token_of_each_draft_position():
    entries = [  # vLLM's prompt_logprobs=1 at two draft positions, as JSON gives them
        {"17": {"logprob": -0.25, "rank": 1, "decoded_token": "token_id:17"}},  # the draft token is first
        {"23": {"logprob": -2.0, "rank": 3, "decoded_token": "token_id:23"},  # the draft token is third,
         "40": {"logprob": -0.5, "rank": 1, "decoded_token": "token_id:40"}},  # 40 is the greedy choice
    ]
    assert greedy_choices(entries, [(99, 0.75)]) == [(17, pytest.approx(0.7788, abs=1e-4)),
                                                     (40, pytest.approx(0.6065, abs=1e-4)), (99, 0.75)]
    assert greedy_choices([], []) == []
    with pytest.raises(MccomError, match="no prompt log probabilities at a draft position"):
        greedy_choices([None], [])


def state(tok, prompt: str) -> _State:
    return _State(tok(prompt, add_special_tokens=False)["input_ids"], "", None, {tok.eos_token_id},
                  cache=None, reused=0, feed=[])


def plain_take(tok, prompt, tokens, config) -> _State:
    """The tokens taken one by one as the streamed greedy requests take them."""
    s = state(tok, prompt)
    for token in tokens:
        if _take(tok, s, token, 0.5, False, config):
            break
    return s


@pytest.mark.parametrize("case", ["all right", "wrong at 2", "stop inside the draft", "token cap", "eos"])
def test_verified_choices_are_taken_as_plain_greedy_takes_them(tiny_tokenizer, case):
    tok = tiny_tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt, config = "def add(a, b):\n", DecodeConfig()
    server = ids("    return a + b\n")  # what the server writes greedily: '   ', ' return', ..., '\n'
    draft = server[:-1]  # stops before the newline: the server's token after it ends the line
    if case == "wrong at 2":
        draft = server[:2] + ids(" b + a")
    elif case == "stop inside the draft":
        draft = server + ids("z = 1")  # runs past the line end
    elif case == "token cap":
        config = DecodeConfig(max_new_tokens=3)
        draft = usable_draft([], server, config.max_new_tokens)
    elif case == "eos":
        server = server[:3] + [tok.eos_token_id]
    # The server's choice after the prompt and after each draft token (and its generated token).
    choices = [(server[i] if i < len(server) else 0, 0.5) for i in range(len(draft) + 1)]
    if case == "wrong at 2":
        choices = [(t, 0.5) for t in server[:3]]  # row 2 holds the server's ' a', not the draft's ' b'
    s = state(tok, prompt)
    accepted = take_verified(tok, s, draft, choices, config)
    plain = plain_take(tok, prompt, server, config)
    n = len(s.gen)
    assert s.gen == server[:n] and s.probs == [0.5] * n
    if s.result is not None:  # stopped: exactly where plain greedy stops, for the same reason
        assert (s.gen, s.result) == (plain.gen, plain.result)
    line = ("    return a + b", "newline")
    expected = {"all right": (len(draft), line),  # the whole draft, then the server's newline
                "wrong at 2": (2, None),  # two accepted, then the server's token; decoding goes on
                "stop inside the draft": (len(server) - 1, line),  # the matching newline ends it, uncounted
                "token cap": (2, (None, "max_tokens")), "eos": (3, (None, "eos"))}[case]
    assert (accepted, s.result) == expected
    assert n == accepted + 1  # the accepted tokens and the server's token after them


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


def real_prompts(tok, n: int, max_left_tokens: int = 512):
    """Cursors after the indentation of real lines of rank_bm25.py (a file installed with the
    workbench), every 7th non-blank line from line 20."""
    source = Path(importlib.util.find_spec("rank_bm25").origin).read_text()
    lines = source.splitlines()
    numbers = [i + 1 for i, line in enumerate(lines) if i >= 19 and line.strip()][::7][:n]
    out = []
    for number in numbers:
        left, right = split_at_cursor(source, number)
        out.append(build_prompt(left, right, tok, PromptConfig(max_left_tokens=max_left_tokens)))
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
@pytest.mark.parametrize("decode, n_prompts", [(DecodeConfig(), 4), (DecodeConfig(stop="statement", max_new_tokens=64), 2)],
                         ids=["line", "statement"])
def test_stage2_over_the_server_gives_the_plain_server_output(pair, decode, n_prompts):
    """Stage 2 over the API is lossless: whatever the draft (the in-process SLM's own output on a
    shorter prompt, the plain output itself, a partly right, a wrong, an empty one, one whose
    healed token differs), the tokens, text and stop reason are those of plain server greedy;
    a fully right draft is all accepted in one verification request."""
    local_lm, remote_lm = pair
    tok = local_lm.tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    short = real_prompts(tok, n_prompts, max_left_tokens=48)  # the SLM sees less: its output can differ
    for prompt, slm_prompt in zip(real_prompts(tok, n_prompts), short):
        plain = complete_remote(remote_lm, prompt, decode)
        right = list(plain.token_ids)
        # The healing requests' tokens: up to the first that covers the backed-off text.
        k = next(k for k in range(len(right) + 1) if len(tok.decode(right[:k])) >= len(plain.heal_text))
        drafts = {"slm": list(complete(local_lm, slm_prompt, decode).token_ids), "right": right,
                  "partly right": right[:k + 2] + ids(" zz_wrong)"), "wrong": right[:k] + ids(" zz_wrong = None\n"),
                  "empty": [], "other heal": ids("#") + right[k:]}
        outs = {label: complete_remote(remote_lm, prompt, decode, draft_ids=draft) for label, draft in drafts.items()}
        for label, out in outs.items():
            assert out.token_ids == plain.token_ids, label
            assert (out.text, out.stop_reason, out.n_heal_tokens, out.prompt_tokens) == (
                plain.text, plain.stop_reason, plain.n_heal_tokens, plain.prompt_tokens), label
            assert out.token_probs == pytest.approx(plain.token_probs, abs=2e-3), label
            assert out.drafter == "server-verify" and plain.drafter == "none"
            assert 0 <= out.n_accepted <= out.n_drafted and out.n_draft_rounds == (out.n_drafted > 0)
            assert out.n_forward == len(out.token_ids) - out.n_accepted
        assert outs["other heal"].extra["draft_dropped"] == (k > 0) and outs["empty"].n_drafted == 0
        assert outs["wrong"].n_accepted == 0 and not outs["wrong"].extra["draft_dropped"]
        right_out, capped = outs["right"], plain.stop_reason == "max_tokens"  # room left for the server's token
        assert right_out.n_drafted == len(right) - k - capped > 0 and not right_out.extra["draft_dropped"]
        # Every draft token matched (as in-process, one that ends the line is not counted) and
        # no request followed the verification one.
        assert right_out.n_accepted == right_out.n_drafted - (not capped)
        assert right_out.extra["requests"] == k + 1
        assert right_out.verify_ms > 0 if k else right_out.verify_ms == 0


@pytest.mark.slow
def test_a_cache_salt_keeps_a_prompt_out_of_other_salts_prefix_cache(pair, server):
    """The same prompt under another salt finds nothing cached (what a benchmark timing two
    branches of one task needs); under the same salt it finds its full 128-token blocks."""
    import time

    from mccom_core.lm.remote import server_metrics

    local_lm, _ = pair
    source = Path(importlib.util.find_spec("rank_bm25").origin).read_text()
    left, right = split_at_cursor(source, 150)
    prompt = build_prompt(left, right, local_lm.tokenizer, PromptConfig(max_left_tokens=512),
                          prefix=f"# salt test {time.time_ns()}\n")  # new to the server
    decode = DecodeConfig(stop="none", token_healing=False, max_new_tokens=2)
    names = ["vllm:prefix_cache_queries", "vllm:prefix_cache_hits"]

    def hits(rm):
        before = server_metrics(server.base_url, names)
        out = complete_remote(rm, prompt, decode)
        deadline = time.monotonic() + 10
        while True:  # the engine may publish the step's cache counters just after the response
            after = server_metrics(server.base_url, names)
            queried = after[names[0]] - before[names[0]]
            if queried >= out.prompt_tokens or time.monotonic() > deadline:
                return out, queried, after[names[1]] - before[names[1]]
            time.sleep(0.1)

    salted = {salt: load_remote(server.spec, cache_salt=salt) for salt in ("test-a", "test-b")}
    first, queried, cold = hits(salted["test-a"])
    assert queried >= first.prompt_tokens > 3 * 128 and cold == 0
    other, _, other_hits = hits(salted["test-b"])
    again, _, again_hits = hits(salted["test-a"])
    assert other_hits == 0
    assert again_hits >= 128 * ((first.prompt_tokens - 1) // 128) > 0
    assert first.token_ids == other.token_ids == again.token_ids


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


@pytest.mark.slow
def test_ray_workers_share_the_served_llm(server, tmp_path):
    """`mccom bench run --workers 2 --llm <server spec>`: two Ray workers (a local cluster) each
    load only the SLM and send their LLM requests to the one server; their rows equal the
    serial served run's, row for row (timings aside; the SLM on one torch thread in both, the
    workers' share of 2 cores; the server's probabilities to 2e-3, as it may batch the two
    workers' requests)."""
    pytest.importorskip("ray")
    import torch

    from mccom_core.cli import main
    from mccom_core.jsonl import read_jsonl
    from tests.test_distributed import stable

    threads = max(1, (os.cpu_count() or 2) // 2)  # a local cluster gives each of 2 workers half the cores
    run = ["bench", "run", "--limit", "2", "--kind", "line", "--slm", MODEL, "--llm", server.spec,
           "--no-warm", "--device", "cpu", "--quiet"]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert main(run + ["--out", str(tmp_path / "serial.jsonl")]) == 0
    finally:
        torch.set_num_threads(before)
    assert main(run + ["--out", str(tmp_path / "sharded.jsonl"), "--workers", "2"]) == 0
    keyed = {}
    for name in ("serial", "sharded"):
        rows = read_jsonl(tmp_path / f"{name}.jsonl")
        keyed[name] = {(r["task_id"], r["branch"]): stable(r) for r in rows}
        assert len(keyed[name]) == len(rows) > 0  # no (task, branch) row twice
    serial, sharded = keyed["serial"], keyed["sharded"]
    assert sharded.keys() == serial.keys()
    for key, row in sharded.items():
        want = serial[key]
        assert row["confidence"] == pytest.approx(want["confidence"], abs=2e-3), key
        same = lambda r: {k: v for k, v in r.items() if k != "confidence"}  # noqa: E731
        assert same(row) == same(want), key
        if row["role"] == "llm":
            assert row["model"] == server.spec
    assert {r["torch_threads"] for r in sharded.values()} == {threads}


def test_metric_sums_adds_label_sets_and_reads_counters_without_total():
    from mccom_core.lm.remote import metric_sums

    text = ("# HELP vllm:spec_decode_num_drafts_total drafts\n"
            'vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 3.0\n'
            'vllm:spec_decode_num_drafts_total{engine="1",model_name="m"} 4.0\n'
            'vllm:request_queue_time_seconds_sum{model_name="m"} 1.5\n'
            'vllm:request_queue_time_seconds_count{model_name="m"} 2.0\n'
            'vllm:request_queue_time_seconds_bucket{le="0.3",model_name="m"} 1.0\n')
    names = ("vllm:spec_decode_num_drafts", "vllm:request_queue_time_seconds_sum",
             "vllm:request_queue_time_seconds_count", "vllm:absent")
    assert metric_sums(text, names) == {"vllm:spec_decode_num_drafts": 7.0, "vllm:request_queue_time_seconds_sum": 1.5,
                                        "vllm:request_queue_time_seconds_count": 2.0, "vllm:absent": 0.0}
