"""Readiness: poll a real request (a query, a PING, an HTTP 200) until it answers.

``wait_until`` is the one loop; probes are small functions that raise until the service is ready.
It stops early when the process died, when start-up was cancelled, or when the probe's error is one
waiting cannot change (``permanent``: the service says which, see ``Service.explain``), and on timeout
raises :class:`ReadinessTimeoutError` with the probe's last error and the service's last log lines.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from driveops_env.errors import Interrupted, ReadinessTimeoutError, StartupError, UsageError

T = TypeVar("T")


def transient(_: BaseException) -> bool:
    return False


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    service: str,
    tenant: str | None = None,
    alive: Callable[[], bool] | None = None,
    logs: Callable[[], str] | None = None,
    cancel: threading.Event | None = None,
    interval: float = 0.02,
    max_interval: float = 0.25,
    permanent: Callable[[BaseException], bool] = transient,
) -> T:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None

    def failed(kind: type[StartupError], message: str, hint: str) -> StartupError:
        return kind(message, service=service, tenant=tenant, hint=hint, log_tail=logs() if logs else None)

    while True:
        if cancel is not None and cancel.is_set():
            raise Interrupted("start-up was cancelled", service=service, tenant=tenant)
        try:
            return probe()
        except (StartupError, UsageError):  # the probe's own verdict, said in words: final
            raise
        except Exception as exc:  # a probe signals "not ready" by raising anything
            last_error = exc
            if permanent(exc):
                refused = f"{service} refused: {' '.join(str(exc).split())[:300]}"
                raise failed(
                    StartupError, refused, "the server answers but refuses; waiting would not change it"
                ) from exc
        if alive is not None and not alive():
            gone = "read the log lines below; `driveops-env logs` shows the whole log"
            raise failed(StartupError, f"{service} exited during start-up", gone)
        if time.monotonic() >= deadline:
            late = f"{service} was not ready after {timeout:.0f}s (last answer: {last_error})"
            slow = "raise --startup-timeout if the machine is slow, or read the log lines below"
            raise failed(ReadinessTimeoutError, late, slow)
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def ticks(interval: float, cancel: threading.Event | None = None) -> Iterator[int]:
    """The beat of a periodic loop (a refresh, a log followed): at once, then every ``interval``
    seconds, until ``cancel`` is set (or the caller stops)."""
    count = 0
    while cancel is None or not cancel.is_set():
        yield count
        count += 1
        if cancel is None:
            time.sleep(interval)
        else:
            cancel.wait(interval)


async def aticks(interval: float) -> AsyncIterator[int]:
    """:func:`ticks` for a coroutine (a page's event stream)."""
    count = 0
    while True:
        yield count
        count += 1
        await asyncio.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bytes:
    """GET ``url``; raise unless it answers 200."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http URL
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)
        body: bytes = response.read()
        return body
