"""The background pool of ready copies, as pure logic: order, errors, replenishment, sweeping."""

from __future__ import annotations

import itertools
import threading

import pytest

from driveops_env.ready_pool import ReadyPool


def test_copies_are_handed_over_oldest_first_and_replaced() -> None:
    numbers = itertools.count()
    log: list[str] = []
    pool = ReadyPool("t", lambda: next(numbers), 2, lambda: log.append("sweep"))
    taken = [pool.take(lambda ready: ready) for _ in range(4)]
    assert taken == [0, 1, 2, 3]  # made ahead, in order, one more for each taken
    pool.later(lambda: log.append("dropped"))  # run, or cancelled by close: its sweep removes the same
    pool.close()
    assert log[0] == "sweep" and log[-1] == "sweep"  # swept first on the thread, and last on close
    assert set(log[1:-1]) <= {"dropped"}


def test_the_first_hand_over_waits_for_one_copy_not_for_the_whole_pool() -> None:
    made = threading.Event()
    release = threading.Event()
    numbers = itertools.count()

    def slow() -> int:
        number = next(numbers)
        if number > 0:
            made.set()
            release.wait(5)  # the rest of the pool is still being made
        return number

    pool = ReadyPool("t", slow, 8, lambda: None)
    assert pool.take(lambda ready: ready) == 0
    assert made.wait(5)
    release.set()
    pool.close()


def test_a_failed_copy_is_raised_on_the_path_and_the_pool_keeps_its_size() -> None:
    attempts = itertools.count()

    def make() -> int:
        number = next(attempts)
        if number == 0:
            raise OSError("No space left on device")
        return number

    pool = ReadyPool("t", make, 1, lambda: None)
    with pytest.raises(OSError, match="No space left"):
        pool.take(lambda ready: ready)
    assert pool.take(lambda ready: ready) == 1  # the next one was queued anyway
    pool.close()


def test_a_failed_hand_over_still_queues_the_next_copy() -> None:
    pool = ReadyPool("t", itertools.count().__next__, 1, lambda: None)

    def refuse(_: int) -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        pool.take(refuse)
    assert pool.take(lambda ready: ready) == 1
    pool.close()


def test_close_stops_copies_not_yet_started() -> None:
    release = threading.Event()
    made: list[int] = []

    def slow() -> int:
        release.wait(5)
        made.append(1)
        return len(made)

    pool = ReadyPool("t", slow, 3, lambda: None)
    release.set()
    pool.close()
    assert len(made) <= 3
