"""What a backend does, and the one launch path every server goes through.

A backend starts one server (a process or a container) and returns it ready for its administrator;
everything above that (tenant roles and databases, ACL users, seeds, realms) is the same on every
backend and lives in the service modules and the start plan.

:func:`launch` is the template (as mirakuru's executor: start, then a readiness check): it checks for
cancellation, lets the backend start the server, records it in the state file at once, waits for the
service's own probe, and retries on a port taken meanwhile.  A backend supplies only what differs:
how to start the server, whether it still runs, its log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from driveops_env import readiness
from driveops_env.errors import Interrupted, StartupError
from driveops_env.options import Settings
from driveops_env.ports import PortAllocator
from driveops_env.services import keycloak
from driveops_env.services.mongo import MongoUser
from driveops_env.state import ServiceRecord

Servers = Mapping[str, ServiceRecord]  # servers by kind, e.g. the PostgreSQL a FerretDB keeps its data in


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


def launch(
    ctx: StartContext,
    record_of: Callable[[int | None], Started],
    probe: Callable[[ServiceRecord], object],
    stop: Callable[[ServiceRecord], None],
    *,
    retry_on: Callable[[str], bool] = lambda _: False,
    attempts: int = 3,
) -> ServiceRecord:
    """Start a server with ``record_of(attempt)``, record it, wait until ``probe`` answers.  A start that
    fails with a log ``retry_on`` recognises (a port taken between choosing and binding it) is stopped
    and tried again."""
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
                timeout=ctx.timeout, service=record.kind, tenant=record.tenant, cancel=ctx.cancel,
                alive=started.alive, logs=started.logs,
            )  # fmt: skip
        except StartupError as exc:
            if again(exc):
                stop(record)
                continue
            raise
        return record
    raise AssertionError("unreachable")


class Backend(Protocol):
    name: str

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        """Check (and, once, build) prerequisites before anything starts; return the services' versions."""
        ...

    def realm_snapshot(self, realms: list[dict[str, Any]], progress: Callable[[str], None]) -> bool:
        """Start Keycloak with these realms already in its data, if this backend can (made once per
        tenant set and cached); False when the realms must be created after start."""
        ...

    def needs(self, kind: str) -> tuple[str, ...]:
        """Kinds of servers a server of ``kind`` keeps its data in on this backend (FerretDB: postgres)."""
        ...

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        """A ready PostgreSQL whose superuser logs in over TCP with ``admin_password``."""
        ...

    def start_redis(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        """A ready Redis whose default user has ``admin_password``."""
        ...

    def start_mongo(self, key: str, tenant: str, user: MongoUser, ctx: StartContext, deps: Servers) -> ServiceRecord:
        """A ready MongoDB-protocol server on which ``user`` logs in; ``record.mongo`` says how.  ``deps``:
        the servers of the kinds :meth:`needs` named."""
        ...

    def start_keycloak(
        self, key: str, ctx: StartContext, database: keycloak.Database | None, db_server: ServiceRecord | None
    ) -> ServiceRecord:
        """A ready Keycloak whose master-realm admin is ``admin_user``/``admin_password``."""
        ...

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None: ...

    def cleanup(self, env_name: str) -> list[str]:
        """Remove whatever of the environment the state file does not know (docker: by label)."""
        ...

    def is_running(self, record: ServiceRecord) -> bool: ...

    def logs(self, record: ServiceRecord, lines: int | None) -> str: ...

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        """New log text of the server as it comes (``logs --follow``), until the caller stops."""
        ...
