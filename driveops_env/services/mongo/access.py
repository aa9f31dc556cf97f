"""A tenant's MongoDB database, as the tenant's user: the record, what ``env`` prints of it, and the
endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlparse

from driveops_env.secret import hide
from driveops_env.services.records import DatabaseAccess
from driveops_env.state import ServiceRecord


@dataclass
class MongoAccess(DatabaseAccess):
    auth_mechanism: str | None = None
    auth_source: str | None = None

    @property
    def uri(self) -> str:
        query = "&".join(
            f"{key}={value}"
            for key, value in (("authMechanism", self.auth_mechanism), ("authSource", self.auth_source))
            if value
        )
        base = f"mongodb://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"
        return f"{base}?{query}" if query else base

    def env(self, style: str) -> dict[str, str]:
        if style == "dotnet":
            return {"ConnectionStrings__MongoConnection": self.uri}
        return {"DRIVEOPS_MONGO_URI": self.uri, "DRIVEOPS_MONGO_DATABASE": self.database}

    @classmethod
    def from_env(cls, environ: Mapping[str, str], slug: str) -> Self | None:
        if "DRIVEOPS_MONGO_URI" not in environ:
            return None
        url = urlparse(environ["DRIVEOPS_MONGO_URI"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        return cls(
            "mongo",
            url.hostname or "127.0.0.1",
            url.port or 27017,
            url.path.lstrip("/") or slug,
            unquote(url.username or ""),
            unquote(url.password or ""),
            query.get("authMechanism"),
            query.get("authSource"),
        )

    def data(self, show_secrets: bool) -> dict[str, Any]:
        return {"uri": hide(self.uri, self.password, show_secrets), "database": self.database}

    def describe(self, show_secrets: bool) -> str:
        return hide(self.uri, self.password, show_secrets)

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> MongoEndpoint:
        return MongoEndpoint(**vars(self))


@dataclass
class MongoEndpoint(MongoAccess):
    """The tenant's MongoDB database, as the tenant's user: ``uri`` (mongosh and every driver take it as
    is), host, port, database, user, password."""

    def connect(self) -> Any:
        """A pymongo ``Database`` (its client is closed with ``db.client.close()``)."""
        import pymongo

        client: pymongo.MongoClient[Any] = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return client[self.database]

    def connect_async(self) -> Any:
        """A database of pymongo's ``AsyncMongoClient`` (close with ``await db.client.close()``)."""
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(self.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return client[self.database]
