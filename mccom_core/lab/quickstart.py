"""The quickstart: complete a few lines of a real file with each model and time it.

This is the README's main job for now: it loads the default local/cloud pair, picks
non-trivial lines of a real source file (by default ``rank_bm25.py``, the BM25 library the
workbench itself uses, as installed), completes each line from its left context, and
reports the completion, exact match, confidence and the prefill/decode split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mccom_core.lm.decoding import DecodeConfig, complete
from mccom_core.lm.drafting import make_drafter
from mccom_core.errors import MccomError
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.lm.prompts import PromptConfig, build_prompt, read_source, split_at_cursor
from mccom_core.cascade.candidates import line_candidates

DEFAULT_MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


@dataclass(frozen=True)
class QuickstartConfig:
    """What the quickstart runs."""

    models: tuple[str, ...] = DEFAULT_MODELS  # local (SLM) first, then cloud (LLM)
    n_lines: int = 5  # enough to see both models succeed and fail, quick on a CPU
    seed: int = 0  # which lines are picked
    min_line: int = 20  # skip the imports at the top: nothing to learn from them
    drafter: str = "context"  # stage-1 drafting; output is identical to plain greedy
    device: str = "auto"
    prompt: PromptConfig = PromptConfig()
    decode: DecodeConfig = DecodeConfig()


def default_file() -> Path:
    import rank_bm25

    return Path(rank_bm25.__file__)


def pick_lines(source: str, n: int, seed: int, min_line: int = 1):
    """``n`` non-trivial lines of ``source`` (seeded), in file order."""
    # Line 1 has nothing before it to complete from.
    pool = [c for c in line_candidates(source) if c.start_line >= max(min_line, 2)]
    if not pool:
        raise MccomError("the file has no non-trivial code lines to complete: pick another file")
    rng = random.Random(seed)
    return sorted(rng.sample(pool, min(n, len(pool))), key=lambda c: c.start_line)


def run_quickstart(file: str | Path | None = None, config: QuickstartConfig = QuickstartConfig(),
                   lines: list[int] | None = None):
    """Complete lines of ``file`` with every model; return a tidy DataFrame (one row per line and model)."""
    import pandas as pd

    from mccom_core.lm.models import load_model

    path = Path(file) if file is not None else default_file()
    source = read_source(path)
    if lines:
        by_line = {c.start_line: c for c in line_candidates(source)}
        missing = [n for n in lines if n not in by_line]
        if missing:
            raise MccomError(f"lines {missing} of {path} are blank, comments or trivial: pick code lines")
        picked = [by_line[n] for n in lines]
    else:
        picked = pick_lines(source, config.n_lines, config.seed, config.min_line)
    rows = []
    for spec in config.models:
        lm = load_model(spec, device=config.device)
        for cand in picked:
            left, right = split_at_cursor(source, cand.start_line, cand.cursor_col)
            prompt = build_prompt(left, right, lm.tokenizer, config.prompt)
            out = complete(lm, prompt, config.decode, drafter=make_drafter(config.drafter))
            rows.append({
                "model": spec, "line": cand.start_line, "ground_truth": cand.ground_truth,
                "completion": out.text, "exact_match": exact_match(out.text, cand.ground_truth),
                "edit_similarity": edit_similarity(out.text, cand.ground_truth),
                "confidence": out.confidence, "prompt_tokens": out.prompt_tokens,
                "new_tokens": len(out.token_ids), "prefill_ms": out.prefill_ms,
                "decode_ms": out.decode_ms, "total_ms": out.total_ms, "forward_passes": out.n_forward,
                "drafted": out.n_drafted, "accepted": out.n_accepted,
                "load_s": lm.load_seconds, "device": str(lm.device),
            })
        del lm
    return pd.DataFrame(rows)
