"""A tenant's PostgreSQL database in a snapshot: ``pg_dump``'s custom format as the tenant's role,
without owners or grants (the loading tenant's role owns what is loaded).  Masked: the dump loaded
into a scratch database, the masked columns (:mod:`driveops_env.masking`) updated in SQL, dumped
again.  Loaded under a staging name, then swapped in for the tenant's database: a load that fails
leaves the database as it was."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from driveops_env.errors import StartupError
from driveops_env.masking import Masking, Replacing, kind_of, sql_expression
from driveops_env.services.postgres import admin, dump
from driveops_env.services.postgres.access import PostgresAccess
from driveops_env.state import ServiceRecord

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
    scratch = replace(access, database=f"{access.database}__masking")
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
                sql.SQL("UPDATE {}.{} SET {} = {}").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column), expression
                )
            )


CASTS = {"uuid": "uuid", "text": "text", "character varying": "varchar"}  # the column types replaced in


def _replace(info: str, replacing: Replacing) -> None:
    """Whole values of every uuid and text column replaced, as the server's administrator with the
    foreign keys' triggers off for the session (a key and what refers to it change together)."""
    import psycopg
    from psycopg import sql

    query = (
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE' "
        "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.data_type = ANY(%s)"
    )
    with psycopg.connect(info) as conn:
        conn.execute("SET session_replication_role = replica")
        for schema, table, column, kind in conn.execute(query, (list(CASTS),)).fetchall():
            target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            update = sql.SQL("UPDATE {} SET {} = CAST(%s AS {}) WHERE {}::text = %s").format(
                target, sql.Identifier(column), sql.SQL(CASTS[kind]), sql.Identifier(column)
            )
            for old, new in replacing.values.items():
                if kind != "uuid" or (_is_uuid(old) and _is_uuid(new)):
                    conn.execute(update, (new, old))


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def load(
    folder: Path,
    access: PostgresAccess,
    info: str,
    source: Path,
    tenant: str,
    replacing: Replacing | None,
    server: ServiceRecord,
) -> None:
    """``source`` loaded into a staging database (another tenant's identity replaced there), then
    swapped in for the tenant's database."""
    staging = replace(access, database=admin.staging_name(access.database))
    admin.create_database(info, name=staging.database, owner=access.user)
    try:
        dump.load(folder, staging, source, tenant=tenant, what="load the snapshot", hint=HINT)
        if replacing is not None:
            _replace(admin.admin_conninfo(server, staging.database), replacing)
    except BaseException:
        admin.drop_database(info, staging.database)
        raise
    admin.swap_in(info, staging=staging.database, target=access.database)
