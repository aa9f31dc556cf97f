"""A tenant's access to its store, as its service records it: a dataclass deriving from
:class:`AccessRecord`, kept (as JSON) in the state file and in descriptors.  The record says itself what
``env`` prints of it, what ``status`` and the endpoints table show, what the Python API and the fixtures
hand out, how a container on the environment's network reaches it, and what must never be shown: one
way, for built-in and plugged-in services alike.  A record overrides what it has; the defaults show
nothing, hand out the record itself, and move ``host``/``port`` to the server's name on the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from driveops_env.state import ServiceRecord


class AccessRecord:
    """The base of every access record (the dataclass deriving from it has a ``service`` field: the key
    of the server that holds the store)."""

    service: str
    # a command that connects with the ``env --format shell`` variables, for `up`'s "how to connect"
    client_hint: ClassVar[str] = ""

    def env(self, style: str) -> dict[str, str]:
        """What ``env`` prints of the store, in ``plain`` (DRIVEOPS_*) or ``dotnet`` style."""
        return {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str], slug: str) -> Self | None:
        """The record the ``plain`` variables describe, if they hold one (smoke checks that attach
        through them)."""
        return None

    def data(self, show_secrets: bool) -> dict[str, Any]:
        """What ``status --json`` shows, secrets masked unless ``show_secrets``."""
        return {}

    def describe(self, show_secrets: bool) -> str:
        """One line for the endpoints table."""
        return ""

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> Any:
        """What ``TenantHandle.<service>`` gives: values and ``connect()``."""
        return self

    def inside(self, servers: Mapping[str, ServiceRecord]) -> tuple[Self, dict[str, str]]:
        """The record as a container on the environment's network sees it (the server by its name
        there), and extra ``dotnet`` keys."""
        server = servers.get(self.service)
        if server is None or not server.aliases or server.container_port is None or not hasattr(self, "host"):
            return self, {}
        moved: Self = dataclasses.replace(self, host=server.aliases[0], port=server.container_port)  # type: ignore[type-var]
        return moved, {}

    def as_dict(self) -> dict[str, Any]:
        """Its JSON form (what :meth:`Service.load` reads back)."""
        found: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return found

    def secrets(self) -> list[str]:
        """What logs and reports must never show: the fields kept out of the record's repr."""
        found: list[Any] = []
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if not item.repr:
                found += list(value.values()) if isinstance(value, Mapping) else [value]
        return [str(v) for v in found if v]


@dataclass
class DatabaseAccess(AccessRecord):
    """A database reached as a user with a password: the shape of a relational or document store's
    record (a unit's own record derives from it and adds what its clients need)."""

    service: str  # the server's key
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
