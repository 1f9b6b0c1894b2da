"""Stop rules: where a completion ends (first newline, first complete statement, or never)."""

from __future__ import annotations

import io
import tokenize

STOP_MODES = ("line", "statement", "none")


def _statement_complete(code: str) -> bool:
    """True when ``code`` (one or more physical lines) is a complete logical line."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            pass
    except tokenize.TokenError:
        return False  # EOF inside brackets, a multi-line string, or after a backslash
    except (IndentationError, SyntaxError):
        return True
    return True


def _visible_stop(visible: str, mode: str) -> tuple[str, str] | None:
    """Return (shown text, reason) when ``visible`` has reached the stop rule."""
    if mode == "none":
        return None
    start = 0
    while (pos := visible.find("\n", start)) != -1:
        if mode == "line":
            return visible[:pos], "newline"
        if _statement_complete(visible[:pos]):
            return visible[:pos], "statement"
        start = pos + 1
    return None
