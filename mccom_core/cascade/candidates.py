"""Where a completion task may start in one Python file: candidate cursors for each kind.

Two kinds, after the two benchmarks MCCom evaluates on:

* ``line`` (RepoEval style): the cursor sits right after the indentation of a non-trivial
  physical line; the ground truth is the rest of that line (trailing spaces excluded, so the
  right context starts with them, then the newline).
* ``stmt`` (StmtEval style): the cursor sits at the start of a simple statement (an
  assignment, a call, a ``return x``...) that lies inside a function or method; the ground
  truth is the whole statement as ``ast`` spans it, which may cover several physical lines.
  Compound statements (``if``, ``for``, ``with``, ``def``...) are not targets as a whole:
  their bodies would make the ground truth a block, not a statement; their header lines are
  covered by the ``line`` kind.

What is *trivial*, and so never a target (the same rule for both kinds):

* blank lines and comment-only lines;
* docstrings (module, class, function) and any line that starts inside a multi-line string:
  the cursor would sit inside string content, not code;
* lone brackets: a line made only of ``()[]{},:;`` (``)``, ``],``, ``):``...);
* single keywords that carry no information: ``pass``, ``break``, ``continue``, ``return``,
  ``raise``, ``...``, ``else:``, ``try:``, ``finally:`` (a model gets them right by reading the
  indentation, so they inflate exact match without testing completion).

Positions are 1-based lines and 0-based *character* columns (``ast`` gives byte columns;
we convert). Files must be LF-only: a ``\\r`` would make lines differ between ``ast`` and
``str.split("\\n")``, so the caller skips such files (see :func:`source_problem`).
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass

KINDS = ("line", "stmt")

# Lines that are only these characters are "lone brackets" (a closing ``)``, ``},`` ...).
_BRACKET_CHARS = frozenset("()[]{},:;")
# Lines (stripped, comment excluded) that are a single information-free keyword.
TRIVIAL_LINES = frozenset(
    {"pass", "break", "continue", "return", "raise", "...", "else:", "try:", "finally:"}
)
# Simple statements that are never ``stmt`` targets (trivial single keywords).
_TRIVIAL_STMTS = (ast.Pass, ast.Break, ast.Continue)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# Statement types with a body: never a target as a whole.
_COMPOUND = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
    ast.While, ast.With, ast.AsyncWith, ast.Try,
) + tuple(getattr(ast, n) for n in ("TryStar", "Match") if hasattr(ast, n))
# Non-statement nodes whose ``body`` holds statements.
_CLAUSES = (ast.excepthandler,) + ((ast.match_case,) if hasattr(ast, "match_case") else ())


@dataclass(frozen=True)
class Candidate:
    """One possible task in a file: a line span, the cursor, and the ground truth text."""

    start_line: int  # 1-based, first line of the ground truth
    end_line: int  # 1-based, inclusive, last line of the ground truth
    cursor_col: int  # 0-based character column of the cursor on ``start_line``
    ground_truth: str


def source_problem(text: str) -> str | None:
    """Say why a file cannot be used (``None`` when it can).

    Files with ``\\r`` (CRLF or old Mac line ends) are refused so that line numbers agree
    between ``ast``, ``tokenize`` and ``text.split("\\n")``; files that do not parse are
    refused because both kinds need the syntax tree.
    """
    if "\r" in text:
        return "has CR line endings"
    try:
        ast.parse(text)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
        return f"does not parse ({type(exc).__name__}: {exc})"
    return None


def char_col(line: str, byte_col: int) -> int:
    """Convert an ``ast`` byte column on ``line`` into a character column."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Lines covered by module, class and function docstrings."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef) + _FUNCTIONS) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def _line_tokens(text: str) -> tuple[dict[int, int], set[int]]:
    """Return the type of the first token starting on each line, and the lines that start
    inside a multi-line string (including f-strings, which 3.12+ splits into parts)."""
    first: dict[int, int] = {}
    inside: set[int] = set()
    fstring_starts: list[int] = []
    fstart = getattr(tokenize, "FSTRING_START", None)
    fend = getattr(tokenize, "FSTRING_END", None)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        row, end_row = tok.start[0], tok.end[0]
        if tok.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if not fstring_starts:
            first.setdefault(row, tok.type)
        if tok.type == fstart:
            fstring_starts.append(row)
        elif tok.type == fend and fstring_starts:
            start_row = fstring_starts.pop()
            inside.update(range(start_row + 1, end_row + 1))
        elif tok.type == tokenize.STRING and end_row > row:
            inside.update(range(row + 1, end_row + 1))
    return first, inside


def is_trivial(code: str) -> bool:
    """True for lone brackets and information-free keywords (see the module docstring)."""
    stripped = code.strip()
    return not stripped or set(stripped) <= _BRACKET_CHARS or stripped in TRIVIAL_LINES


def line_candidates(text: str) -> list[Candidate]:
    """Every non-trivial physical line of ``text`` as a ``line`` task (cursor after the
    indentation, ground truth the rest of the line without trailing whitespace)."""
    tree = ast.parse(text)
    docstrings = _docstring_lines(tree)
    first_token, inside_string = _line_tokens(text)
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        if number in docstrings or number in inside_string:
            continue
        if first_token.get(number) in (None, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        indent = len(line) - len(line.lstrip(" \t\f"))
        truth = line[indent:].rstrip(" \t\f")
        if is_trivial(truth.split("#", 1)[0] if "#" in truth else truth):
            continue
        out.append(Candidate(number, number, indent, truth))
    return out


def _function_statements(tree: ast.AST):
    """Yield the simple statements that have a function or method among their ancestors."""

    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _CLAUSES):  # ``except`` and ``case`` clauses hold bodies
                yield from visit(child, in_function)
            elif isinstance(child, _COMPOUND):
                yield from visit(child, in_function or isinstance(child, _FUNCTIONS))
            elif isinstance(child, ast.stmt) and in_function:
                yield child

    yield from visit(tree, False)


def _stmt_is_trivial(node: ast.stmt) -> bool:
    if isinstance(node, _TRIVIAL_STMTS):
        return True
    if isinstance(node, (ast.Return, ast.Raise)) and not any(
        getattr(node, f, None) for f in ("value", "exc")
    ):
        return True  # a bare ``return`` or ``raise``
    # bare string expressions (docstrings, string "comments") and ``...``
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and (
        isinstance(node.value.value, str) or node.value.value is Ellipsis
    )


def stmt_candidates(text: str) -> list[Candidate]:
    """Every non-trivial simple statement inside a function that starts its own line, with
    the whole statement (``ast`` span, possibly several lines) as ground truth."""
    tree = ast.parse(text)
    lines = text.split("\n")
    out = []
    for node in _function_statements(tree):
        if _stmt_is_trivial(node):
            continue
        first = lines[node.lineno - 1]
        col = char_col(first, node.col_offset)
        if first[:col].strip(" \t\f"):
            continue  # shares its line with an earlier statement (``a = 1; b = 2``)
        end_col = char_col(lines[node.end_lineno - 1], node.end_col_offset)
        if node.end_lineno == node.lineno:
            truth = first[col:end_col]
        else:
            body = lines[node.lineno : node.end_lineno - 1]
            truth = "\n".join([first[col:], *body, lines[node.end_lineno - 1][:end_col]])
        out.append(Candidate(node.lineno, node.end_lineno, col, truth))
    out.sort(key=lambda c: (c.start_line, c.cursor_col))
    return out


def candidates(text: str, kind: str) -> list[Candidate]:
    """Candidates of ``kind`` (``"line"`` or ``"stmt"``) in ``text``, in file order."""
    if kind == "line":
        return line_candidates(text)
    if kind == "stmt":
        return stmt_candidates(text)
    raise ValueError(f"unknown task kind {kind!r}")
