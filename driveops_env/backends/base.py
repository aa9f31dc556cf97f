"""What a backend does, and the one launch path every server goes through.

A backend starts any server from its service's description (:class:`~driveops_env.services.base.Server`)
and returns it ready for its administrator; it has no per-service code.  Everything above that (tenant
roles and databases, ACL users, seeds, realms) is the same on every backend and lives in the service
units and the start plan.

:func:`launch` is the template (as mirakuru's executor: start, then a readiness check): it checks for
cancellation, lets the backend start the server, records it in the state file at once, waits for the
service's own probe, and retries on a port taken meanwhile.  A backend supplies only what differs:
how to start the server, whether it still runs, its log.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from driveops_env import readiness
from driveops_env.errors import Interrupted, StartupError
from driveops_env.ports import PortAllocator
from driveops_env.services.base import Engine, Server
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord


def home_label(settings: Settings) -> str:
    """Which state directory a container backend's resources belong to: two users (or test sandboxes)
    with the same environment name on one engine or cluster never touch each other's."""
    return hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]


@dataclass
class StartContext:
    """Shared by the parallel start-up steps of one ``up`` (or ``tenant add``)."""

    env_name: str
    spec_hash: str
    env_dir: Path  # data directory of this environment
    settings: Settings
    cancel: threading.Event
    register: Callable[[ServiceRecord], None]  # records a started server in the state file at once
    ports: PortAllocator

    @property
    def timeout(self) -> float:
        return self.settings.startup_timeout


@dataclass
class Started:
    """A server as the backend started it, before it answers."""

    record: ServiceRecord
    alive: Callable[[], bool]
    logs: Callable[[], str]  # the lines that matter, for an error


def record_of(server: Server, host: str, **common: Any) -> ServiceRecord:
    """The record every backend starts from: the server's identity, its administrator, what it depends
    on and what its service records about it (``common``: its ports, aliases, port on the network)."""
    return ServiceRecord(
        server.key,
        server.service,
        server.tenant,
        host,
        0,
        server.admin_user,
        server.admin_password,
        depends_on=list(server.depends_on),
        extra=dict(server.extra),
        **common,
    )


def launch(
    ctx: StartContext,
    server: Server,
    record_of: Callable[[int | None], Started],
    stop: Callable[[ServiceRecord], None],
    *,
    attempts: int = 3,
) -> ServiceRecord:
    """Start ``server`` with the backend's ``record_of(attempt)``, record it, wait until its probe answers
    (no longer once its service says an error is final), then its ``after_start``.  A start that fails
    with a log its ``retry_on`` recognises (a port taken between choosing and binding it) is stopped
    and tried again."""
    record = _started(ctx, server, record_of, stop, attempts)
    if server.after_start is not None:
        server.after_start(record)
    return record


def _final(server: Server) -> Callable[[BaseException], bool]:
    def final(exc: BaseException) -> bool:
        said = server.explain(str(exc))
        return said is not None and bool(getattr(said, "permanent", False))  # a (what, hint) pair: transient

    return final


def _started(
    ctx: StartContext,
    server: Server,
    record_of: Callable[[int | None], Started],
    stop: Callable[[ServiceRecord], None],
    attempts: int,
) -> ServiceRecord:
    probe, retry_on = server.probe, server.retry_on
    for attempt in range(1, attempts + 1):
        if ctx.cancel.is_set():
            raise Interrupted("start-up was cancelled")

        def again(exc: StartupError) -> bool:
            return attempt < attempts and not ctx.cancel.is_set() and retry_on(exc.log_tail or "")  # noqa: B023

        try:
            started = record_of(attempt)
        except StartupError as exc:  # refused before it ran (a docker engine's port already allocated)
            if again(exc):
                continue
            raise
        record = started.record
        ctx.register(record)
        try:
            readiness.wait_until(
                lambda: probe(record),  # noqa: B023 - called within this iteration
                timeout=ctx.timeout,
                service=record.kind,
                tenant=record.tenant,
                cancel=ctx.cancel,
                alive=started.alive,
                logs=started.logs,
                permanent=_final(server),
            )
        except StartupError as exc:
            if again(exc):
                stop(record)
                continue
            raise
        return record
    raise AssertionError("unreachable")


class Backend(Protocol):
    """A backend by the table in :mod:`driveops_env.backends`: one family (``process`` or
    ``container``), and no service named anywhere in it."""

    name: str
    family: str

    def __init__(self, settings: Settings, engine: str = "") -> None: ...

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        """Whether ``auto`` may choose it here (saying in one line why not)."""
        ...

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        """What ``gc`` removes that only this backend can find (labelled resources, builders)."""
        ...

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        """What ``gc`` removes of the cache's images and snapshots kept there, beyond the most recently
        used (called while no ``up`` uses the cache)."""
        ...

    def prepare(self, progress: Callable[[str], None]) -> None:
        """Check what the backend itself needs before anything starts (directories, an engine, images)."""
        ...

    def engine(self) -> Engine | None:
        """Where images live (container family), for services that derive their own."""
        ...

    def run_as(self) -> str | None:
        """The unprivileged user servers run as (process family, as root), else None."""
        ...

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        """The server, started and ready for its administrator (its ``after_start`` done)."""
        ...

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None: ...

    def remove(self, record: ServiceRecord) -> None:
        """The server stopped and whatever of it this backend keeps removed (a tenant removed live)."""
        ...

    def cleanup(self, env_name: str) -> list[str]:
        """Remove whatever of the environment the state file does not know (by label, by directory)."""
        ...

    def is_running(self, record: ServiceRecord) -> bool: ...

    def logs(self, record: ServiceRecord, lines: int | None) -> str: ...

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        """New log text of the server as it comes (``logs --follow``), until the caller stops."""
        ...
