"""Greedy completion over an OpenAI-compatible server, token for token the in-process path.

:func:`complete_remote` gives the :class:`~mccom_core.lm.decoding.Completion` that
:func:`~mccom_core.lm.decoding.complete` gives in-process, with the server doing the forward
passes. It reuses the in-process pieces that decide the output, so nothing is restated:

* the prompt is tokenized and healed locally (:mod:`mccom_core.lm.healing`) and sent as token
  ids, so the server sees exactly the tokens the in-process path feeds;
* while the healed text is not yet re-typed, each token is one request of ``max_tokens=1``
  whose ``allowed_token_ids`` is the healing constraint's allowed set (usually one request:
  the backed-off token is re-typed in one go);
* then one streamed greedy request, with the server stopping at ``"\\n"`` (every stop rule but
  ``none`` ends at a newline); each returned token goes through the in-process stop check
  (:func:`~mccom_core.lm.decoding._stop_check`: EOS, newline, complete statement, token cap),
  and a ``statement`` that is not complete at its newline continues with a further request
  whose prompt is everything so far (prefix-cached on a server with prefix caching).

Probabilities come from the server's ``logprobs`` (``exp`` of the chosen token's log
probability, so confidence is computed as in-process). A healing token's probability is
renormalized over the allowed set only when the server reports processed log probabilities
(``mccom serve`` starts vLLM with ``--logprobs-mode processed_logprobs``); confidence never
reads those tokens.

Timing: ``prefill_ms`` is the first request's time to its first token as the client sees it
(network and queue included); ``decode_ms`` is all other request time.
"""

from __future__ import annotations

import time

from mccom_core.errors import MccomError
from mccom_core.lm.decoding import Completion, DecodeConfig, _State, _build_completion, _stop_check
from mccom_core.lm.healing import _allowed_ids, _heal_index, _split_heal
from mccom_core.lm.prompts import Prompt
from mccom_core.lm.remote import RemoteModel, call

_TOKEN_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids spelling of a token


def complete_remote(rm: RemoteModel, prompt: Prompt | str, config: DecodeConfig = DecodeConfig()) -> Completion:
    """Greedily complete ``prompt`` on the server of ``rm`` (a :class:`~mccom_core.lm.remote.RemoteModel`).

    The same stop rules, token cap and token healing as :func:`~mccom_core.lm.decoding.complete`
    without a drafter; ``Completion.extra["requests"]`` counts the requests made.
    """
    tok = rm.tokenizer
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise MccomError("empty prompt: there is nothing to complete from; give some left context")
    ids, heal = _split_heal(tok, text, config.token_healing)
    if rm.max_model_len and len(ids) + config.max_new_tokens > rm.max_model_len:
        raise MccomError(
            f"prompt of {len(ids)} tokens plus {config.max_new_tokens} new tokens exceeds the server's "
            f"context of {rm.max_model_len}: build the prompt with a smaller PromptConfig.max_left_tokens "
            "or serve the model with a larger --max-model-len")
    eos = {t for t in (tok.eos_token_id,) if t is not None}
    s = _State(ids, heal, _heal_index(tok) if heal else None, eos, cache=None, reused=0, feed=[])
    n_requests = 0
    # Healing: one constrained token per request until the backed-off text is re-typed.
    while s.result is None and heal and len(s.heal_typed) < len(heal):
        allowed = _allowed_ids(s.index, heal[len(s.heal_typed):]).tolist()
        tokens, finish = _request(rm, s, 1, allowed=allowed)
        n_requests += 1
        token, prob = tokens[0]
        s.heal_typed += tok.decode([token])
        _take(tok, s, token, prob, True, config)
        if s.result is None and finish == "eos":
            s.result = (None, "eos")
    # Free greedy decoding, a request per newline the stop rule does not end at.
    stop = None if config.stop == "none" else ["\n"]
    while s.result is None:
        tokens, finish = _request(rm, s, config.max_new_tokens - len(s.gen), stop=stop)
        n_requests += 1
        for token, prob in tokens:
            if _take(tok, s, token, prob, False, config):
                break
        if s.result is None and finish == "eos":
            s.result = (None, "eos")  # the server stopped at an end-of-sequence token it did not return
        elif s.result is None and not tokens:
            raise MccomError(f"the server at {rm.config.base_url} returned no tokens (finish: {finish}); "
                             "check that it is a vLLM-compatible completions server")
    s.n_forward = len(s.gen)  # one server-side pass per token (no speculation on the server)
    out = _build_completion(tok, s, config, "none")
    out.extra.update(requests=n_requests, server=rm.config.base_url)
    return out


def _take(tok, s: _State, token: int, prob: float, healing: bool, config: DecodeConfig) -> bool:
    """Append one generated token as the in-process loop does; True once a stop rule fired."""
    s.gen.append(token)
    s.probs.append(prob)
    s.result = _stop_check(tok, s, token, healing, config)
    return s.result is not None


def _request(rm: RemoteModel, s: _State, max_tokens: int, stop=None, allowed=None) -> tuple[list, str]:
    """One streamed greedy request continuing ``s.ids + s.gen``: ([(token id, probability)],
    finish) with finish "eos", "stop" (a stop string), or "length". Adds its time to ``s.timings``."""
    import math

    # Explicit greedy settings: a server may otherwise default them from the model's
    # generation_config.json (a repetition penalty changes greedy output). Its end-of-sequence
    # ids it keeps, as the in-process path does.
    body = {"return_tokens_as_token_ids": True, "repetition_penalty": 1.0}
    if allowed is not None:
        body["allowed_token_ids"] = allowed

    def run():
        t0 = time.perf_counter()
        stream = rm.client.completions.create(
            model=rm.config.model, prompt=s.ids + s.gen, max_tokens=max_tokens, temperature=0.0,
            presence_penalty=0.0, frequency_penalty=0.0, logprobs=1, stop=stop, stream=True, extra_body=body)
        tokens, finish, first = [], None, None
        for chunk in stream:
            choice = chunk.choices[0]
            lp = choice.logprobs
            for name, logprob in zip(lp.tokens if lp else (), lp.token_logprobs if lp else ()):
                if first is None:
                    first = time.perf_counter()
                tokens.append((_token_id(name), math.exp(logprob) if logprob is not None else float("nan")))
            if choice.finish_reason:
                stop_reason = (choice.model_extra or {}).get("stop_reason")
                # vLLM: None for the EOS token, the id for another stop token, the string for a stop string
                eos = choice.finish_reason == "stop" and not isinstance(stop_reason, str)
                finish = "eos" if eos else choice.finish_reason
        return tokens, finish, t0, first

    tokens, finish, t0, first = call(rm.config, run)
    end = time.perf_counter()
    if s.n_forward == 0 and first is not None:  # the first request: its time to first token is the prefill
        s.timings["prefill"] += (first - t0) * 1e3
        s.timings["decode"] += (end - first) * 1e3
    else:
        s.timings["decode"] += (end - t0) * 1e3
    s.n_forward = 1
    return tokens, finish


def _token_id(name: str) -> int:
    if not name.startswith(_TOKEN_PREFIX):
        raise MccomError(f"the server returned token {name!r}, not {_TOKEN_PREFIX}N: it ignores "
                         "return_tokens_as_token_ids; use a vLLM server (mccom serve)")
    return int(name[len(_TOKEN_PREFIX):])
