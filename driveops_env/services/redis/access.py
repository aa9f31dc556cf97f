"""A tenant's Redis (its server in dedicated mode; its ACL user and key prefix on the shared one): the
record, what ``env`` prints of it, and the endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from driveops_env.secret import hide


@dataclass
class RedisAccess:
    service: str  # the server's key
    host: str
    port: int
    username: str | None
    password: str = field(repr=False)
    key_prefix: str = ""
    db: int = 0  # the logical database (a test process's copy has its own in dedicated mode)

    @property
    def url(self) -> str:
        """A URL every client reads as is: the user is always named (redis-cli sends an empty user
        name for ``redis://:pw@host``, which Redis refuses), ``default`` in dedicated mode."""
        return f"redis://{self.username or 'default'}:{self.password}@{self.host}:{self.port}/{self.db}"


@dataclass
class RedisEndpoint(RedisAccess):
    """The tenant's Redis: ``url`` (redis-cli -u and redis-py's ``from_url`` take it as is), host, port,
    db, username, password, key_prefix (the seeded keys' prefix; in shared mode the only keys the
    tenant's user may touch)."""

    @classmethod
    def of(cls, access: RedisAccess) -> RedisEndpoint:
        return cls(**vars(access))

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


def env(access: RedisAccess, style: str) -> dict[str, str]:
    if style == "dotnet":  # StackExchange.Redis' configuration string
        text = f"{access.host}:{access.port},password={access.password}"
        if access.username:
            text += f",user={access.username}"
        if access.db:
            text += f",defaultDatabase={access.db}"
        return {"ConnectionStrings__Redis": text}
    return {"DRIVEOPS_REDIS_URL": access.url, "DRIVEOPS_REDIS_KEY_PREFIX": access.key_prefix}


def from_env(environ: Mapping[str, str], slug: str) -> RedisAccess | None:
    if "DRIVEOPS_REDIS_URL" not in environ:
        return None
    url = urlparse(environ["DRIVEOPS_REDIS_URL"])
    return RedisAccess(
        "redis",
        url.hostname or "127.0.0.1",
        url.port or 6379,
        unquote(url.username) if url.username else None,
        unquote(url.password or ""),
        environ.get("DRIVEOPS_REDIS_KEY_PREFIX", f"{slug}:"),
    )


def data(access: RedisAccess, show_secrets: bool) -> dict[str, Any]:
    return {"url": hide(access.url, access.password, show_secrets), "key_prefix": access.key_prefix}
