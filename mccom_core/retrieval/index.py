"""A repository cut into sliding line windows, BM25-indexed and cached per content snapshot.

Windows follow RepoCoder: every source file is cut into windows of ``window_lines`` lines that
start every ``stride`` lines (20 and 10 by default, so neighbouring windows overlap by half).
Starts are 0, S, 2S, ...; the window that first reaches the end of the file is the file's last
one, so a 25-line file gives lines [0, 20) and [10, 25), a 5-line file gives [0, 5) and an empty
file gives none. Line spans are 0-based and half-open everywhere in this module.

What is indexed: files under the root whose name ends with one of ``extensions``, found without
following symbolic links (so symlink loops cannot trap the walk) and outside ``exclude_dirs``.
Files that cannot be indexed are skipped and counted, never fatal: symbolic links, files larger
than ``max_file_bytes``, binary files (a NUL byte), non-UTF-8 files and unreadable files.

Caching: the snapshot key is a SHA-256 over the index configuration and every candidate
file's path and content hash, so any edit, addition or removal gives a new key and a rebuild;
an unchanged repository loads its pickled index from ``cache_dir("retrieval")``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mccom_core.retrieval.bm25 import BACKENDS, BM25Backend, make_backend
from mccom_core.retrieval.code_tokens import line_tokens
from mccom_core.errors import MccomError
from mccom_core.paths import cache_dir

# Bump when the window layout, tokenizer or pickle layout changes: old caches then miss.
INDEX_FORMAT = 1


@dataclass(frozen=True)
class IndexConfig:
    """Everything that changes the contents of an index (and so its cache key)."""

    window_lines: int = 20  # RepoCoder's window: about one function body
    stride: int = 10  # RepoCoder's slice step: windows overlap by half
    extensions: tuple[str, ...] = (".py",)  # Python by default; add ".pyi", ".js", ...
    max_file_bytes: int = 1_000_000  # larger files are data or generated code: skipped
    backend: str = "rank-bm25"  # or "bm25s", much faster to query on large repositories
    exclude_dirs: tuple[str, ...] = (  # never part of the project's own source
        ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", ".tox",
    )

    def __post_init__(self):
        if self.window_lines < 1 or self.stride < 1:
            raise MccomError(
                f"window_lines ({self.window_lines}) and stride ({self.stride}) must be >= 1"
            )
        if self.backend not in BACKENDS:
            raise MccomError(f"unknown BM25 backend {self.backend!r}: choose one of {sorted(BACKENDS)}")
        if not self.extensions:
            raise MccomError("extensions is empty: name at least one, e.g. ('.py',)")


@dataclass(frozen=True)
class Window:
    """One retrievable window: ``lines[start:end]`` of the file at ``path`` (repo-relative)."""

    path: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class IndexStats:
    """What indexing found: counts, and every skipped file with its reason."""

    files_indexed: int
    windows: int
    lines: int
    skipped: tuple[tuple[str, str], ...] = ()  # (repo-relative path, reason)

    @property
    def skipped_counts(self) -> dict[str, int]:
        """Number of skipped files per reason, e.g. ``{"binary": 2, "symlink": 1}``."""
        return dict(sorted(Counter(reason for _, reason in self.skipped).items()))


def window_spans(n_lines: int, window_lines: int = 20, stride: int = 10) -> list[tuple[int, int]]:
    """Half-open line spans of the windows of an ``n_lines``-line file (see module docstring)."""
    spans = []
    for start in range(0, n_lines, stride):
        end = min(start + window_lines, n_lines)
        spans.append((start, end))
        if end == n_lines:
            break
    return spans


@dataclass
class RepoIndex:
    """The windows of one repository snapshot and their BM25 backend.

    Windows are stored as parallel arrays (file id, start, end) over the files' lines, so the
    index pickles and loads quickly; :meth:`window` materialises one :class:`Window`.
    """

    root: str
    snapshot: str  # hex SHA-256 of config + file contents (the cache key)
    config: IndexConfig
    paths: list[str]  # repo-relative POSIX paths of the indexed files
    file_lines: list[list[str]]  # each indexed file's lines, without line endings
    window_file: np.ndarray  # (n_windows,) int32 index into paths
    window_start: np.ndarray  # (n_windows,) int32
    window_end: np.ndarray  # (n_windows,) int32
    backend: BM25Backend
    stats: IndexStats
    _path_ids: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._path_ids = {path: i for i, path in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.window_file)

    def window(self, i: int) -> Window:
        f, start, end = int(self.window_file[i]), int(self.window_start[i]), int(self.window_end[i])
        return Window(self.paths[f], start, end, "\n".join(self.file_lines[f][start:end]))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every window for a tokenized query, shape (n_windows,)."""
        return self.backend.scores(query_tokens)

    def relative_path(self, path: str | os.PathLike) -> str:
        """A path as this index names it: repo-relative POSIX (absolute paths are relativised)."""
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(Path(self.root).resolve())
            except ValueError as exc:
                raise MccomError(f"{path} is not inside the indexed repository {self.root}") from exc
        return p.as_posix()

    def file_id(self, path: str | os.PathLike) -> int | None:
        """The index of ``path`` in :attr:`paths` (None for a file not indexed)."""
        return self._path_ids.get(self.relative_path(path))

    def eligible(self, target_path: str | os.PathLike | None = None,
                 target_span: tuple[int, int] | None = None) -> np.ndarray:
        """Boolean mask of windows that may be retrieved for a completion target.

        Windows of ``target_path`` whose lines overlap ``target_span`` (0-based, half-open;
        an empty span ``(n, n)`` counts as line n) would leak the answer and are excluded; the
        rest of the target file stays searchable.
        """
        mask = np.ones(len(self), dtype=bool)
        if target_path is None or target_span is None:
            return mask
        start, end = target_span
        if start < 0 or end < start:
            raise MccomError(f"target span {target_span} is not a 0-based half-open line span")
        end = max(end, start + 1)
        file_id = self.file_id(target_path)
        if file_id is None:  # a file not in the index leaks nothing
            return mask
        overlap = (self.window_file == file_id) & (self.window_start < end) & (self.window_end > start)
        mask[overlap] = False
        return mask


def _scan(root: Path, config: IndexConfig):
    """Walk ``root``; yield (relpath, bytes or None, skip reason or None), sorted by path."""
    exts = tuple(config.extensions)
    excluded = set(config.exclude_dirs)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in excluded)
        base = Path(dirpath)
        for name in [d for d in dirnames if (base / d).is_symlink()]:
            dirnames.remove(name)  # os.walk would not descend anyway; count it as skipped
            yield (base / name).relative_to(root).as_posix(), None, "symlink"
        for name in sorted(filenames):
            if not name.endswith(exts):
                continue
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                yield rel, None, "symlink"
                continue
            try:
                if full.stat().st_size > config.max_file_bytes:
                    yield rel, None, "too-large"
                    continue
                yield rel, full.read_bytes(), None
            except OSError:
                yield rel, None, "unreadable"


def _decode(data: bytes) -> tuple[str | None, str | None]:
    """Return (text, None) or (None, skip reason)."""
    if b"\x00" in data:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not-utf8"


def _snapshot_key(config: IndexConfig, entries) -> str:
    digest = hashlib.sha256(json.dumps([INDEX_FORMAT, asdict(config)]).encode())
    for rel, data, reason in entries:
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(data).digest() if data is not None else reason.encode())
    return digest.hexdigest()


def _build(root: Path, config: IndexConfig, entries, snapshot: str) -> RepoIndex:
    paths, file_lines, skipped = [], [], []
    win_file, win_start, win_end, corpus = [], [], [], []
    for rel, data, reason in entries:
        text = None
        if reason is None:
            text, reason = _decode(data)
        if reason is not None:
            skipped.append((rel, reason))
            continue
        lines = text.splitlines()
        tokens = line_tokens(lines)
        file_id = len(paths)
        paths.append(rel)
        file_lines.append(lines)
        for start, end in window_spans(len(lines), config.window_lines, config.stride):
            win_file.append(file_id)
            win_start.append(start)
            win_end.append(end)
            corpus.append([tok for line in tokens[start:end] for tok in line])
    if not corpus:
        found = f"{len(paths)} empty file(s)" if paths else "no files"
        raise MccomError(
            f"nothing to index under {root}: found {found} ending in {list(config.extensions)}"
            f" (skipped: {dict(Counter(r for _, r in skipped))}); check the path or pass other"
            " extensions"
        )
    stats = IndexStats(len(paths), len(corpus), sum(map(len, file_lines)), tuple(skipped))
    return RepoIndex(
        root=str(root), snapshot=snapshot, config=config, paths=paths, file_lines=file_lines,
        window_file=np.asarray(win_file, dtype=np.int32),
        window_start=np.asarray(win_start, dtype=np.int32),
        window_end=np.asarray(win_end, dtype=np.int32),
        backend=make_backend(config.backend, corpus), stats=stats,
    )


def build_index(repo: str | os.PathLike, config: IndexConfig = IndexConfig(), *,
                use_cache: bool = True, cache_root: str | os.PathLike | None = None) -> RepoIndex:
    """Index the repository at ``repo``, loading it from the cache when the snapshot is known.

    ``cache_root`` defaults to ``cache_dir("retrieval")``; ``use_cache=False`` always rebuilds
    and writes nothing.
    """
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise MccomError(f"repository {repo} is not a directory: pass the repository's root folder")
    root = root.resolve()
    entries = list(_scan(root, config))
    snapshot = _snapshot_key(config, entries)
    cache_file = Path(cache_root or cache_dir("retrieval")) / f"{snapshot}.pkl"
    if use_cache and cache_file.exists():
        try:
            with open(cache_file, "rb") as fh:
                index = pickle.load(fh)
            index.root = str(root)
            return index
        except Exception:  # a corrupt or incompatible cache entry: rebuild over it
            pass
    index = _build(root, config, entries, snapshot)
    if use_cache:
        _write_cache(index, cache_file)
    return index


def _write_cache(index: RepoIndex, cache_file: Path) -> None:
    """Pickle ``index`` to ``cache_file``; a cache that cannot be written only costs speed."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=cache_file.parent, delete=False, suffix=".tmp") as fh:
            pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(fh.name, cache_file)
    except OSError as exc:
        warnings.warn(f"retrieval index not cached ({exc}); set MCCOM_CACHE_DIR to a writable folder")
