"""``mccom reproduce``: execute every notebook with papermill and write one report."""

from __future__ import annotations

import argparse

from mccom_core.cli._defaults import default


class ParamAction(argparse.Action):
    """``-p NAME=VALUE`` (or papermill's ``-p NAME VALUE``), repeatable: appends ``(NAME, VALUE)``
    pairs, VALUE still a string (see :func:`parse_value`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if "=" in values[0]:
            bad = [v for v in values if "=" not in v or v.startswith("=")]
            pairs = [tuple(v.split("=", 1)) for v in values]
        else:
            bad = values if len(values) != 2 else []
            pairs = [tuple(values)]
        if bad:
            parser.error(f"{option_string} takes NAME=VALUE (or NAME VALUE), got {' '.join(values)!r}")
        setattr(namespace, self.dest, list(getattr(namespace, self.dest) or []) + pairs)


def parse_value(text: str):
    """A ``-p`` value as YAML, like papermill's ``-y``: ``0.5`` -> float, ``false`` -> bool,
    ``[0, 1]`` -> list; anything YAML cannot read, and the empty string, stay as typed."""
    import yaml

    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="execute every notebook (papermill) and write a report with the papers' numbers")
    p.add_argument("--profile", default=default("mccom_core.lab.reproduce:reproduce", "profile"),
                   help="quick (small counts, CI) or paper (the real run) (default: %(default)s)")
    p.add_argument("--out", default=None, help="output directory (default: build/reproduce/<profile>)")
    p.add_argument("--notebooks", nargs="+", default=None, help="stems or numbers, e.g. 01 04 (default: all)")
    p.add_argument("--slm", default=None, help="override the local model spec (e.g. a checkpoint folder)")
    p.add_argument("--llm", default=None, help="override the cloud model spec")
    p.add_argument("--device", default=None, help="override the device (auto, cpu, cuda)")
    p.add_argument("-p", "--param", nargs="+", action=ParamAction, default=[], metavar="NAME=VALUE",
                   help="override a profile field or any notebook parameter, e.g. -p threshold=0.5 -p compute=false; "
                        "VALUE is read as YAML (3 -> int, [0, 1] -> list, other text -> str); repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from mccom_core.lab.reproduce import reproduce

    overrides = {k: parse_value(v) for k, v in args.param}
    overrides.update({k: getattr(args, k) for k in ("slm", "llm", "device") if getattr(args, k)})
    rep = reproduce(args.profile, args.out, args.notebooks, overrides=overrides, progress=not args.no_progress)
    for r in rep.runs:
        where = "" if r.ok else f"  cell {r.failed_cell}: {r.error.splitlines()[0] if r.error else ''}"
        print(f"{'ok    ' if r.ok else 'FAILED'} {r.name:<32} {r.seconds:7.1f} s{where}")
    print(f"report: {rep.report}  ({rep.seconds:.0f} s)")
    _notebook_viewer()
    return 0 if rep.ok else 1


def _notebook_viewer() -> None:
    """After a reproduce run users open the notebooks: make JupyterLab open them as notebooks."""
    from mccom_core.errors import MccomError
    from mccom_core.lab.jupyterlab import ensure_notebook_viewer

    try:
        print(f"JupyterLab (`jupyter lab` or `mccom lab`) opens the notebooks as notebooks: {ensure_notebook_viewer()}")
    except MccomError as exc:
        print(f"note: {exc}")
