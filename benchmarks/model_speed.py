"""Load time, prefill and decode speed of the registry models on this machine.

* Load, cold: a fresh cache directory in a new process: assemble the GGUF parts, verify the
  sha256, de-quantize with transformers, save safetensors, load (one run per model; minutes).
* Load, cached: a new process loading from the conversion cache (median of --repeats runs).
* Prefill: one forward pass over a prompt of exactly 512 and 2,048 tokens of real code
  (median of --repeats runs), through `decoding.complete` with a 1-token cap.
* Decode: tokens per second while generating 64 tokens after a 512-token prompt
  (stop rule off; median of --repeats runs).

    python benchmarks/model_speed.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--skip-cold]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mccom_core.lm.decoding import DecodeConfig, complete  # noqa: E402
from mccom_core.lm.models import load_model  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402

SOURCES = ["rank_bm25", "papermill.execute", "papermill.parameterize", "papermill.translators", "jupytext.cell_reader"]


def code_prompt(tokenizer, n_tokens: int) -> str:
    text = "".join(Path(importlib.util.find_spec(m).origin).read_text() for m in SOURCES)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise SystemExit(f"not enough real code for {n_tokens} tokens ({len(ids)})")
    return tokenizer.decode(ids[:n_tokens])


def load_in_subprocess(spec: str, cache: str | None) -> float:
    env = dict(os.environ)
    if cache:
        env["MCCOM_CACHE_DIR"] = cache
    code = (f"import json; from mccom_core.lm.models import load_model; lm = load_model({spec!r}, device='cpu'); "
            "print(json.dumps({'s': lm.load_seconds, 'cached': lm.from_cache}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_speed.md"))
    args = ap.parse_args(argv)
    rows = []
    for spec in args.models:
        row = {"model": spec}
        if not args.skip_cold:
            with tempfile.TemporaryDirectory() as tmp:
                row["load cold s"] = load_in_subprocess(spec, tmp)
        row["load cached s"] = statistics.median(load_in_subprocess(spec, None) for _ in range(args.repeats))
        lm = load_model(spec, device=args.device)
        for n in (512, 2048):
            prompt = code_prompt(lm.tokenizer, n)
            runs = [complete(lm, prompt, DecodeConfig(stop="none", max_new_tokens=1, token_healing=False))
                    for _ in range(args.repeats)]
            assert runs[0].prompt_tokens == n, runs[0].prompt_tokens
            row[f"prefill {n} ms"] = statistics.median(r.prefill_ms for r in runs)
        prompt = code_prompt(lm.tokenizer, 512)
        speeds = []
        for _ in range(args.repeats):
            c = complete(lm, prompt, DecodeConfig(stop="none", max_new_tokens=64, token_healing=False))
            speeds.append((len(c.token_ids) - 1) / (c.decode_ms / 1e3))
        row["decode tok/s"] = statistics.median(speeds)
        row["device"] = str(lm.device)
        rows.append(row)
        print(row, flush=True)
        del lm
    cols = list(rows[0])
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        table.append("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    text = (f"# Model speed\n\nMachine: {cpu_name()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads). 1-minute load average at the end: "
            f"{os.getloadavg()[0]:.1f}. Medians of {args.repeats} runs.\n\nCommand: `python benchmarks/model_speed.py"
            f"{' --skip-cold' if args.skip_cold else ''}`\n\n" + "\n".join(table) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
