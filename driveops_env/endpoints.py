"""A tenant's endpoints, one class per store, all alike: connection values as properties (no I/O),
``connect()`` (and ``connect_async()``) for a client built from exactly those values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from driveops_env.services import keycloak
from driveops_env.state import KeycloakAccess, MongoAccess, PostgresAccess, RedisAccess

if TYPE_CHECKING:
    import psycopg
    import pymongo.database
    import redis as redis_lib


@dataclass
class PostgresEndpoint(PostgresAccess):
    """The tenant's PostgreSQL database, as the tenant's role: ``dsn`` (psql, psycopg and SQLAlchemy
    take it as is), ``conninfo``, host, port, database, user, password."""

    @classmethod
    def of(cls, access: PostgresAccess) -> PostgresEndpoint:
        return cls(**vars(access))

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.conninfo, **kwargs)

    async def connect_async(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        import psycopg

        return await psycopg.AsyncConnection.connect(self.conninfo, **kwargs)


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

    def connect(self, **kwargs: Any) -> redis_lib.Redis:
        import redis as redis_lib

        return redis_lib.Redis.from_url(self.url, **self._options(kwargs))

    def connect_async(self, **kwargs: Any) -> Any:
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self.url, **self._options(kwargs))


@dataclass
class MongoEndpoint(MongoAccess):
    """The tenant's MongoDB database, as the tenant's user: ``uri`` (mongosh and every driver take it as
    is), host, port, database, user, password."""

    @classmethod
    def of(cls, access: MongoAccess) -> MongoEndpoint:
        return cls(**vars(access))

    def connect(self) -> pymongo.database.Database[Any]:
        """A pymongo ``Database`` (its client is closed with ``db.client.close()``)."""
        import pymongo

        client: pymongo.MongoClient[Any] = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return client[self.database]

    def connect_async(self) -> Any:
        """A database of pymongo's ``AsyncMongoClient`` (close with ``await db.client.close()``)."""
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(self.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return client[self.database]


@dataclass
class KeycloakEndpoint(KeycloakAccess):
    """A tenant's realm: issuer, audience, base_url, realm, client_id, client_secret, users (seeded
    users and their passwords), tokens for them, an admin client."""

    admin_user: str = field(default="", repr=False)
    admin_password: str = field(default="", repr=False)

    @classmethod
    def of(cls, access: KeycloakAccess, admin_user: str, admin_password: str) -> KeycloakEndpoint:
        return cls(**vars(access), admin_user=admin_user, admin_password=admin_password)

    def admin(self) -> Any:
        """python-keycloak ``KeycloakAdmin`` working on this tenant's realm."""
        return keycloak.admin_client(self.base_url, self.admin_user, self.admin_password, realm=self.realm)

    def openid(self) -> Any:
        """python-keycloak ``KeycloakOpenID`` of the API client (tokens, userinfo, validation)."""
        return keycloak.openid(self)

    def token_response(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        user = user or next(iter(self.users))
        return keycloak.user_token(self, user, password)

    def token(self, user: str | None = None, password: str | None = None) -> str:
        """An access token of ``user`` (default: the first seeded user)."""
        return str(self.token_response(user, password)["access_token"])

    def validate(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and expiry are checked."""
        return keycloak.validated_claims(self, token)
