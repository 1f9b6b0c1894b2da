"""What produced a result: package versions, the machine, and content hashes.

Result rows and reports carry these so a number can be traced to the code, packages and
CPU that measured it (rows written on different days or machines are told apart).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from pathlib import Path

# The packages whose versions shape the results; "-" marks one that is not installed.
VERSIONED = ("mccom-workbench", "torch", "transformers", "numpy", "rank-bm25", "bm25s", "rapidfuzz")


def package_versions(packages: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Python's version and each package's (``"-"`` when not installed)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def cpu_name() -> str:
    """The processor's model name and core count, e.g. ``"AMD EPYC, 2 cores"`` (rows carry it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte pieces (model files are GBs)."""
    digest = hashlib.sha256()
    with open(Path(path), "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
