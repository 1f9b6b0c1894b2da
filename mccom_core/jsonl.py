"""Append-only JSONL files that survive a kill: the one reader and writer of result rows.

Every long run (the cascade benchmark, the speculative and prompt studies, live ladder
generations) appends one JSON object per line as soon as it is computed, so a run killed at
any point loses at most the row in flight. A kill can leave the last line torn (no newline,
or half an object). :func:`repair` cuts such a line off before the next append, so new rows
always start on a line of their own; :func:`read_jsonl` skips lines that do not parse as a
JSON object, so a torn file can always be read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def repair(path: str | os.PathLike) -> bool:
    """Cut a last line that has no newline (a write cut by a kill). True when one was cut."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return False
        fh.truncate(data.rfind(b"\n") + 1)
    return True


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a JSONL file, in order; ``[]`` when the file does not exist.

    Blank lines, torn lines and lines that are not a JSON object are skipped.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    # Split bytes at b"\n" only: a kill can cut a UTF-8 character in half (so the file as a
    # whole may not decode), and str.splitlines would also split at U+0085/U+2028 inside strings.
    for line in path.read_bytes().split(b"\n"):
        try:
            row = json.loads(line.decode("utf-8")) if line.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class JsonlWriter:
    """Appends rows to a JSONL file, each flushed and fsynced before :meth:`write` returns.

    Opening repairs a torn last line first (see :func:`repair`); :attr:`repaired` says
    whether one was cut. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair(self.path)
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
