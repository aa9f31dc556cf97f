"""A tenant's MongoDB database, as the tenant's user: the record, what ``env`` prints of it, and the
endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from driveops_env.secret import hide
from driveops_env.services.base import DatabaseAccess


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


@dataclass
class MongoEndpoint(MongoAccess):
    """The tenant's MongoDB database, as the tenant's user: ``uri`` (mongosh and every driver take it as
    is), host, port, database, user, password."""

    @classmethod
    def of(cls, access: MongoAccess) -> MongoEndpoint:
        return cls(**vars(access))

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


def env(access: MongoAccess, style: str) -> dict[str, str]:
    if style == "dotnet":
        return {"ConnectionStrings__MongoConnection": access.uri}
    return {"DRIVEOPS_MONGO_URI": access.uri, "DRIVEOPS_MONGO_DATABASE": access.database}


def from_env(environ: Mapping[str, str], slug: str) -> MongoAccess | None:
    if "DRIVEOPS_MONGO_URI" not in environ:
        return None
    url = urlparse(environ["DRIVEOPS_MONGO_URI"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return MongoAccess(
        "mongo",
        url.hostname or "127.0.0.1",
        url.port or 27017,
        url.path.lstrip("/") or slug,
        unquote(url.username or ""),
        unquote(url.password or ""),
        query.get("authMechanism"),
        query.get("authSource"),
    )


def data(access: MongoAccess, show_secrets: bool) -> dict[str, Any]:
    return {"uri": hide(access.uri, access.password, show_secrets), "database": access.database}
