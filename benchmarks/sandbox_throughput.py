"""Benchmark: sandbox throughput in (solution, test) pairs per second, cache off.

Runs jobs shaped like the ladder replay's (a short solution with the import prelude, a
dozen one-line asserts, some failing) through :class:`mccom_core.ladder.sandbox.Sandbox`
with one and with two fork servers, and reports pairs per second.

    .venv/bin/python benchmarks/sandbox_throughput.py [--jobs 60] [--tests 12] [--label after]

Appends a row per worker count to ``benchmarks/results/sandbox_throughput.md`` when
``--out`` is given (and always prints the rows).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

PRELUDE = "import math\nfrom typing import List, Tuple\n"
SOLUTION = PRELUDE + "def add(a: int, b: int) -> int:\n    return a + b if a < 90 else a - b\n"


def make_jobs(n_jobs: int, n_tests: int):
    from mccom_core.ladder.sandbox import Job

    jobs = []
    for j in range(n_jobs):
        tests = tuple(f"assert add({j * n_tests + i}, {i}) == {j * n_tests + 2 * i}" for i in range(n_tests))
        jobs.append(Job(SOLUTION + f"# job {j}\n", tests))
    return jobs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--tests", type=int, default=12)
    ap.add_argument("--label", default="current")
    ap.add_argument("--out", default=None, help="markdown file to append rows to")
    args = ap.parse_args(argv)

    from mccom_core.ladder.sandbox import Sandbox, SandboxConfig

    jobs = make_jobs(args.jobs, args.tests)
    pairs = args.jobs * args.tests
    rows = []
    for workers in (1, 2):
        cfg = SandboxConfig(max_workers=workers, use_cache=False)
        with Sandbox(cfg) as sb:
            sb.run(jobs[:2])  # start the fork servers (interpreter start-up is not per pair)
            start = time.perf_counter()
            verdicts = sb.run(jobs)
            seconds = time.perf_counter() - start
        passed = sum(v.passed for vs in verdicts for v in vs)
        rows.append(f"| {args.label} | {workers} | {args.jobs} x {args.tests} | {passed}/{pairs} | "
                    f"{seconds:.2f} | {pairs / seconds:.0f} |")
    load = os.getloadavg()[0]
    for r in rows:
        print(r)
    print(f"(load average {load:.2f}, {os.cpu_count()} CPUs, Python {platform.python_version()}, uid {os.getuid()})")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
