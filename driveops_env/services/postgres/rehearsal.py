"""A rehearsal of a tenant's pending migrations (``migrate --rehearse``): the tenant's database as it
is now copied into a clone (``pg_dump``/``pg_restore``: the tenant's sessions may stay connected,
which a ``CREATE DATABASE ... TEMPLATE`` would refuse), the command run against the clone with the
clone's values, the clone dropped whatever happened; the tenant's database is never touched."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

from driveops_env import envdirs, migrate
from driveops_env.services.base import Work
from driveops_env.services.postgres import admin, dump
from driveops_env.services.postgres.access import PostgresAccess
from driveops_env.services.postgres.migration import Job
from driveops_env.settings import Settings

SERVICE = "postgres"
HINT = "the tenant's database was not touched"


def rehearse(settings: Settings, argv: tuple[str, ...], work: Work, access: PostgresAccess, tools: Path) -> float:
    """The command run on a clone of ``access``'s database; the seconds it took (its failure raised)."""
    info = admin.admin_conninfo(work.servers[access.service])
    clone = replace(access, database=f"{access.database}__rehearsal_{secrets.token_hex(3)}")  # this run's own
    admin.create_database(info, name=clone.database, owner=access.user)
    log = migrate.log_of(settings, f"{SERVICE}-rehearsal", work.tenant.slug)
    try:
        with tempfile.TemporaryDirectory(dir=envdirs.env_dir(settings, settings.name)) as folder:
            copied = Path(folder) / "tenant.pgdump"
            dump.save(tools, access, copied, tenant=work.tenant.slug, what="copy the tenant's data")
            dump.load(tools, clone, copied, tenant=work.tenant.slug, what="clone the tenant's data", hint=HINT)
        job = Job(migrate.of(settings, argv), settings.name, work, clone, log)
        migrate.note(log, f"rehearsal on {clone.database}, a clone of {access.database}")
        return job.command(append=True)
    finally:
        admin.drop_database(info, clone.database)
