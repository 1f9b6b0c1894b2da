"""Jobs sharded over a Ray cluster: workers that load their models once, one writer at the driver.

A long run (the cascade benchmark, live ladder generations) is a list of independent jobs.
:func:`shard` starts ``workers`` Ray actors; each builds its state once (``setup()``: load the
models, open the indexes) on its first job, with torch set to its CPU share of threads, then
runs job after job. Each finished job's result comes back to the driver, which hands it to
``on_result`` (there, the runner appends its rows to the one results file), so the file has
one writer and whole lines, and resuming reads it exactly as after a serial run.

A worker that dies mid-job (killed, out of memory, its node lost) returned nothing, so nothing
of that job was written: the job goes back to the queue and runs on a fresh worker, at most
``retries`` times. A driver killed mid-run loses only the jobs in flight; the next run reads
the file and resumes. An error a user can cause (a bad model spec) raised in a worker is
re-raised at the driver as :class:`~mccom_core.errors.MccomError`.

Ray is imported here only, when :func:`shard` runs: a serial run never imports it. Models are
named by their spec strings, so a worker loads exactly what the serial run would.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

from mccom_core.errors import MccomError


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how wide a sharded run is."""

    workers: int = 1  # Ray actors, each holding its own loaded models
    # None starts a local cluster with this machine's cores (and stops it after the run);
    # "auto" or "host:port" joins a running one (``ray start --head`` on its head node).
    address: str | None = None
    # CPUs each worker reserves; None = the cluster's CPUs / workers (at most a node's). Torch gets the whole
    # part of it as threads (at least 1): more threads than cores only spin and wait.
    cpus_per_worker: float | None = None
    retries: int = 3  # resubmissions of one job after its worker died, before the run fails

    def __post_init__(self):
        if not isinstance(self.workers, int) or self.workers < 1:
            raise MccomError(f"workers must be a whole number >= 1, got {self.workers!r}: "
                             "leave out --workers for a serial run")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise MccomError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")
        if self.retries < 0:
            raise MccomError(f"retries must be >= 0, got {self.retries!r}")


def cluster_config(workers: int | None, address: str | None = None) -> ClusterConfig | None:
    """The cluster of a command line's ``--workers`` / ``--ray-address``: None (a serial run, Ray
    never imported) when no workers are given."""
    if workers is None:
        if address is not None:
            raise MccomError(f"--ray-address {address} needs --workers N: how many workers to start there")
        return None
    return ClusterConfig(workers=workers, address=address)


@dataclass(frozen=True)
class ShardReport:
    """What a call of :func:`shard` did."""

    jobs: int  # jobs finished (each handed to on_result once)
    retried: int  # resubmissions after a worker died
    workers_started: int  # actors started, replacements included
    threads: int  # torch threads per worker


class _Worker:
    """A Ray actor: ``setup()`` once, on the first job, then ``state(job)`` per job."""

    def __init__(self, setup: Callable[[], Callable], threads: int):
        import torch

        torch.set_num_threads(threads)
        self.setup, self.state = setup, None

    def run(self, job):
        if self.state is None:  # here, not in __init__, so a setup error reaches the driver as itself
            self.state = self.setup()
        return self.state(job)

    def pid(self) -> int:
        return os.getpid()


def shard(cluster: ClusterConfig, setup: Callable[[], Callable], jobs: Iterable,
          on_result: Callable[[object, object], None], *, progress: bool = False,
          desc: str = "tasks") -> ShardReport:
    """Run ``setup()(job)`` for every job on the cluster's workers; ``on_result(job, result)``
    at the driver as each finishes (in the order they finish).

    ``setup`` and the jobs travel to the workers by pickle: use module-level functions and
    classes (with ``functools.partial`` for arguments), never lambdas over large objects.
    """
    jobs = list(jobs)
    if not jobs:
        return ShardReport(0, 0, 0, 0)
    try:
        import ray
        from ray.exceptions import RayActorError, RayTaskError
    except ImportError:
        raise MccomError("--workers needs Ray: pip install 'ray>=2.10' (or leave out --workers)") from None
    from tqdm.auto import tqdm

    started_here = _connect(ray, cluster)
    share = cluster.cpus_per_worker or _share(ray, cluster.workers)
    threads = max(1, int(share))
    remote = ray.remote(num_cpus=share, max_restarts=0, max_task_retries=0)(_Worker)
    actors, idle, running = [], [], {}
    queue, attempts, retried, finished = deque(enumerate(jobs)), {}, 0, 0

    def spawn():
        actors.append(remote.remote(setup, threads))
        return actors[-1]

    try:
        idle = [spawn() for _ in range(min(cluster.workers, len(jobs)))]
        with tqdm(total=len(jobs), desc=desc, unit="task", disable=not progress, smoothing=0.1) as bar:
            while queue or running:
                while queue and idle:
                    actor, (index, job) = idle.pop(), queue.popleft()
                    running[actor.run.remote(job)] = (actor, index, job)
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor, index, job = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as exc:  # the worker died: nothing of this job was written
                    attempts[index] = attempts.get(index, 0) + 1
                    if attempts[index] > cluster.retries:
                        raise MccomError(f"job {index} lost its worker {attempts[index]} times (last: {exc}); "
                                         "check the workers' memory and logs, then run again to resume") from None
                    ray.kill(actor)
                    idle.append(spawn())
                    queue.appendleft((index, job))
                    retried += 1
                    continue
                except RayTaskError as exc:
                    if isinstance(exc.cause, MccomError):
                        raise MccomError(str(exc.cause)) from None
                    raise
                idle.append(actor)
                on_result(job, result)
                finished += 1
                bar.update()
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
    return ShardReport(finished, retried, len(actors), threads)


def _share(ray, workers: int) -> float:
    """CPUs per worker: the cluster's over the workers, at most one node's (a worker runs on one)."""
    node = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=1.0)
    return max(min(ray.cluster_resources().get("CPU", 1.0) / workers, node), 0.01)


def _connect(ray, cluster: ClusterConfig) -> bool:
    """Join or start the cluster; True when this call connected (and so disconnects: a local
    cluster stops then, a joined one keeps running)."""
    if ray.is_initialized():  # e.g. a notebook or a test that started its own
        return False
    try:
        if cluster.address is None:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        else:
            _reachable(cluster.address)
            ray.init(address=cluster.address, log_to_driver=False)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError, OSError) as exc:
        where = cluster.address or "this machine"
        raise MccomError(f"cannot reach a Ray cluster at {where} ({str(exc).splitlines()[0]}): start one "
                         "with `ray start --head` and pass its address (host:6379, or 'auto' on one of its "
                         "nodes) as --ray-address, or leave --ray-address out for a local cluster") from None
    return True


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself retries for a minute or more)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return  # "auto" and ray:// client addresses: Ray's own lookup says what is wrong
    with socket.create_connection((host, int(port)), timeout=timeout_s):
        pass
