"""The "backend" of an environment known from a descriptor (another machine's): its servers are
reached over the network only; nothing here starts, stops or reads their logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from driveops_env.backends.base import Servers, StartContext
from driveops_env.errors import UsageError
from driveops_env.options import Settings
from driveops_env.services import keycloak
from driveops_env.services.mongo import MongoUser
from driveops_env.state import ServiceRecord

_HINT = "run this on the machine that started the environment, or ask its owner"


class DescriptorBackend:
    name = "descriptor"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _refuse(self, what: str) -> UsageError:
        return UsageError(f"an environment known from a descriptor cannot be {what} from here", hint=_HINT)

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        return {}

    def realm_snapshot(self, realms: list[dict[str, Any]], progress: Callable[[str], None]) -> bool:
        return False

    def needs(self, kind: str) -> tuple[str, ...]:
        return ()

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        raise self._refuse("changed")

    def start_redis(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        raise self._refuse("changed")

    def start_mongo(self, key: str, tenant: str, user: MongoUser, ctx: StartContext, deps: Servers) -> ServiceRecord:
        raise self._refuse("changed")

    def start_keycloak(
        self, key: str, ctx: StartContext, database: keycloak.Database | None, db_server: ServiceRecord | None
    ) -> ServiceRecord:
        raise self._refuse("changed")

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        raise self._refuse("stopped")

    def cleanup(self, env_name: str) -> list[str]:
        return []

    def is_running(self, record: ServiceRecord) -> bool:
        return True  # the health probes tell

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        raise self._refuse("read for logs")

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        raise self._refuse("read for logs")
