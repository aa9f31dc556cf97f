"""Another tenant's identity in a loaded snapshot (``snapshot load --as gamma``): whole values of the
file's tenant's id, slug and name replaced by the loading tenant's in every uuid and text column,
as the tenant's own role (never as the administrator: the database was made by the file's SQL, whose
triggers and functions must not run with more rights than the tenant has).  A key and the rows that
refer to it change in one transaction whose foreign keys are checked at its end (made deferrable for
it, as they were after)."""

from __future__ import annotations

import uuid
from typing import Any

from driveops_env.masking import Replacing

CASTS = {"uuid": "uuid", "text": "text", "character varying": "varchar"}  # the column types replaced in
COLUMNS = (
    "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
    "JOIN information_schema.tables t USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE' "
    "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.data_type = ANY(%s)"
)
FOREIGN_KEYS = (
    "SELECT n.nspname, c.relname, con.conname FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE con.contype = 'f' AND NOT con.condeferrable "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)


def replace_values(conninfo: str, replacing: Replacing) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        keys = conn.execute(FOREIGN_KEYS).fetchall()
        _deferrable(conn, keys, "DEFERRABLE INITIALLY DEFERRED")
        try:
            with conn.transaction():
                conn.execute("SET CONSTRAINTS ALL DEFERRED")
                _update(conn, replacing)
        finally:
            _deferrable(conn, keys, "NOT DEFERRABLE")


def _deferrable(conn: Any, keys: list[tuple[str, str, str]], how: str) -> None:
    from psycopg import sql

    for schema, table, name in keys:
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} ALTER CONSTRAINT {} " + how).format(  # how: ours, one of two
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(name)
            )
        )


def _update(conn: Any, replacing: Replacing) -> None:
    from psycopg import sql

    for schema, table, column, kind in conn.execute(COLUMNS, (list(CASTS),)).fetchall():
        target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        update = sql.SQL("UPDATE ONLY {} SET {} = CAST(%s AS {}) WHERE {}::text = %s").format(
            target, sql.Identifier(column), sql.SQL(CASTS[kind]), sql.Identifier(column)
        )
        for old, new in replacing.values.items():
            if kind != "uuid" or (_is_uuid(old) and _is_uuid(new)):
                conn.execute(update, (new, old))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
