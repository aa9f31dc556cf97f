"""The Python API: :class:`Environment` (a running environment) and :class:`TenantHandle`.

    from driveops_env import Environment, options

    with Environment.up(settings=options.resolve(cli={"tenants": "acme,beta"})) as env:
        acme = env.tenant("acme")
        with acme.connect_postgres() as conn:
            conn.execute("SELECT name FROM garages").fetchall()

Properties never do I/O; methods named ``connect_*``, ``status``, ``down`` do.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from driveops_env import envvars, health, options, orchestrator
from driveops_env import reset as reset_
from driveops_env.backends import create_backend
from driveops_env.errors import UsageError
from driveops_env.health import CheckResult
from driveops_env.services import keycloak, mongo
from driveops_env.spec import EnvSpec
from driveops_env.state import (
    EnvState,
    KeycloakAccess,
    MongoAccess,
    PostgresAccess,
    RedisAccess,
    TenantRecord,
)

if TYPE_CHECKING:
    import psycopg
    import pymongo.database
    import redis as redis_lib


class KeycloakEndpoint:
    """A tenant's realm: issuer, client credentials, tokens for its users, a python-keycloak admin."""

    def __init__(self, access: KeycloakAccess, admin_user: str, admin_password: str) -> None:
        self.access = access
        self._admin_user = admin_user
        self._admin_password = admin_password

    @property
    def issuer(self) -> str:
        return self.access.issuer

    @property
    def base_url(self) -> str:
        return self.access.base_url

    @property
    def realm(self) -> str:
        return self.access.realm

    @property
    def client_id(self) -> str:
        return self.access.client_id

    @property
    def client_secret(self) -> str:
        return self.access.client_secret

    @property
    def users(self) -> dict[str, str]:
        """Seeded users and their passwords."""
        return dict(self.access.users)

    def admin(self) -> Any:
        """python-keycloak ``KeycloakAdmin`` working on this tenant's realm."""
        return keycloak.admin_client(self.base_url, self._admin_user, self._admin_password, realm=self.realm)

    def token_response(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        user = user or next(iter(self.access.users))
        return keycloak.user_token(self.access, user, password)

    def token(self, user: str | None = None, password: str | None = None) -> str:
        """An access token of ``user`` (default: the first seeded user)."""
        return str(self.token_response(user, password)["access_token"])


class MongoEndpoint:
    """A tenant's MongoDB database: its URI and credentials, and ``connect()``."""

    def __init__(self, access: MongoAccess) -> None:
        self.access = access

    @property
    def uri(self) -> str:
        return self.access.uri

    @property
    def database(self) -> str:
        return self.access.database

    @property
    def user(self) -> str:
        return self.access.user

    @property
    def password(self) -> str:
        return self.access.password

    def connect(self) -> pymongo.database.Database[Any]:
        """A pymongo ``Database`` (its client is closed with ``db.client.close()``)."""
        database: pymongo.database.Database[Any] = mongo.client(self.access)[self.access.database]
        return database


class TenantHandle:
    """Endpoints and clients of one tenant of a running environment."""

    def __init__(self, env: Environment, record: TenantRecord) -> None:
        self._env = env
        self._record = record

    def __repr__(self) -> str:
        return f"TenantHandle({self.slug!r}, env={self._env.name!r})"

    @property
    def slug(self) -> str:
        return self._record.slug

    @property
    def tenant_id(self) -> str:
        return self._record.tenant_id

    @property
    def display_name(self) -> str:
        return self._record.display_name

    @property
    def realm(self) -> str:
        return self._record.realm

    @property
    def record(self) -> TenantRecord:
        return self._record

    @property
    def postgres(self) -> PostgresAccess:
        if self._record.postgres is None:
            raise UsageError(f"tenant {self.slug!r} has no PostgreSQL in environment {self._env.name!r}")
        return self._record.postgres

    @property
    def redis(self) -> RedisAccess:
        if self._record.redis is None:
            raise UsageError(f"tenant {self.slug!r} has no Redis in environment {self._env.name!r}")
        return self._record.redis

    @property
    def mongo(self) -> MongoEndpoint:
        if self._record.mongo is None:
            raise UsageError(f"tenant {self.slug!r} has no MongoDB in environment {self._env.name!r}")
        return MongoEndpoint(self._record.mongo)

    def connect_mongo(self) -> pymongo.database.Database[Any]:
        return self.mongo.connect()

    @property
    def keycloak(self) -> KeycloakEndpoint:
        if self._record.keycloak is None:
            raise UsageError(f"tenant {self.slug!r} has no Keycloak realm in environment {self._env.name!r}")
        server = self._env.state.services["keycloak"]
        return KeycloakEndpoint(self._record.keycloak, server.admin_user, server.admin_password)

    def token(self, user: str | None = None, password: str | None = None) -> str:
        """An access token of ``user`` in the tenant's realm (default: the first seeded user)."""
        return self.keycloak.token(user, password)

    def reset(self, stores: tuple[str, ...] = reset_.STORES) -> dict[str, float]:
        """Back to the seeded state in ``stores``; returns the seconds each store took."""
        return reset_.reset_tenant(self._env.state, self.slug, stores)

    def connect_postgres(self, **kwargs: Any) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.postgres.conninfo, **kwargs)

    def connect_redis(self, **kwargs: Any) -> redis_lib.Redis:
        import redis as redis_lib

        r = self.redis
        options_ = {"decode_responses": True, "socket_timeout": 5} | kwargs
        return redis_lib.Redis(host=r.host, port=r.port, username=r.username, password=r.password, **options_)

    def env_vars(self, style: Literal["plain", "dotnet"] = "plain") -> dict[str, str]:
        if style == "dotnet":
            return envvars.dotnet(self._record)
        if style == "plain":
            return envvars.plain(self._env.name, self._record)
        raise UsageError(f"unknown env var style {style!r}", hint="use 'plain' or 'dotnet'")


class Environment:
    """A running environment, as recorded in its state file."""

    def __init__(self, state: EnvState, settings: options.Settings) -> None:
        self._state = state
        self._settings = settings

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, backend={self.backend!r}, tenants={self.tenants!r})"

    @classmethod
    def up(
        cls,
        spec: EnvSpec | None = None,
        *,
        settings: options.Settings | None = None,
        recreate: bool = False,
        detach: bool = False,
        owner_pid: int | None = None,
        progress: orchestrator.Progress | None = None,
    ) -> Environment:
        """Start (or attach to) an environment. Without ``detach`` this process owns it: if the process
        dies without ``down()``, the next ``up`` of that name sweeps it."""
        settings = settings or options.resolve()
        if spec is not None:
            settings = settings.replace(name=spec.name)
        result = orchestrator.up(
            settings,
            spec=spec,
            recreate=recreate,
            detach=detach,
            owner_pid=owner_pid,
            progress=progress or (lambda _: None),
        )
        return cls(result.state, settings)

    @classmethod
    def attach(cls, name: str = "default", *, settings: options.Settings | None = None) -> Environment:
        settings = settings or options.resolve()
        return cls(orchestrator.load_running(settings, name), settings)

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def backend(self) -> str:
        return self._state.backend

    @property
    def isolation(self) -> str:
        return self._state.isolation

    @property
    def tenants(self) -> list[str]:
        return list(self._state.tenants)

    @property
    def state(self) -> EnvState:
        return self._state

    @property
    def settings(self) -> options.Settings:
        return self._settings

    def tenant(self, slug: str) -> TenantHandle:
        record = self._state.tenants.get(slug)
        if record is None:
            raise UsageError(
                f"tenant {slug!r} is not part of environment {self.name!r}",
                hint=f"its tenants are: {', '.join(self.tenants)}",
            )
        return TenantHandle(self, record)

    def status(self) -> list[CheckResult]:
        """Live health of every server (a real query or PING each)."""
        return health.service_status(self._state, create_backend(self._state.backend, self._settings))

    def check(self) -> list[CheckResult]:
        """The production guide's health checks, per tenant."""
        return health.tenant_checks(self._state)

    def down(self, *, keep_data: bool = False) -> None:
        orchestrator.down(self._settings, self.name, keep_data=keep_data)

    def __enter__(self) -> Environment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()
