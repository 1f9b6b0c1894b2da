"""A completion model behind an OpenAI-compatible server (vLLM, SGLang, ...), by URL and name.

Spec syntax, accepted by :func:`mccom_core.lm.models.load_model` wherever a model spec is::

    openai:<base URL>#<served model name>
    openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b

The base URL is what the OpenAI client calls ``base_url`` (it ends in ``/v1``); the part after
``#`` is the name the server serves the model under (``mccom serve`` serves a registry model
under its registry name). The tokenizer is loaded locally from that name
(:func:`~mccom_core.lm.models.load_tokenizer`), so prompts travel as token ids and the server
sees exactly the tokens the in-process path would feed; a served name that is no registry
name, checkpoint folder or hub id cannot be used.

Requests go through the ``openai`` client: its timeout, and its retries with exponential
backoff on connection errors, 408/409/429 and 5xx answers. Whatever still fails becomes one
:class:`~mccom_core.errors.MccomError` that says what to do (start the server, fix the URL,
serve the model the spec names, shorten the prompt). Decoding over the server is
:mod:`mccom_core.lm.remote_decoding`.

The requests use vLLM's extensions of the completions API (``return_tokens_as_token_ids``,
``allowed_token_ids`` for token healing, ``repetition_penalty``, ``prompt_logprobs`` to verify
a stage-2 draft); a server without them answers 400, reported as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mccom_core.errors import MccomError
from mccom_core.lm.drafting import CrossModelDrafter
from mccom_core.lm.models import SPEC_SCHEMES, load_tokenizer

SCHEME = "openai"


@dataclass(frozen=True)
class RemoteConfig:
    """Where the server is and how patiently to call it."""

    base_url: str  # the OpenAI base URL, e.g. http://127.0.0.1:8000/v1
    model: str  # the served model name; also the spec the local tokenizer is loaded from
    # A cold 1,576-token prompt took 12.9 s on a 2-core CPU (vLLM 0.32, 0.5B); 120 s leaves room
    # for a loaded machine and the 1.5B without hiding a hung server for long.
    timeout_s: float = 120.0
    # The openai client's own retries (exponential backoff from 0.5 s, capped at 8 s) on
    # connection errors, 408/409/429 and 5xx: 3 rides out a server restart of a few seconds.
    max_retries: int = 3
    # vLLM's per-request ``cache_salt``: prompts sent with different salts never share prefix
    # cache blocks. A benchmark that times two branches of one task on one server gives each
    # branch its own salt, so the second does not find the first's prompt cached (a cascade
    # sends a task's prompt to the cloud once). None: no salt, the server's cache is shared.
    cache_salt: str | None = None

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise MccomError(f"server URL {self.base_url!r} must start with http:// or https://, "
                             "e.g. openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b")
        if not self.model:
            raise MccomError("no served model name: end the spec with #NAME, "
                             "e.g. openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b")
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise MccomError(f"timeout_s must be > 0 and max_retries >= 0, got {self.timeout_s}, {self.max_retries}")
        if self.cache_salt is not None and not (0 < len(self.cache_salt) <= 128
                                                and not set(self.cache_salt) & set("@/\\\0")):
            raise MccomError(f"cache_salt {self.cache_salt!r} must be 1-128 characters without '@', '/', "
                             "'\\' or NUL (vLLM's rule), e.g. 'branch-llm'")

    @property
    def spec(self) -> str:
        return f"{SCHEME}:{self.base_url}#{self.model}"


def parse_spec(spec: str, **overrides) -> RemoteConfig:
    """``openai:<base URL>#<served model name>`` → :class:`RemoteConfig` (``overrides``: its other fields)."""
    prefix = f"{SCHEME}:"
    if not spec.startswith(prefix) or "#" not in spec:
        raise MccomError(f"model spec {spec!r} is not of the form {prefix}<base URL>#<served model name>, "
                         "e.g. openai:http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b")
    url, _, model = spec[len(prefix):].rpartition("#")
    return RemoteConfig(base_url=url.rstrip("/"), model=model.strip(), **overrides)


@dataclass(frozen=True)
class RemoteModel:
    """The counterpart of :class:`~mccom_core.lm.models.LoadedModel` for a served model: the
    local tokenizer plus a client. There are no weights here (``model`` is ``None``)."""

    spec: str
    config: RemoteConfig
    tokenizer: Any = field(repr=False)
    client: Any = field(repr=False)  # openai.OpenAI
    max_model_len: int | None  # the server's context length, as /v1/models reports it
    load_seconds: float
    model: Any = None
    device: str = "remote"
    dtype: str = "server"
    from_cache: bool = True

    served = True  # decoding.complete hands this model's completions to its server

    @property
    def name(self) -> str:
        return self.spec

    def complete(self, prompt, config, drafter=None, draft_ids=None):
        """Greedy completion on the server (:func:`~mccom_core.lm.remote_decoding.complete_remote`).

        With a cross-model drafter (stage 2), ``draft_ids`` (the other model's output in this
        model's tokens) are verified on the server in one request; as in-process, they are
        ignored under any other drafter. Other drafters are not run here: the server does the
        forward passes. The output is the plain greedy one either way.
        """
        from mccom_core.lm.remote_decoding import complete_remote

        stage2 = draft_ids is not None and isinstance(drafter, CrossModelDrafter)
        return complete_remote(self, prompt, config, draft_ids=draft_ids if stage2 else None)

    def send(self, request):
        """``request()``, a call of this model's client, with what fails as one clear error (:func:`call`)."""
        return call(self.config, request)

    def warm_up(self, n_tokens: int = 256) -> None:
        """One untimed request of ``n_tokens`` prompt tokens and one new token (see
        :func:`~mccom_core.lm.models.warm_up`): the server's first request is not a timed one."""
        ids = [int(getattr(self.tokenizer, "eos_token_id", None) or 0)] * n_tokens
        call(self.config, lambda: self.client.completions.create(
            model=self.config.model, prompt=ids, max_tokens=1, temperature=0.0))

    @property
    def source(self) -> str:
        return self.config.base_url


def load_remote(spec: str, device: Any = "auto", dtype: Any = "auto", progress: bool = True,
                **overrides) -> RemoteModel:
    """Connect to the server of ``spec``, check it serves the named model, load the tokenizer.

    ``device`` and ``dtype`` are the server's business and are ignored (they exist so that
    :func:`~mccom_core.lm.models.load_model` can hand any spec here).
    """
    from openai import OpenAI

    config = parse_spec(spec, **overrides)
    start = time.perf_counter()
    client = OpenAI(base_url=config.base_url, api_key="EMPTY", timeout=config.timeout_s,
                    max_retries=config.max_retries)
    served = call(config, lambda: client.models.list().data)
    entry = next((m for m in served if m.id == config.model), None)
    if entry is None:
        names = ", ".join(m.id for m in served) or "nothing"
        raise MccomError(f"the server at {config.base_url} serves {names}, not {config.model!r}: "
                         f"use openai:{config.base_url}#<one of those>, or restart it on {config.model!r}")
    tokenizer = load_tokenizer(config.model)
    max_len = (entry.model_extra or {}).get("max_model_len")
    return RemoteModel(config.spec, config, tokenizer, client, max_len, time.perf_counter() - start)


def call(config: RemoteConfig, request):
    """Run ``request()`` (a call of the openai client, which retries by itself) and turn what
    still fails into one :class:`MccomError` that says what to do."""
    import openai

    try:
        return request()
    except openai.APITimeoutError as exc:
        raise MccomError(f"the server at {config.base_url} did not answer within {config.timeout_s:g} s "
                         f"({config.max_retries} retries): it may be overloaded or still compiling; "
                         "wait for it or raise RemoteConfig.timeout_s") from exc
    except openai.APIConnectionError as exc:
        raise MccomError(f"no server answers at {config.base_url} ({config.max_retries} retries): start one "
                         f"with `mccom serve {config.model}` or check the URL of the spec") from exc
    except openai.NotFoundError as exc:
        raise MccomError(f"the server at {config.base_url} has no model {config.model!r} or no completions "
                         f"endpoint ({_message(exc)}): check the spec's URL (it ends in /v1) and name") from exc
    except openai.APIStatusError as exc:
        raise MccomError(f"the server at {config.base_url} refused the request (HTTP {exc.status_code}: "
                         f"{_message(exc)}); a prompt longer than its --max-model-len needs a smaller "
                         "PromptConfig.max_left_tokens") from exc


def metric_sums(text: str, names) -> dict[str, float]:
    """The value of each Prometheus metric of ``names`` in a ``/metrics`` exposition ``text``,
    summed over its label sets (a counter's ``_total`` suffix may be left out); absent ones are 0."""
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for key in (name, name.removesuffix("_total")):
            if key in out:
                out[key] += float(line.rsplit(" ", 1)[1])
                break
    return out


def server_metrics(base_url: str, names) -> dict[str, float] | None:
    """:func:`metric_sums` of a server's ``/metrics`` (``base_url`` with or without ``/v1``);
    None when it has none (not a vLLM server)."""
    import httpx

    try:
        response = httpx.get(f"{base_url.rstrip('/').removesuffix('/v1')}/metrics", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return metric_sums(response.text, names)


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(exc)[:300]


SPEC_SCHEMES[SCHEME] = load_remote
