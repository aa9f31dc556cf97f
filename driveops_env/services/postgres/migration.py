"""A tenant's migrations, once per change: the first tenant that needs a key runs the command and its
database is saved in the cache (:mod:`driveops_env.migrated`); every other tenant, ``tenant add`` and
the next ``up`` load that state instead of running the command.  When the history only grew, the
command starts from the previous key's state (the pending migrations only).  The command runs for
each tenant instead with ``migrate_per_tenant``, or when no pg_dump is new enough for the server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from driveops_env import envvars, migrate, migrated
from driveops_env.services.base import Work
from driveops_env.services.postgres import dump
from driveops_env.services.postgres.access import PostgresAccess
from driveops_env.settings import Settings

SERVICE = "postgres"


@dataclass(frozen=True)
class Job:
    """One tenant's database to migrate: the command, the tenant, its access, its log."""

    migration: migrate.Migration
    env_name: str
    work: Work
    found: PostgresAccess
    log: Path

    @property
    def tenant(self) -> str:
        return self.work.tenant.slug

    def command(self, *, append: bool = False) -> float:
        values = envvars.identity(self.env_name, self.work.tenant) | self.found.env("plain")
        values["DATABASE_URL"] = self.found.dsn  # what dbmate, node-pg-migrate and Prisma read
        secret, tenant = self.found.password, self.tenant
        cancel = self.work.cancel
        return migrate.run(
            self.migration,
            values,
            self.log,
            service=SERVICE,
            tenant=tenant,
            secret=secret,
            append=append,
            cancel=cancel,
        )


def apply(settings: Settings, argv: tuple[str, ...], work: Work, found: PostgresAccess, *, append: bool) -> float:
    """The command run against a running tenant's database ``found`` (the tool applies what is
    pending there); its output after what the log holds with ``append``."""
    migration = migrate.of(settings, argv)
    job = Job(migration, settings.name, work, found, migrate.log_of(settings, SERVICE, work.tenant.slug))
    if append:
        migrate.note(job.log, f"driveops-env migrate: database {found.database}")
    took = job.command(append=append)
    migrate.note(job.log, f"pending migrations applied to {found.database} in {took:.2f} s")
    return took


def run(
    settings: Settings,
    argv: tuple[str, ...],
    work: Work,
    found: PostgresAccess,
    tools: Path | None,
    *,
    append: bool = False,
) -> None:
    """``found``'s database migrated: from the cache, by the command once per key, or per tenant.
    ``tools``: the configured server binaries' folder (pg_dump's is looked for there first);
    ``append``: the command's output after what the tenant's log holds."""
    migration = migrate.of(settings, argv)
    job = Job(migration, settings.name, work, found, migrate.log_of(settings, SERVICE, work.tenant.slug))
    major = dump.server_major(found.conninfo)
    folder = None if settings.migrate_per_tenant else dump.tools(tools, major)
    if folder is None:
        job.command(append=append)
        why = "migrate_per_tenant" if settings.migrate_per_tenant else f"no pg_dump {major} or newer was found"
        migrate.note(job.log, f"the command ran for this tenant ({why})")
        return
    inputs = migrate.files_of(migration)
    key = f"{migrate.key_of(migration.command, inputs)}-pg{major}"
    kept = migrated.Kept(migrated.folder(settings.cache_dir, SERVICE), key, dump.SUFFIX)
    store = migrated.Tenant(
        job.tenant,
        lambda: job.command(append=append),
        lambda target: dump.save(folder, found, target, tenant=job.tenant),
        lambda source: dump.load(folder, found, source, tenant=job.tenant),
        job.log,
    )
    manifest = migrated.manifest_of(migration.command, migration.cwd, inputs, f"pg{major}")
    migrated.once(kept, manifest, store, service=SERVICE, timeout=settings.startup_timeout, cancel=work.cancel)
