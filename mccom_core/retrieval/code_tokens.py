"""Code-aware tokenization for BM25 retrieval over source code.

BM25 matches bags of words, so the words have to be the ones a programmer would search for.
The rules, applied to any text (code, comments and strings alike):

1. Only identifiers count: maximal runs matching ``[A-Za-z_][A-Za-z0-9_]*``. Punctuation,
   operators, whitespace and bare numbers never become tokens.
2. Language keywords are dropped (Python's ``keyword.kwlist`` by default, which includes
   ``True``/``False``/``None``): they occur in nearly every window and only add noise.
3. Every identifier yields itself, lower-cased, and then, if it has more than one part, its
   sub-words: it is split on underscores and on camelCase boundaries (``HTTPServer`` ->
   ``http``, ``server``), and digit-only parts are dropped. So ``load_model`` matches both an
   exact use of ``load_model`` (strongly, via the whole identifier) and a neighbouring
   ``model_loader`` (weakly, via the shared sub-words).
4. Everything is lower-cased: ``Config`` and ``config`` are the same word to the retriever.

Examples::

    >>> code_tokens("def load_model(spec): return HTTPServer(spec)")
    ['load_model', 'load', 'model', 'spec', 'httpserver', 'http', 'server', 'spec']
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

PYTHON_KEYWORDS: frozenset[str] = frozenset(keyword.kwlist)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# camelCase pieces: an acronym before a capitalised word (HTTP|Server), a capitalised or
# lower-case word, a trailing acronym, or a run of digits.
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Identifiers repeat heavily across a repository, so their split is memoised: this keeps
# indexing a 5,000-file repository within seconds. Bounded to keep memory in check.
_SPLIT_CACHE: dict[str, tuple[str, ...]] = {}
_SPLIT_CACHE_MAX = 1_000_000


def split_identifier(identifier: str) -> tuple[str, ...]:
    """Return the tokens of one identifier: the whole (lower-cased), then its sub-words.

    >>> split_identifier("parse_HTTPResponse2")
    ('parse_httpresponse2', 'parse', 'http', 'response')
    >>> split_identifier("value")
    ('value',)
    """
    cached = _SPLIT_CACHE.get(identifier)
    if cached is not None:
        return cached
    whole = identifier.lower()
    parts = [
        part.lower()
        for chunk in identifier.split("_")
        for part in _CAMEL_PART.findall(chunk)
        if not part.isdigit()
    ]
    tokens = (whole,) if parts == [whole] else (whole, *parts)
    if len(_SPLIT_CACHE) < _SPLIT_CACHE_MAX:
        _SPLIT_CACHE[identifier] = tokens
    return tokens


def code_tokens(text: str, keywords: Iterable[str] = PYTHON_KEYWORDS) -> list[str]:
    """Tokenize source text for BM25 (see the module docstring for the rules)."""
    drop = keywords if isinstance(keywords, (set, frozenset)) else frozenset(keywords)
    tokens: list[str] = []
    for identifier in _IDENTIFIER.findall(text):
        if identifier not in drop:
            tokens.extend(split_identifier(identifier))
    return tokens


def line_tokens(lines: Iterable[str], keywords: Iterable[str] = PYTHON_KEYWORDS) -> list[list[str]]:
    """Tokenize each line separately (windows are then unions of line token lists)."""
    drop = keywords if isinstance(keywords, (set, frozenset)) else frozenset(keywords)
    return [code_tokens(line, drop) for line in lines]
