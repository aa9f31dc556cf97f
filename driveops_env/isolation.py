"""A test process's own copy of a tenant's stores, restorable to the seed in milliseconds.

A copy is named by a token: ``main`` (a pytest session without xdist) or the xdist worker (``gw0``),
followed by ``_<session id>`` when the environment is shared with other sessions (``--driveops-reuse``,
a staging descriptor).  The tenant's own credentials reach its copy, and nothing else:

- PostgreSQL: database ``driveops_acme_<token>``, cloned from the seed template kept at ``up`` and
  owned by the tenant's role; restoring drops and clones it again, whatever tables a test made;
- MongoDB: database ``driveops_acme_<token>``; restoring empties and refills the seeded collections
  and drops every other one;
- Redis, dedicated mode: a logical database of its own on the tenant's server (leased), with the
  seeded keys under their usual names; restoring flushes that database and writes the seed again, so
  every key a test wrote is gone, whatever its name;
- Redis, shared mode: an ACL user of its own limited to ``acme:<token>:*``, so every key a test can
  write is under that prefix; restoring deletes the prefix and writes the seed again;
- Keycloak: the tenant's realm, shared read-only; a test marked ``keycloak_reset`` switches the copy
  to a realm of its own (``acme_<token>``), re-created before each such test, so other processes'
  tests never see a realm vanish.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from driveops_env import process, seeding, timing
from driveops_env.secret import generate_secret
from driveops_env.services import ferretdb, keycloak, mongo, postgres, redis
from driveops_env.services.redis import AclUser
from driveops_env.state import EnvState, MongoAccess, RedisAccess, ServiceRecord, TenantRecord

STORES = ("postgres", "mongo", "redis")
COPY_TOKEN = re.compile(r"(main|gw\d+)(_[0-9a-f]{6})?")


def is_copy_key(key: str, tenant_prefix: str) -> bool:
    """Whether a Redis key belongs to a copy (``acme:gw0:...``), which a tenant reset must keep."""
    head, sep, _ = key[len(tenant_prefix) :].partition(":")
    return bool(sep) and COPY_TOKEN.fullmatch(head) is not None


def lease_owner(token: str) -> str:
    """Who holds a leased Redis database: host, pid and start time, so a dead holder's lease is reused."""
    import os

    return f"{socket.gethostname()} {os.getpid()} {process.start_time_of(os.getpid())} {token}"


def lease_is_stale(holder: str) -> bool:
    host, _, rest = holder.partition(" ")
    parts = rest.split()
    if host != socket.gethostname() or len(parts) < 2 or not all(p.lstrip("-").isdigit() for p in parts[:2]):
        return False  # another machine's lease: never taken over
    return not process.is_alive(process.ProcessRef(int(parts[0]), int(parts[1])))


class TenantCopy:
    """One test process's copy of one tenant; ``record`` points at it."""

    def __init__(self, state: EnvState, slug: str, token: str) -> None:
        if COPY_TOKEN.fullmatch(token) is None:
            raise ValueError(f"not a copy token: {token!r}")
        self.state = state
        self.token = token
        self.original = state.tenants[slug]
        secret = self.original.keycloak.client_secret if self.original.keycloak else None
        self.seeds = seeding.render_tenant_seeds(
            Path(state.seeds_dir), Path(state.realms_dir), self.original.as_tenant(), api_client_secret=secret
        )
        suffix = f"_{token}"
        record = replace(self.original)
        if record.postgres:
            record.postgres = replace(record.postgres, database=record.postgres.database + suffix)
        if record.mongo:
            record.mongo = replace(record.mongo, database=record.mongo.database + suffix)
        self.record: TenantRecord = record
        self._lease: int | None = None
        self._clean: dict[str, str] = {}  # store -> its state right after the last restore
        self._made = False
        self._own_realm = False

    def _server(self, service: str) -> ServiceRecord:
        return self.state.services[service]

    def _redis_admin(self, db: int = 0) -> object:
        assert self.original.redis is not None
        server = self._server(self.original.redis.service)
        return redis.client(server.host, server.port, None, server.admin_password, db=db)

    # --- making and dropping --------------------------------------------------------------------------

    def make(self) -> None:
        """Create the copies (once): databases cloned, Redis database leased or ACL user made, seeded."""
        if self._made:
            return
        self._made = True
        if self.record.mongo:  # a mongod user may use its own database only: grant the copy
            server = self._server(self.record.mongo.service)
            mongo.grant_database(mongo.admin_access(server), self.record.mongo, self.record.mongo.database)
        if self.original.redis:
            self.record.redis = self._make_redis(self.original.redis)
        self.restore(STORES)

    def _make_redis(self, original: RedisAccess) -> RedisAccess:
        if self.state.isolation == "dedicated":
            leases = self._redis_admin(redis.LEASE_DB)
            try:
                self._lease = redis.claim_database(leases, lease_owner(self.token), lease_is_stale)
            finally:
                leases.close()  # type: ignore[attr-defined]
            return replace(original, db=self._lease)
        user = AclUser(f"{original.username}_{self.token}", generate_secret(), f"{original.key_prefix}{self.token}:")
        admin = self._redis_admin()
        try:
            redis.set_acl_user(admin, user)
        finally:
            admin.close()  # type: ignore[attr-defined]
        return replace(original, username=user.name, password=user.password, key_prefix=user.key_prefix)

    def drop(self) -> None:
        """Remove the copies (the environment outlives this process)."""
        if not self._made:
            return
        self._made = False
        pg, mg, rd, kc = self.record.postgres, self.record.mongo, self.record.redis, self.record.keycloak
        jobs: dict[str, Callable[[], object]] = {}  # each store on its own: one down leaves the others to go
        if pg is not None:
            jobs["postgres"] = lambda: postgres.drop_database(self._pg_admin(), pg.database)
        if mg is not None:
            jobs["mongo"] = partial(self._drop_mongo, mg)
        if rd is not None:
            jobs["redis"] = partial(self._drop_redis, rd)
        if self._own_realm and kc is not None:
            jobs["keycloak"] = lambda: self._keycloak_admin().delete_realm(kc.realm)
        timing.run_timed(jobs)

    @staticmethod
    def _drop_mongo(access: MongoAccess) -> None:
        conn = mongo.client(access)
        try:
            conn.drop_database(access.database)
        finally:
            conn.close()

    def _drop_redis(self, access: RedisAccess) -> None:
        if self._lease is not None:
            data = self._redis_admin(self._lease)
            leases = self._redis_admin(redis.LEASE_DB)
            try:
                data.flushdb()  # type: ignore[attr-defined]
                redis.release_database(leases, self._lease, lease_owner(self.token))
            finally:
                data.close()  # type: ignore[attr-defined]
                leases.close()  # type: ignore[attr-defined]
            return
        admin = self._redis_admin()
        try:
            redis.delete_prefixed(admin, access.key_prefix)
            assert access.username is not None
            redis.delete_acl_user(admin, access.username)
        finally:
            admin.close()  # type: ignore[attr-defined]

    # --- restoring ------------------------------------------------------------------------------------

    def restore(self, stores: tuple[str, ...] = STORES) -> dict[str, float]:
        """Back to the seed in ``stores``, in parallel; returns the seconds each took."""
        jobs: dict[str, Callable[[], None]] = {}
        if "postgres" in stores and self.record.postgres:
            jobs["postgres"] = self._restore_postgres
        if "mongo" in stores and self.record.mongo:
            jobs["mongo"] = self._restore_mongo
        if "redis" in stores and self.record.redis:
            jobs["redis"] = self._restore_redis
        if "keycloak" in stores and self.record.keycloak:
            jobs["keycloak"] = self._restore_realm
        return timing.run_timed(jobs)

    def _pg_admin(self) -> str:
        assert self.record.postgres is not None
        return postgres.admin_conninfo(self._server(self.record.postgres.service))

    def _restore_postgres(self) -> None:
        pg, original = self.record.postgres, self.original.postgres
        assert pg is not None and original is not None
        postgres.clone_from_template(
            self._pg_admin(), template=postgres.seed_template_name(original.database), target=pg.database,
            owner=pg.user,
        )  # fmt: skip

    def _restore_mongo(self) -> None:
        """Refilled only if something changed since the last restore (where that can be told exactly:
        FerretDB's tables, read in PostgreSQL; refilling 20,000 documents costs a second)."""
        access = self.record.mongo
        assert access is not None
        before = self._mongo_fingerprint()
        if before is not None and before == self._clean.get("mongo"):
            return
        mongo.restore(access, self.seeds.mongo, tenant=self.record.slug)
        after = self._mongo_fingerprint()
        if after is not None:
            self._clean["mongo"] = after

    def _mongo_fingerprint(self) -> str | None:
        assert self.record.mongo is not None
        server = self._server(self.record.mongo.service)
        if server.mongo is None or server.mongo.mechanism != "PLAIN" or not server.depends_on:
            return None  # a mongod: no exact and cheap way to tell
        pg = self._server(server.depends_on[0])
        info = postgres.admin_conninfo(pg, ferretdb.pg_database(self.record.slug))
        return ferretdb.fingerprint(info, self.record.mongo.database)

    def _redis_changes(self) -> str:
        """Writes on the tenant's Redis server since its last save (any database, any client), with
        that save's time: unchanged means nothing was written, so nothing needs restoring."""
        client = self._redis_admin()
        try:
            info = client.info("persistence")  # type: ignore[attr-defined]
        finally:
            client.close()  # type: ignore[attr-defined]
        return f"{info['rdb_changes_since_last_save']}@{info['rdb_last_save_time']}"

    def _restore_redis(self) -> None:
        if self._clean.get("redis") == self._redis_changes():
            return
        self._restore_redis_now()
        self._clean["redis"] = self._redis_changes()

    def _restore_redis_now(self) -> None:
        access = self.record.redis
        assert access is not None
        if self._lease is not None:
            client = self._redis_admin(self._lease)
            try:
                client.flushdb()  # type: ignore[attr-defined]
                seeding.apply_redis(client, self.seeds.redis, prefix=access.key_prefix)
            finally:
                client.close()  # type: ignore[attr-defined]
            return
        admin = self._redis_admin()
        try:
            redis.delete_prefixed(admin, access.key_prefix)
            seeding.apply_redis(admin, self.seeds.redis, prefix=access.key_prefix)
        finally:
            admin.close()  # type: ignore[attr-defined]

    # --- Keycloak -------------------------------------------------------------------------------------

    def _keycloak_admin(self) -> keycloak.RealmAdmin:
        server = self._server("keycloak")
        assert self.record.keycloak is not None
        return keycloak.RealmAdmin(self.record.keycloak.base_url, server.admin_user, server.admin_password)

    def _restore_realm(self) -> None:
        """A realm of this copy's own, (re)created from the template: other processes keep theirs."""
        access = self.record.keycloak
        assert access is not None and self.original.keycloak is not None
        name = f"{self.original.keycloak.realm}_{self.token}"  # "_": in no tenant's realm name
        tenant = replace(self.original.as_tenant(), realm=name)
        realm = seeding.render_realm(
            Path(self.state.realms_dir), Path(self.state.seeds_dir), tenant,
            api_client_secret=access.client_secret,
        )  # fmt: skip
        admin = self._keycloak_admin()
        if self._own_realm:
            admin.delete_realm(name)
        admin.create_realm(realm.representation)
        self._own_realm = True
        self.record.keycloak = replace(access, realm=name)
