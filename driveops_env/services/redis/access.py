"""A tenant's Redis (its server in dedicated mode; its ACL user and key prefix on the shared one): the
record, what ``env`` prints of it, and the endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlparse

from driveops_env.secret import hide
from driveops_env.services.records import AccessRecord
from driveops_env.state import ServiceRecord


@dataclass
class RedisAccess(AccessRecord):
    service: str  # the server's key
    host: str
    port: int
    username: str | None
    password: str = field(repr=False)
    key_prefix: str = ""
    db: int = 0  # the logical database (a test process's copy has its own in dedicated mode)
    client_hint: ClassVar[str] = 'redis-cli -u "$DRIVEOPS_REDIS_URL"'

    @property
    def url(self) -> str:
        """A URL every client reads as is: the user is always named (redis-cli sends an empty user
        name for ``redis://:pw@host``, which Redis refuses), ``default`` in dedicated mode."""
        return f"redis://{self.username or 'default'}:{self.password}@{self.host}:{self.port}/{self.db}"

    def env(self, style: str) -> dict[str, str]:
        if style == "dotnet":  # StackExchange.Redis' configuration string
            text = f"{self.host}:{self.port},password={self.password}"
            if self.username:
                text += f",user={self.username}"
            if self.db:
                text += f",defaultDatabase={self.db}"
            return {"ConnectionStrings__Redis": text}
        return {"DRIVEOPS_REDIS_URL": self.url, "DRIVEOPS_REDIS_KEY_PREFIX": self.key_prefix}

    @classmethod
    def from_env(cls, environ: Mapping[str, str], slug: str) -> Self | None:
        if "DRIVEOPS_REDIS_URL" not in environ:
            return None
        url = urlparse(environ["DRIVEOPS_REDIS_URL"])
        return cls(
            "redis",
            url.hostname or "127.0.0.1",
            url.port or 6379,
            unquote(url.username) if url.username else None,
            unquote(url.password or ""),
            environ.get("DRIVEOPS_REDIS_KEY_PREFIX", f"{slug}:"),
        )

    def data(self, show_secrets: bool) -> dict[str, Any]:
        return {"url": hide(self.url, self.password, show_secrets), "key_prefix": self.key_prefix}

    def describe(self, show_secrets: bool) -> str:
        return f"{hide(self.url, self.password, show_secrets)} (keys {self.key_prefix}*)"

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> RedisEndpoint:
        return RedisEndpoint(**vars(self))


@dataclass
class RedisEndpoint(RedisAccess):
    """The tenant's Redis: ``url`` (redis-cli -u and redis-py's ``from_url`` take it as is), host, port,
    db, username, password, key_prefix (the seeded keys' prefix; in shared mode the only keys the
    tenant's user may touch)."""

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"decode_responses": True, "socket_timeout": 5, "socket_connect_timeout": 5} | kwargs

    def connect(self, **kwargs: Any) -> Any:
        """A redis-py client (``redis.Redis``)."""
        import redis as redis_lib

        return redis_lib.Redis.from_url(self.url, **self._options(kwargs))

    def connect_async(self, **kwargs: Any) -> Any:
        """A ``redis.asyncio`` client."""
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self.url, **self._options(kwargs))
