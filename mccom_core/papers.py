"""The papers' reported numbers: the one place that notebooks, reports and README tables read.

Keys name what was measured; values are as the papers report them (percent where the key
ends in ``_pct``, fractions otherwise). Our own measurements of the same quantities are put
beside these (``mccom_core.cascade.policies.paper_comparison``,
``mccom_core.lab.study.observations``, the ladder's savings tables), never into them.
"""

from __future__ import annotations

MCCOM_PAPER = "Lu et al., FSE 2026, arXiv 2603.05974"

# MCCom's headline numbers against always-LLM, and two observations behind its design.
MCCOM_HEADLINES = {
    "latency_vs_llm_pct": -25.6,  # MCCom's mean latency relative to always-LLM
    "llm_calls_vs_llm_pct": -46.3,  # LLM calls relative to always-LLM
    "em_vs_llm_pct": 8.9,  # exact match gain relative to always-LLM
    "slm_output_in_left_pct": 14.4,  # SLM outputs found verbatim in the left context
    "slm_llm_es_pct": 78.4,  # edit similarity between SLM and LLM outputs
}

# MCCom's observations about the local model (its section 2), in percent.
MCCOM_OBSERVATIONS = {
    "slm_output_in_left_pct": 14.4,  # SLM outputs found verbatim in the left context
    "slm_llm_es_pct": 78.4,  # mean edit similarity between SLM and LLM outputs
    "slm_em_no_retrieval_pct": 37.8,  # SLM exact match without retrieval
    "slm_vs_llm_em_pct": 73.8,  # SLM exact match relative to the LLM's
}

SELF_TESTING_PAPER = "Chen et al., arXiv 2405.15842"

# The self-testing cascade's cost savings at equal or better pass@1 (fractions).
SELF_TESTING_CLAIMS = {
    "average_saving": 0.26,  # mean over all model families
    "max_saving": 0.70,  # "up to"
    "wizardcoder_saving": (0.17, 0.31),  # the WizardCoder-Python family, whose runs we replay
}
