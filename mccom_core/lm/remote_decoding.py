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

Stage 2 (a draft, ``draft_ids``: the SLM's rejected output in this model's tokens) is verified
on the server, losslessly: after the healing requests (as above), the part of the draft after
the healed tokens, if its healed tokens are the ones the server re-typed (else the draft is
dropped), is appended to the prompt of one request with ``prompt_logprobs=1`` and
``max_tokens=1``. vLLM then returns, for every prompt position, the token it ranks first
there; the server's greedy choice after the prompt so far and after each draft token is read
from those positions (and the one generated token), and the choices go through the same stop
checks as streamed tokens, up to and including the first one that differs from the draft (as
the in-process loop takes the target's token at a mismatch). Free greedy requests continue
from there. The output is the plain greedy output whatever the draft.

The cost: vLLM 0.32 does not read the prefix cache for a request with ``prompt_logprobs``
(``SamplingParams.skip_reading_prefix_cache`` defaults to True for them, and the completions API
does not expose it), so the verification request prefills the whole prompt plus the draft,
even when the server had the prompt cached; the continuation requests read the blocks it
wrote. ``benchmarks/server_stage2.py`` measures what that costs against plain greedy.

Timing: ``prefill_ms`` is the first request's time to its first token as the client sees it
(network and queue included; the whole request when it is the verification request, which is
not streamed); ``decode_ms`` is all other request time; ``verify_ms`` is the part of
``decode_ms`` spent in a verification request that was not the first request.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Sequence

from mccom_core.errors import MccomError
from mccom_core.lm.decoding import Completion, DecodeConfig, _State, _build_completion, _stop_check
from mccom_core.lm.healing import _allowed_ids, _heal_index, _split_heal
from mccom_core.lm.prompts import Prompt

if TYPE_CHECKING:  # remote.RemoteModel.complete imports this module
    from mccom_core.lm.remote import RemoteModel

_TOKEN_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids spelling of a token
DRAFTER = "server-verify"  # Completion.drafter of a completion that was given a draft


def complete_remote(rm: RemoteModel, prompt: Prompt | str, config: DecodeConfig = DecodeConfig(),
                    draft_ids: Sequence[int] | None = None) -> Completion:
    """Greedily complete ``prompt`` on the server of ``rm`` (a :class:`~mccom_core.lm.remote.RemoteModel`).

    The same stop rules, token cap and token healing as :func:`~mccom_core.lm.decoding.complete`;
    ``Completion.extra["requests"]`` counts the requests made. ``draft_ids`` (this model's token
    ids of a whole candidate generation, healed prefix included: stage 2's SLM output) are
    verified in one request first (see the module docstring); the output is the same, the
    draft counts and ``drafter="server-verify"`` are recorded, ``extra["draft_dropped"]`` says
    whether the draft was dropped because its healed tokens differ from the server's, and
    ``extra["verify_request_ms"]`` is the verification request's time (0 without one).
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
    n_requests = _heal(rm, s, config)
    dropped = False
    if draft_ids is not None and s.result is None:
        draft = usable_draft(s.gen, draft_ids, config.max_new_tokens)
        dropped = draft is None
        if draft:
            n_requests += _verify(rm, s, draft, config)
    n_requests += _decode(rm, s, config)
    s.n_forward = len(s.gen) - s.n_accepted  # a server-side pass per token, accepted draft tokens aside
    out = _build_completion(tok, s, config, DRAFTER if draft_ids is not None else "none")
    out.extra.update(requests=n_requests, server=rm.config.base_url)
    if draft_ids is not None:
        out.extra.update(draft_dropped=dropped, verify_request_ms=s.timings.get("verify_request", 0.0))
    return out


def _heal(rm: RemoteModel, s: _State, config: DecodeConfig) -> int:
    """One constrained token per request until the backed-off text is re-typed; the requests made."""
    tok, n = rm.tokenizer, 0
    while s.result is None and s.heal and len(s.heal_typed) < len(s.heal):
        allowed = _allowed_ids(s.index, s.heal[len(s.heal_typed):]).tolist()
        tokens, finish = _request(rm, s, 1, allowed=allowed)
        n += 1
        token, prob = tokens[0]
        s.heal_typed += tok.decode([token])
        _take(tok, s, token, prob, True, config)
        if s.result is None and finish == "eos":
            s.result = (None, "eos")
    return n


def _decode(rm: RemoteModel, s: _State, config: DecodeConfig) -> int:
    """Free greedy decoding, a request per newline the stop rule does not end at; the requests made."""
    stop, n = None if config.stop == "none" else ["\n"], 0
    while s.result is None:
        tokens, finish = _request(rm, s, config.max_new_tokens - len(s.gen), stop=stop)
        n += 1
        for token, prob in tokens:
            if _take(rm.tokenizer, s, token, prob, False, config):
                break
        if s.result is None and finish == "eos":
            s.result = (None, "eos")  # the server stopped at an end-of-sequence token it did not return
        elif s.result is None and not tokens:
            raise MccomError(f"the server at {rm.config.base_url} returned no tokens (finish: {finish}); "
                             "check that it is a vLLM-compatible completions server")
    return n


def usable_draft(generated: Sequence[int], draft_ids: Sequence[int], max_new_tokens: int) -> list[int] | None:
    """The part of ``draft_ids`` to verify after the healing tokens ``generated``, or ``None``
    when the draft's first tokens are not those healing tokens (the draft is then dropped:
    verifying the rest would continue text the server did not write).

    As in-process (:func:`~mccom_core.lm.decoding._propose`), the draft leaves room in the token
    budget for the server's own token after it.
    """
    n = len(generated)
    if not draft_ids:
        return []
    if list(draft_ids[:n]) != list(generated):
        return None
    budget = max_new_tokens - n - 1
    return [int(t) for t in draft_ids[n:]][: max(budget, 0)]


def _verify(rm: RemoteModel, s: _State, draft: list[int], config: DecodeConfig) -> int:
    """Verify ``draft`` in one request and take the server's choices it settles; the requests made (1)."""
    entries, tokens, finish = _verify_request(rm, s, draft)
    choices = greedy_choices(entries[len(s.ids) + len(s.gen):], tokens)
    accepted = take_verified(rm.tokenizer, s, draft, choices, config)
    s.n_drafted += len(draft)
    s.n_accepted += accepted
    s.n_rounds += 1
    if s.result is None and accepted == len(draft) and not tokens and finish == "eos":
        s.result = (None, "eos")  # the server's token after the whole draft was an EOS it did not return
    return 1


def greedy_choices(entries: Sequence[dict], generated: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """The server's greedy (token, probability) after the prompt so far and after each draft token.

    ``entries`` are vLLM's ``prompt_logprobs`` at the draft positions (one per draft token, a
    dict from token id, a string in JSON, to ``{"logprob", "rank", ...}`` holding the token of
    rank 1 and the prompt's token there); ``generated`` is the request's one generated token
    (after the whole draft), or nothing when the server did not return it.
    """
    out = []
    for entry in entries:
        if not entry:
            raise MccomError("the server returned no prompt log probabilities at a draft position: "
                             "use a vLLM server (mccom serve) for stage 2 over the API")
        token, info = min(entry.items(), key=lambda kv: (kv[1].get("rank") or math.inf, -kv[1]["logprob"]))
        out.append((int(token), math.exp(info["logprob"])))
    return out + list(generated)


def take_verified(tok, s: _State, draft: Sequence[int], choices: Sequence[tuple[int, float]],
                  config: DecodeConfig) -> int:
    """Take the server's choices as the in-process loop takes a verification pass's rows
    (:func:`~mccom_core.lm.decoding._accept`): each goes through the stop checks; stop after the
    first that ends the completion or differs from the draft. Returns the draft tokens accepted
    (as in-process, a matching token that ends the completion is not counted)."""
    accepted = 0
    for i, (token, prob) in enumerate(choices):
        if _take(tok, s, token, prob, False, config) or i >= len(draft) or draft[i] != token:
            break
        accepted += 1
    return accepted


def _take(tok, s: _State, token: int, prob: float, healing: bool, config: DecodeConfig) -> bool:
    """Append one generated token as the in-process loop does; True once a stop rule fired."""
    s.gen.append(token)
    s.probs.append(prob)
    s.result = _stop_check(tok, s, token, healing, config)
    return s.result is not None


def _request(rm: RemoteModel, s: _State, max_tokens: int, stop=None, allowed=None) -> tuple[list, str]:
    """One streamed greedy request continuing ``s.ids + s.gen``: ([(token id, probability)],
    finish) with finish "eos", "stop" (a stop string), or "length". Adds its time to ``s.timings``."""
    body = _body(rm)
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
            new = _choice_tokens(choice)
            if new and first is None:
                first = time.perf_counter()
            tokens += new
            finish = _finish(choice) or finish
        return tokens, finish, t0, first

    tokens, finish, t0, first = rm.send(run)
    end = time.perf_counter()
    if s.n_forward == 0 and first is not None:  # the first request: its time to first token is the prefill
        s.timings["prefill"] += (first - t0) * 1e3
        s.timings["decode"] += (end - first) * 1e3
    else:
        s.timings["decode"] += (end - t0) * 1e3
    s.n_forward = 1
    return tokens, finish


def _verify_request(rm: RemoteModel, s: _State, draft: list[int]) -> tuple[list, list, str]:
    """One request over ``s.ids + s.gen + draft`` with ``prompt_logprobs`` and one new token:
    (the prompt log probabilities, one entry per prompt position, the first ``None``;
    [(token id, probability)] of the generated token; finish). Not streamed: vLLM refuses
    prompt log probabilities on a stream."""
    prompt = s.ids + s.gen + draft
    body = _body(rm, prompt_logprobs=1)

    def run():
        return rm.client.completions.create(
            model=rm.config.model, prompt=prompt, max_tokens=1, temperature=0.0, presence_penalty=0.0,
            frequency_penalty=0.0, logprobs=1, stream=False, extra_body=body).choices[0]

    t0 = time.perf_counter()
    choice = rm.send(run)
    elapsed = (time.perf_counter() - t0) * 1e3
    s.timings["verify_request"] = elapsed  # Completion.extra["verify_request_ms"], wherever it is booked
    if s.n_forward == 0:  # the first request: the prefill over the prompt and the draft, as in-process
        s.timings["prefill"] += elapsed
    else:
        s.timings["decode"] += elapsed
        s.timings["verify"] += elapsed
    s.n_forward = 1
    entries = (choice.model_extra or {}).get("prompt_logprobs")
    if not entries or len(entries) != len(prompt):
        raise MccomError(f"the server at {rm.config.base_url} returned {len(entries or ())} prompt log "
                         f"probabilities for a prompt of {len(prompt)} tokens: it ignores prompt_logprobs; "
                         "use a vLLM server (mccom serve) for stage 2 over the API")
    return entries, _choice_tokens(choice), _finish(choice)


def _body(rm: RemoteModel, **more) -> dict:
    """vLLM's extensions every request carries. Explicit greedy settings: a server may otherwise
    default them from the model's generation_config.json (a repetition penalty changes greedy
    output). Its end-of-sequence ids it keeps, as the in-process path does. The config's
    ``cache_salt``, when set, scopes the server's prefix cache to requests of that salt."""
    salt = {"cache_salt": rm.config.cache_salt} if rm.config.cache_salt else {}
    return {"return_tokens_as_token_ids": True, "repetition_penalty": 1.0, **salt, **more}


def _choice_tokens(choice) -> list[tuple[int, float]]:
    """[(token id, probability)] of the tokens a completion choice (or stream chunk) carries."""
    lp = choice.logprobs
    return [(_token_id(name), math.exp(logprob) if logprob is not None else float("nan"))
            for name, logprob in zip(lp.tokens if lp else (), lp.token_logprobs if lp else ())]


def _finish(choice) -> str | None:
    """How a choice finished: "eos", "stop" (a stop string), "length", or None while a stream goes on."""
    if not choice.finish_reason:
        return None
    stop_reason = (choice.model_extra or {}).get("stop_reason")
    # vLLM: None for the EOS token, the id for another stop token, the string for a stop string
    eos = choice.finish_reason == "stop" and not isinstance(stop_reason, str)
    return "eos" if eos else choice.finish_reason


def _token_id(name: str) -> int:
    if not name.startswith(_TOKEN_PREFIX):
        raise MccomError(f"the server returned token {name!r}, not {_TOKEN_PREFIX}N: it ignores "
                         "return_tokens_as_token_ids; use a vLLM server (mccom serve)")
    return int(name[len(_TOKEN_PREFIX):])
