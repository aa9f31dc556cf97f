"""PostgreSQL: a database and a role per tenant (on its own server, or on the shared one), seeded from
``<seeds>/postgres/*.sql`` and kept as a template, so that a reset or a test's restore is a clone of
milliseconds; a test process's copy is another clone, owned by the tenant's role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from driveops_env import migrate, migrated
from driveops_env.images import ready as ready_image
from driveops_env.masking import Masking, Replacing
from driveops_env.option_types import READY_COPIES, declare, parse_argv, parse_bool, parse_optional_path
from driveops_env.secret import generate_secret
from driveops_env.services.base import (
    CONTAINER,
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
from driveops_env.services.postgres import admin, dump, local, migration, pool, rehearsal, server, sql
from driveops_env.services.postgres import snapshot as pg_snapshot
from driveops_env.services.postgres.access import PostgresAccess
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant, database_name

IMAGE = "postgres:16"


@dataclass(frozen=True)
class PostgresOptions:
    image_postgres: str = declare("Image of postgres for the docker backend.", lambda: IMAGE, IMAGE, metavar="IMAGE")
    postgres_bin: Path | None = declare(
        "Directory holding initdb and postgres.",
        lambda: None,
        "newest /usr/lib/postgresql/*/bin, else PATH",
        parse_optional_path,
        metavar="DIR",
    )
    postgres_restore_pool: int = declare(
        "Ready clones of a tenant's seed each test process keeps ahead, made in the background, so that a "
        "test's restore is two renames (0: the clone is made on the test's path).",
        lambda: 2,
        "2",
        READY_COPIES,
        metavar="N",
    )
    migrate_postgres: tuple[str, ...] = declare(
        "Command that migrates a tenant's database (an argv list in pyproject.toml; a flag or variable "
        "is split as a shell would, never run by one): run in migrate_dir for each tenant after its "
        "database exists and before the seed's data, with the PG* variables and DSN `env` prints, as "
        "the tenant's role.",
        lambda: (),
        "none",
        parse_argv,
        metavar="COMMAND",
    )
    postgres_ready_image: bool = declare(
        "Derive once an image of image_postgres whose data is initialised, and start containers of it "
        "(an engine that builds: docker): initdb runs once, not at every up (false: the image as it is).",
        lambda: True,
        "true",
        parse_bool,
        metavar="BOOL",
    )


@dataclass(frozen=True)
class Local:
    """What ``prepare`` found locally: the binaries, the initialised template cluster, the
    environment's directory and the user servers run as (on a container engine: the initialised
    image, or None)."""

    bin_dir: Path
    template: Path
    env_dir: Path
    user: str | None


class PostgresService(Service[PostgresAccess, PostgresOptions], name="postgres", title="PostgreSQL"):
    commands = ("postgres",)
    local_user = "postgres"  # it refuses to run as root; Debian's postgresql package makes this account
    clients = ("psycopg",)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pools: dict[str, pool.ClonePool] = {}  # a test process's copies: ready clones, by database

    def prepare(self, ctx: Prepare) -> Preparation:
        finger = self.migration_key()
        if ctx.family == CONTAINER:
            recipe = server.ready_recipe(self.own.image_postgres)
            ready = ready_image.for_service(ctx, recipe, self.settings.cache_dir, self.own.postgres_ready_image)
            return Preparation(self.own.image_postgres, finger, found=ready)
        local.check_socket_path(ctx.env_dir)
        bin_dir = local.find_bin_dir(self.own.postgres_bin)
        template = local.ensure_template(bin_dir, self.settings.cache_dir, ctx.env_dir.parent, user=ctx.run_as)
        found = Local(bin_dir, template, ctx.env_dir, ctx.run_as)
        return Preparation(local.server_version(bin_dir), finger, found=found)

    def migration_grew(self, recorded: Mapping[str, Any]) -> bool:
        return migrated.grew_since(
            self.settings, self.own.migrate_postgres, self.name, recorded.get("migrate-postgres")
        )

    def migration_key(self) -> dict[str, str]:
        """The migrations' key in the environment's fingerprint (a change starts it again); checked."""
        if not self.own.migrate_postgres:
            return {}
        migration = migrate.of(self.settings, self.own.migrate_postgres)
        migrate.check(migration, "migrate_postgres")
        return {"migrate-postgres": migrate.key(migration)}

    def images(self) -> dict[str, str]:
        return {"image_postgres": self.own.image_postgres}

    def collect(self, cache: Path, client: Any | None) -> list[str]:
        """Initialised images beyond the most recently used, and those ``up --recreate`` replaced; the
        migrated states beyond the most recently used of each repository."""
        images = [] if client is None else ready_image.collect(client, cache, self.name)
        return images + migrated.prune(migrated.folder(cache, self.name), dump.SUFFIX)

    def render(self, tenant: Tenant, sources: Sources, access: PostgresAccess | None) -> Any:
        return sql.render_sql_files(sources.seeds_dir, tenant, limit=sources.limit)

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        if plan.family == CONTAINER:
            ready: ready_image.Ready | None = plan.prepared.found
            return server.container(need.key, need.tenant, self.own.image_postgres, ready)
        found: Local = plan.prepared.found
        return server.process(need.key, need.tenant, found.bin_dir, found.template, found.env_dir, found.user)

    def setup(self, work: Work, record: ServiceRecord) -> PostgresAccess:
        name = database_name(work.tenant.slug)
        found = PostgresAccess(record.key, record.host, record.port, name, name, generate_secret())
        info = admin.admin_conninfo(record)
        admin.create_tenant_database(info, role=found.user, password=found.password, database=found.database)
        if self.own.migrate_postgres:
            migration.run(self.settings, self.own.migrate_postgres, work, found, self.own.postgres_bin)
        sql.apply_sql(found.conninfo, work.seed, tenant=work.tenant.slug)
        admin.save_seed_template(info, found.database)
        return found

    def migrate(self, access: PostgresAccess, work: Work) -> float:
        """The tenant's database migrated in place (its data kept); its seed template made again from
        the new history's state (built once for every tenant, from the previous one's when the history
        grew) and the seed, so a reset or a test's restore gets the new schema."""
        info = admin.admin_conninfo(work.servers[access.service])
        argv = self.own.migrate_postgres
        took = migration.apply(self.settings, argv, work, access, append=False)
        staging = replace(access, database=f"{access.database}__migrating")
        admin.create_database(info, name=staging.database, owner=access.user)
        try:
            migration.run(self.settings, argv, work, staging, self.own.postgres_bin, append=True)
            sql.apply_sql(staging.conninfo, work.seed, tenant=work.tenant.slug)
            admin.save_seed_template(info, access.database, source=staging.database)
        finally:
            admin.drop_database(info, staging.database)
        return took

    def rehearse(self, access: PostgresAccess, work: Work) -> float:
        tools = pg_snapshot.tools_for(access, self.own.postgres_bin, work.tenant.slug)
        return rehearsal.rehearse(self.settings, self.own.migrate_postgres, work, access, tools)

    def restore(self, access: PostgresAccess, work: Work) -> PostgresAccess:
        template = admin.seed_template_name(database_name(work.tenant.slug))
        info = admin.admin_conninfo(work.servers[access.service])
        size = self.own.postgres_restore_pool
        if work.token is None or size == 0:  # a tenant's own database (reset): cloned in place
            admin.clone_from_template(info, template=template, target=access.database, owner=access.user)
            return access
        if access.database not in self._pools:
            found = pool.ClonePool(info, template=template, target=access.database, owner=access.user, size=size)
            self._pools[access.database] = found
        self._pools[access.database].take()
        return access

    def save_data(self, access: PostgresAccess, work: Work, target: Path, masking: Masking | None) -> None:
        folder = pg_snapshot.tools_for(access, self.own.postgres_bin, work.tenant.slug)
        info = admin.admin_conninfo(work.servers[access.service])
        pg_snapshot.save(folder, access, info, target, masking, work.tenant.slug)

    def load_data(
        self,
        access: PostgresAccess,
        work: Work,
        source: Path,
        *,
        as_seed: bool = False,
        replacing: Replacing | None = None,
    ) -> PostgresAccess:
        """The file's data swapped in; ``as_seed``: the seed template made from it (what restores clone)."""
        folder = pg_snapshot.tools_for(access, self.own.postgres_bin, work.tenant.slug)
        info = admin.admin_conninfo(work.servers[access.service])
        pg_snapshot.load(folder, access, info, source, work.tenant.slug, replacing)
        if as_seed:
            admin.save_seed_template(info, access.database)
        return access

    def copy(self, access: PostgresAccess, work: Work) -> PostgresAccess:
        return replace(access, database=f"{access.database}_{work.token}")

    def keep_copy(self, access: PostgresAccess, work: Work) -> None:
        found = self._pools.pop(access.database, None)  # its ready clones go; the copy stays
        if found is not None:
            found.close()

    def drop_copy(self, access: PostgresAccess, work: Work) -> None:
        found = self._pools.pop(access.database, None)
        if found is not None:
            found.close()
        admin.drop_database(admin.admin_conninfo(work.servers[access.service]), access.database)

    def drop_tenant(self, access: PostgresAccess, work: Work) -> None:
        info = admin.admin_conninfo(work.servers[access.service])
        admin.drop_tenant(info, database=access.database, role=access.user)

    def probe(self, record: ServiceRecord) -> None:
        admin.probe(admin.admin_conninfo(record))

    def checks(self) -> dict[str, Any]:
        return {"postgres": _check_database, "tenant-validation": _check_tenant_row}

    def explain(self, error: str) -> Explanation | None:
        return admin.explain(error)

    def fixtures(self) -> list[Fixture]:
        return [
            Fixture("tenant_pg", "A psycopg connection to the tenant's database, as the tenant's role.", _pg),
            Fixture("tenant_pg_async", "A psycopg AsyncConnection (pytest-asyncio or anyio).", _pg_async, True),
        ]


def _pg(handle: Any) -> Iterator[Any]:
    with handle.postgres.connect() as conn:
        yield conn


async def _pg_async(handle: Any) -> AsyncIterator[Any]:
    conn = await handle.postgres.connect_async()
    async with conn:
        yield conn


def _check_database(view: View) -> str:
    found: PostgresAccess = view.access("postgres")
    admin.probe(found.conninfo)
    return f"{found.database} answers a query as {found.user}"


def _check_tenant_row(view: View) -> str:
    """The tenant's row exists and is active, and a token of the tenant names the same id."""
    import psycopg

    found: PostgresAccess = view.access("postgres")
    with psycopg.connect(found.conninfo) as conn:
        row = conn.execute("SELECT id::text, active FROM tenants WHERE id = %s", (view.tenant_id,)).fetchone()
    if row is None:
        raise RuntimeError(f"no row for tenant id {view.tenant_id} in the tenants table")
    if not row[1]:
        raise RuntimeError(f"tenant {view.tenant_id} is not active")
    token = view.token_claims()
    if token is None:
        return f"tenant {row[0]} exists and is active"
    user, claims = token
    if claims.get("tenant_id") != row[0]:
        raise RuntimeError(
            f"the token of {user} carries tenant_id {claims.get('tenant_id')!r}, the database says {row[0]!r}"
        )
    return f"tenant {row[0]} exists, is active, and matches the token's tenant_id"
