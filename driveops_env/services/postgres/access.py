"""A tenant's PostgreSQL database, as the tenant's role: the record (what ``env`` prints of it, what
status shows), and the endpoint the Python API and the fixtures hand out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from driveops_env.secret import hide
from driveops_env.services.records import DatabaseAccess
from driveops_env.state import ServiceRecord

if TYPE_CHECKING:
    import psycopg


@dataclass
class PostgresAccess(DatabaseAccess):
    client_hint = 'psql "$DRIVEOPS_POSTGRES_DSN"'

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password} connect_timeout=5"
        )

    def env(self, style: str) -> dict[str, str]:
        """libpq's PG* names (psql needs nothing else) and a DSN; the .NET API's connection string."""
        if style == "dotnet":
            text = (
                f"Host={self.host};Port={self.port};Database={self.database};Username={self.user};"
                f"Password={self.password}"
            )
            return {"ConnectionStrings__DefaultConnection": text}
        return {
            "DRIVEOPS_POSTGRES_DSN": self.dsn,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.database,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str], slug: str) -> Self | None:
        if "PGHOST" not in environ or "PGDATABASE" not in environ:
            return None
        return cls(
            "postgres",
            environ["PGHOST"],
            int(environ.get("PGPORT", "5432")),
            environ["PGDATABASE"],
            environ.get("PGUSER", ""),
            environ.get("PGPASSWORD", ""),
        )

    def data(self, show_secrets: bool) -> dict[str, Any]:
        return {
            "dsn": hide(self.dsn, self.password, show_secrets),
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": hide(self.password, self.password, show_secrets),
        }

    def describe(self, show_secrets: bool) -> str:
        return hide(self.dsn, self.password, show_secrets)

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> PostgresEndpoint:
        return PostgresEndpoint(**vars(self))


@dataclass
class PostgresEndpoint(PostgresAccess):
    """The tenant's PostgreSQL database, as the tenant's role: ``dsn`` (psql, psycopg and SQLAlchemy
    take it as is), ``conninfo``, host, port, database, user, password."""

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.conninfo, **kwargs)

    async def connect_async(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        import psycopg

        return await psycopg.AsyncConnection.connect(self.conninfo, **kwargs)
