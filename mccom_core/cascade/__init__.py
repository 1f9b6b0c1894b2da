"""The MCCom completion cascade: tasks from real repositories (snapshots, candidates, tasks, definition),
the per-task branches (engine), the resumable runner, routing policies, simulated users and metrics."""

from mccom_core.cascade.engine import BRANCHES, CORE_BRANCHES, Cascade, CascadeConfig, config_hash
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.cascade.policies import POLICIES, LatencyModel, best_threshold, simulate, summary, sweep
from mccom_core.cascade.runner import read_results, run_benchmark, select_tasks
from mccom_core.cascade.snapshots import materialize
from mccom_core.cascade.tasks import BenchmarkConfig, Task, build_tasks, read_tasks, save_tasks, task_context
from mccom_core.cascade.users import USERS, make_user

__all__ = [
    "BRANCHES", "BenchmarkConfig", "CORE_BRANCHES", "Cascade", "CascadeConfig", "LatencyModel", "POLICIES",
    "Task", "USERS", "best_threshold", "build_tasks", "config_hash", "edit_similarity", "exact_match",
    "make_user", "materialize", "read_results", "read_tasks", "run_benchmark", "save_tasks", "select_tasks",
    "simulate", "summary", "sweep", "task_context",
]
