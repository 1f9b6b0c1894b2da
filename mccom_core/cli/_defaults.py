"""Option defaults read from the library, so the CLI never restates them.

``default("mccom_core.lm.decoding:DecodeConfig", "max_new_tokens")`` is the default of that
dataclass field (``default_factory`` called), and ``default("mccom_core.lm.models:load_model",
"device")`` that of a function parameter. The owner is named by import path and looked up only
when the value is needed: ``mccom --help`` builds every sub-command's parser, and the config
modules import torch or pandas. :class:`Parser` swaps the looked-up values into the parsed
namespace; a sub-command's ``--help`` looks them up to print ``(default: ...)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect


def library_default(owner, name: str):
    """The default of field ``name`` of dataclass ``owner``, or of parameter ``name`` of function ``owner``."""
    if dataclasses.is_dataclass(owner):
        field = {f.name: f for f in dataclasses.fields(owner)}[name]
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        raise TypeError(f"{owner.__name__}.{name} has no default")
    value = inspect.signature(owner).parameters[name].default
    if value is inspect.Parameter.empty:
        raise TypeError(f"{owner.__name__}() parameter {name!r} has no default")
    return value


class LibraryDefault:
    """An option's default, looked up in the library on first use."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    @property
    def value(self):
        if not hasattr(self, "_value"):
            module, _, attr = self.owner.partition(":")
            self._value = library_default(getattr(importlib.import_module(module), attr), self.name)
        return self._value

    def __str__(self) -> str:  # what "%(default)s" prints: sequences as typed on the command line
        v = self.value
        return " ".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)

    def __repr__(self) -> str:
        return f"default({self.owner!r}, {self.name!r})"


def default(owner: str, name: str) -> LibraryDefault:
    """The library's default for ``name`` of ``owner`` ("module:Class" or "module:function")."""
    return LibraryDefault(owner, name)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through ``add_subparsers``, its sub-parsers) that returns the
    looked-up value of every :class:`LibraryDefault` an option was left at."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for key, value in vars(namespace).items():
            if isinstance(value, LibraryDefault):
                setattr(namespace, key, value.value)
        return namespace, extras


class AppendReplacingDefault(argparse.Action):
    """``action="append"`` whose first use replaces the default instead of appending to it."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or isinstance(current, LibraryDefault) else list(current)
        setattr(namespace, self.dest, items + [values])
