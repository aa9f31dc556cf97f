"""What a backend does, and what it gets while starting services.

A backend starts one server (a process or a container) and returns it ready for its administrator;
everything above that (tenant roles and databases, ACL users, seeds, realms) is the same on every
backend and lives in the service modules and the orchestrator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from driveops_env.options import Settings
from driveops_env.ports import PortAllocator
from driveops_env.services import keycloak, mongo
from driveops_env.services.redis import AclUser
from driveops_env.state import ServiceRecord


@dataclass
class StartContext:
    """Shared by the parallel start-up steps of one ``up``."""

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


class Backend(Protocol):
    name: str
    mongo_needs_postgres: bool  # FerretDB keeps its data in PostgreSQL; a real mongod does not
    mongo_per_tenant: bool  # one MongoDB server per tenant even with shared isolation

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        """Check (and, once, build) prerequisites before anything starts; return the services' versions."""
        ...

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        """A ready PostgreSQL whose superuser logs in over TCP with ``admin_password``."""
        ...

    def start_redis(
        self, key: str, tenant: str | None, users: list[AclUser], ctx: StartContext
    ) -> ServiceRecord:
        """A ready Redis whose default user has ``admin_password``, plus the given ACL users."""
        ...

    def start_mongo(
        self,
        key: str,
        tenant: str | None,
        users: list[mongo.MongoUser],
        ctx: StartContext,
        pg: ServiceRecord | None,
    ) -> ServiceRecord:
        """A ready MongoDB-protocol server on which ``users`` can log in; ``pg`` is the PostgreSQL server
        a FerretDB keeps its data in (None where the backend runs a real mongod)."""
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
