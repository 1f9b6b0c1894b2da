"""The reproduction: execute every notebook with papermill and write one report.

Each notebook in ``notebooks/`` is a jupytext percent script (``NN_name.py``). It is
converted to ``.ipynb`` in an ignored build directory, executed with papermill (kernel
``python3``) with the parameters of the chosen :class:`Profile` injected, and its executed
copy kept next to the converted one. A notebook that fails is reported with the failing cell
and does not stop the others.

Parameters are matched by name: a notebook receives the profile values whose names appear in
its ``parameters`` cell (plus ``results_dir``, ``figures_dir`` and ``data_dir`` when it
declares them), so notebooks declare only what they use. Overrides may name a profile field
(it replaces the profile's value) or any other parameter some notebook declares (it goes to
every notebook that declares it, e.g. ``threshold``).

Each notebook may write ``key_numbers.csv`` (columns ``metric``, ``paper``, ``measured``,
``unit``) into its ``results_dir``; the report puts those rows side by side, with every
figure and table each notebook wrote.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

from mccom_core.errors import MccomError
from mccom_core.paths import BUILD_DIR, PROJECT_ROOT, project_path

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
KEY_NUMBERS = "key_numbers.csv"  # metric, paper, measured, unit: what the report tabulates


@dataclass(frozen=True)
class Profile:
    """The parameters every notebook may receive (matched by name to its ``parameters`` cell).

    ``quick`` keeps every count small so CI can execute all notebooks; ``paper`` is the real
    run on the default models. Paths are relative to the project root unless absolute.
    """

    name: str
    slm: str = "qwen2.5-coder-0.5b"  # local model spec (mccom_core.lm.models)
    llm: str = "qwen2.5-coder-1.5b"  # cloud model spec
    device: str = "auto"
    seed: int = 0
    n_lines: int = 5  # 01: lines completed by each model
    per_kind: int = 300  # 02/03: cascade tasks per kind (line, stmt)
    ablation_per_kind: int = 100  # 05: tasks per kind that also run the four ablation branches
    compute: bool = True  # 02/03/05: run missing cascade branches (False: read the rows only)
    cascade_rows: str = ""  # 02/03/05: branch rows, resumed ("" = <out>/cascade_rows.jsonl)
    speculative_rows: str = "benchmarks/results/speculative_rows.jsonl"  # 04: benchmarks/speculative.py rows
    problems: int = 0  # 06: first N HumanEval problems, 0 = all
    seeds: tuple[int, ...] = tuple(range(10))  # 06: validation/test splits
    live_dirs: tuple[str, ...] = ("benchmarks/results/ladder_live/humaneval",  # 06: recorded live ladders
                                  "benchmarks/results/ladder_live/mbpp")
    figures_dir: str = ""  # "" = <out>/figures
    execution_timeout: int = 0  # seconds per cell; 0 = no limit

    def values(self, out_dir: Path) -> dict:
        """Every injectable parameter, as plain values with absolute paths."""
        v = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "execution_timeout")}
        v["cascade_rows"] = str(project_path(self.cascade_rows) if self.cascade_rows else out_dir / "cascade_rows.jsonl")
        v["speculative_rows"] = str(project_path(self.speculative_rows))
        if _ladder_data_dir():  # else 06 keeps its own default (and says what is missing)
            v["data_dir"] = _ladder_data_dir()
        v["figures_dir"] = str(project_path(self.figures_dir) if self.figures_dir else out_dir / "figures")
        v["seeds"] = list(self.seeds)
        v["live_dirs"] = [str(project_path(d)) for d in self.live_dirs]
        return v


PROFILES: dict[str, Profile] = {p.name: p for p in (
    # Small counts: every notebook runs end to end in minutes with the real models on a CPU.
    Profile("quick", n_lines=2, per_kind=3, ablation_per_kind=2, problems=20, seeds=(0, 1)),
    # The papers' setting, as far as this CPU allows: the rows of benchmarks/cascade_run.py are
    # reused (the runner computes only missing tasks), figures go to the project's figures/.
    Profile("paper", cascade_rows="benchmarks/results/cascade_rows.jsonl", figures_dir="figures"),
)}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise MccomError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str  # stem, e.g. "03_tradeoffs"
    ok: bool
    seconds: float
    executed: Path  # the executed .ipynb (written even when a cell failed)
    results_dir: Path
    parameters: dict = field(default_factory=dict)
    failed_cell: int | None = None  # 0-based index of the failing cell in the notebook
    failed_source: str = ""  # that cell's code
    error: str = ""  # "ExceptionName: message"


@dataclass(frozen=True)
class ReproduceReport:
    """What :func:`reproduce` did."""

    profile: Profile
    out_dir: Path
    report: Path  # the Markdown report
    runs: tuple[NotebookRun, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def discover(notebooks_dir: Path = NOTEBOOKS_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """The notebook scripts ``NN_name.py`` in order; ``only`` selects by stem or number prefix."""
    found = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.py"))
    if only:
        wanted = [str(w) for w in only]
        picked = [p for p in found if any(p.stem == w or p.stem.split("_", 1)[0] == w.zfill(2) for w in wanted)]
        missing = [w for w in wanted if not any(p.stem == w or p.stem.split("_", 1)[0] == w.zfill(2) for p in found)]
        if missing:
            raise MccomError(f"no notebook {missing} in {notebooks_dir}: choose from {[p.stem for p in found]}")
        found = picked
    if not found:
        raise MccomError(f"no notebooks (NN_name.py) in {notebooks_dir}")
    return found


def to_ipynb(script: Path, dest_dir: Path) -> Path:
    """Convert a jupytext percent script to ``dest_dir/<stem>.ipynb`` (kernel ``python3``)."""
    import jupytext

    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{script.stem}.ipynb"
    jupytext.write(nb, out, fmt="ipynb")
    return out


def declared_parameters(notebook) -> list[str]:
    """Names assigned at top level of the notebook's ``parameters`` cell.

    ``notebook`` is an ``.ipynb`` file, a jupytext script (``.py``) or a notebook node. Read
    with :mod:`ast` rather than papermill's line parser, which gives up on a line whose
    comment holds ``=`` or quotes (and would then leave that parameter out).
    """
    import ast

    if isinstance(notebook, (str, os.PathLike)):
        path = Path(notebook)
        if path.suffix == ".ipynb":
            import nbformat

            notebook = nbformat.read(path, as_version=4)
        else:
            import jupytext

            notebook = jupytext.read(path)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return []
    names = []
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def notebook_parameters(ipynb: Path, values: dict) -> dict:
    """The subset of ``values`` that the notebook's ``parameters`` cell declares."""
    declared = set(declared_parameters(ipynb))
    return {k: v for k, v in values.items() if k in declared}


@contextlib.contextmanager
def kernel_env():
    """Run papermill without ``MPLBACKEND`` in the environment the kernel inherits.

    A test session (or a user's shell) may export ``MPLBACKEND=Agg``; ipykernel then keeps
    Agg and every figure silently disappears from the executed notebook.
    """
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


def execute(script: Path, build_dir: Path, values: dict, results_root: Path, *,
            timeout: int | None = None, progress: bool = False) -> NotebookRun:
    """Convert and execute one notebook; failures are returned, not raised."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = to_ipynb(script, build_dir / "src")
    executed = build_dir / "executed" / source.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    results_dir = results_root / script.stem
    params = notebook_parameters(source, {**values, "results_dir": str(results_dir)})
    start = time.perf_counter()
    try:
        with kernel_env():
            papermill.execute_notebook(
                str(source), str(executed), parameters=params, kernel_name="python3",
                cwd=str(script.parent), progress_bar=progress, execution_timeout=timeout or None,
            )
    except PapermillExecutionError as exc:
        # papermill counts the injected-parameters cell; exc.cell_index is in the executed copy.
        return NotebookRun(script.stem, False, time.perf_counter() - start, executed, results_dir, params,
                           exc.cell_index, exc.source, f"{exc.ename}: {exc.evalue}")
    except Exception as exc:  # a kernel that died or never started: still report and go on
        return NotebookRun(script.stem, False, time.perf_counter() - start, executed, results_dir, params,
                           None, "", f"{type(exc).__name__}: {exc}")
    return NotebookRun(script.stem, True, time.perf_counter() - start, executed, results_dir, params)


def reproduce(profile: str | Profile = "quick", out_dir=None, notebooks: Sequence[str] | None = None, *,
              notebooks_dir: Path = NOTEBOOKS_DIR, overrides: dict | None = None,
              progress: bool = True) -> ReproduceReport:
    """Execute the notebooks with ``profile``'s parameters and write ``<out_dir>/report.md``.

    Parameters
    ----------
    profile:
        ``"quick"`` (small counts, CI), ``"paper"`` (the real run), or a :class:`Profile`.
    out_dir:
        Where results, figures, executed notebooks and the report go (default
        ``build/reproduce/<profile>``).
    notebooks:
        Stems or number prefixes (``["01", "04_speculative_decoding"]``); all when None.
    overrides:
        Parameter values by name. A :class:`Profile` field replaces the profile's value
        (``{"slm": "/path/to/ckpt", "per_kind": 20}``); any other name goes to every notebook
        whose ``parameters`` cell declares it (``{"threshold": 0.7}``), the others ignore it.
        A name no notebook in ``notebooks_dir`` declares raises :class:`MccomError`.
    """
    from tqdm.auto import tqdm

    prof, extra = split_overrides(get_profile(profile), overrides or {}, discover(notebooks_dir))
    out = Path(out_dir).resolve() if out_dir else BUILD_DIR / "reproduce" / prof.name
    out.mkdir(parents=True, exist_ok=True)
    values = {**prof.values(out), **extra}
    Path(values["figures_dir"]).mkdir(parents=True, exist_ok=True)
    scripts = discover(notebooks_dir, notebooks)
    start, runs = time.perf_counter(), []
    bar = tqdm(scripts, desc=f"reproduce ({prof.name})", unit="notebook", disable=not progress)
    for script in bar:
        bar.set_postfix_str(script.stem)
        run = execute(script, out / "notebooks", values, out / "results",
                      timeout=prof.execution_timeout, progress=False)
        runs.append(run)
        if not run.ok:
            bar.write(f"{run.name}: FAILED in cell {run.failed_cell}: {run.error}")
    report = write_report(prof, out, runs, values, time.perf_counter() - start)
    return ReproduceReport(prof, out, report, tuple(runs), time.perf_counter() - start)


# Set by the runner for each notebook (``<out>/results/<stem>``): not a parameter to override.
_PER_NOTEBOOK = ("results_dir",)


def split_overrides(profile: Profile, overrides: dict, scripts: Sequence[Path]) -> tuple[Profile, dict]:
    """``profile`` with the overrides that name its fields applied, and the other overrides.

    The others must be declared by at least one of ``scripts``; they are passed unchanged (a
    relative path stays relative: the notebooks resolve it against the project root).
    """
    fields_ = {f.name for f in fields(Profile)} - {"name"}
    if set(overrides) - fields_:  # read the parameters cells only when a name needs them
        declared = {n for s in scripts for n in declared_parameters(s)} - set(_PER_NOTEBOOK)
        unknown = sorted(set(overrides) - fields_ - declared)
        if unknown:
            raise MccomError(f"unknown parameters {unknown}: neither a profile field nor declared in the parameters "
                             f"cell of a notebook in {Path(scripts[0]).parent}; choose from {sorted(fields_ | declared)}")
    # A tuple field (seeds, live_dirs) given one value holds that value alone.
    ours = {k: (tuple(v) if isinstance(v, (list, tuple)) else (v,)) if isinstance(getattr(profile, k), tuple) else v
            for k, v in overrides.items() if k in fields_}
    return replace(profile, **ours), {k: v for k, v in overrides.items() if k not in fields_}


def _ladder_data_dir() -> str:
    """The authors' recordings for notebook 06 (absolute), or "" when the shared data is absent."""
    from mccom_core.paths import shared_data_dir

    try:
        return str(shared_data_dir() / "code_cascading_wizardcoder")
    except MccomError:
        return ""


# --------------------------------------------------------------------------- the report


def key_numbers(runs: Sequence[NotebookRun]):
    """The key numbers of every notebook, with a ``notebook`` column.

    Read from ``key_numbers.csv`` (metric, paper, measured, unit), and from any
    ``*vs_paper*.csv`` with ``paper`` and ``measured`` columns (its first column names the metric).
    """
    import pandas as pd

    cols = ["notebook", "metric", "paper", "measured", "unit"]
    frames = []
    for run in runs:
        if not run.results_dir.is_dir():
            continue
        for path in sorted({run.results_dir / KEY_NUMBERS, *run.results_dir.glob("*vs_paper*.csv")}):
            if not path.is_file():
                continue
            df = pd.read_csv(path)
            if not {"paper", "measured"} <= set(df.columns):
                continue
            if "metric" not in df.columns:
                df = df.rename(columns={df.columns[0]: "metric"})
            frames.append(df.assign(notebook=run.name, unit=df["unit"] if "unit" in df else ""))
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _fmt(x) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "" if f != f else f"{f:,.3g}" if abs(f) < 1000 else f"{f:,.0f}"


def write_report(profile: Profile, out: Path, runs: Sequence[NotebookRun], values: dict, seconds: float) -> Path:
    """One Markdown report: status per notebook, key numbers beside the papers', figures, tables."""
    lines = [f"# mccom reproduce: profile `{profile.name}`", "",
             f"{sum(r.ok for r in runs)} of {len(runs)} notebooks ran; {seconds:.0f} s in all. "
             f"Models: local `{values.get('slm')}`, cloud `{values.get('llm')}`; device `{values.get('device')}`; "
             f"seed {values.get('seed')}.", "",
             "| notebook | status | seconds | executed copy |", "| --- | --- | ---: | --- |"]
    for r in runs:
        status = "ok" if r.ok else f"**failed** (cell {r.failed_cell})"
        lines.append(f"| {r.name} | {status} | {r.seconds:.0f} | `{_rel(r.executed, out)}` |")
    failed = [r for r in runs if not r.ok]
    if failed:
        lines += ["", "## Failures", ""]
        for r in failed:
            lines += [f"### {r.name}: cell {r.failed_cell}", "", "```text", r.error.strip(), "```",
                      "", "```python", r.failed_source.strip(), "```", ""]
    kn = key_numbers(runs)
    lines += ["", "## Key numbers beside the papers'", ""]
    if kn.empty:
        lines.append("No notebook wrote key numbers.")
    else:
        lines += ["| notebook | metric | paper | measured | unit |", "| --- | --- | ---: | ---: | --- |"]
        lines += [f"| {r.notebook} | {r.metric} | {_fmt(r.paper)} | {_fmt(r.measured)} | {r.unit} |"
                  for r in kn.itertuples()]
    figures = Path(values["figures_dir"])
    pngs = sorted(figures.glob("*.png")) if figures.is_dir() else []
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({_rel(p, out)})" for p in pngs]
    lines += ["", "## Tables", ""]
    for r in runs:
        tables = sorted(p for p in r.results_dir.glob("*") if p.suffix in (".csv", ".parquet", ".json", ".jsonl")) \
            if r.results_dir.is_dir() else []
        if tables:
            lines.append(f"- {r.name}: " + ", ".join(f"`{_rel(p, out)}`" for p in tables))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to the report's folder ``base`` (``../`` where it lies outside, e.g. the
    project's figures/), so the report's links work wherever the project is cloned."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())

