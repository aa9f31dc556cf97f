"""Readiness: poll a real request (a query, a PING, an HTTP 200) until it answers.

``wait_until`` is the one loop; probes are small functions that raise until the service is ready.
It stops early when the process died or when start-up was cancelled, and on timeout raises
:class:`ReadinessTimeoutError` with the probe's last error and the service's last log lines.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from driveops_env.errors import Interrupted, ReadinessTimeoutError, StartupError

T = TypeVar("T")


# Answers that waiting cannot change: a server that refuses these credentials or lacks this database
# will keep refusing.  Anything else (connection refused, starting up, loading) is worth waiting for.
PERMANENT = re.compile(
    r"password authentication failed|authentication failed|WRONGPASS|invalid username-password|"
    r"no pg_hba\.conf entry|(database|role) \"[^\"]*\" does not exist|NOPERM",
    re.IGNORECASE,
)


def is_permanent(exc: BaseException) -> bool:
    return PERMANENT.search(str(exc)) is not None


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
        except Exception as exc:  # a probe signals "not ready" by raising anything
            last_error = exc
            if is_permanent(exc):
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


def http_ok(url: str, timeout: float = 2.0) -> bytes:
    """GET ``url``; raise unless it answers 200."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http URL
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)
        body: bytes = response.read()
        return body
