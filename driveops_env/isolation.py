"""Per-test isolation: a tenant's stores as one test process sees them, restorable to the seed fast.

A test process (the pytest session, or one xdist worker) gets its own copies of a tenant's data:

- PostgreSQL: a database cloned from the seed template kept at ``up`` (``driveops_acme`` itself
  without xdist, ``driveops_acme_gw0`` for worker gw0); restoring drops and clones it again;
- MongoDB: a database of its own (same naming); restoring empties and refills the seeded
  collections and drops the others;
- Redis: a key prefix of its own (``acme:`` without xdist, ``acme:gw0:`` for gw0); restoring deletes
  the keys under it and writes the seed again.

The copies are made with the servers' admin credentials and owned by the tenant's own role/user, so
the tenant's credentials reach them and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from driveops_env import seeding
from driveops_env.reset import reset_keycloak, tenant_of
from driveops_env.services import mongo, postgres, redis
from driveops_env.state import EnvState, TenantRecord

STORES = ("postgres", "mongo", "redis")


class TenantCopy:
    """One test process's view of one tenant; ``record`` points at its own copies."""

    def __init__(self, state: EnvState, slug: str, worker: str | None) -> None:
        self.state = state
        self.worker = worker
        original = state.tenants[slug]
        self.original = original
        secret = original.keycloak.client_secret if original.keycloak else None
        self.seeds = seeding.render_tenant_seeds(
            Path(state.seeds_dir), Path(state.realms_dir), tenant_of(original), api_client_secret=secret
        )
        suffix = f"_{worker}" if worker else ""
        record = replace(original)
        if original.postgres:
            record.postgres = replace(original.postgres, database=original.postgres.database + suffix)
        if original.mongo:
            record.mongo = replace(original.mongo, database=original.mongo.database + suffix)
        if original.redis:
            prefix = f"{original.redis.key_prefix}{worker}:" if worker else original.redis.key_prefix
            record.redis = replace(original.redis, key_prefix=prefix)
        self.record: TenantRecord = record
        self._made = False

    def _pg_admin(self) -> str:
        assert self.record.postgres is not None
        server = self.state.services[self.record.postgres.service]
        return postgres.admin_conninfo(server)

    def make(self) -> None:
        """Create the worker's copies (once); without a worker the originals are used as they are."""
        if self._made:
            return
        self._made = True
        if self.worker is None:
            return
        if self.record.mongo:  # a mongod user may use its own database only: grant the copy
            server = self.state.services[self.record.mongo.service]
            mongo.grant_database(mongo.admin_access(server), self.record.mongo, self.record.mongo.database)
        self.restore(STORES)

    def restore(self, stores: tuple[str, ...] = STORES) -> dict[str, float]:
        """Back to the seed in ``stores``, in parallel; returns the seconds each took."""
        jobs: dict[str, Callable[[], None]] = {}
        if "postgres" in stores and self.record.postgres:
            pg = self.record.postgres
            original = self.original.postgres
            assert original is not None
            jobs["postgres"] = lambda: postgres.clone_from_template(
                self._pg_admin(), template=postgres.seed_template_name(original.database),
                target=pg.database, owner=pg.user,
            )  # fmt: skip
        if "mongo" in stores and self.record.mongo:
            access = self.record.mongo
            jobs["mongo"] = lambda: mongo.restore(access, self.seeds.mongo, tenant=self.record.slug)
        if "redis" in stores and self.record.redis:
            jobs["redis"] = self._restore_redis
        if "keycloak" in stores and self.record.keycloak:
            jobs["keycloak"] = lambda: reset_keycloak(self.state, self.original, self.seeds)

        def timed(job: Callable[[], None]) -> float:
            started = time.monotonic()
            job()
            return time.monotonic() - started

        if len(jobs) == 1:
            ((name, job),) = jobs.items()
            return {name: timed(job)}
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            futures = {name: pool.submit(timed, job) for name, job in jobs.items()}
            return {name: future.result() for name, future in futures.items()}

    def _restore_redis(self) -> None:
        access = self.record.redis
        assert access is not None
        server = self.state.services[access.service]
        client = redis.client(server.host, server.port, None, server.admin_password)
        try:
            # without a worker, the bare prefix also matches the workers' prefixes: keep theirs
            keep = None if self.worker else (lambda key: _is_worker_key(key, access.key_prefix))
            redis.delete_prefixed(client, access.key_prefix, keep)
            seeding.apply_redis(client, self.seeds.redis, prefix=access.key_prefix)
        finally:
            client.close()

    def drop(self) -> None:
        """Remove the worker's copies (the environment outlives the worker with ``keep``/``reuse``)."""
        if self.worker is None or not self._made:
            return
        if self.record.postgres:
            postgres.drop_database(self._pg_admin(), self.record.postgres.database)
        if self.record.mongo:
            conn = mongo.client(self.record.mongo)
            try:
                conn.drop_database(self.record.mongo.database)
            finally:
                conn.close()
        if self.record.redis:
            server = self.state.services[self.record.redis.service]
            client = redis.client(server.host, server.port, None, server.admin_password)
            try:
                redis.delete_prefixed(client, self.record.redis.key_prefix)
            finally:
                client.close()


def _is_worker_key(key: str, prefix: str) -> bool:
    rest = key[len(prefix) :]
    head, sep, _ = rest.partition(":")
    return bool(sep) and head.startswith("gw") and head[2:].isdigit()
