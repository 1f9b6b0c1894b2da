"""The reproduction runner on three small notebooks: parameters, failures, report, CLI."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from mccom_core.cli import main
from mccom_core.errors import MccomError
from mccom_core.lab.reproduce import PROFILES, Profile, discover, get_profile, key_numbers, reproduce, to_ipynb

HEADER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

GOOD = HEADER + '''
# %% tags=["parameters"]
results_dir = "/nowhere"
figures_dir = "/nowhere"
per_kind = 1

# %%
import json
from pathlib import Path
import matplotlib.pyplot as plt
out = Path(results_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "params.json").write_text(json.dumps({"per_kind": per_kind, "results_dir": results_dir}))
(out / "key_numbers.csv").write_text("metric,paper,measured,unit\\nshare,14.4,12.5,%\\n")
(out / "savings_vs_paper.csv").write_text("measure,measured,paper\\nmax saving,0.6,up to 70%\\n")
fig, ax = plt.subplots()
ax.plot([0, 1], [0, per_kind])
Path(figures_dir).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(figures_dir) / "01_line.png")
'''

BAD = HEADER + '''
# %% tags=["parameters"]
results_dir = "/nowhere"

# %%
x = 1

# %%
raise ValueError("broken on purpose")

# %%
never = True
'''

LAST = HEADER + '''
# %% tags=["parameters"]
results_dir = "/nowhere"
slm = "default"
threshold = 0.5  # not a Profile field: only -p / overrides set it
label = "default"  # not a Profile field either
compute = True
seeds = [0]

# %%
import json
from pathlib import Path
Path(results_dir).mkdir(parents=True, exist_ok=True)
(Path(results_dir) / "slm.txt").write_text(slm)
got = {"threshold": threshold, "label": label, "compute": compute, "seeds": seeds}
(Path(results_dir) / "params.json").write_text(json.dumps(
    {"values": got, "types": {k: type(v).__name__ for k, v in got.items()}}))
'''


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("notebooks")
    (d / "01_good.py").write_text(GOOD)
    (d / "02_bad.py").write_text(BAD)
    (d / "03_last.py").write_text(LAST)
    (d / "helper.py").write_text("x = 1\n")  # not NN_name.py: not a notebook
    return d


@pytest.fixture(scope="module")
def run(notebooks, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    return reproduce(Profile("test", per_kind=7, slm="tiny"), out, notebooks_dir=notebooks, progress=False)


def test_a_failure_is_reported_and_the_others_run(run):
    assert [r.name for r in run.runs] == ["01_good", "02_bad", "03_last"]
    assert [r.ok for r in run.runs] == [True, False, True] and not run.ok
    bad = run.runs[1]
    assert bad.error == "ValueError: broken on purpose"
    assert 'raise ValueError("broken on purpose")' in bad.failed_source
    assert bad.executed.is_file()  # the executed copy shows where it stopped


def test_parameters_are_injected_by_name_with_absolute_paths(run):
    good, last = run.runs[0], run.runs[2]
    params = json.loads((good.results_dir / "params.json").read_text())
    assert params == {"per_kind": 7, "results_dir": str(run.out_dir / "results" / "01_good")}
    assert set(good.parameters) == {"results_dir", "figures_dir", "per_kind"}
    assert (last.results_dir / "slm.txt").read_text() == "tiny"
    assert json.loads((last.results_dir / "params.json").read_text())["values"] == {
        "threshold": 0.5, "label": "default", "compute": True, "seeds": list(range(10))}  # profile seeds
    assert set(last.parameters) == {"results_dir", "slm", "compute", "seeds"}
    assert (run.out_dir / "figures" / "01_line.png").stat().st_size > 0
    assert (run.out_dir / "notebooks" / "executed" / "01_good.ipynb").is_file()


def test_report_has_status_failure_key_numbers_and_figures(run):
    text = run.report.read_text()
    assert "2 of 3 notebooks ran" in text
    assert "| 02_bad | **failed** (cell" in text
    assert "```text\nValueError: broken on purpose\n```" in text
    assert "| 01_good | share | 14.4 | 12.5 | % |" in text
    assert "![01_line](figures/01_line.png)" in text
    kn = key_numbers(run.runs)
    assert kn.to_dict("records") == [
        {"notebook": "01_good", "metric": "share", "paper": 14.4, "measured": 12.5, "unit": "%"},
        {"notebook": "01_good", "metric": "max saving", "paper": "up to 70%", "measured": 0.6, "unit": ""}]
    assert "| 01_good | max saving | up to 70% | 0.6 |  |" in text


def test_report_links_are_relative_to_the_report(notebooks, tmp_path):
    """Figures outside the output folder (the paper profile's figures/) get ../ links."""
    out, figs = tmp_path / "build" / "paper", tmp_path / "figures"
    rep = reproduce(Profile("test", figures_dir=str(figs)), out, ["01"], notebooks_dir=notebooks, progress=False)
    assert "![01_line](../../figures/01_line.png)" in rep.report.read_text()
    assert (rep.report.parent / "../../figures/01_line.png").resolve() == (figs / "01_line.png").resolve()


def test_discover_and_select(notebooks):
    assert [p.stem for p in discover(notebooks)] == ["01_good", "02_bad", "03_last"]
    assert [p.stem for p in discover(notebooks, ["3", "01_good"])] == ["01_good", "03_last"]
    with pytest.raises(MccomError, match="no notebook"):
        discover(notebooks, ["09"])


def test_profiles():
    assert set(PROFILES) == {"quick", "paper"}
    quick, paper = get_profile("quick"), get_profile("paper")
    assert quick.per_kind < paper.per_kind and quick.n_lines < paper.n_lines
    v = quick.values(Path("/tmp/out"))
    assert v["cascade_rows"] == "/tmp/out/cascade_rows.jsonl" and v["figures_dir"] == "/tmp/out/figures"
    assert Path(paper.values(Path("/tmp/out"))["figures_dir"]).is_absolute()
    live = [Path(d) for d in v["live_dirs"]]  # the committed live ladders, by absolute path
    assert [d.parts[-3:] for d in live] == [("results", "ladder_live", "humaneval"), ("results", "ladder_live", "mbpp")]
    assert all(d.is_absolute() for d in live)
    with pytest.raises(MccomError, match="unknown profile"):
        get_profile("fast")
    with pytest.raises(MccomError, match="unknown parameters"):
        reproduce("quick", "/tmp/unused", overrides={"n_taks": 3})


def test_repo_notebooks_convert_with_python3_kernel_and_one_parameters_cell(tmp_path):
    import nbformat

    for script in discover():
        nb = nbformat.read(to_ipynb(script, tmp_path), as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, script.name


def test_cli(notebooks, tmp_path, monkeypatch, capsys):
    import mccom_core.lab.reproduce as rep

    # The CLI passes the library's default notebooks_dir; point the call at the test notebooks.
    real = rep.reproduce

    @functools.wraps(real)  # keeps the signature: the CLI reads its defaults from it
    def with_test_notebooks(*a, **k):
        return real(*a, notebooks_dir=notebooks, **k)

    monkeypatch.setattr(rep, "reproduce", with_test_notebooks)
    rc = main(["reproduce", "--profile", "quick", "--out", str(tmp_path), "--notebooks", "01", "03", "--slm", "cli-slm",
               "-p", "threshold=0.25", "compute=false", "-p", "seeds=[3, 4]", "-p", "label=qwen2.5-coder-0.5b",
               "-p", "per_kind", "2", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "results" / "03_last" / "slm.txt").read_text() == "cli-slm"
    # Non-Profile parameters reach the notebook that declares them, as YAML-typed values.
    assert json.loads((tmp_path / "results" / "03_last" / "params.json").read_text()) == {
        "values": {"threshold": 0.25, "label": "qwen2.5-coder-0.5b", "compute": False, "seeds": [3, 4]},
        "types": {"threshold": "float", "label": "str", "compute": "bool", "seeds": "list"}}
    # 01_good declares none of them: it runs with only its own (per_kind is a Profile field, typed int).
    assert json.loads((tmp_path / "results" / "01_good" / "params.json").read_text())["per_kind"] == 2
    injected = _injected_names(tmp_path / "notebooks" / "executed" / "01_good.ipynb")
    assert injected == {"results_dir", "figures_dir", "per_kind"}
    out = capsys.readouterr().out
    assert "ok     01_good" in out and "ok     03_last" in out
    assert main(["reproduce", "--out", str(tmp_path), "--notebooks", "02", "--no-progress"]) == 1
    # A name no notebook declares: one error listing the valid names, nothing executed.
    assert main(["reproduce", "--out", str(tmp_path / "unknown"), "-p", "treshold=0.3", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "unknown parameters ['treshold']" in err and "'threshold'" in err and "'per_kind'" in err
    assert not (tmp_path / "unknown").exists()
    with pytest.raises(SystemExit):
        main(["reproduce", "-p", "threshold"])  # neither NAME=VALUE nor NAME VALUE


def _injected_names(executed: Path) -> set[str]:
    """Names assigned in papermill's injected-parameters cell of an executed notebook."""
    import ast

    import nbformat

    nb = nbformat.read(executed, as_version=4)
    cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    return {t.id for node in ast.parse(cell.source).body for t in node.targets}


def test_parse_value_types():
    from mccom_core.cli.reproduce import parse_value

    got = {text: parse_value(text) for text in
           ["0.5", "3", "false", "[0, 1]", "qwen2.5-coder-0.5b", "cuda:0", "", "/a/b.jsonl", "{unclosed"]}
    assert got == {"0.5": 0.5, "3": 3, "false": False, "[0, 1]": [0, 1], "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b",
                   "cuda:0": "cuda:0", "": "", "/a/b.jsonl": "/a/b.jsonl", "{unclosed": "{unclosed"}
    assert [type(got[t]) for t in ("0.5", "3", "false")] == [float, int, bool]


def test_split_overrides(notebooks):
    from mccom_core.lab.reproduce import split_overrides

    scripts = discover(notebooks)
    prof, extra = split_overrides(get_profile("quick"), {"per_kind": 9, "seeds": [5], "live_dirs": "x/y",
                                                         "threshold": 0.7, "label": "rel/path"}, scripts)
    assert (prof.name, prof.per_kind, prof.seeds, prof.live_dirs) == ("quick", 9, (5,), ("x/y",))
    assert extra == {"threshold": 0.7, "label": "rel/path"}  # passed as given
    with pytest.raises(MccomError, match=r"unknown parameters \['name', 'results_dir', 'thresh'\]"):
        split_overrides(get_profile("quick"), {"thresh": 1, "results_dir": "/x", "name": "y"}, scripts)


def test_declared_parameters_survive_comments_papermill_cannot_parse(tmp_path):
    from mccom_core.lab.reproduce import declared_parameters, notebook_parameters

    script = tmp_path / "07_x.py"
    script.write_text(HEADER + '\n# %% tags=["parameters"]\nproblems = 0  # first N; 0 = all\n'
                      'name: str = "a"  # "quoted" comment\nseeds = [0, 1]\n\n# %%\nx = 1\n')
    nb = to_ipynb(script, tmp_path)
    assert declared_parameters(nb) == ["problems", "name", "seeds"]
    assert notebook_parameters(nb, {"problems": 5, "seeds": [2], "slm": "x"}) == {"problems": 5, "seeds": [2]}


@pytest.mark.slow
def test_quick_profile_end_to_end_on_tiny_checkpoints(tmp_path):
    """Notebooks 01, 02, 03 and 05 with compute on: the runner completes real benchmark tasks
    (cached repository snapshots) with two tiny random checkpoints; about two minutes."""
    import pandas as pd

    from tests.notebook_helpers import save_tiny_checkpoint

    slm, llm = save_tiny_checkpoint(tmp_path / "slm", 0), save_tiny_checkpoint(tmp_path / "llm", 1)
    rep = reproduce("quick", tmp_path / "out", ["01", "02", "03", "05"], progress=False,
                    overrides={"slm": str(slm), "llm": str(llm), "device": "cpu", "per_kind": 2,
                               "ablation_per_kind": 1})
    assert [r.ok for r in rep.runs] == [True] * 4, [r.error for r in rep.runs]
    rows = pd.read_json(rep.out_dir / "cascade_rows.jsonl", lines=True)
    # Two tasks per kind get the core branches; one per kind also slm_noretrieval (02) and the
    # other ablation branches (05).
    assert rows["task_id"].nunique() == 4 and len(rows) == 4 * 3 + 2 * 4
    kn = key_numbers(rep.runs)
    assert set(kn["notebook"]) == {"02_observations", "03_cascade_tradeoffs", "05_retrieval_ablation"}
    obs = pd.read_csv(rep.out_dir / "results" / "02_observations" / "observations.csv")
    assert obs["measured"].dropna().between(0, 100).all()
    assert dict(zip(obs["metric"], obs["n_tasks"])) == {"slm_output_in_left_pct": 4, "slm_llm_es_pct": 4,
                                                        "slm_em_no_retrieval_pct": 2, "slm_vs_llm_em_pct": 4}
    fusion = pd.read_csv(rep.out_dir / "results" / "05_retrieval_ablation" / "fusion_summary.csv")
    assert (fusion["n"] == 2).all() and fusion["hit_rate"].between(0, 1).all()
    makeup = pd.read_csv(rep.out_dir / "results" / "05_retrieval_ablation" / "block_makeup_summary.csv")
    assert list(makeup["retriever"]) == ["round1", "repocoder", "mccom-fused"] and (makeup["n"] == 2).all()
    shares = makeup[[c for c in makeup.columns if c.endswith("_share")]]
    filled = makeup["windows"] > 0
    assert ((shares[filled].sum(axis=1) - 1).abs() < 1e-9).all()  # every block window has one origin
    assert "## Key numbers beside the papers'" in rep.report.read_text()
