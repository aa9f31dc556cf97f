"""Bring one tenant back to its seeded state, in every store, while the environment keeps running.

PostgreSQL: the database is dropped (sessions closed) and cloned from the seed template kept at ``up``.
Redis: the tenant's keys are deleted (its whole server in dedicated mode) and re-seeded.
Keycloak: the realm is deleted (users, sessions, everything) and created again from the template,
with the same client secret, so configuration printed by ``env`` stays valid.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from driveops_env import seeding, timing
from driveops_env.errors import ServiceError, UsageError
from driveops_env.isolation import is_copy_key
from driveops_env.services import keycloak, mongo, postgres, redis
from driveops_env.state import EnvState, TenantRecord

STORES = ("postgres", "mongo", "redis", "keycloak")


def reset_postgres(state: EnvState, record: TenantRecord) -> None:
    assert record.postgres is not None
    server = state.services[record.postgres.service]
    admin = postgres.admin_conninfo(server)
    postgres.restore_from_seed_template(admin, database=record.postgres.database, owner=record.postgres.user)


def reset_redis(state: EnvState, record: TenantRecord, seeds: seeding.TenantSeeds) -> None:
    assert record.redis is not None
    server = state.services[record.redis.service]
    client = redis.client(server.host, server.port, None, server.admin_password)
    try:
        if state.isolation == "dedicated":
            client.flushdb()  # database 0 only: the test processes' copies live in others
        else:  # the tenant's keys, not its copies' (acme:gw0:...)
            prefix = record.redis.key_prefix
            redis.delete_prefixed(client, prefix, lambda key: is_copy_key(key, prefix))
        seeding.apply_redis(client, seeds.redis, prefix=record.redis.key_prefix)
    finally:
        client.close()


def reset_mongo(record: TenantRecord, seeds: seeding.TenantSeeds) -> None:
    assert record.mongo is not None
    mongo.drop_all(record.mongo)
    mongo.seed(record.mongo, seeds.mongo, tenant=record.slug)


def reset_keycloak(state: EnvState, record: TenantRecord, seeds: seeding.TenantSeeds) -> None:
    assert record.keycloak is not None and seeds.realm is not None
    server = state.services["keycloak"]
    admin = keycloak.RealmAdmin(record.keycloak.base_url, server.admin_user, server.admin_password)
    admin.delete_realm(record.realm)
    admin.create_realm(seeds.realm.representation)


def _said(store: str, slug: str, job: Callable[[], None], folder: str) -> Callable[[], None]:
    """``job``, whose failure is an error naming the store and tenant, with a hint (and, for a full
    disk, the folder the servers keep their data in)."""

    def run() -> None:
        try:
            job()
        except Exception as exc:  # ours already said in words; a server's error, whatever its library
            from driveops_env.health import NO_SPACE, diagnose

            detail, hint = diagnose(exc)
            if detail.startswith(NO_SPACE):
                hint = f"free disk space in {folder or 'the Docker engine'}, then reset again"
            raise ServiceError(
                f"resetting {store} failed: {detail}", service=store, tenant=slug,
                hint=hint or "`driveops-env status` shows which server is down; `driveops-env up` heals it",
            ) from None  # fmt: skip

    return run


def reset_tenant(state: EnvState, slug: str, stores: tuple[str, ...] = STORES) -> dict[str, float]:
    """Reset ``stores`` of tenant ``slug`` in parallel; returns the seconds each took."""
    record = state.tenants.get(slug)
    if record is None:
        raise UsageError(
            f"tenant {slug!r} is not part of environment {state.name!r}",
            hint=f"its tenants are: {', '.join(state.tenants)}",
        )
    secret = record.keycloak.client_secret if record.keycloak else None
    seeds = seeding.render_tenant_seeds(
        Path(state.seeds_dir), Path(state.realms_dir), record.as_tenant(), api_client_secret=secret
    )
    jobs: dict[str, Callable[[], None]] = {}
    if "postgres" in stores and record.postgres:
        jobs["postgres"] = lambda: reset_postgres(state, record)
    if "mongo" in stores and record.mongo:
        jobs["mongo"] = lambda: reset_mongo(record, seeds)
    if "redis" in stores and record.redis:
        jobs["redis"] = lambda: reset_redis(state, record, seeds)
    if "keycloak" in stores and record.keycloak:
        jobs["keycloak"] = lambda: reset_keycloak(state, record, seeds)
    _check_room(state, record, tuple(jobs))
    jobs = {store: _said(store, slug, job, state.data_dir) for store, job in jobs.items()}
    return timing.run_timed(jobs)


ROOM = 64 * 1024 * 1024  # bytes free a server's disk needs for a reset (a WAL segment, a copy, headroom)


def _check_room(state: EnvState, record: TenantRecord, stores: tuple[str, ...]) -> None:
    """Refuse a reset (touching nothing) while a server that keeps its data on this machine has less
    than ROOM free: on a full disk, PostgreSQL cannot even write the WAL of a failed clone."""
    for store in stores:
        access = getattr(record, store, None)
        server = state.services.get(getattr(access, "service", ""))
        folder = server.data_dir if server is not None else None
        if folder and os.path.isdir(folder) and shutil.disk_usage(folder).free < ROOM:
            free = shutil.disk_usage(folder).free // (1024 * 1024)
            raise ServiceError(
                f"resetting {store} failed: no space left on device in {folder} ({free} MB free; a reset needs "
                f"{ROOM // (1024 * 1024)} MB); nothing was changed",
                service=store,
                tenant=record.slug,
                hint=f"free disk space in {Path(folder).parent}, then reset again",
            )
