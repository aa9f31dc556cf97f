"""The Python API: :class:`Environment` (a running environment) and :class:`TenantHandle`.

    from driveops_env import Environment

    with Environment.up(tenants=["acme", "beta"], backend="local") as env:
        acme = env.tenant("acme")
        with acme.postgres.connect() as conn:
            conn.execute("SELECT name FROM garages").fetchall()

Properties never do I/O; methods named ``connect*``, ``status``, ``check``, ``down`` do.  Leaving a
``with`` block stops the environment only if this ``up`` started it: one it attached to (started by
the CLI, another session) keeps running.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from driveops_env import envvars, health, options, orchestrator
from driveops_env import reset as reset_
from driveops_env.backends import Backend, create_backend
from driveops_env.endpoints import KeycloakEndpoint, MongoEndpoint, PostgresEndpoint, RedisEndpoint
from driveops_env.errors import UsageError
from driveops_env.health import CheckResult
from driveops_env.spec import EnvSpec
from driveops_env.state import EnvState, TenantRecord


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

    def _missing(self, what: str) -> UsageError:
        return UsageError(f"tenant {self.slug!r} has no {what} in environment {self._env.name!r}")

    @property
    def postgres(self) -> PostgresEndpoint:
        if self._record.postgres is None:
            raise self._missing("PostgreSQL")
        return PostgresEndpoint.of(self._record.postgres)

    @property
    def redis(self) -> RedisEndpoint:
        if self._record.redis is None:
            raise self._missing("Redis")
        return RedisEndpoint.of(self._record.redis)

    @property
    def mongo(self) -> MongoEndpoint:
        if self._record.mongo is None:
            raise self._missing("MongoDB")
        return MongoEndpoint.of(self._record.mongo)

    @property
    def keycloak(self) -> KeycloakEndpoint:
        if self._record.keycloak is None:
            raise self._missing("Keycloak realm")
        server = self._env.state.services["keycloak"]
        return KeycloakEndpoint.of(self._record.keycloak, server.admin_user, server.admin_password)

    def connect_postgres(self, **kwargs: Any) -> Any:
        """Shortcut for ``.postgres.connect()``."""
        return self.postgres.connect(**kwargs)

    def connect_redis(self, **kwargs: Any) -> Any:
        """Shortcut for ``.redis.connect()``."""
        return self.redis.connect(**kwargs)

    def connect_mongo(self) -> Any:
        """Shortcut for ``.mongo.connect()``."""
        return self.mongo.connect()

    def token(self, user: str | None = None, password: str | None = None) -> str:
        """An access token of ``user`` in the tenant's realm (default: the first seeded user)."""
        return self.keycloak.token(user, password)

    def reset(self, stores: tuple[str, ...] = reset_.STORES) -> dict[str, float]:
        """Back to the seeded state in ``stores``; returns the seconds each store took.  Test
        processes' copies are left alone."""
        return reset_.reset_tenant(self._env.state, self.slug, stores)

    def env_vars(self, style: Literal["plain", "dotnet"] = "plain") -> dict[str, str]:
        if style == "dotnet":
            return envvars.dotnet(self._record)
        if style == "plain":
            return envvars.plain(self._env.name, self._record)
        raise UsageError(f"unknown env var style {style!r}", hint="use 'plain' or 'dotnet'")


class Environment:
    """A running environment, as recorded in its state file (or in a descriptor)."""

    def __init__(self, state: EnvState, settings: options.Settings, *, owned: bool = False) -> None:
        self._state = state
        self._settings = settings
        self._owned = owned

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
        **option_values: Any,
    ) -> Environment:
        """Start (or attach to) an environment.  Options by their names, as typed values or as the
        command line would give them: ``Environment.up(tenants=["acme", "beta"], backend="local")``;
        the others come from ``DRIVEOPS_ENV_*`` and ``pyproject.toml`` as usual (or pass ``settings``).
        Without ``detach`` this process owns what it starts: if it dies without ``down()``, the next
        ``up`` of that name sweeps it."""
        settings = settings or options.resolve()
        if option_values:
            settings = settings.with_options(**option_values)
        if spec is not None:
            settings = settings.replace(name=spec.name)
        result = orchestrator.up(
            settings, spec=spec, recreate=recreate, detach=detach, owner_pid=owner_pid,
            progress=progress or (lambda _: None),
        )  # fmt: skip
        return cls(result.state, orchestrator.running_settings(settings, result.state, check=False),
                   owned=not result.attached)  # fmt: skip

    @classmethod
    def attach(cls, name: str = "default", *, settings: options.Settings | None = None) -> Environment:
        """An environment started elsewhere; leaving a ``with`` block does not stop it."""
        settings = settings or options.resolve()
        state = orchestrator.load_running(settings, name)
        return cls(state, orchestrator.running_settings(settings, state))

    @classmethod
    def from_descriptor(cls, path: Path | str, *, settings: options.Settings | None = None) -> Environment:
        """An environment described by ``driveops-env export`` (another machine's, e.g. staging)."""
        from driveops_env import descriptor

        settings = settings or options.resolve()
        return cls(descriptor.load(Path(path), settings.cache_dir), settings)

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

    @property
    def owned(self) -> bool:
        """Whether this object started the environment (and ``down()`` on leaving ``with`` is ours)."""
        return self._owned

    def tenant(self, slug: str) -> TenantHandle:
        record = self._state.tenants.get(slug)
        if record is None:
            raise UsageError(
                f"tenant {slug!r} is not part of environment {self.name!r}",
                hint=f"its tenants are: {', '.join(self.tenants)} (add one: driveops-env tenant add {slug})",
            )
        return TenantHandle(self, record)

    def handle(self, record: TenantRecord) -> TenantHandle:
        """A handle on a tenant record of this environment (a test process's copy, say)."""
        return TenantHandle(self, record)

    def add_tenants(self, slugs: list[str], *, progress: orchestrator.Progress | None = None) -> None:
        """Add tenants to the running environment (stores, seeds, realm) without touching the others."""
        self._state, _ = orchestrator.add_tenants(self._settings, self.name, slugs, progress=progress)

    def status(self) -> list[CheckResult]:
        """Live health of every server (a real query or PING each)."""
        return health.service_status(self._state, self.runner())

    def runner(self) -> Backend:
        """The backend that runs this environment's servers (its own settings and engine)."""
        return create_backend(self._state.backend, self._settings, self._state.engine)

    def check(self) -> list[CheckResult]:
        """The production guide's health checks, per tenant."""
        return health.tenant_checks(self._state)

    def down(self, *, keep_data: bool = False) -> None:
        orchestrator.down(self._settings, self.name, keep_data=keep_data)
        self._owned = False

    def __enter__(self) -> Environment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned:
            self.down()
