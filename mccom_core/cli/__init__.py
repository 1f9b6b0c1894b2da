"""The ``mccom`` command line: a thin wrapper over the library.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``; the module adds its parser and sets ``func`` to a function that
takes the parsed namespace, calls the library and returns an exit code. The library never
parses argv, and the CLI never restates the library's defaults: options default to
``_defaults.default(owner, name)``, read from the config dataclass (or function) they feed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from mccom_core.cli._defaults import Parser
from mccom_core.errors import MccomError

# Sub-command modules, in the order ``mccom --help`` lists them. A name whose module is not
# present in this installation is simply not offered (an import error in one that is
# present still raises).
_COMMAND_MODULES = ("complete", "quickstart", "bench", "retrieve", "ladder", "reproduce", "lab", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mccom",
        description="Model cascading for code completion: models, drafting, retrieval, cascades.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(f"mccom_core.cli.{name}") is None:
            continue
        importlib.import_module(f"mccom_core.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MccomError as exc:
        print(f"mccom: error: {exc}", file=sys.stderr)
        return 1
