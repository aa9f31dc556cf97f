"""The start plan: which servers an environment (or the tenants added to it) needs, and per tenant its
roles, users, seeds and realm, as steps with their order.  The same plan starts a new environment and
adds tenants to a running one (servers it already has are not started again).

Servers (in parallel): per tenant (dedicated) or once (shared) a PostgreSQL and a Redis; per tenant a
MongoDB-protocol server (FerretDB cannot keep tenants apart on one server); one Keycloak.  Then per
tenant, each as soon as its server answers: PostgreSQL role, database and seed (kept as a template
for resets); Redis seed (and ACL user in shared mode); MongoDB seed; the realm, proven by a token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from driveops_env import seeding
from driveops_env.backends import Backend, StartContext
from driveops_env.secret import generate_secret
from driveops_env.services import keycloak, keycloak_snapshot, mongo, postgres, redis
from driveops_env.services.redis import AclUser
from driveops_env.spec import Tenant
from driveops_env.state import (
    EnvState,
    KeycloakAccess,
    PostgresAccess,
    RedisAccess,
    ServiceRecord,
    StateStore,
)
from driveops_env.tasks import Step

KEYCLOAK = "keycloak"
KEYCLOAK_PG = "postgres.keycloak"
# At most this many steps of a group at a time: on 2 cores, 40 tenants' servers and realms at once
# time out (Keycloak creates realms one after another anyway; servers compete for the CPU).
LIMITS = {"server": 12, "realm": 3}


class Launch:
    """The state being filled by the parallel steps, guarded by a lock, saved at every change."""

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

    def server(self, key: str) -> ServiceRecord:
        with self.lock:
            return self.state.services[key]


@dataclass(frozen=True)
class PlanInput:
    """What the plan starts: tenants with their rendered seeds and generated client secrets."""

    tenants: Sequence[Tenant]
    seeds: Mapping[str, seeding.TenantSeeds]
    secrets: Mapping[str, str]  # slug -> the API client's secret
    services: tuple[str, ...]
    isolation: str
    keycloak_db: str
    realms_in_snapshot: bool = False  # Keycloak starts with these realms: only their secrets are set


def server_key(kind: str, tenant: Tenant | str, isolation: str) -> str:
    """Which server holds a tenant's store: its own (``postgres.acme``) or the shared one."""
    slug = tenant if isinstance(tenant, str) else tenant.slug
    if kind == "mongo" or isolation == "dedicated":
        return f"{kind}.{slug}"
    return f"{kind}.shared"


class StartPlan:
    def __init__(self, what: PlanInput, backend: Backend, ctx: StartContext, launch: Launch) -> None:
        self.what = what
        self.backend = backend
        self.ctx = ctx
        self.launch = launch
        self._steps: dict[str, Step] = {}

    def key(self, kind: str, tenant: Tenant) -> str:
        return server_key(kind, tenant, self.what.isolation)

    def steps(self) -> list[Step]:
        for tenant in self.what.tenants:
            self._server_steps(tenant)
        if KEYCLOAK in self.what.services:
            self._keycloak_steps()
        for tenant in self.what.tenants:
            self._tenant_steps(tenant)
        return list(self._steps.values())

    def _add(
        self, name: str, run: Callable[[], str | None], after: tuple[str, ...] = (), group: str | None = None
    ) -> None:
        if name in self._steps or name in self.launch.state.services:
            return  # planned already, or running already (a tenant added to a running environment)
        self._steps[name] = Step(name, run, after=tuple(a for a in after if a in self._steps), group=group)

    def _server(self, key: str, start: Callable[[], ServiceRecord], after: tuple[str, ...] = ()) -> None:
        self._add(key, lambda: _endpoint(start()), after, group="server")

    # --- servers --------------------------------------------------------------------------------------

    def _server_steps(self, tenant: Tenant) -> None:
        services = self.what.services
        owner = tenant.slug if self.what.isolation == "dedicated" else None
        needs_pg = "postgres" in services or ("mongo" in services and "postgres" in self.backend.needs("mongo"))
        if needs_pg:
            key = self.key("postgres", tenant)
            self._server(key, partial(self.backend.start_postgres, key, owner, self.ctx))
        if "redis" in services:
            key = self.key("redis", tenant)
            self._server(key, partial(self.backend.start_redis, key, owner, self.ctx))
        if "mongo" in services:
            key = self.key("mongo", tenant)
            deps = {kind: self.key(kind, tenant) for kind in self.backend.needs("mongo")}
            user = mongo.MongoUser(f"{tenant.database}_mongo", generate_secret(), tenant.database)
            self._server(key, partial(self._start_mongo, key, tenant, user, deps), after=tuple(deps.values()))

    def _start_mongo(self, key: str, tenant: Tenant, user: mongo.MongoUser, deps: dict[str, str]) -> ServiceRecord:
        servers = {kind: self.launch.server(dep) for kind, dep in deps.items()}
        record = self.backend.start_mongo(key, tenant.slug, user, self.ctx, servers)
        self.launch.set_tenant(tenant.slug, mongo=mongo.tenant_access(record, user))
        return record

    def _keycloak_steps(self) -> None:
        database: keycloak.Database | None = None
        after: tuple[str, ...] = ()
        if self.what.keycloak_db == "postgres":
            database = keycloak.Database("keycloak", "keycloak", generate_secret())
            self._server(KEYCLOAK_PG, partial(self._start_keycloak_postgres, database))
            after = (KEYCLOAK_PG,)
        self._server(KEYCLOAK, partial(self._start_keycloak, database), after=after)

    def _start_keycloak_postgres(self, database: keycloak.Database) -> ServiceRecord:
        record = self.backend.start_postgres(KEYCLOAK_PG, None, self.ctx)
        postgres.create_tenant_database(
            postgres.admin_conninfo(record),
            role=database.user,
            password=database.password,
            database=database.name,
        )
        return record

    def _start_keycloak(self, database: keycloak.Database | None) -> ServiceRecord:
        db_server = self.launch.server(KEYCLOAK_PG) if database is not None else None
        return self.backend.start_keycloak(KEYCLOAK, self.ctx, database, db_server)

    # --- per tenant -----------------------------------------------------------------------------------

    def _tenant_steps(self, tenant: Tenant) -> None:
        services = self.what.services
        seeds = self.what.seeds[tenant.slug]
        slug = tenant.slug
        if "postgres" in services:
            key = self.key("postgres", tenant)
            self._add(f"seed postgres.{slug}", partial(self.seed_postgres, key, tenant, seeds), after=(key,))
        if "redis" in services:
            key = self.key("redis", tenant)
            self._add(f"seed redis.{slug}", partial(self.seed_redis, key, tenant, seeds), after=(key,))
        if "mongo" in services:
            key = self.key("mongo", tenant)
            self._add(f"seed mongo.{slug}", partial(self.seed_mongo, tenant, seeds), after=(key,))
        if KEYCLOAK in services:
            self._add(
                f"realm {tenant.realm}", partial(self.create_realm, tenant, seeds), after=(KEYCLOAK,), group="realm"
            )

    def seed_postgres(self, key: str, tenant: Tenant, seeds: seeding.TenantSeeds) -> str:
        record = self.launch.server(key)
        admin = postgres.admin_conninfo(record)
        access = PostgresAccess(key, record.host, record.port, tenant.database, tenant.database, generate_secret())
        postgres.create_tenant_database(admin, role=access.user, password=access.password, database=access.database)
        seeding.apply_sql(access.conninfo, seeds.sql, tenant=tenant.slug)
        postgres.save_seed_template(admin, access.database)
        self.launch.set_tenant(tenant.slug, postgres=access)
        return f"{len(seeds.sql)} file(s)"

    def seed_redis(self, key: str, tenant: Tenant, seeds: seeding.TenantSeeds) -> str:
        record = self.launch.server(key)
        admin = redis.client(record.host, record.port, None, record.admin_password)
        try:
            user = None
            if self.what.isolation == "shared":
                user = AclUser(tenant.database, generate_secret(), tenant.key_prefix)
                redis.set_acl_user(admin, user)
            seeding.apply_redis(admin, seeds.redis, prefix=tenant.key_prefix)
        finally:
            admin.close()
        access = RedisAccess(
            key, record.host, record.port, user.name if user else None,
            user.password if user else record.admin_password, tenant.key_prefix,
        )  # fmt: skip
        redis.probe(access.host, access.port, access.username, access.password)
        self.launch.set_tenant(tenant.slug, redis=access)
        return f"{len(seeds.redis)} key(s)"

    def seed_mongo(self, tenant: Tenant, seeds: seeding.TenantSeeds) -> str:
        access = self.launch.state.tenants[tenant.slug].mongo
        assert access is not None, "the tenant's MongoDB server records its access when it starts"
        count = mongo.seed(access, seeds.mongo, tenant=tenant.slug)
        return f"{len(seeds.mongo)} collection(s), {count} document(s)"

    def create_realm(self, tenant: Tenant, seeds: seeding.TenantSeeds) -> str:
        realm = seeds.realm
        assert realm is not None
        record = self.launch.server(KEYCLOAK)
        access = KeycloakAccess(
            KEYCLOAK, keycloak.base_url(record), tenant.realm, keycloak.API_CLIENT,
            self.what.secrets[tenant.slug], keycloak.WEB_CLIENT, dict(realm.users),
        )  # fmt: skip
        if self.what.realms_in_snapshot:  # the realm is there: only this environment's secret is new
            secrets = keycloak_snapshot.secrets_of(realm.representation) | {access.client_id: access.client_secret}
            keycloak_snapshot.set_client_secrets(
                access.base_url, record.admin_user, record.admin_password, tenant.realm, secrets
            )  # fmt: skip
        else:
            admin = keycloak.RealmAdmin(access.base_url, record.admin_user, record.admin_password)
            admin.create_realm(realm.representation)
        detail = "realm created"
        if realm.users:  # tenant-level readiness: a seeded user's token validates and names the tenant
            user = next(iter(realm.users))
            keycloak.verify_tenant_token(access, user, tenant_id=tenant.tenant_id, slug=tenant.slug)
            detail = f"token for {user}"
        self.launch.set_tenant(tenant.slug, keycloak=access)
        return detail


def _endpoint(record: ServiceRecord) -> str:
    return f"{record.host}:{record.port}"
