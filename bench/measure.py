"""What the benchmark measures beyond `up`: the Keycloak floor of each backend, the plain way,
resets and re-seeds, memory."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from driveops_env import Environment, envdirs
from driveops_env.restore import TenantCopy
from driveops_env.services import registry
from driveops_env.services.base import Plan, Prepare, Sources
from driveops_env.services.capabilities import Staged, seed_of
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak.realm import render_realm
from driveops_env.services.mongo import admin as mongo
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.postgres import admin as postgres
from driveops_env.services.postgres import sql
from driveops_env.services.redis import seeds as redis_seeds
from driveops_env.settings import Settings
from driveops_env.tenants import Tenant


def _timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def keycloak_floor(settings: Settings) -> float:
    """Keycloak alone, started as the settings' backend starts it in ``up`` (the unit's server
    description, the backend's launch; local processes, docker or kubernetes), to the first admin
    login: the floor every backend's cold ``up`` is compared with."""
    from driveops_env.backends import StartContext, create_backend
    from driveops_env.ports import PortAllocator

    alone = settings.replace(services=("keycloak",), name=f"bench-kcfloor-{uuid.uuid4().hex[:6]}", tenants=("acme",))
    backend = create_backend(alone.backend, alone)
    backend.prepare(lambda _: None)
    env_dir = _floor_dir(alone)
    service = registry.service("keycloak", alone)
    prepared = service.prepare(Prepare(backend.family, lambda _: None, env_dir, backend.run_as(), backend.engine()))
    ctx = StartContext(alone.name, "bench", env_dir, alone, threading.Event(), lambda r: None, PortAllocator())
    (need,) = service.needs(Tenant("acme", "x", "Acme", "acme"), "dedicated", backend.family)
    record = None
    try:
        started = time.monotonic()
        plan = Plan("dedicated", backend.family, (), {}, lambda _: None, prepared, None, backend.engine())
        staged = service.stage(need, plan, {}) if isinstance(service, Staged) else None
        server = service.server(need, replace(plan, staged=staged), {})
        record = backend.start(server, ctx)
        keycloak.check_admin_login(keycloak.base_url(record), record.admin_user, record.admin_password)
        return time.monotonic() - started
    finally:
        if record is not None:
            backend.stop(record, fast=True)
        backend.cleanup(alone.name)
        shutil.rmtree(env_dir, ignore_errors=True)


def _floor_dir(settings: Settings) -> Path:
    """The environment's directory under the checked data root, as ``up`` makes it (0711 as root)."""
    target = envdirs.env_dir(settings, settings.name)
    envdirs.data_root(settings)
    target.mkdir(mode=0o711)
    return target


def plain_way(count: int, settings: Settings) -> float:
    """What a user without this library would write: containers one after another with
    testcontainers' modules, seeds with psycopg, realms one by one with python-keycloak."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    import psycopg
    from testcontainers.keycloak import KeycloakContainer
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    image = {s: str(settings.value(f"image_{s}")) for s in ("keycloak", "postgres", "mongo", "redis")}
    containers: list[Any] = []
    started = time.monotonic()
    try:
        keycloak_container = KeycloakContainer(image["keycloak"])
        keycloak_container.start()
        containers.append(keycloak_container)
        admin = keycloak_container.get_client()
        for slug in settings.tenants[:count]:
            tenant = Tenant(slug, str(uuid.uuid5(uuid.NAMESPACE_DNS, slug)), slug.title(), slug)
            pg = PostgresContainer(image["postgres"], driver=None)
            pg.start()
            containers.append(pg)
            with psycopg.connect(pg.get_connection_url()) as conn:
                for seed in sql.render_sql_files(settings.seeds_dir, tenant):
                    for statement in seed.statements:
                        conn.execute(statement.text.encode())
            for module in (MongoDbContainer(image["mongo"]), RedisContainer(image["redis"])):
                module.start()
                containers.append(module)
            realm = render_realm(settings.realms_dir, settings.seeds_dir, tenant, api_client_secret="plain")
            admin.create_realm(realm.representation)
        return time.monotonic() - started
    finally:
        for container in containers:
            container.stop()


TEST_S = 0.1  # what a test does between two restores (a short integration test)


def reset_times(
    env: Environment,
    rounds: int,
    stores: tuple[str, ...],
    *,
    pool: int = 2,
    test_s: float = TEST_S,
    written: tuple[str, ...] | None = None,
) -> tuple[list[float], float]:
    """A test process's restore of ``stores`` after a test wrote in each (or in ``written``) and worked
    ``test_s``, with ``pool`` ready copies kept ahead in each of them (0: restored on the test's path); also the CPU
    seconds the tenant's PostgreSQL server spent per restore (the background work included; local
    backend, else 0)."""

    def size(store: str, most: int) -> int:  # the copy's other stores (made with it) have no pool filling
        return min(pool, most) if store in stores else 0

    sized = env.settings.replace(
        postgres_restore_pool=size("postgres", pool),
        mongo_restore_pool=size("mongo", pool),
        redis_restore_pool=size("redis", 1),
    )
    copy = TenantCopy(env.state, "acme", "main", sized)
    copy.make()
    server = env.state.services.get("postgres.acme")
    pid = server.process.pid if server is not None and server.process is not None else None
    times = []
    cpu_before = server_cpu_s(pid)
    try:
        for _ in range(rounds):
            _write(env.handle(copy.record), stores if written is None else written)
            time.sleep(test_s)
            times.append(_timed(lambda: copy.restore(stores)))
    finally:
        copy.drop()
    return times, (server_cpu_s(pid) - cpu_before) / rounds


def _write(handle: Any, stores: tuple[str, ...]) -> None:
    """What a test writes: a row in seven of the interventions, a document, a key."""
    if "postgres" in stores:
        with handle.postgres.connect(autocommit=True) as conn:
            conn.execute("DELETE FROM interventions WHERE id % 7 = 0")
    if "mongo" in stores:
        database = handle.mongo.connect()
        try:
            database.written.insert_one({"by": "a test"})
        finally:
            database.client.close()
    if "redis" in stores:
        client = handle.redis.connect()
        try:
            client.set(f"{handle.redis.key_prefix}written", "by a test")
        finally:
            client.close()


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds of a local server process and its children (live, and those it reaped)."""
    if pid is None or not os.path.exists(f"/proc/{pid}/stat"):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        if stat.parent.name == str(pid):
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def reseed_times(env: Environment, rounds: int) -> list[float]:
    """Re-seeding from scratch: a new database with the SQL seeds applied, MongoDB collections dropped
    and seeded again, Redis keys written again (what a test suite does without template copies)."""
    acme = env.tenant("acme")
    tenant = acme.record.as_tenant()
    services = env.services()
    sources = Sources(Path(env.state.seeds_dir), Path(env.state.realms_dir), env.settings.input_limit)
    seeds = {name: seed_of(services[name], tenant, sources, None) for name in ("postgres", "mongo", "redis")}
    server = env.state.services[acme.postgres.service]
    admin = postgres.admin_conninfo(server)
    mongo_access: MongoAccess = services["mongo"].load(acme.record.stores["mongo"])
    times = []
    for i in range(rounds):

        def reseed(target: str = f"reseed_{i}") -> None:
            import psycopg
            from psycopg import sql as pg_sql

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pg_sql.Identifier(target)))
                conn.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(target)))
            sql.apply_sql(postgres.admin_conninfo(server, target), seeds["postgres"], tenant="acme")
            mongo.drop_all(mongo_access)
            mongo.seed(mongo_access, seeds["mongo"], tenant="acme")
            client = acme.redis.connect()
            client.flushdb()
            redis_seeds.apply_redis(client, seeds["redis"], prefix=acme.redis.key_prefix)
            client.close()

        times.append(_timed(reseed))
        postgres.drop_database(admin, f"reseed_{i}")
    return times


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the process groups led by ``pids``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) not in pids:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024
