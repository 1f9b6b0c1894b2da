"""The self-testing ladder (Chen et al., arXiv 2405.15842): generations (data, sources, live), the
sandbox that runs them, acceptance and replay (replay), costs (cost) and Pareto plan search (plans)."""

from mccom_core.ladder.cost import cost_table, read_cost_json
from mccom_core.ladder.data import Generations, Problem, load_problems, read_replay_dir
from mccom_core.ladder.live import LiveConfig, record_live, run_live
from mccom_core.ladder.plans import Plan, Rung, run_plans, search
from mccom_core.ladder.replay import ReplayConfig, load_outcomes, run_replay
from mccom_core.ladder.sandbox import Job, Sandbox, SandboxConfig, Verdict
from mccom_core.ladder.sources import SOURCES, get_source

__all__ = [
    "Generations", "Job", "LiveConfig", "Plan", "Problem", "ReplayConfig", "Rung", "SOURCES", "Sandbox",
    "SandboxConfig", "Verdict", "cost_table", "get_source", "load_outcomes", "load_problems", "read_cost_json",
    "read_replay_dir", "record_live", "run_live", "run_plans", "run_replay", "search",
]
