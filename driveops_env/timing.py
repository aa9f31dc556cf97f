"""Run a few independent jobs at once and say how long each took (resets, restores, checks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor


def timed(job: Callable[[], object]) -> float:
    started = time.monotonic()
    job()
    return time.monotonic() - started


def run_timed(jobs: Mapping[str, Callable[[], object]]) -> dict[str, float]:
    """Run ``jobs`` in parallel (one alone runs in this thread); the seconds each took, by name.
    The first error is raised once every job has ended."""
    if len(jobs) <= 1:
        return {name: timed(job) for name, job in jobs.items()}
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(timed, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
