"""The cascade engine: per task, the branches that every MCCom policy is made of.

MCCom answers a completion request in up to three ways, and every routing policy (see
:mod:`mccom_core.cascade.policies`) is a pure function of which of them it takes. So each task is
run once per branch and the branch results are stored; policies and threshold sweeps never
re-run a model.

Core branches (:data:`CORE_BRANCHES`):

``slm``
    The small local model: round-1 retrieval (BM25 over the repository with left + right
    context), stage-1 drafting (exact matches in the prompt and retrieved code), its
    confidence (mean probability of the first 3 shown tokens), output and timings.
``llm``
    The large "cloud" model called directly, with no SLM attempt: round-1 retrieval, stage-1
    drafting, no stage-2 draft. Always-LLM is made of this branch.
``llm_rejected``
    The large model after the SLM's output was rejected (or withheld for low confidence):
    round-2 fused retrieval (round-1 scores fused with those of a query that includes the SLM
    output, weighted by SLM confidence) and the SLM's token ids as the stage-2 draft.

Ablation branches, computed on demand (:data:`ABLATIONS`): ``no-drafting`` (the three core
branches with no drafter: same outputs, other timings), ``no-retrieval`` (in-file context
only: the naive cascade) and ``repocoder`` (RepoCoder's round-2 query alone instead of the
fusion).

Latency is measured in two accountings. *Cold*: every request prefills its whole prompt.
*Warm*: the local model has kept the KV cache of its prompt up to the start of the cursor's
line (built while the user typed that line's indentation, untimed), so a request prefills
only what changed; the SLM branch is run a second time that way and its ``warm_*`` columns
hold those timings. The cloud model holds no cache of the user's file: its warm timings are
its cold ones. The warm accounting assumes the round-1 retrieved block was fixed when the
line began (its query differs from then only by the indentation typed).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Iterator, Mapping

import pandas as pd

from mccom_core.cascade.tasks import Task
from mccom_core.lm.decoding import DecodeConfig, complete
from mccom_core.lm.kv_cache import PrefixCache, warm
from mccom_core.lm.drafting import make_drafter
from mccom_core.errors import MccomError
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.lm.models import tokenizers_identical
from mccom_core.lm.prompts import PromptConfig, build_prompt, cut_context
from mccom_core.retrieval.queries import CompletionSite, RetrievalConfig, retrieval_hash_fields
from mccom_core.retrieval.retrievers import get_retriever
from mccom_core.retrieval.prompt import fit_block


@dataclass(frozen=True)
class BranchSpec:
    """One way of answering a task: which model, which retrieval, which drafting stage."""

    name: str
    role: str  # "slm" (local model) or "llm" (cloud model)
    retriever: str  # a mccom_core.retrieval.retrievers.RETRIEVERS name
    drafting: str  # "stage1" (context matches), "stage2" (SLM output + context), or "none"
    after: str | None = None  # the SLM branch whose output feeds round 2 and the stage-2 draft


# In dependency order: a branch's `after` always comes before it.
BRANCHES: dict[str, BranchSpec] = {b.name: b for b in (
    BranchSpec("slm", "slm", "round1", "stage1"),
    BranchSpec("llm", "llm", "round1", "stage1"),
    BranchSpec("llm_rejected", "llm", "mccom-fused", "stage2", after="slm"),
    BranchSpec("slm_nodraft", "slm", "round1", "none"),
    BranchSpec("llm_nodraft", "llm", "round1", "none"),
    BranchSpec("llm_rejected_nodraft", "llm", "mccom-fused", "none", after="slm"),
    BranchSpec("slm_noretrieval", "slm", "none", "stage1"),
    BranchSpec("llm_noretrieval", "llm", "none", "stage1"),
    BranchSpec("llm_rejected_noretrieval", "llm", "none", "stage2", after="slm_noretrieval"),
    BranchSpec("llm_rejected_repocoder", "llm", "repocoder", "stage2", after="slm"),
)}
CORE_BRANCHES = ("slm", "llm", "llm_rejected")
ABLATIONS: dict[str, tuple[str, ...]] = {
    "no-drafting": ("slm_nodraft", "llm_nodraft", "llm_rejected_nodraft"),
    "no-retrieval": ("slm_noretrieval", "llm_noretrieval", "llm_rejected_noretrieval"),
    "repocoder": ("llm_rejected_repocoder",),
}


@dataclass(frozen=True)
class CascadeConfig:
    """Everything that changes a branch's output or timings (see :func:`config_hash`)."""

    slm: str = "qwen2.5-coder-0.5b"  # local model spec (mccom_core.lm.models)
    llm: str = "qwen2.5-coder-1.5b"  # cloud model spec; same family, so stage 2 passes ids
    branches: tuple[str, ...] = CORE_BRANCHES  # which BRANCHES to compute (not in the hash)
    max_left_tokens: int = 1024  # the paper's left context; CPU latency is mostly its prefill
    retrieved_tokens: int = 512  # retrieved block ahead of the left context (half a window set)
    # bm25s: rank-bm25 scores every window in Python per query token (~0.5 s a query on a
    # 9k-window repository here), bm25s answers in milliseconds; retrieval is on the critical path.
    retrieval: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(backend="bm25s"))
    stage1_drafter: str = "context"  # drafter for "stage1" branches (mccom_core.lm.drafting)
    stage2_drafter: str = "cross-model+context"  # drafter for "stage2" branches
    # Context-match draft length (stage 1, and stage 2's fallback); None: the drafter's device
    # default (2 on a CPU, 10 on a GPU; see mccom_core.lm.drafting.ContextDrafter).
    context_draft_len: int | None = None
    draft_right_lines: int = 20  # lines after the cursor offered to drafters as match material
    max_line_tokens: int = 48  # cap for `line` tasks: p99 ground truth is ~93 chars
    max_stmt_tokens: int = 64  # cap for `stmt` tasks: p90 is ~130 chars; longer ones are rare
    token_healing: bool = True  # the cursor sits after indentation (see mccom_core.lm.healing)
    confidence_tokens: int = 3  # MCCom's confidence: mean probability of the first 3 tokens
    warm: bool = True  # also time the SLM with a warm prefix cache (the warm accounting)

    def __post_init__(self):
        unknown = [b for b in self.branches if b not in BRANCHES]
        if unknown or not self.branches:
            raise MccomError(f"unknown branches {unknown}: choose from {list(BRANCHES)}")
        for name in self.branches:
            after = BRANCHES[name].after
            if after and after not in self.branches:
                raise MccomError(f"branch {name!r} needs the output of {after!r}: add it to branches")
        if self.context_draft_len is not None and self.context_draft_len < 1:
            raise MccomError(f"context_draft_len must be >= 1 or None, got {self.context_draft_len}")
        if self.max_left_tokens < 1 or self.retrieved_tokens < 0 or self.draft_right_lines < 0:
            raise MccomError("max_left_tokens must be >= 1, retrieved_tokens and draft_right_lines >= 0")
        if min(self.max_line_tokens, self.max_stmt_tokens, self.confidence_tokens) < 1:
            raise MccomError("max_line_tokens, max_stmt_tokens and confidence_tokens must be >= 1")

    def with_ablations(self, *names: str) -> "CascadeConfig":
        """This config with the branches of the named :data:`ABLATIONS` added."""
        extra = []
        for name in names:
            if name not in ABLATIONS:
                raise MccomError(f"unknown ablation {name!r}: choose from {sorted(ABLATIONS)}")
            extra += [b for b in ABLATIONS[name] if b not in self.branches and b not in extra]
        order = [b for b in BRANCHES if b in set(self.branches) | set(extra)]
        return replace(self, branches=tuple(order))

    def decode_config(self, kind: str) -> DecodeConfig:
        """How a task of ``kind`` is decoded: a line stops at the newline, a statement when complete."""
        stmt = kind == "stmt"
        return DecodeConfig(
            stop="statement" if stmt else "line",
            max_new_tokens=self.max_stmt_tokens if stmt else self.max_line_tokens,
            token_healing=self.token_healing, confidence_tokens=self.confidence_tokens,
        )


def config_hash(config: CascadeConfig) -> str:
    """A short stable hash of everything in ``config`` that changes a branch row.

    ``branches`` is left out: a row is keyed by its branch name anyway, so adding an
    ablation to a finished run computes only the new branches. Retrieval options added
    later are left out while at their old behaviour (``RetrievalConfig.hash_fields``), so
    older rows keep their hash.
    """
    return _hash_data(json.loads(json.dumps(asdict(config))))


# Retrieval options that only MCCom's fused round 2 reads: a branch that retrieves otherwise
# ("none", "round1", RepoCoder's fixed query; its source branch too) computes the same row
# whatever they are.
ROUND2_OPTIONS = ("fusion_schedule", "fusion_weight", "round2_query")
ROUND2_RETRIEVERS = ("mccom-fused",)


def branch_hash(config_data: dict, branch: str) -> str:
    """The hash of what ``branch``'s row depends on, from a config's ``asdict`` (a stored row's
    ``"config"``): :func:`config_hash` with the :data:`ROUND2_OPTIONS` at their defaults for a
    branch that never runs round 2. Two configs with equal branch hashes give the same row for
    that branch, so a run of one may reuse the other's (``run_benchmark(seed=...)``)."""
    spec = BRANCHES[branch]
    reads_round2 = spec.retriever in ROUND2_RETRIEVERS or (
        spec.after is not None and BRANCHES[spec.after].retriever in ROUND2_RETRIEVERS)
    data = json.loads(json.dumps(config_data))
    if not reads_round2:
        defaults = asdict(RetrievalConfig())
        data["retrieval"] = {**data["retrieval"], **{name: defaults[name] for name in ROUND2_OPTIONS}}
    return _hash_data(data)


def _hash_data(data: dict) -> str:
    data = dict(data)
    data.pop("branches", None)
    data["retrieval"] = retrieval_hash_fields(data["retrieval"])
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def line_start_prefix(prompt_text: str, left: str) -> str:
    """The prompt up to the start of the cursor's line: what a warm cache holds."""
    typed = left[left.rfind("\n") + 1:]  # what the user typed on the cursor's line so far
    return prompt_text[: len(prompt_text) - len(typed)] if typed else prompt_text


class Cascade:
    """Runs the branches of :class:`CascadeConfig` for tasks, with a loaded model pair.

    Parameters
    ----------
    slm, llm:
        :class:`~mccom_core.lm.models.LoadedModel` objects (local and cloud model).
    config:
        The branches and their settings.
    """

    def __init__(self, slm, llm, config: CascadeConfig = CascadeConfig()):
        self.slm, self.llm, self.config = slm, llm, config
        self.same_tokenizer = tokenizers_identical(slm.tokenizer, llm.tokenizer)

    def run(self, task: Task, left: str, right: str, index=None,
            done: Mapping[str, dict] | None = None) -> Iterator[dict]:
        """Yield one row per branch of the config not already in ``done``, as each finishes.

        ``done`` maps branch names to rows stored earlier (a resumed run): those branches
        are not recomputed, and a stored SLM row still feeds its dependent branches.
        ``index`` is the repository's :class:`~mccom_core.retrieval.index.RepoIndex`; it may be
        ``None`` only when no computed branch retrieves.
        """
        rows = dict(done or {})
        for name in self.config.branches:
            if name in rows:
                continue
            spec = BRANCHES[name]
            rows[name] = self.branch(spec, task, left, right, index, rows.get(spec.after))
            yield rows[name]

    def branch(self, spec: BranchSpec, task: Task, left: str, right: str, index=None,
               source: dict | None = None) -> dict:
        """Compute one branch; ``source`` is the row of ``spec.after`` (its SLM output)."""
        if spec.after and source is None:
            raise MccomError(f"branch {spec.name!r} needs the row of branch {spec.after!r}")
        lm = self.slm if spec.role == "slm" else self.llm
        decode = self.config.decode_config(task.kind)

        prompt_config = PromptConfig(max_left_tokens=self.config.max_left_tokens)
        # What the prompt shows of the context: needed by the prompt in every branch and by the
        # retrieval filter; computed once, outside the retrieval time (prompt assembly is not
        # timed in any branch, with or without the filter).
        cut = cut_context(left, right, lm.tokenizer, prompt_config)
        t0 = time.perf_counter()
        hits = self._retrieve(spec, task, left, right, index, source, cut)
        block = fit_block(hits, lm.tokenizer, self.config.retrieved_tokens) if hits else None
        retrieval_ms = (time.perf_counter() - t0) * 1e3 if spec.retriever != "none" else 0.0

        prompt = build_prompt(left, right, lm.tokenizer, prompt_config, prefix=block.text if block else "", cut=cut)
        right_head = "\n".join(right.split("\n")[: self.config.draft_right_lines])
        extra = tuple(block.snippets if block else ()) + ((right_head,) if right_head else ())
        draft = self._stage2_draft(source) if spec.drafting == "stage2" else {}
        out = complete(lm, prompt, decode, self._drafter(spec), extra, **draft)

        shown = out.text.strip()
        row = {
            "task_id": task.task_id, "kind": task.kind, "repo": task.repo, "path": task.path,
            "branch": spec.name, "role": spec.role, "model": lm.spec, "retriever": spec.retriever,
            "drafter": out.drafter, "after": spec.after,
            "ground_truth": task.ground_truth, "prediction": out.text,
            "em": exact_match(out.text, task.ground_truth),
            "es": edit_similarity(out.text, task.ground_truth),
            "confidence": out.confidence, "token_ids": list(out.token_ids),
            "n_heal_tokens": out.n_heal_tokens, "stop_reason": out.stop_reason,
            "prompt_tokens": out.prompt_tokens, "left_tokens": prompt.left_tokens,
            "retrieved_windows": len(block.hits) if block else 0,
            "retrieved_tokens": block.n_tokens if block else 0,
            "output_in_left": bool(shown) and shown in prompt.left,
            "retrieval_ms": retrieval_ms, "prefill_ms": out.prefill_ms, "decode_ms": out.decode_ms,
            "verify_ms": out.verify_ms, "draft_ms": out.draft_ms, "n_forward": out.n_forward,
            "n_drafted": out.n_drafted, "n_accepted": out.n_accepted,
            "warm_prefill_ms": None, "warm_decode_ms": None, "warm_draft_ms": None,
            "warm_reused_tokens": None, "warm_same_output": None,
        }
        if spec.role == "slm" and self.config.warm and not getattr(lm, "served", False):  # a server keeps its own cache
            row.update(self._warm_timings(lm, spec, prompt, left, decode, extra, draft, out.text))
        return row

    # ----------------------------------------------------------------------------- helpers

    def _retrieve(self, spec, task, left, right, index, source, cut) -> list:
        if spec.retriever == "none":
            return []
        if index is None:
            raise MccomError(f"branch {spec.name!r} retrieves ({spec.retriever}): pass the repository index")
        site = CompletionSite(left, right, task.path, task.span0, shown_left=cut[0], shown_right=cut[1])
        if spec.after:  # round 2: the SLM's output and how sure it was
            site = replace(site, slm_output=source["prediction"],
                           slm_confidence=min(max(float(source["confidence"]), 0.0), 1.0))
        return get_retriever(spec.retriever, self.config.retrieval).retrieve(index, site)

    def _drafter(self, spec):
        names = {"stage1": self.config.stage1_drafter, "stage2": self.config.stage2_drafter}
        name = names.get(spec.drafting, "none")
        kwargs = {"draft_len": self.config.context_draft_len} if "context" in name else {}
        return make_drafter(name, **kwargs)

    def _stage2_draft(self, source: dict) -> dict:
        """The SLM's whole generation (healed prefix included) as the LLM's draft."""
        ids = list(source["token_ids"])
        text = self.slm.tokenizer.decode(ids, skip_special_tokens=True)
        return {"draft_text": text, "draft_ids": ids if self.same_tokenizer else None}

    def _warm_timings(self, lm, spec, prompt, left, decode, extra, draft, cold_text) -> dict:
        cache = warm(lm, line_start_prefix(prompt.text, left), PrefixCache())  # untimed: while typing
        out = complete(lm, prompt, decode, self._drafter(spec), extra, prefix_cache=cache, **draft)
        return {
            "warm_prefill_ms": out.prefill_ms, "warm_decode_ms": out.decode_ms,
            "warm_draft_ms": out.draft_ms, "warm_reused_tokens": out.extra.get("reused_tokens", 0),
            "warm_same_output": out.text == cold_text,
        }


def branch_stats(results):
    """Per branch: EM, ES, mean timings (cold and warm) and draft acceptance. ``results``
    is the long frame of branch rows (``mccom_core.cascade.runner.read_results``)."""
    df = pd.DataFrame(results)
    df = df.assign(
        cold_ms=df["retrieval_ms"] + df["prefill_ms"] + df["decode_ms"] + df["draft_ms"],
        warm_ms=df["retrieval_ms"] + df["warm_prefill_ms"].fillna(df["prefill_ms"])
        + df["warm_decode_ms"].fillna(df["decode_ms"]) + df["warm_draft_ms"].fillna(df["draft_ms"]),
    )
    out = df.groupby("branch", sort=False).agg(
        n=("task_id", "size"), em=("em", "mean"), es=("es", "mean"), confidence=("confidence", "mean"),
        retrieval_ms=("retrieval_ms", "mean"), prefill_ms=("prefill_ms", "mean"),
        decode_ms=("decode_ms", "mean"), cold_ms=("cold_ms", "mean"), warm_ms=("warm_ms", "mean"),
        prompt_tokens=("prompt_tokens", "mean"), n_forward=("n_forward", "mean"),
        n_drafted=("n_drafted", "sum"), n_accepted=("n_accepted", "sum"),
    )
    out["draft_acceptance"] = out["n_accepted"] / out["n_drafted"].where(out["n_drafted"] > 0)
    return out.reset_index()


# --------------------------------------------------------------------------- paper observations


def verbatim_share(results, branch: str = "slm") -> float:
    """Share of the branch's non-empty outputs found verbatim in the left context its prompt showed."""
    df = pd.DataFrame(results)
    rows = df[(df["branch"] == branch) & (df["prediction"].str.strip() != "")]
    if rows.empty:
        raise MccomError(f"no non-empty outputs of branch {branch!r} in the results")
    return float(rows["output_in_left"].astype(bool).mean())


def output_similarity(results, a: str = "slm", b: str = "llm") -> float:
    """Mean edit similarity between the outputs of branches ``a`` and ``b`` on the same tasks."""
    df = pd.DataFrame(results)
    pa = df[df["branch"] == a].set_index("task_id")["prediction"]
    pb = df[df["branch"] == b].set_index("task_id")["prediction"]
    both = pa.to_frame("a").join(pb.to_frame("b"), how="inner")
    if both.empty:
        raise MccomError(f"no task has rows of both {a!r} and {b!r}")
    sims = [edit_similarity(x, y) for x, y in zip(both["a"], both["b"])]
    return sum(sims) / len(sims)
