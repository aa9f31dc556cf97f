"""Bringing an environment up and down: the pipeline behind ``Environment.up`` and the CLI.

``up`` = validate and render everything (nothing runs yet) -> take the environment's lock ->
reconcile with what the state file says is running (attach, refuse, or sweep what a dead run left)
-> start every server in parallel, then per-tenant roles, users and seeds -> record the state.
Any failure or Ctrl-C stops what was started, removes its data and the state file, and re-raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, cast

from driveops_env import process, seeding
from driveops_env.backends import Backend, StartContext, create_backend, resolve_backend_name
from driveops_env.errors import DriveopsEnvError, Interrupted, NotRunningError, SpecMismatchError
from driveops_env.options import Settings
from driveops_env.ports import PortAllocator
from driveops_env.secret import generate_secret
from driveops_env.services import keycloak, mongo, postgres, redis
from driveops_env.services.redis import AclUser
from driveops_env.spec import (
    EnvSpec,
    Isolation,
    Tenant,
    describe_differences,
    load_catalogue,
    resolve_tenants,
)
from driveops_env.state import (
    EnvState,
    KeycloakAccess,
    PostgresAccess,
    RedisAccess,
    ServiceRecord,
    StateStore,
    TenantRecord,
)
from driveops_env.tasks import Step, run_steps

Progress = Callable[[str], None]
KEYCLOAK = "keycloak"
KEYCLOAK_PG = "postgres.keycloak"


def _quiet(_: str) -> None:
    pass


def build_spec(settings: Settings) -> EnvSpec:
    """The spec described by resolved options (pure apart from reading the tenant catalogue)."""
    catalogue = load_catalogue(settings.seeds_dir / "tenants.json")
    tenants = resolve_tenants(settings.tenants, catalogue, settings.realm_pattern)
    return EnvSpec(
        name=settings.name,
        tenants=tenants,
        backend=cast(Any, settings.backend),
        isolation=cast(Isolation, settings.isolation),
        seeds_dir=settings.seeds_dir,
        realms_dir=settings.realms_dir,
    )


def fingerprint(spec: EnvSpec, settings: Settings) -> dict[str, Any]:
    result = spec.fingerprint()
    result["services"] = list(settings.services)
    if "keycloak" in settings.services:
        result["keycloak"] = f"db={settings.keycloak_db} port={settings.keycloak_port or 'auto'}"
    result["seeds"] = seeding.content_hash(spec.seeds_dir, spec.realms_dir)[:16]
    return result


def hash_of(finger: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(finger, sort_keys=True).encode()).hexdigest()[:16]


def server_key(kind: str, tenant: Tenant, isolation: str) -> str:
    return f"{kind}.{tenant.slug}" if isolation == "dedicated" else f"{kind}.shared"


def env_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / name


@dataclass
class UpResult:
    state: EnvState
    attached: bool
    elapsed: float


class _Launch:
    """The mutable part of one ``up``: the state being filled, guarded by a lock, saved on change."""

    def __init__(self, state: EnvState, store: StateStore) -> None:
        self.state = state
        self.store = store
        self.lock = threading.Lock()

    def register(self, record: ServiceRecord) -> None:
        with self.lock:
            self.state.services[record.key] = record
            self.store.save(self.state)

    def set_tenant(self, slug: str, **accesses: Any) -> None:
        with self.lock:
            record = self.state.tenants[slug]
            for name, value in accesses.items():
                setattr(record, name, value)
            self.store.save(self.state)


def up(
    settings: Settings,
    *,
    spec: EnvSpec | None = None,
    recreate: bool = False,
    detach: bool = False,
    owner_pid: int | None = None,
    progress: Progress = _quiet,
) -> UpResult:
    """Start (or attach to) an environment.  While it starts, this process owns it; afterwards its
    owner is ``owner_pid`` (default: this process), or nobody with ``detach``.  The next ``up`` of that
    name sweeps an environment whose owner died."""
    started = time.monotonic()
    spec = spec or build_spec(settings)
    backend_name = resolve_backend_name(spec.backend)
    backend = create_backend(backend_name, settings)
    # Everything that can be wrong with the input is found here, before anything starts.
    with_keycloak = "keycloak" in settings.services
    secrets = {t.slug: generate_secret() for t in spec.tenants}
    seeds = {
        t.slug: seeding.render_tenant_seeds(
            spec.seeds_dir, spec.realms_dir, t, api_client_secret=secrets[t.slug] if with_keycloak else None
        )
        for t in spec.tenants
    }
    versions = backend.prepare(progress)
    spec = replace(spec, backend=cast(Any, backend_name), versions=versions)
    finger = fingerprint(spec, settings)
    spec_hash = hash_of(finger)
    store = StateStore(settings.state_dir)

    with store.lock(spec.name):
        existing = store.load(spec.name)
        if existing is not None:
            if _reusable(existing, spec_hash, finger, recreate, backend, progress):
                return UpResult(existing, attached=True, elapsed=time.monotonic() - started)
            _teardown(existing, create_backend(existing.backend, settings), store, settings, remove_data=True)
        else:
            # what a run killed before it wrote the state file left: servers (by label or working
            # directory) and data, of this environment name only
            backend.cleanup(spec.name)
            _remove_dir(env_dir(settings, spec.name))

        state = EnvState(
            name=spec.name,
            backend=backend_name,
            isolation=spec.isolation,
            spec_hash=spec_hash,
            fingerprint=finger,
            data_dir=str(env_dir(settings, spec.name)),
            seeds_dir=str(spec.seeds_dir),
            realms_dir=str(spec.realms_dir),
            owner_pid=os.getpid(),
            owner_start=process.start_time_of(os.getpid()),
            tenants={
                t.slug: TenantRecord(t.slug, t.tenant_id, t.display_name, t.realm) for t in spec.tenants
            },
        )
        launch = _Launch(state, store)
        cancel = threading.Event()
        ctx = StartContext(
            env_name=spec.name,
            spec_hash=spec_hash,
            env_dir=env_dir(settings, spec.name),
            settings=settings,
            cancel=cancel,
            register=launch.register,
            ports=PortAllocator(),
        )
        steps = _steps(spec, seeds, secrets, backend, ctx, launch)
        interrupted = threading.Event()
        try:
            with _signals_cancel(cancel, interrupted):
                _start(state, store, steps, cancel, progress, None if detach else (owner_pid or os.getpid()))
            if interrupted.is_set():
                raise KeyboardInterrupt
        except BaseException as exc:
            if interrupted.is_set() and not isinstance(exc, KeyboardInterrupt):
                exc = KeyboardInterrupt()
            progress(
                "start-up failed; stopping what was started"
                if not isinstance(exc, KeyboardInterrupt)
                else "interrupted; stopping what was started"
            )
            _with_sigint_ignored(lambda: _teardown(state, backend, store, settings, remove_data=True))
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted("start-up was interrupted; nothing was left running") from None
            raise
    return UpResult(state, attached=False, elapsed=time.monotonic() - started)


def _start(
    state: EnvState,
    store: StateStore,
    steps: list[Step],
    cancel: threading.Event,
    progress: Progress,
    owner_pid: int | None,
) -> None:
    """The part of ``up`` that starts things; its caller cleans up however it ends."""
    store.save(state)
    fingerprint_ = state.fingerprint
    progress(
        f"starting environment {state.name!r}: backend {state.backend}, isolation {state.isolation}, "
        f"tenants {', '.join(t.split('=')[0] for t in fingerprint_['tenants'])}"
    )

    def report(name: str, elapsed: float, detail: str | None) -> None:
        progress(f"  ok  {name:<28} {elapsed:6.2f}s  {detail or ''}".rstrip())

    run_steps(steps, cancel=cancel, on_done=report)
    state.status = "running"
    state.owner_pid = owner_pid
    state.owner_start = process.start_time_of(owner_pid) if owner_pid else None
    store.save(state)


def release(settings: Settings, name: str, owner_pid: int | None = None) -> None:
    """Hand a running environment to another owner, or to nobody (it then stays until ``down``)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = store.load(name)
        if state is None:
            return
        state.owner_pid = owner_pid
        state.owner_start = process.start_time_of(owner_pid) if owner_pid else None
        store.save(state)


@contextlib.contextmanager
def _signals_cancel(cancel: threading.Event, interrupted: threading.Event) -> Iterator[None]:
    """While servers start, Ctrl-C and SIGTERM only set ``cancel``: a KeyboardInterrupt raised at a
    random point (inside a thread pool, say) could let a step run on after the cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _reusable(
    existing: EnvState,
    spec_hash: str,
    finger: dict[str, Any],
    recreate: bool,
    backend: Backend,
    progress: Progress,
) -> bool:
    """Decide what to do with an environment of the same name: reuse it, or tear it down first."""
    if existing.status != "running":
        progress(f"environment {existing.name!r} was left {existing.status} by an earlier run: sweeping it")
        return False
    if existing.owner_pid is not None and not _owner_alive(existing):
        progress(f"the process that owned environment {existing.name!r} is gone: sweeping what it left")
        return False
    if existing.spec_hash != spec_hash:
        if recreate:
            progress(f"environment {existing.name!r} runs with a different spec: recreating it")
            return False
        differences = describe_differences(existing.fingerprint, finger)
        raise SpecMismatchError(
            f"environment {existing.name!r} is running with a different spec:\n    "
            + "\n    ".join(differences),
            hint=(
                "add --recreate to replace it, or use another --name, or "
                f"`driveops-env down --name {existing.name}`"
            ),
        )
    dead = [
        r.key
        for r in existing.services.values()
        if existing.backend == backend.name and not backend.is_running(r)
    ]
    if dead:
        progress(f"environment {existing.name!r}: {', '.join(dead)} not running: recreating it")
        return False
    return True


def _owner_alive(state: EnvState) -> bool:
    if state.owner_pid is None or state.owner_start is None:
        return False
    return process.is_alive(process.ProcessRef(state.owner_pid, state.owner_start))


def _steps(
    spec: EnvSpec,
    seeds: dict[str, seeding.TenantSeeds],
    secrets: dict[str, str],
    backend: Backend,
    ctx: StartContext,
    launch: _Launch,
) -> list[Step]:
    """The start-up graph: servers first (in parallel), then per tenant its roles, users and seeds."""
    steps: list[Step] = []
    services = ctx.settings.services
    shared = spec.isolation == "shared"
    acl_users = {
        t.slug: AclUser(name=t.database, password=generate_secret(), key_prefix=t.key_prefix)
        for t in spec.tenants
    }

    mongo_users = {
        t.slug: mongo.MongoUser(f"{t.database}_mongo", generate_secret(), t.database) for t in spec.tenants
    }
    mongo_shared = shared and not backend.mongo_per_tenant

    def server(key: str) -> ServiceRecord:
        return launch.state.services[key]

    def mongo_key(tenant: Tenant) -> str:
        return "mongo.shared" if mongo_shared else f"mongo.{tenant.slug}"

    def start_mongo(
        key: str, owner: str | None, users: list[mongo.MongoUser], pg_key: str | None
    ) -> ServiceRecord:
        return backend.start_mongo(key, owner, users, ctx, server(pg_key) if pg_key else None)

    def endpoint(record: ServiceRecord) -> str:
        return f"{record.host}:{record.port}"

    # --- servers ---
    added: set[str] = set()

    def add_server(key: str, run: Callable[[], ServiceRecord], after: tuple[str, ...] = ()) -> None:
        if key not in added:
            added.add(key)
            steps.append(Step(key, lambda: endpoint(run()), after=after))

    for tenant in spec.tenants:
        owner = None if shared else tenant.slug
        if "postgres" in services:
            key = server_key("postgres", tenant, spec.isolation)
            add_server(key, partial(backend.start_postgres, key, owner, ctx))
        if "redis" in services:
            key = server_key("redis", tenant, spec.isolation)
            users = list(acl_users.values()) if shared else []
            add_server(key, partial(backend.start_redis, key, owner, users, ctx))
        if "mongo" in services:
            key = mongo_key(tenant)
            pg_key = server_key("postgres", tenant, spec.isolation) if backend.mongo_needs_postgres else None
            if pg_key:
                add_server(pg_key, partial(backend.start_postgres, pg_key, owner, ctx))
            wanted = list(mongo_users.values()) if mongo_shared else [mongo_users[tenant.slug]]
            add_server(
                key,
                partial(start_mongo, key, None if mongo_shared else tenant.slug, wanted, pg_key),
                after=(pg_key,) if pg_key else (),
            )
    if "keycloak" in services:
        kc_after: tuple[str, ...] = ()
        database: keycloak.Database | None = None
        if ctx.settings.keycloak_db == "postgres":
            database = keycloak.Database("postgres.keycloak", "keycloak", "keycloak", generate_secret())

            def start_keycloak_postgres() -> ServiceRecord:
                record = backend.start_postgres(KEYCLOAK_PG, None, ctx)
                admin = postgres.admin_conninfo(record)
                assert database is not None
                postgres.create_tenant_database(
                    admin, role=database.user, password=database.password, database=database.name
                )
                return record

            add_server(KEYCLOAK_PG, start_keycloak_postgres)
            kc_after = (KEYCLOAK_PG,)

        def start_keycloak() -> ServiceRecord:
            db_server = server(KEYCLOAK_PG) if database is not None else None
            return backend.start_keycloak(KEYCLOAK, ctx, database, db_server)

        add_server(KEYCLOAK, start_keycloak, after=kc_after)

    # --- per tenant ---
    def seed_postgres(key: str, tenant: Tenant) -> str:
        record = server(key)
        admin = postgres.admin_conninfo(record)
        access = PostgresAccess(
            key, record.host, record.port, tenant.database, tenant.database, generate_secret()
        )
        postgres.create_tenant_database(
            admin, role=access.user, password=access.password, database=access.database
        )
        seeding.apply_sql(access.conninfo, seeds[tenant.slug].sql, tenant=tenant.slug)
        postgres.save_seed_template(admin, access.database)
        launch.set_tenant(tenant.slug, postgres=access)
        return f"{len(seeds[tenant.slug].sql)} file(s)"

    def seed_redis(key: str, tenant: Tenant) -> str:
        record = server(key)
        user = acl_users[tenant.slug] if shared else None
        access = RedisAccess(
            key, record.host, record.port, user.name if user else None,
            user.password if user else record.admin_password, tenant.key_prefix,
        )  # fmt: skip
        client = redis.client(record.host, record.port, None, record.admin_password)
        try:
            seeding.apply_redis(client, seeds[tenant.slug].redis, prefix=tenant.key_prefix)
        finally:
            client.close()
        redis.probe(access.host, access.port, access.username, access.password)
        launch.set_tenant(tenant.slug, redis=access)
        return f"{len(seeds[tenant.slug].redis)} key(s)"

    def seed_mongo(key: str, tenant: Tenant) -> str:
        access = mongo.tenant_access(server(key), mongo_users[tenant.slug])
        count = mongo.seed(access, seeds[tenant.slug].mongo, tenant=tenant.slug)
        launch.set_tenant(tenant.slug, mongo=access)
        return f"{len(seeds[tenant.slug].mongo)} collection(s), {count} document(s)"

    def create_realm(tenant: Tenant) -> str:
        realm = seeds[tenant.slug].realm
        assert realm is not None
        record = server(KEYCLOAK)
        base_url = f"http://{record.host}:{record.port}"
        access = KeycloakAccess(
            KEYCLOAK, base_url, tenant.realm, keycloak.API_CLIENT, secrets[tenant.slug], keycloak.WEB_CLIENT,
            dict(realm.users),
        )  # fmt: skip
        keycloak.create_tenant_realm(access, record.admin_user, record.admin_password, realm.representation)
        # tenant-level readiness: a seeded user obtains a token carrying the tenant's id
        detail = "realm created"
        if realm.users:
            user = next(iter(realm.users))
            keycloak.verify_tenant_token(access, user, tenant_id=tenant.tenant_id, slug=tenant.slug)
            detail = f"token for {user}"
        launch.set_tenant(tenant.slug, keycloak=access)
        return detail

    for tenant in spec.tenants:
        if "postgres" in services:
            key = server_key("postgres", tenant, spec.isolation)
            steps.append(
                Step(f"seed postgres.{tenant.slug}", partial(seed_postgres, key, tenant), after=(key,))
            )
        if "redis" in services:
            key = server_key("redis", tenant, spec.isolation)
            steps.append(Step(f"seed redis.{tenant.slug}", partial(seed_redis, key, tenant), after=(key,)))
        if "mongo" in services:
            key = mongo_key(tenant)
            steps.append(Step(f"seed mongo.{tenant.slug}", partial(seed_mongo, key, tenant), after=(key,)))
        if "keycloak" in services:
            steps.append(Step(f"realm {tenant.realm}", partial(create_realm, tenant), after=(KEYCLOAK,)))
    return steps


def _with_sigint_ignored(action: Callable[[], None]) -> None:
    """Run cleanup without a second Ctrl-C cutting it short (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        action()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGINT, previous)


def remove_data(settings: Settings, name: str) -> None:
    _remove_dir(env_dir(settings, name))


def _remove_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _teardown(
    state: EnvState, backend: Backend, store: StateStore, settings: Settings, *, remove_data: bool
) -> None:
    records = list(state.services.values())
    errors: list[str] = []

    def stop(record: ServiceRecord) -> None:
        try:
            backend.stop(record, fast=remove_data)
        except (OSError, DriveopsEnvError) as exc:
            errors.append(f"{record.key}: {exc}")

    if records:
        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            list(pool.map(stop, records))
    try:  # whatever carries the environment's labels but never reached the state file
        backend.cleanup(state.name)
    except (OSError, DriveopsEnvError) as exc:
        errors.append(f"cleanup: {exc}")
    if remove_data:
        _remove_dir(Path(state.data_dir))
        store.delete(state.name)
    else:
        state.status = "stopped"
        state.services = {}
        store.save(state)
    if errors:
        raise DriveopsEnvError("some services could not be stopped:\n  " + "\n  ".join(errors))


def prepare(settings: Settings, progress: Progress = _quiet) -> dict[str, str]:
    """Fetch and build what the backend needs (once; later calls only check). Starts nothing."""
    backend = create_backend(resolve_backend_name(settings.backend), settings)
    return backend.prepare(progress)


def down(settings: Settings, name: str, *, keep_data: bool = False, progress: Progress = _quiet) -> bool:
    """Stop environment ``name``; False when there was nothing to stop."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = store.load(name)
        if state is None:
            _remove_dir(env_dir(settings, name))
            return False
        backend = create_backend(state.backend, settings)
        progress(f"stopping environment {name!r} ({len(state.services)} service(s))")
        _teardown(state, backend, store, settings, remove_data=not keep_data)
        return True


def load_running(settings: Settings, name: str) -> EnvState:
    state = StateStore(settings.state_dir).load(name)
    if state is None or state.status != "running":
        raise NotRunningError(
            f"environment {name!r} is not running",
            hint=f"start it with `driveops-env up --name {name}`",
        )
    return state
