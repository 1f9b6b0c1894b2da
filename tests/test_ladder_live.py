"""The live source with a tiny random Qwen2 model and an offline tokenizer: no downloads."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mccom_core.ladder.sources import get_source  # noqa: E402
from mccom_core.ladder.data import read_replay_dir  # noqa: E402
from mccom_core.ladder.live import (LiveConfig, codet_test_prompt, generate_model, load_benchmark,  # noqa: E402
                                    record_live, run_live)


@functools.lru_cache(maxsize=None)
def tiny_loaded(spec: str, device="cpu"):
    """A 2-layer Qwen2 with hidden size 32 and a byte-level BPE tokenizer trained on the spot."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["def f(x):\n    return x + 1\n", "assert f(1) == 2\n"], trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                pad_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                   max_position_embeddings=2048, eos_token_id=fast.eos_token_id,
                                   pad_token_id=fast.pad_token_id)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    return SimpleNamespace(model=model, tokenizer=fast, device=torch.device("cpu"), spec=spec)


CONFIG = LiveConfig(models=("tiny-a", "tiny-b"), benchmark="humaneval", problems=2, k=2, runs=1, seed=3,
                    max_new_tokens=6, test_max_new_tokens=6, batch_size=4, device="cpu")


def test_codet_test_prompt():
    p = load_benchmark(CONFIG)[0]
    assert codet_test_prompt(p).endswith("    pass\n\n# check the correctness of has_close_elements\nassert ")


def test_generate_model_rows_and_determinism():
    loaded = tiny_loaded("tiny-a")
    problems = load_benchmark(CONFIG)
    frame, timing = generate_model(loaded, "tiny-a", problems, CONFIG)
    # greedy: 1 sample per problem; run 0: k = 2 samples per problem
    assert frame.groupby("run").size().to_dict() == {-1: 2, 0: 4}
    assert (frame["answer_tokens"] <= CONFIG.max_new_tokens).all()  # generated ids, not re-tokenised
    assert all(a.startswith(problems[n].prompt) for a, n in zip(frame["answer"], frame["number"]))
    assert all(t == "" or all(line.startswith("assert") for line in t.split("\n")) for t in frame["tests"])
    assert timing["generated_tokens"] > 0 and timing["seconds"] > 0
    again, _ = generate_model(loaded, "tiny-a", problems, CONFIG)
    pd.testing.assert_frame_equal(frame, again)  # seeds are parameters: same seed, same samples


def test_generation_resumes_per_chunk(tmp_path):
    loaded = tiny_loaded("tiny-a")
    config = LiveConfig(**{**CONFIG.__dict__, "problems": 3, "chunk": 2})
    problems = load_benchmark(config)
    partial = tmp_path / "partial.jsonl"
    first, timing = generate_model(loaded, "tiny-a", problems, config, partial=partial)
    assert (timing["chunks"], timing["chunks_reused"]) == (4, 0)  # (greedy, run 0) x (2 + 1 problems)
    lines = partial.read_text().splitlines()
    assert len(lines) == 4
    partial.write_text(lines[0] + "\n" + lines[1][:20])  # killed while writing the second chunk
    again, timing = generate_model(loaded, "tiny-a", problems, config, partial=partial)
    assert timing["chunks_reused"] == 1 and len(partial.read_text().splitlines()) == 4
    pd.testing.assert_frame_equal(first, again)  # a chunk's seed is fixed: resuming changes nothing
    with pytest.raises(Exception, match="chunk"):
        generate_model(loaded, "tiny-a", problems, LiveConfig(**{**config.__dict__, "chunk": 0}))


def test_live_run_is_recorded_in_the_replay_format_and_replayed(tmp_path, monkeypatch):
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def loader(spec, device):
        calls.append(spec)
        return tiny_loaded(spec)

    paths = run_live(CONFIG, tmp_path / "live", loader=loader)
    assert calls == ["tiny-a", "tiny-b"]
    gens = read_replay_dir(paths["replay_dir"], CONFIG.models, runs=1, samples=2)
    assert gens.frame.groupby(["model", "run"]).size().to_dict() == {
        ("tiny-a", -1): 2, ("tiny-a", 0): 4, ("tiny-b", -1): 2, ("tiny-b", 0): 4}
    cost = json.loads((tmp_path / "live" / "cost_per_token.json").read_text())
    assert set(cost) == {"tiny-a", "tiny-b"} and all(v > 0 for v in cost.values())
    outcomes = pd.read_parquet(paths["outcomes"])
    assert sorted(outcomes["k"].unique()) == [0, 1, 2]
    assert len(outcomes) == 2 * 2 * (1 + 2 + 2)  # models x problems x (k0, k1 x l2/l4, k2 x l2/l4)
    # resume: both models recorded, so nothing is generated again
    record_live(CONFIG, tmp_path / "live", loader=loader)
    assert calls == ["tiny-a", "tiny-b"]
    # more problems (or other settings) in the same folder: a new recording, not the old one
    more = LiveConfig(**{**CONFIG.__dict__, "problems": 3})
    record_live(more, tmp_path / "live", loader=loader)
    assert calls == ["tiny-a", "tiny-b", "tiny-a", "tiny-b"]
    timings = json.loads((tmp_path / "live" / "timings.json").read_text())
    assert timings["tiny-b"]["problems"] == [0, 1, 2]
    assert read_replay_dir(tmp_path / "live" / "replay", CONFIG.models, runs=1, samples=2).frame["number"].nunique() == 3
    record_live(CONFIG, tmp_path / "live", loader=loader)  # back to 2 problems: recorded anew
    assert len(calls) == 6
    # and the registry builds the same source by name
    src = get_source("live", config=CONFIG, out_dir=str(tmp_path / "live"))
    assert src.load().frame.shape == gens.frame.shape


def test_a_solution_ends_at_the_first_line_that_leaves_the_function_body():
    from mccom_core.ladder.live import SOLUTION_END, _truncate

    body = "    x = 1\n\n    return x\n"
    assert _truncate(body + "\n\nprint(f(1))\n", SOLUTION_END) == body + "\n"  # cut before the print line
    assert _truncate(body + "```\n\nThis function adds one.", SOLUTION_END) == body[:-1]  # cut at its newline
    assert _truncate(body + "def g():\n    pass\n", SOLUTION_END) == body[:-1]
    assert _truncate(body, SOLUTION_END) == body  # nothing at column 0: all of it
    assert _truncate("    return 1\n# test\nassert f(1)", ("\nassert",)) == "    return 1\n# test"


def test_pattern_stop_marks_each_row_of_a_batch_on_its_own():
    from mccom_core.ladder.live import SOLUTION_END, _pattern_stop

    tok = tiny_loaded("tiny-a").tokenizer
    prompt = tok("def f(x):\n")["input_ids"]
    gens = [tok("    return x + 1\nassert")["input_ids"], tok("    return x + 1\n    ")["input_ids"]]
    width = max(map(len, gens))  # finished rows are padded on the right, as generate() does
    ids = torch.tensor([prompt + g + [tok.pad_token_id] * (width - len(g)) for g in gens])
    assert _pattern_stop(tok, len(prompt), SOLUTION_END)(ids, None).tolist() == [True, False]
