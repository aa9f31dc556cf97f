"""The "backend" of an environment known from a descriptor (another machine's): its servers are
reached over the network only; nothing here starts, stops or reads their logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from driveops_env.backends.base import StartContext
from driveops_env.errors import UsageError
from driveops_env.services.base import Engine, Server
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord

_HINT = "run this on the machine that started the environment, or ask its owner"


class ReadOnlyBackend:
    name = "descriptor"
    family = "none"

    def __init__(self, settings: Settings, engine: str = "") -> None:
        self.settings = settings

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        return False

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        return []

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        return []

    def _refuse(self, what: str) -> UsageError:
        return UsageError(f"an environment known from a descriptor cannot be {what} from here", hint=_HINT)

    def prepare(self, progress: Callable[[str], None]) -> None:
        raise self._refuse("changed")

    def engine(self) -> Engine | None:
        return None

    def run_as(self) -> str | None:
        return None

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        raise self._refuse("changed")

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        raise self._refuse("stopped")

    def remove(self, record: ServiceRecord) -> None:
        raise self._refuse("changed")

    def cleanup(self, env_name: str) -> list[str]:
        return []

    def is_running(self, record: ServiceRecord) -> bool:
        return True  # the health probes tell

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        raise self._refuse("read for logs")

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        raise self._refuse("read for logs")
