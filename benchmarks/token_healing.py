"""Exact match of the 0.5B with and without token healing on real `line` tasks.

The cursor sits after the indentation, so without healing the prompt ends in a whitespace
token the model rarely saw there. Same tasks, same prompts (left context up to
--max-left-tokens), greedy; only `DecodeConfig.token_healing` differs.

    python benchmarks/token_healing.py --n-tasks 40 --max-left-tokens 256
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mccom_core.cascade.tasks import load_tasks, task_context  # noqa: E402
from mccom_core.cascade.snapshots import materialize  # noqa: E402
from mccom_core.lm.decoding import DecodeConfig, complete  # noqa: E402
from mccom_core.lm.drafting import make_drafter  # noqa: E402
from mccom_core.cascade.metrics import edit_similarity, exact_match  # noqa: E402
from mccom_core.lm.models import load_model  # noqa: E402
from mccom_core.lm.prompts import PromptConfig, build_prompt  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-tasks", type=int, default=40)
    ap.add_argument("--max-left-tokens", type=int, default=256)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "token_healing.md"))
    args = ap.parse_args(argv)
    tasks = load_tasks(ROOT / "data" / "benchmarks" / "default" / "line")
    by_repo: dict = {}
    for t in tasks:
        by_repo.setdefault(t.repo, []).append(t)
    picked = [t for i in range(len(tasks)) for repo in sorted(by_repo) for t in by_repo[repo][i:i + 1]][: args.n_tasks]
    lm = load_model(args.model)
    stats = {True: [0, 0.0, 0], False: [0, 0.0, 0]}  # EM count, ES sum, outputs starting with a space
    for task in picked:
        left, right = task_context(task, materialize(task.repo, task.repo_hash))
        prompt = build_prompt(left, right, lm.tokenizer, PromptConfig(max_left_tokens=args.max_left_tokens))
        for heal in (True, False):
            out = complete(lm, prompt, DecodeConfig(token_healing=heal), drafter=make_drafter("context"))
            stats[heal][0] += exact_match(out.text, task.ground_truth)
            stats[heal][1] += edit_similarity(out.text, task.ground_truth)
            stats[heal][2] += out.text.startswith((" ", "\t"))
    n = len(picked)
    rows = [f"| {'on' if h else 'off'} | {100 * s[0] / n:.1f} | {100 * s[1] / n:.1f} | {s[2]} |" for h, s in stats.items()]
    text = (f"# Token healing on real lines\n\n{args.model}, {n} `line` tasks of the default benchmark (round-robin over "
            f"repositories), left context up to {args.max_left_tokens} tokens, greedy. 1-minute load average at the end: "
            f"{os.getloadavg()[0]:.1f}.\n\nCommand: `python benchmarks/token_healing.py --n-tasks {args.n_tasks} "
            f"--max-left-tokens {args.max_left_tokens}`\n\n| token healing | EM % | ES % | outputs with a stray leading space |\n"
            "|---|---:|---:|---:|\n" + "\n".join(rows) + "\n")
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
