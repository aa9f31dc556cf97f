"""Copies of a seed kept ready ahead of a test process's restores, made by one background thread.

A service's pool (a cloned database, a logical database: whatever its copies are) gives ``make``,
which makes one ready copy and returns what names it, and hands a ready copy over on the test's path
(:meth:`ReadyPool.take`); what the hand-over leaves behind (the used database) is cleaned up on the
same thread (:meth:`ReadyPool.later`), so the test's path never waits for a copy or a drop unless the
tests run faster than the copies are made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")  # what names a ready copy
R = TypeVar("R")


class ReadyPool(Generic[T]):
    """``size`` ready copies made by ``make`` in the background; ``sweep`` (first on the thread, and
    last on :meth:`close`) removes what an earlier holder of the same names left."""

    def __init__(self, name: str, make: Callable[[], T], size: int, sweep: Callable[[], object]) -> None:
        self._make, self._sweep = make, sweep
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ready-{name}")
        self._worker.submit(sweep)
        self._ready: deque[Future[T]] = deque(self._worker.submit(make) for _ in range(size))

    def take(self, hand_over: Callable[[T], R]) -> R:
        """The oldest ready copy (waited for if it is still being made; its error, such as a full disk,
        is raised here) given to ``hand_over``; another is queued, whatever happened."""
        oldest = self._ready.popleft()
        try:
            return hand_over(oldest.result())
        finally:
            self._ready.append(self._worker.submit(self._make))

    def later(self, job: Callable[[], object]) -> None:
        """``job`` on the pool's thread, after what is queued (the drop of a used copy)."""
        self._worker.submit(job)

    def close(self) -> None:
        """Stops the thread (a copy under way finishes, queued jobs are dropped: the sweep removes what
        they would have) and sweeps."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._sweep()
