"""MongoDB: every tenant has a server of its own in both isolation modes (FerretDB restricts no user to
a database, so tenants cannot share one): the official image's mongod in a container, or locally
FerretDB 1.24 over a PostgreSQL database of the tenant's own (it keeps its data there: it needs the
tenant's PostgreSQL server, and says so in :meth:`MongoService.needs`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from driveops_env import migrate, migrated, snapshot_seeds
from driveops_env.errors import StartupError
from driveops_env.images import ready as ready_image
from driveops_env.masking import Masking, Replacing
from driveops_env.option_types import READY_COPIES, declare, parse_argv, parse_bool
from driveops_env.secret import generate_secret
from driveops_env.services.base import (
    CONTAINER,
    PROCESS,
    Explanation,
    Fixture,
    Need,
    Plan,
    Preparation,
    Prepare,
    Server,
    Service,
    Sources,
    View,
    Work,
)
from driveops_env.services.mongo import (
    admin,
    differences,
    ferretdb,
    migration,
    pool,
    rehearsal,
    seeds,
    server,
    snapshot,
)
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.postgres import admin as pg_admin
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant, database_name

IMAGE = "mongo:7"


@dataclass(frozen=True)
class MongoOptions:
    image_mongo: str = declare("Image of mongo for the docker backend.", lambda: IMAGE, IMAGE, metavar="IMAGE")
    mongo_ready_image: bool = declare(
        "Derive once an image of image_mongo whose data is initialised (its root user made), and start "
        "containers of it (an engine that builds: docker); false: the image as it is.",
        lambda: True,
        "true",
        parse_bool,
        metavar="BOOL",
    )
    migrate_mongo: tuple[str, ...] = declare(
        "Command that migrates a tenant's MongoDB database (an argv list in pyproject.toml; a flag or "
        "variable is split as a shell would, never run by one): run in migrate_dir once per change of "
        "migrate_inputs, after the tenant's user exists and before the seed, with DRIVEOPS_MONGO_URI "
        "and DRIVEOPS_MONGO_DATABASE; what it made is loaded into every other tenant.",
        lambda: (),
        "none",
        parse_argv,
        metavar="COMMAND",
    )
    mongo_restore_pool: int = declare(
        "Ready databases holding a tenant's seed each test process keeps ahead, made in the background, "
        "so that a test's restore hands one over (its database name changes; 0: emptied and refilled on "
        "the test's path).",
        lambda: 2,
        "2",
        READY_COPIES,
        metavar="N",
    )


class MongoService(Service[MongoAccess, MongoOptions], name="mongo", title="MongoDB"):
    commands = ("ferretdb",)
    stages = (PROCESS,)  # FerretDB's database on the tenant's PostgreSQL, made before it starts
    clients = ("pymongo",)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pools: dict[str, pool.DatabasePool] = {}  # a test process's copies: ready databases, by token

    def needs(self, tenant: Tenant, isolation: str, family: str) -> list[Need]:
        own = Need(f"{self.name}.{tenant.slug}", self.name, tenant.slug)
        if family != PROCESS:
            return [own]
        owner = tenant.slug if isolation == "dedicated" else None
        pg = Need(f"postgres.{owner or 'shared'}", "postgres", owner)
        return [pg, replace(own, after=(pg.key,))]

    def prepare(self, ctx: Prepare) -> Preparation:
        if ctx.family == CONTAINER:
            recipe = server.ready_recipe(self.own.image_mongo)
            ready = ready_image.for_service(ctx, recipe, self.settings.cache_dir, self.own.mongo_ready_image)
            return Preparation(self.own.image_mongo, self.migration_key(), found=ready)  # the initialised image
        binary = ferretdb.build(self.settings.cache_dir, ferretdb.DEFAULT_VERSION, ctx.progress)
        return Preparation(f"FerretDB {ferretdb.DEFAULT_VERSION}", self.migration_key(), found=binary)

    def migration_grew(self, recorded: Mapping[str, Any]) -> bool:
        return migrated.grew_since(self.settings, self.own.migrate_mongo, self.name, recorded.get("migrate-mongo"))

    def migration_key(self) -> dict[str, str]:
        """The migrations' key in the environment's fingerprint (a change starts it again); checked."""
        if not self.own.migrate_mongo:
            return {}
        found = migrate.of(self.settings, self.own.migrate_mongo)
        migrate.check(found, "migrate_mongo")
        return {"migrate-mongo": migrate.key(found)}

    def migrate(self, access: MongoAccess, work: Work) -> float:
        """The tenant's database migrated in place (its data kept); the new history's state built in a
        scratch database for the seed a restore refills."""
        record = work.servers[access.service]
        scratch = replace(access, database=f"{access.database}__migrating")
        server_admin = access if access.auth_mechanism == "PLAIN" else admin.admin_access(record)  # as the pools
        admin.grant_database(server_admin, access, scratch.database)
        try:
            return migration.apply(self.settings, self.own.migrate_mongo, work, access, scratch)
        finally:
            admin.drop_database(server_admin, scratch.database)
            admin.grant_database(server_admin, access, scratch.database, command="revokeRolesFromUser")

    def rehearse(self, access: MongoAccess, work: Work) -> float:
        record = work.servers[access.service]
        server_admin = access if access.auth_mechanism == "PLAIN" else admin.admin_access(record)
        return rehearsal.rehearse(self.settings, self.own.migrate_mongo, work, access, server_admin)

    def images(self) -> dict[str, str]:
        return {"image_mongo": self.own.image_mongo}

    def collect(self, cache: Path, client: Any | None) -> list[str]:
        """Initialised images beyond the most recently used, and those ``up --recreate`` replaced."""
        return [] if client is None else ready_image.collect(client, cache, self.name)

    def render(self, tenant: Tenant, sources: Sources, access: MongoAccess | None) -> Any:
        part = snapshot_seeds.part_of(self.settings, self.name, tenant.slug)  # started from a snapshot
        if part is not None:
            return snapshot.collections(part)
        collections = seeds.render_mongo_collections(sources.seeds_dir, tenant, limit=sources.limit)
        if not self.own.migrate_mongo:
            return collections
        return migration.seed(self.settings, tenant.slug, collections)

    def stage(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> server.Storage:
        """Locally, the tenant's user (a PostgreSQL role FerretDB passes logins through to) and
        FerretDB's database on the tenant's PostgreSQL server, made before FerretDB starts over it."""
        return server.ferret_storage(str(need.tenant), deps[need.after[0]])

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        slug = str(need.tenant)
        if plan.family == CONTAINER:
            ready: ready_image.Ready | None = plan.prepared.found
            return server.container(need.key, slug, self.own.image_mongo, ready)
        binary, storage = plan.prepared.found, plan.staged
        if not isinstance(binary, Path) or not isinstance(storage, server.Storage):
            raise StartupError(
                "FerretDB was not prepared or its storage not staged",
                service=self.name,
                tenant=slug,
                hint="describe its server with the plan of its prepare and stage steps (driveops_env.plan does)",
            )
        return server.ferret(need.key, slug, binary, deps[need.after[0]], storage)

    def setup(self, work: Work, record: ServiceRecord) -> MongoAccess:
        storage: server.Storage | None = work.staged
        if storage is not None:
            user = storage.owner
        else:  # a mongod: its user is made by its administrator
            name = database_name(work.tenant.slug)
            user = admin.MongoUser(f"{name}_mongo", generate_secret(), name)
            admin.create_user(admin.admin_access(record), user)
        found = admin.tenant_access(record, user)
        collections = work.seed
        if self.own.migrate_mongo and work.sources is not None:  # the seed files on what the migrations made
            migration.run(self.settings, self.own.migrate_mongo, work, found)
            collections = seeds.render_mongo_collections(work.sources.seeds_dir, work.tenant, limit=work.sources.limit)
        admin.seed(found, collections, tenant=work.tenant.slug)
        return found

    def restore(self, access: MongoAccess, work: Work) -> MongoAccess:
        """A test process's copy: replaced by a ready database of its pool (the name changes); a tenant's
        own database (reset), or a copy without a pool: refilled.  Neither when nothing changed since
        the last restore, where that can be told exactly and cheaply (FerretDB's tables, read in
        PostgreSQL; refilling 20,000 documents costs a second)."""
        if work.token is None or self.own.mongo_restore_pool == 0:
            reader = _reader(access, work)
            try:
                return self._refill(access, work, reader)
            finally:
                if reader is not None:
                    reader.close()
        found = self._pool(access, work)
        if found.reader is not None and found.reader.fingerprint(access.database) == work.memo.get("documents"):
            return access
        ready, held = found.take(used=access.database)
        if held is not None:
            work.memo["documents"] = held
        return replace(access, database=ready)

    def _refill(self, access: MongoAccess, work: Work, reader: ferretdb.Reader | None) -> MongoAccess:
        if reader is not None and reader.fingerprint(access.database) == work.memo.get("documents"):
            return access
        admin.restore(access, work.seed, tenant=work.tenant.slug)
        if reader is not None:
            work.memo["documents"] = reader.fingerprint(access.database)
        return access

    def _pool(self, access: MongoAccess, work: Work) -> pool.DatabasePool:
        token = str(work.token)
        if token not in self._pools:
            record = work.servers[access.service]
            server_admin = access if access.auth_mechanism == "PLAIN" else admin.admin_access(record)
            self._pools[token] = pool.DatabasePool(
                access, server_admin, work.seed, _reader(access, work), self.own.mongo_restore_pool, work.tenant.slug
            )
        return self._pools[token]

    def save_data(self, access: MongoAccess, work: Work, target: Path, masking: Masking | None) -> None:
        snapshot.save(access, target, masking)

    def load_data(
        self,
        access: MongoAccess,
        work: Work,
        source: Path,
        *,
        as_seed: bool = False,
        replacing: Replacing | None = None,
    ) -> MongoAccess:
        snapshot.load(access, source, work.tenant.slug, replacing)
        return access

    def copy(self, access: MongoAccess, work: Work) -> MongoAccess:
        copied = replace(access, database=f"{access.database}_{work.token}")
        if access.auth_mechanism != "PLAIN":  # a mongod user may use its own database only: grant the copy
            admin.grant_database(admin.admin_access(work.servers[access.service]), copied, copied.database)
        return copied

    def keep_copy(self, access: MongoAccess, work: Work) -> None:
        found = self._pools.pop(str(work.token), None)  # its ready databases go; the one in use stays
        if found is not None:
            found.close(keep=access.database)

    def drop_copy(self, access: MongoAccess, work: Work) -> None:
        found = self._pools.pop(str(work.token), None)
        if found is not None:
            found.close()  # every database the copy had
            return
        record = work.servers[access.service]  # as the server's administrator: a mongod's readWrite drops none
        admin.drop_database(access if access.auth_mechanism == "PLAIN" else admin.admin_access(record), access.database)

    def drop_tenant(self, access: MongoAccess, work: Work) -> None:
        """Its server goes with the tenant; FerretDB's database and roles on a PostgreSQL that stays go too."""
        record = work.servers.get(access.service)
        pg = work.servers.get(record.depends_on[0]) if record is not None and record.depends_on else None
        if pg is not None:
            ferretdb.drop_postgres(pg_admin.admin_conninfo(pg), tenant=work.tenant.slug, owner=access.user)

    def probe(self, record: ServiceRecord) -> None:
        admin.probe(admin.admin_access(record))

    def checks(self) -> dict[str, Any]:
        return {"mongodb": _check}

    def explain(self, error: str) -> Explanation | None:
        difference = differences.explain(error)
        if difference is not None:
            return Explanation(
                f"difference: FerretDB (the MongoDB server here) does not support {difference.what}",
                difference.instead,
            )
        return admin.explain(error)

    def fixtures(self) -> list[Fixture]:
        return [
            Fixture("tenant_mongo", "A pymongo Database of the tenant, as the tenant's user.", _database),
            Fixture("tenant_mongo_async", "A database of pymongo's AsyncMongoClient.", _database_async, True),
        ]


def _reader(access: MongoAccess, work: Work) -> ferretdb.Reader | None:
    """What reads the databases of the tenant's FerretDB in PostgreSQL (None for a mongod)."""
    record = work.servers.get(access.service)
    if record is None or record.extra.get("mechanism") != "PLAIN" or not record.depends_on:
        return None
    return ferretdb.Reader(
        pg_admin.admin_conninfo(work.servers[record.depends_on[0]], ferretdb.pg_database(work.tenant.slug))
    )


def _check(view: View) -> str:
    found: MongoAccess = view.access("mongo")
    conn = admin.client(found)
    try:
        conn[found.database].command("ping")
        names = conn[found.database].list_collection_names()
    finally:
        conn.close()
    return f"{found.database} answers as {found.user} ({len(names)} collection(s))"


def _database(handle: Any) -> Iterator[Any]:
    database = handle.mongo.connect()
    try:
        yield database
    finally:
        database.client.close()


async def _database_async(handle: Any) -> AsyncIterator[Any]:
    database = handle.mongo.connect_async()
    try:
        yield database
    finally:
        await database.client.close()
