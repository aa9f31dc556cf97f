"""PostgreSQL as its administrator: connection strings, the readiness probe, a tenant's role and
database, seed templates, clones, drops.

Isolation rests on privileges, the same on every backend: every database is revoked from PUBLIC and
owned by its tenant's role, so a tenant's role can connect to its own database only.  In dedicated
mode the other tenants' servers do not even know the role.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from driveops_env.services.servers import Explanation
from driveops_env.state import ServiceRecord

if TYPE_CHECKING:
    import psycopg

SUPERUSER = "postgres"


_REFUSED = re.compile(r"password authentication failed|no pg_hba\.conf entry", re.I)
_MISSING = re.compile(r"(database|role) \"[^\"]*\" does not exist", re.I)


def explain(error: str) -> Explanation | None:
    """What the server's (or psycopg's) error means: a refused login or a missing database or role,
    which no wait changes."""
    if _REFUSED.search(error):
        return Explanation(
            "authentication failed: the server refused the user or its password",
            "the credentials are not the environment's: re-read them with `driveops-env env`",
            permanent=True,
        )
    missing = _MISSING.search(error)
    if missing is not None:
        return Explanation(
            f"missing: {missing.group(0)}", "`driveops-env reset --tenant <slug>` re-creates it", permanent=True
        )
    return None


def conninfo(host: str, port: int, user: str, password: str | None, dbname: str) -> str:
    parts = [f"host={host}", f"port={port}", f"user={user}", f"dbname={dbname}", "connect_timeout=5"]
    if password:
        parts.append(f"password={password}")
    return " ".join(parts)


def admin_conninfo(server: ServiceRecord, database: str = "postgres") -> str:
    """How driveops-env logs in to a PostgreSQL server it started: as its superuser, over TCP."""
    return conninfo(server.host, server.port, server.admin_user, server.admin_password, database)


def probe(info: str) -> None:
    """Readiness: a real query."""
    import psycopg

    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute("SELECT 1").fetchone()


def set_superuser_password(info: str, password: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(password)))
        for database in ("postgres", "template1"):
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))


def create_tenant_database(admin_info: str, *, role: str, password: str, database: str) -> None:
    """Role ``role`` (login, no other rights) owning ``database``, which PUBLIC cannot connect to."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_info, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )


def seed_template_name(database: str) -> str:
    return f"{database}__seed"


def save_seed_template(admin_info: str, database: str, source: str | None = None) -> None:
    """Keep the freshly seeded database (or ``source``, a migrated clone of its template) as its
    template: ``reset`` (and per-test isolation) clone it back with ``CREATE DATABASE ... TEMPLATE``,
    which costs milliseconds instead of a re-seed."""
    import psycopg
    from psycopg import sql

    template, database = seed_template_name(database), source or database
    with psycopg.connect(admin_info, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone():
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(template)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(template), sql.Identifier(database))
        )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(template)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(sql.Identifier(template))
        )


def clone_from_template(admin_info: str, *, template: str, target: str, owner: str) -> None:
    """``target`` replaced by a clone of ``template``: the clone is made under a staging name first, so
    a clone that fails (a full disk) leaves ``target`` as it was, and a staging database a later
    clone replaces.  Milliseconds for a small database (the default WAL_LOG strategy)."""
    import psycopg

    staging = staging_name(target)
    with psycopg.connect(admin_info, autocommit=True) as conn:
        _create_clone(conn, template=template, name=staging, owner=owner)
        _swap(conn, staging, target)


def secure(admin_info: str, *, database: str, role: str, password: str) -> None:
    """What a loaded file's SQL (run as ``role``) may have changed put back: the database reached by
    ``role`` only, no settings of its own or of the role, the role's password the environment's."""
    import psycopg
    from psycopg import sql

    name, owner = sql.Identifier(database), sql.Identifier(role)
    with psycopg.connect(admin_info, autocommit=True) as conn:
        grantees = conn.execute(
            "SELECT DISTINCT a.grantee::regrole::text FROM pg_database d, aclexplode(d.datacl) a "
            "WHERE d.datname = %s AND a.grantee <> 0 AND a.grantee <> d.datdba",
            (database,),
        ).fetchall()
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        for (grantee,) in grantees:
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(name, sql.Identifier(grantee)))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, owner))
        conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(name))
        conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(owner))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(owner, sql.Literal(password)))


def swap_in(admin_info: str, *, staging: str, target: str) -> None:
    """``target`` replaced by the database ``staging`` (renamed; the sessions on ``target`` ended)."""
    import psycopg

    with psycopg.connect(admin_info, autocommit=True) as conn:
        _swap(conn, staging, target)


def _swap(conn: psycopg.Connection[Any], staging: str, target: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(target)))


def create_database(admin_info: str, *, name: str, owner: str) -> None:
    """An empty database ``name`` (one of that name before is dropped first) only ``owner`` reaches."""
    create_clone(admin_info, template="template0", name=name, owner=owner)


def create_clone(admin_info: str, *, template: str, name: str, owner: str) -> None:
    """A new database ``name`` cloned from ``template`` (one of that name before is dropped first)."""
    import psycopg

    with psycopg.connect(admin_info, autocommit=True) as conn:
        _create_clone(conn, template=template, name=name, owner=owner)


def _create_clone(conn: psycopg.Connection[Any], *, template: str, name: str, owner: str) -> None:
    """The clone only its owner (and the administrator) can connect to."""
    from psycopg import sql

    database, role = sql.Identifier(name), sql.Identifier(owner)
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(database, sql.Identifier(template), role))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role))


def databases_with_prefix(admin_info: str, prefix: str) -> list[str]:
    import psycopg

    with psycopg.connect(admin_info, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s", (prefix, prefix)
        ).fetchall()
    return [str(row[0]) for row in rows]


def staging_name(database: str) -> str:
    return f"{database}__next"


def restore_from_seed_template(admin_info: str, *, database: str, owner: str) -> None:
    """``database`` back to its seeded state, from the template saved at ``up``."""
    clone_from_template(admin_info, template=seed_template_name(database), target=database, owner=owner)


def drop_tenant(admin_info: str, *, database: str, role: str) -> None:
    """A tenant's databases (its own, its seed template, test copies: all it owns) and its role, gone
    from a shared server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_info, autocommit=True) as conn:
        owned = conn.execute(
            "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s "
            "OR d.datname = %s",
            (role, seed_template_name(database)),
        ).fetchall()
        for (name,) in owned:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def drop_database(admin_info: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_info, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
