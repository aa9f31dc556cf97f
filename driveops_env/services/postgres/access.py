"""A tenant's PostgreSQL database, as the tenant's role: the record, what ``env`` prints of it, and the
endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driveops_env.secret import hide
from driveops_env.services.base import DatabaseAccess

if TYPE_CHECKING:
    import psycopg


@dataclass
class PostgresAccess(DatabaseAccess):
    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password} connect_timeout=5"
        )


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


def env(access: PostgresAccess, style: str) -> dict[str, str]:
    """libpq's PG* names (psql needs nothing else) and a DSN; the .NET API's connection string."""
    if style == "dotnet":
        text = (
            f"Host={access.host};Port={access.port};Database={access.database};Username={access.user};"
            f"Password={access.password}"
        )
        return {"ConnectionStrings__DefaultConnection": text}
    return {
        "DRIVEOPS_POSTGRES_DSN": access.dsn,
        "PGHOST": access.host,
        "PGPORT": str(access.port),
        "PGDATABASE": access.database,
        "PGUSER": access.user,
        "PGPASSWORD": access.password,
    }


def from_env(environ: Mapping[str, str], _slug: str) -> PostgresAccess | None:
    if "PGHOST" not in environ or "PGDATABASE" not in environ:
        return None
    return PostgresAccess(
        "postgres",
        environ["PGHOST"],
        int(environ.get("PGPORT", "5432")),
        environ["PGDATABASE"],
        environ.get("PGUSER", ""),
        environ.get("PGPASSWORD", ""),
    )


def data(access: PostgresAccess, show_secrets: bool) -> dict[str, Any]:
    return {
        "dsn": hide(access.dsn, access.password, show_secrets),
        "host": access.host,
        "port": access.port,
        "database": access.database,
        "user": access.user,
        "password": hide(access.password, access.password, show_secrets),
    }
