"""Inputs for notebook tests: hand-made cascade and speculative rows, tiny checkpoints, papermill.

The rows are literal and small, so what a notebook writes can be checked exactly. Notebooks
are executed through papermill with kernel ``python3`` and absolute paths; MPLBACKEND is
removed from the kernel's environment (an inherited Agg would drop every figure).
"""

from __future__ import annotations

import json
from pathlib import Path

from mccom_core.cascade.engine import CascadeConfig, config_hash
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.paths import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"

# Eight tasks: (kind, ground truth, SLM output, SLM confidence, SLM output found in the left context).
TASKS = {
    "t1": ("line", "return a + b", "return a + b", 0.95, True),
    "t2": ("line", "x = compute(y)", "x = compute(z)", 0.85, False),
    "t3": ("line", "self.x = x", "self.x = x", 0.40, True),
    "t4": ("line", "print(result)", "pass", 0.20, False),
    "t5": ("stmt", "total += item", "total += item", 0.75, False),
    "t6": ("stmt", "data = fh.read()", "data = fh.readlines()", 0.65, False),
    "t7": ("stmt", "continue", "continue", 0.30, True),
    "t8": ("stmt", "lines = data.splitlines()", "lines = []", 0.10, False),
}
LLM_WRONG = {"t3", "t8"}  # the direct LLM misses these; the escalation only misses t8
NO_RETRIEVAL_WRONG = {"t1", "t5", "t6"}  # without retrieval, these branches miss more
# The rows' model pair; notebooks read only the rows of the config they are given (its hash).
TOY_MODELS = {"slm": "toy-slm", "llm": "toy-llm"}
TOY_HASH = config_hash(CascadeConfig(**TOY_MODELS))


def _row(task, branch, prediction, confidence, *, retrieval, prefill, decode, warm=None, in_left=False):
    kind, truth = TASKS[task][0], TASKS[task][1]
    return {
        "task_id": task, "kind": kind, "branch": branch, "ground_truth": truth, "prediction": prediction,
        "confidence": confidence, "em": exact_match(prediction, truth), "es": edit_similarity(prediction, truth),
        "retrieval_ms": retrieval, "prefill_ms": prefill, "decode_ms": decode, "draft_ms": 2.0,
        "warm_prefill_ms": warm[0] if warm else None, "warm_decode_ms": warm[1] if warm else None,
        "warm_draft_ms": 1.0 if warm else None, "output_in_left": in_left,
        "n_drafted": 6, "n_accepted": 4, "n_forward": 5, "prompt_tokens": 700, "config_hash": TOY_HASH,
        "slm_spec": TOY_MODELS["slm"], "llm_spec": TOY_MODELS["llm"],
    }


def cascade_rows() -> list[dict]:
    """Core and ablation branch rows for the eight tasks (56 rows)."""
    rows = []
    for i, (task, (_, truth, slm_out, conf, in_left)) in enumerate(TASKS.items()):
        wrong_llm = "pass" if task in LLM_WRONG else truth
        esc = "pass" if task == "t8" else truth
        slm_nr = "None" if task in NO_RETRIEVAL_WRONG else slm_out
        llm_nr = "None" if task in NO_RETRIEVAL_WRONG else wrong_llm
        rows += [
            _row(task, "slm", slm_out, conf, retrieval=8, prefill=120 + 10 * i, decode=60, warm=(15, 50),
                 in_left=in_left),
            _row(task, "llm", wrong_llm, 0.9, retrieval=8, prefill=400 + 20 * i, decode=150),
            _row(task, "llm_rejected", esc, 0.9, retrieval=12, prefill=420, decode=90),
            _row(task, "slm_noretrieval", slm_nr, conf, retrieval=0, prefill=90, decode=60, warm=(12, 50)),
            _row(task, "llm_noretrieval", llm_nr, 0.9, retrieval=0, prefill=300, decode=150),
            _row(task, "llm_rejected_noretrieval", llm_nr, 0.9, retrieval=0, prefill=310, decode=90),
            _row(task, "llm_rejected_repocoder", "pass" if task in {"t4", "t8"} else truth, 0.9,
                 retrieval=11, prefill=420, decode=95),
        ]
    return rows


def write_jsonl(rows, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(total, prefill, tokens, passes=None, drafted=None, accepted=None):
    run = {"total_ms": total, "prefill_ms": prefill, "decode_ms": total - prefill, "tokens": tokens}
    if passes is not None:
        run.update(passes=passes, drafted=drafted, accepted=accepted)
    return run


def speculative_rows() -> list[dict]:
    """Three tasks as ``benchmarks/speculative.py`` writes them; the SLM misses two."""
    rows = []
    for i, em in enumerate((True, False, False)):
        row = {"task_id": f"s{i}", "repo": "toy==1", "prompt_tokens": 500, "load": 1.0, "max_left_tokens": 512,
               "slm": {"em": em, "identical": True,
                       "plain": _run(300.0 + i, 100.0, 10, 10, 0, 0),
                       "stage1": _run(200.0 + i, 100.0, 10, 5, 8, 5),
                       "pld": _run(250.0 + i, 100.0, 10)}}
        if not em:
            row["llm"] = {"identical": True,
                          "plain": _run(900.0, 300.0, 12, 12, 0, 0),
                          "stage2": _run(500.0, 300.0, 12, 4, 12, 9),
                          "stage2_context": _run(480.0, 300.0, 12, 4, 12, 9),
                          "assisted": _run(700.0, 300.0, 12)}
        rows.append(row)
    return rows


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny random Qwen2 model and its tokenizer, saved as a checkpoint folder."""
    from tests.conftest import build_tiny_tokenizer, tiny_qwen

    tok = build_tiny_tokenizer()
    tiny_qwen(tok, seed=seed).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_notebook(stem: str, tmp_path: Path, **parameters) -> Path:
    """Execute ``notebooks/<stem>.py`` with papermill; returns the executed copy."""
    import papermill

    from mccom_core.lab.reproduce import kernel_env, to_ipynb

    src = to_ipynb(NOTEBOOKS / f"{stem}.py", tmp_path / "src")
    out = tmp_path / f"{stem}.executed.ipynb"
    with kernel_env():  # the kernel inherits the environment: no MPLBACKEND=Agg
        papermill.execute_notebook(str(src), str(out), parameters=parameters, kernel_name="python3",
                                   cwd=str(NOTEBOOKS), progress_bar=False)
    return out


def image_outputs(executed: Path) -> int:
    """How many image/png outputs the executed notebook holds (figures did render)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
