"""A dependency-ordered parallel runner for start-up steps, on the standard library's ``graphlib``.

Each step runs in a thread as soon as the steps it comes ``after`` are done (and, for a step of a
group with a limit, when fewer than that many of its group run).  On the first failure (or Ctrl-C)
the shared ``cancel`` event is set, running steps are waited for (they watch the event) and the first
error is raised.
"""

from __future__ import annotations

import contextlib
import graphlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import FrameType

from driveops_env.errors import Interrupted


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[], str | None]  # returns a detail shown in the progress line
    after: tuple[str, ...] = ()
    group: str | None = None  # steps of a group with a limit run at most that many at a time


ProgressFn = Callable[[str, float, str | None], None]


def _timed(step: Step) -> tuple[float, str | None]:
    started = time.monotonic()
    detail = step.run()
    return time.monotonic() - started, detail


def order(steps: Sequence[Step]) -> graphlib.TopologicalSorter[str]:
    """The steps' graph, checked: unknown dependencies and cycles are errors."""
    names = {s.name for s in steps}
    graph: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in steps:
        missing = [d for d in step.after if d not in names]
        if missing:
            raise ValueError(f"step {step.name} waits for unknown steps {missing}")
        graph.add(step.name, *step.after)
    try:
        graph.prepare()
    except graphlib.CycleError as exc:
        raise ValueError(f"steps {exc.args[1]} wait on each other") from None
    return graph


def run_steps(
    steps: Sequence[Step],
    *,
    cancel: threading.Event,
    on_done: ProgressFn | None = None,
    limits: Mapping[str, int] | None = None,
) -> None:
    by_name = {s.name: s for s in steps}
    graph = order(steps)
    ready: list[Step] = []
    running: dict[Future[tuple[float, str | None]], Step] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, len(steps)), thread_name_prefix="driveops-step")
    try:
        while graph.is_active():
            if cancel.is_set():
                raise Interrupted("start-up was cancelled")
            ready += [by_name[name] for name in graph.get_ready()]
            for step in list(ready):
                if _has_room(step, running.values(), limits):
                    running[pool.submit(_timed, step)] = step
                    ready.remove(step)
            # a timeout, so that a cancel from a signal handler is seen even while nothing finishes
            finished, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    elapsed, detail = future.result()  # re-raises the step's error
                except Exception as exc:
                    exc.add_note(f"in step {step.name}")
                    raise
                graph.done(step.name)
                if on_done is not None:
                    on_done(step.name, elapsed, detail)
    except BaseException:
        cancel.set()
        wait(running)
        raise
    finally:
        pool.shutdown(wait=True)


def _has_room(step: Step, running: Iterable[Step], limits: Mapping[str, int] | None) -> bool:
    limit = (limits or {}).get(step.group or "")
    return limit is None or sum(1 for r in running if r.group == step.group) < limit


# --- signals while servers start and stop ---------------------------------------------------------


def with_sigint_ignored(action: Callable[[], None]) -> None:
    """Run cleanup without a second Ctrl-C cutting it short (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        action()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[Callable[[], bool]]:
    """Ctrl-C and SIGTERM wait until the block ends (stopping servers is never cut short, nor a lock
    file's release), then interrupt; the block may ask whether one came (to stop waiting for a lock)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_cancel(cancel: threading.Event, interrupted: threading.Event) -> Iterator[None]:
    """While servers start, Ctrl-C and SIGTERM only set ``cancel``: a KeyboardInterrupt raised at a
    random point (inside a thread pool, say) could let a step run on after the cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
