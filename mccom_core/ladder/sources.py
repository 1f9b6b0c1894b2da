"""Where a ladder's generations come from: one interface, selected by name.

``replay`` (the authors' recorded layout), ``codet`` (CodeT-style JSONL) and ``live`` (real
models generate now, see :mod:`mccom_core.ladder.live`) all return a
:class:`~mccom_core.ladder.data.Generations`::

    gens = get_source("replay", data_dir="../shared/data/code_cascading_wizardcoder").load()
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from mccom_core.errors import MccomError
from mccom_core.ladder.data import (WIZARDCODER_MODELS, Generations, read_codet_jsonl,
                                    read_replay_dir)

if TYPE_CHECKING:
    from mccom_core.ladder.live import LiveConfig


class GenerationSource:
    """Where a ladder's generations come from. Subclasses implement :meth:`load`."""

    name = "base"

    def load(self) -> Generations:
        raise NotImplementedError


SOURCES: dict[str, type[GenerationSource]] = {}


def register_source(cls: type[GenerationSource]) -> type[GenerationSource]:
    SOURCES[cls.name] = cls
    return cls


def get_source(name: str, **kwargs) -> GenerationSource:
    """Build a registered source by name (``replay``, ``codet``, ``live``) from keyword arguments."""
    try:
        return SOURCES[name](**kwargs)
    except KeyError:
        raise MccomError(f"unknown generation source {name!r}: choose one of {sorted(SOURCES)}") from None


@register_source
@dataclass(frozen=True)
class ReplaySource(GenerationSource):
    """Recorded generations in the authors' layout (WizardCoder data, or a live run's record)."""

    data_dir: str
    models: tuple[str, ...] = WIZARDCODER_MODELS
    runs: int = 10  # sampled runs per model
    samples: int = 10  # samples per run (the ``p10`` in file names)
    problems_file: str | None = None  # default: the first JSON under data_dir/data
    name = "replay"

    def load(self) -> Generations:
        return read_replay_dir(self.data_dir, self.models, self.runs, self.samples, self.problems_file)


@register_source
@dataclass(frozen=True)
class CodeTSource(GenerationSource):
    """CodeT-format JSONL samples per model (see :func:`read_codet_jsonl`)."""

    problems_file: str
    solutions: tuple[tuple[str, str], ...]  # (model, JSONL path), small to large
    tests: tuple[tuple[str, str], ...] = ()
    samples: int = 10
    name = "codet"

    def load(self) -> Generations:
        return read_codet_jsonl(self.problems_file, dict(self.solutions), dict(self.tests) or None, self.samples)


@register_source
@dataclass(frozen=True)
class LiveSource(GenerationSource):
    """Generate with real models (or resume a recorded run) and load it like a replay."""

    config: LiveConfig
    out_dir: str
    name = "live"

    def load(self) -> Generations:
        from mccom_core.ladder.live import record_live  # needs torch: imported only for live runs

        replay_dir = record_live(self.config, self.out_dir)
        gens = read_replay_dir(replay_dir, self.config.models, runs=self.config.runs, samples=self.config.k)
        gens.meta.update(source="live", live=asdict(self.config))
        return gens
