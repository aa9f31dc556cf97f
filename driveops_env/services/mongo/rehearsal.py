"""A rehearsal of a tenant's pending MongoDB migrations (``migrate --rehearse``): the tenant's
database as it is now copied into a clone (every collection with its indexes and documents, the
tool's changelog included), the command run against the clone, the clone dropped whatever happened."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from driveops_env import envvars, migrate
from driveops_env.services.base import Work
from driveops_env.services.mongo import admin, migration
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.mongo.seeds import parse_collection
from driveops_env.settings import Settings

SERVICE = "mongo"


def rehearse(
    settings: Settings, argv: tuple[str, ...], work: Work, access: MongoAccess, server_admin: MongoAccess
) -> float:
    """The command run on a clone of ``access``'s database; the seconds it took (its failure raised)."""
    clone = replace(access, database=f"{access.database}__rehearsal_{secrets.token_hex(3)}")  # this run's own
    if access.auth_mechanism != "PLAIN":  # a mongod user may use its own database only
        admin.grant_database(server_admin, access, clone.database)
    admin.drop_database(server_admin, clone.database)
    log = migrate.log_of(settings, f"{SERVICE}-rehearsal", work.tenant.slug)
    try:
        state = migration.exported(access)
        collections = [parse_collection(Path(f"{name}.json"), value, work.tenant.slug) for name, value in state.items()]
        admin.seed(clone, collections, tenant=work.tenant.slug)
        values = envvars.identity(settings.name, work.tenant) | clone.env("plain")
        migrate.note(log, f"rehearsal on {clone.database}, a clone of {access.database}")
        return migrate.run(
            migrate.of(settings, argv),
            values,
            log,
            service=SERVICE,
            tenant=work.tenant.slug,
            secret=clone.password,
            append=True,
        )
    finally:
        admin.drop_database(server_admin, clone.database)
        if access.auth_mechanism != "PLAIN":
            admin.grant_database(server_admin, access, clone.database, command="revokeRolesFromUser")
