"""A tenant's PostgreSQL database in a snapshot: ``pg_dump``'s custom format as the tenant's role,
without owners or grants (the loading tenant's role owns what is loaded).  Masked: the dump loaded
into a scratch database, the masked columns (:mod:`driveops_env.masking`) updated in SQL, dumped
again.  Loaded under a staging name, then swapped in for the tenant's database: a load that fails
leaves the database as it was."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from driveops_env.errors import StartupError
from driveops_env.masking import Masking, Replacing, kind_of, sql_expression
from driveops_env.services.postgres import admin, dump, identity
from driveops_env.services.postgres.access import PostgresAccess

SERVICE = "postgres"
HINT = "check the snapshot file; the tenant's database is as it was"


def tools_for(access: PostgresAccess, configured: Path | None, tenant: str) -> Path:
    """pg_dump and pg_restore of at least the server's major version, or an error saying where to get them."""
    major = dump.server_major(access.conninfo)
    folder = dump.tools(configured, major)
    if folder is None:
        raise StartupError(
            f"no pg_dump and pg_restore of PostgreSQL {major} or newer were found",
            service=SERVICE,
            tenant=tenant,
            hint=f"install postgresql-client-{major} or give --postgres-bin a folder that has them",
        )
    return folder


def save(folder: Path, access: PostgresAccess, info: str, target: Path, masking: Masking | None, tenant: str) -> None:
    """The tenant's database (``access``) into ``target``; masked in a scratch database first when asked."""
    if masking is None:
        dump.save(folder, access, target, tenant=tenant, what="save the snapshot")
        return
    plain = target.with_name(f"{target.name}.plain")
    scratch = replace(access, database=f"{access.database}__masking_{secrets.token_hex(3)}")
    admin.create_database(info, name=scratch.database, owner=access.user)
    try:
        dump.save(folder, access, plain, tenant=tenant, what="save the snapshot")
        dump.load(folder, scratch, plain, tenant=tenant, what="mask the snapshot", hint=HINT)
        _mask(scratch, masking)
        dump.save(folder, scratch, target, tenant=tenant, what="save the masked snapshot")
    finally:
        plain.unlink(missing_ok=True)
        admin.drop_database(info, scratch.database)


def _mask(scratch: PostgresAccess, masking: Masking) -> None:
    """Every text column of a masked name, in every table of the tenant's schemas, masked in place."""
    import psycopg
    from psycopg import sql

    query = (
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE' "
        "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND c.data_type IN ('text', 'character varying', 'character')"
    )
    with psycopg.connect(scratch.conninfo) as conn:
        for schema, table, column in conn.execute(query).fetchall():
            if not masking.masks(column):
                continue
            name = sql.Identifier(column).as_string(conn)
            expression = sql.SQL(sql_expression(kind_of(column), name))  # ours, not input
            conn.execute(
                sql.SQL("UPDATE ONLY {}.{} SET {} = {}").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column), expression
                )
            )


def load(
    folder: Path,
    access: PostgresAccess,
    info: str,
    source: Path,
    tenant: str,
    replacing: Replacing | None,
) -> None:
    """``source`` loaded into a staging database of this load's own (its grants and the role's settings
    put back as the administrator: a forged file's SQL ran as the tenant's role; another tenant's
    identity replaced there as the tenant's role), then swapped in for the tenant's database."""
    staging = replace(access, database=f"{access.database}__load_{secrets.token_hex(3)}")  # this load's own
    admin.create_database(info, name=staging.database, owner=access.user)
    try:
        dump.load(folder, staging, source, tenant=tenant, what="load the snapshot", hint=HINT)
        admin.secure(info, database=staging.database, role=access.user, password=access.password)
        if replacing is not None:
            identity.replace_values(staging.conninfo, replacing)
    except BaseException:
        admin.drop_database(info, staging.database)
        raise
    admin.swap_in(info, staging=staging.database, target=access.database)
