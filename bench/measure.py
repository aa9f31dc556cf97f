"""What the benchmark measures beyond `up`: the docker floor, the plain way, resets and re-seeds, memory."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driveops_env import Environment, options, seeding
from driveops_env.isolation import TenantCopy
from driveops_env.services import keycloak, mongo, postgres
from driveops_env.spec import Tenant


def _timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def keycloak_floor_docker(settings: options.Settings) -> float:
    """The Keycloak container alone, started as the docker backend starts it, to the first token."""
    from driveops_env.backends import StartContext
    from driveops_env.backends.docker import DockerBackend
    from driveops_env.ports import PortAllocator

    alone = settings.replace(services=("keycloak",), name=f"bench-kcfloor-{uuid.uuid4().hex[:6]}", tenants=("acme",))
    backend = DockerBackend(alone)
    backend.prepare(lambda _: None)
    ctx = StartContext(alone.name, "bench", Path("/tmp"), alone, threading.Event(), lambda r: None, PortAllocator())  # noqa: S108
    try:
        started = time.monotonic()
        record = backend.start_keycloak("keycloak", ctx, None, None)
        keycloak.check_admin_login(keycloak.base_url(record), record.admin_user, record.admin_password)
        return time.monotonic() - started
    finally:
        backend.cleanup(alone.name)


def plain_way(count: int, settings: options.Settings) -> float:
    """What a user without this library would write: containers one after another with
    testcontainers' modules, seeds with psycopg, realms one by one with python-keycloak."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    import psycopg
    from testcontainers.keycloak import KeycloakContainer
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    image = {s: os.environ.get(f"DRIVEOPS_ENV_IMAGE_{s.upper()}", d) for s, d in options.DEFAULT_IMAGES.items()}
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
                for seed in seeding.render_sql_files(settings.seeds_dir, tenant):
                    for statement in seed.statements:
                        conn.execute(statement.text.encode())
            for module in (MongoDbContainer(image["mongo"]), RedisContainer(image["redis"])):
                module.start()
                containers.append(module)
            realm = seeding.render_realm(settings.realms_dir, settings.seeds_dir, tenant, api_client_secret="plain")
            admin.create_realm(realm.representation)
        return time.monotonic() - started
    finally:
        for container in containers:
            container.stop()


def reset_times(env: Environment, rounds: int, stores: tuple[str, ...]) -> list[float]:
    """A test process's restore of ``stores`` after a test wrote in each."""
    copy = TenantCopy(env.state, "acme", "main")
    copy.make()
    handle = env.handle(copy.record)
    times = []
    try:
        for _ in range(rounds):
            with handle.postgres.connect(autocommit=True) as conn:  # a test writes something
                conn.execute("DELETE FROM interventions WHERE id % 7 = 0")
            times.append(_timed(lambda: copy.restore(stores)))
    finally:
        copy.drop()
    return times


def reseed_times(env: Environment, rounds: int) -> list[float]:
    """Re-seeding from scratch: a new database with the SQL seeds applied, MongoDB collections dropped
    and seeded again, Redis keys written again (what a test suite does without template copies)."""
    record = env.state.tenants["acme"]
    assert record.postgres and record.mongo and record.redis
    seeds = seeding.render_tenant_seeds(Path(env.state.seeds_dir), Path(env.state.realms_dir), record.as_tenant(),
                                        api_client_secret=None)  # fmt: skip
    server = env.state.services[record.postgres.service]
    admin = postgres.admin_conninfo(server)
    times = []
    for i in range(rounds):

        def reseed(target: str = f"reseed_{i}") -> None:
            import psycopg
            from psycopg import sql

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            seeding.apply_sql(postgres.admin_conninfo(server, target), seeds.sql, tenant="acme")
            assert record.mongo is not None and record.redis is not None
            mongo.drop_all(record.mongo)
            mongo.seed(record.mongo, seeds.mongo, tenant="acme")
            client = env.tenant("acme").redis.connect()
            client.flushdb()
            seeding.apply_redis(client, seeds.redis, prefix=record.redis.key_prefix)
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
