"""The Python API and the one entry point of the CLI and the plugin: :class:`Environment` (a running
environment) and :class:`TenantHandle`.

    from driveops_env import Environment

    with Environment.up(tenants=["acme", "beta"], backend="local") as env:
        acme = env.tenant("acme")
        acme.env_vars()  # what `driveops-env env` prints

A tenant's store of a service is ``handle.<service>`` (a built-in one or a plugged-in one by its
name): its values and ``connect()``; ``handle.connect_<service>()`` is a shortcut (the README shows
each service's).  Properties never do I/O; methods do.  Leaving a
``with`` block stops the environment only if this ``up`` started it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from driveops_env import (
    bundle,
    descriptor,
    envvars,
    gc,
    health,
    kept,
    live,
    migrating,
    options,
    orchestrator,
    rehearsal,
    render,
    restore,
    running,
    snapshotting,
)
from driveops_env.backends import Backend, create_backend
from driveops_env.errors import UsageError
from driveops_env.health import CheckResult
from driveops_env.running import load_running, running_settings, services_of
from driveops_env.services.base import Service
from driveops_env.services.capabilities import IssuesTokens, Seeded
from driveops_env.settings import Settings
from driveops_env.state import EnvState, TenantRecord

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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
    def stores(self) -> list[str]:
        """The services the tenant has a store of."""
        return list(self._record.stores)

    def store(self, name: str) -> Any:
        """The endpoint of the tenant's store of service ``name`` (what ``handle.<name>`` gives)."""
        services = self._env.services()
        if name not in services or name not in self._record.stores:
            raise UsageError(
                f"tenant {self.slug!r} has no {name} store in environment {self._env.name!r}",
                hint=f"its stores: {', '.join(self._record.stores) or 'none'}",
            )
        service = services[name]
        return service.load(self._record.stores[name]).endpoint(self._env.state.services)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("connect_"):
            return self.store(name.removeprefix("connect_")).connect
        if name.startswith("_"):
            raise AttributeError(name)
        return self.store(name)

    def _issuer(self) -> tuple[IssuesTokens, Any]:
        for name, service in self._env.services().items():
            if isinstance(service, IssuesTokens) and name in self._record.stores:
                return service, service.load(self._record.stores[name])
        raise UsageError(
            f"environment {self._env.name!r} runs no service that issues tokens", hint="add one to --services"
        )

    def token(self, user: str | None = None, password: str | None = None, *, client_credentials: bool = False) -> str:
        """An access token of ``user`` (default: the first seeded user), or of the API client's account."""
        service, access = self._issuer()
        return service.token(access, user, password, client_credentials=client_credentials)

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once validated (signature, issuer, audience, expiry)."""
        service, access = self._issuer()
        return service.claims(access, token)

    def reset(self, stores: Iterable[str] | None = None) -> dict[str, float]:
        """Back to the seeded state in ``stores`` (default: all); the seconds each took.  Test
        processes' copies are left alone."""
        seeded = [n for n, s in self._env.services().items() if n in self._record.stores and isinstance(s, Seeded)]
        wanted = seeded if stores is None else list(stores)
        unknown = [store for store in wanted if store not in self._record.stores]
        if unknown:
            raise UsageError(
                f"unknown store(s) {', '.join(map(repr, unknown))} of tenant {self.slug!r}",
                hint=f"use {', '.join(self._record.stores)}",
            )
        return restore.reset_tenant(self._env.state, self.slug, wanted, self._env.settings)

    def env_vars(self, style: str = "plain", *, network: bool = False) -> dict[str, str]:
        """The variables ``driveops-env env`` prints (``plain`` or ``dotnet``); ``network``: as a container
        on the environment's network sees them."""
        state = self._env.state
        if network and not any(r.aliases for r in state.services.values()):
            raise UsageError("--network needs an environment of a container backend", hint="it has no network")
        servers = state.services if network else None
        return envvars.variables(state.name, self._record, self._env.services(), style, servers)


class Environment:
    """A running environment, as recorded in its state file (or in a descriptor)."""

    def __init__(self, state: EnvState, settings: Settings, *, owned: bool = False) -> None:
        self._state = state
        self._settings = settings
        self._owned = owned
        self._services: dict[str, Service[Any, Any]] | None = None
        self.attached = False  # an ``up`` that found it running
        self.elapsed = 0.0  # what the ``up`` that made this object took

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, backend={self.backend!r}, tenants={self.tenants!r})"

    # --- finding or starting one ----------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        *,
        settings: Settings | None = None,
        recreate: bool = False,
        detach: bool = False,
        owner_pid: int | None = None,
        progress: Progress | None = None,
        **option_values: Any,
    ) -> Environment:
        """Start (or attach to) an environment.  Options by their names, as typed values or as the
        command line would give them: ``Environment.up(tenants=["acme", "beta"], backend="local")``;
        the others come from ``DRIVEOPS_ENV_*`` and ``pyproject.toml`` as usual (or pass ``settings``).
        Without ``detach`` this process owns what it starts: if it dies without ``down()``, the next
        ``up`` of that name sweeps it."""
        settings = settings or options.resolve()
        if option_values:
            settings = options.with_options(settings, **option_values)
        result = orchestrator.up(
            settings, recreate=recreate, detach=detach, owner_pid=owner_pid, progress=progress or _quiet
        )
        env = cls(result.state, running_settings(settings, result.state, check=False), owned=not result.attached)
        env.attached, env.elapsed = result.attached, result.elapsed
        return env

    @classmethod
    def attach(cls, name: str = "default", *, settings: Settings | None = None) -> Environment:
        """An environment started elsewhere; leaving a ``with`` block does not stop it."""
        settings = settings or options.resolve()
        state = load_running(settings, name)
        return cls(state, running_settings(settings, state))

    @classmethod
    def from_descriptor(cls, path: Path | str, *, settings: Settings | None = None) -> Environment:
        """An environment described by ``driveops-env export`` (another machine's, e.g. staging)."""
        settings = settings or options.resolve()
        return cls(descriptor.load(Path(path), settings.cache_dir), settings)

    @staticmethod
    def stop(name: str, *, settings: Settings, keep_data: bool = False, progress: Progress = _quiet) -> bool:
        """``down`` of an environment by name (False when none runs; nothing is deleted then)."""
        return orchestrator.down(settings, name, keep_data=keep_data, progress=progress)

    @staticmethod
    def collect(settings: Settings, *, dry_run: bool = False, progress: Progress = _quiet) -> list[str]:
        """``gc``: every environment whose owner is gone, and what no state file knows."""
        return gc.collect(settings, dry_run=dry_run, progress=progress)

    @staticmethod
    def sweep_dead(settings: Settings, *, prefix: str, progress: Progress = _quiet) -> list[str]:
        """Down the environments named ``prefix...`` whose owner is gone (dead test sessions)."""
        return gc.sweep_dead(settings, prefix=prefix, progress=progress)

    @staticmethod
    def prepare(settings: Settings, progress: Progress = _quiet) -> dict[str, str]:
        """Fetch and build what ``up`` needs (once; later calls only check). Starts nothing."""
        return orchestrator.prepare(settings, progress)

    # --- what it is -----------------------------------------------------------------------------------

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
    def settings(self) -> Settings:
        return self._settings

    @property
    def owned(self) -> bool:
        """Whether this object started the environment (and ``down()`` on leaving ``with`` is ours)."""
        return self._owned

    def docker_network(self) -> Any:
        """The environment's docker network as testcontainers' ``Network`` (for your own containers:
        ``DockerContainer(image).with_network(env.docker_network())``; ``env_vars(network=True)`` are
        the values that reach the stores from there).  The docker backend only."""
        from driveops_env import network

        return network.of(self._state)

    def services(self) -> dict[str, Service[Any, Any]]:
        """Every registered service by name (what the environment's records name)."""
        if self._services is None:
            self._services = services_of(self._state, self._settings)
        return self._services

    def runner(self) -> Backend:
        """The backend that runs this environment's servers (its own settings and engine)."""
        return create_backend(self._state.backend, self._settings, self._state.engine)

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

    # --- doing things ---------------------------------------------------------------------------------

    def add_tenants(self, slugs: list[str], *, progress: Progress | None = None) -> list[str]:
        """Add tenants to the running environment without touching the others; those this call added."""
        self._state, added = live.add_tenants(self._settings, self.name, slugs, progress=progress or _quiet)
        return added

    def migrate(self, *, progress: Progress | None = None) -> list[migrating.Applied]:
        """The pending migrations applied to every tenant and the seeds they are restored to (``driveops-env
        migrate``): what ran, per tenant and store; [] when the history did not change."""
        self._state, applied = migrating.migrate(self._settings, self.name, progress=progress or _quiet)
        return applied

    def rehearse(self, tenants: Iterable[str] = ()) -> list[rehearsal.Outcome]:
        """The pending migrations applied to a clone of each tenant's current data (``migrate
        --rehearse``), the tenants untouched: an outcome per tenant and store ([]: nothing pending)."""
        return rehearsal.rehearse(self._settings, self.name, list(tenants))

    def snapshot_save(self, tenant: str, target: Path, *, mask: bool = False) -> snapshotting.Done:
        """Tenant ``tenant``'s data in every store written to ``target`` (``snapshot save``)."""
        return snapshotting.save(self._state, self._settings, tenant, target, mask=mask)

    def snapshot_load(
        self, source: Path, tenant: str | None = None, *, force: bool = False, as_new: str | None = None
    ) -> snapshotting.Done:
        """A snapshot file's data in place of ``tenant``'s (default: the file's tenant) (``snapshot
        load``); ``as_new``: a tenant added for it (the file checked first), its identity its own."""
        if self._state.backend == "descriptor":
            raise UsageError("a descriptor's environment is read-only here", hint="load it where it runs")
        if as_new is not None:
            if as_new in self._state.tenants:
                raise UsageError(f"tenant {as_new!r} exists already", hint=f"--tenant {as_new} replaces its data")
            snapshotting.verify(self._settings, self.name, source, force=force)
            self.add_tenants([as_new])
            tenant = as_new
        done = snapshotting.load(self._settings, self.name, source, tenant, force=force)
        self._state = load_running(self._settings, self.name)
        return done

    def kept_copies(self) -> list[kept.KeptCopy]:
        """The copies failed tests left (``pytest --driveops-keep-failed``), oldest first."""
        return kept.records(kept.folder_of(self._state))

    def kept_copy(self, copy_id: str) -> TenantHandle:
        """A handle on a kept copy: the tenant as the failed test saw it."""
        return TenantHandle(self, kept.find(kept.folder_of(self._state), copy_id).record(self._state))

    def remove_tenant(self, slug: str, *, progress: Progress | None = None) -> None:
        self._state = live.remove_tenant(self._settings, self.name, slug, progress=progress or _quiet)

    def status(self) -> list[CheckResult]:
        """Live health of every server (a real request each)."""
        return health.service_status(self._state, self.runner(), self.services())

    def status_data(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """``status --json`` and the dashboard's data: endpoints and credentials (masked unless
        ``show_secrets``), each server's address, and its health (a real request each)."""
        results = self.status()
        data = render.endpoints_data(self._state, self.services(), show_secrets=show_secrets)
        servers = {
            r.key: {"kind": r.kind, "tenant": r.tenant, "address": f"{r.host}:{r.port}"}
            for r in self._state.services.values()
        }
        return data | {"since": self._state.created_at, "servers": servers, "services": [asdict(r) for r in results]}

    def check(self) -> list[CheckResult]:
        """The production guide's checks, per tenant."""
        return health.tenant_checks(self._state, self.services())

    def logs(self, key: str, lines: int | None = None) -> str:
        return self.runner().logs(self._state.services[key], lines)

    def follow(self, key: str) -> Iterator[str]:
        return self.runner().follow(self._state.services[key])

    def bundle(self, target: Path) -> list[str]:
        """Every server's log, ``status`` and ``check`` in one ``.tar.gz``, secrets redacted."""
        results = (self.status(), self.check())
        return bundle.write(target, self._state, self.runner(), self.services(), results)

    def export(self, target: Path | None) -> str:
        """A descriptor of this environment for other machines (written 0600 to ``target``)."""
        return descriptor.write(self._state, target)

    def release(self, owner_pid: int | None = None) -> None:
        """Hand the environment to another owner, or to nobody (it then stays until ``down``)."""
        running.release(self._settings, self.name, owner_pid)
        self._owned = False

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
