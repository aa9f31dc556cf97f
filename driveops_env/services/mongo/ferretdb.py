"""FerretDB 1.x, the MongoDB-protocol server of the local backend where no ``mongod`` is installed.

Built once from the Go module through the module proxy (no download site is reachable here); a plain
``go install`` builds a binary that panics at start-up because ``build/version/version.txt`` is
generated, so the module source is copied, the version file written, and ``go build`` run.

Handler: PostgreSQL.  FerretDB 1.x authenticates by passing the client's user name and password
through to PostgreSQL (mechanism PLAIN), so each tenant's MongoDB user is a PostgreSQL role of its
own.  FerretDB itself restricts nothing (a user lists the collections of any database the server has
cached), so every tenant has its own FerretDB, over a PostgreSQL database of its own that no other
role can connect to, in both isolation modes.  (The SQLite handler authenticates nothing.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import toolchains
from driveops_env.errors import MissingDependencyError

MODULE = "github.com/FerretDB/FerretDB"
DEFAULT_VERSION = "v1.24.2"


def binary_path(cache: Path, version: str) -> Path:
    return cache / "ferretdb" / f"ferretdb-{version}"


def build(cache: Path, version: str, progress: Callable[[str], None]) -> Path:
    """The FerretDB binary, built once into the cache."""
    target = binary_path(cache, version)
    if target.exists():
        return target
    go, go_env = toolchains.find_go(
        "FerretDB (the local backend's MongoDB)", "mongo", "or use --backend docker, or leave mongo out of --services"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if target.exists():
            return target
        progress(f"building FerretDB {version} from the Go module proxy (once, about 1-2 min)")
        env = {**go_env, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        work = _source(go, env, version, target.parent)
        partial = target.with_name(target.name + ".partial")
        try:
            _run(
                go,
                ["build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
                env,
                work,
                f"building FerretDB {version} failed",
                "FerretDB 1.24 needs Go 1.24 or newer",
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        partial.rename(target)
    return target


def _source(go: Path, env: dict[str, str], version: str, folder: Path) -> Path:
    """The module's source, from the Go module proxy, copied where it can be built: writable, with the
    version file a plain ``go install`` lacks (its binary panics at start-up without it)."""
    out = _run(
        go,
        ["mod", "download", "-json", f"{MODULE}@{version}"],
        env,
        folder,
        f"go mod download {MODULE}@{version} failed",
        "check that the Go module proxy is reachable (GOPROXY)",
    )
    work = folder / f"src-{version}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(Path(json.loads(out)["Dir"]), work)
    for root, dirs, names in os.walk(work):  # the module cache is read-only
        for name in dirs + names:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    work.chmod(0o755)
    (work / "build" / "version" / "version.txt").write_text(version + "\n")
    return work


def _run(go: Path, args: list[str], env: dict[str, str], cwd: Path, failed: str, hint: str) -> str:
    result = subprocess.run([str(go), *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        raise MissingDependencyError(
            failed, service="mongo", hint=hint, log_tail=(result.stdout + result.stderr)[-3000:]
        )
    return result.stdout


class Reader:
    """Reads what MongoDB databases hold where FerretDB keeps them, over one PostgreSQL connection kept
    open (a test's restore then costs a query, not a login); psycopg serialises its use by threads."""

    def __init__(self, admin_info: str) -> None:
        self.admin_info = admin_info
        self._conn: Any = None
        self._lock = threading.Lock()  # one connection, made by one thread

    def fingerprint(self, schema: str) -> str:
        """A schema of tables with one JSONB document a row: each table's row count and the newest
        transaction that wrote one of its rows (an insert or an update writes a row with a newer id, a
        delete lowers the count): it changes with every committed write, and reads no document."""
        import psycopg
        from psycopg import sql

        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self.admin_info, autocommit=True)
            conn = self._conn
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1",
                (schema,),
            ).fetchall()
        ]
        if not tables:
            return ""
        parts = [
            sql.SQL("SELECT {name}, count(*), coalesce(max(xmin::text::bigint), 0) FROM {table}").format(
                name=sql.Literal(table), table=sql.Identifier(schema, table)
            )
            for table in tables
        ]
        rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
        return ";".join(f"{name}:{count}:{total}" for name, count, total in rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def pg_database(tenant: str) -> str:
    """The PostgreSQL database a tenant's FerretDB keeps every MongoDB database in (as schemas)."""
    return f"ferretdb_{tenant}"


def probe_role(tenant: str) -> str:
    return f"driveops_probe_{tenant.replace('-', '_')}"


def drop_postgres(admin_info: str, *, tenant: str, owner: str) -> None:
    """What ``prepare_postgres`` made for a tenant, gone from a PostgreSQL server that stays (shared)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_info, autocommit=True) as conn:
        database = sql.Identifier(pg_database(tenant))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        for role in (owner, probe_role(tenant)):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def server_argv(binary: Path, *, port: int, pg_host: str, pg_port: int, database: str) -> list[str]:
    # No credentials in the URL: anonymous clients must get nothing (FerretDB would use the URL's).
    return [
        str(binary),
        "--handler=postgresql",
        f"--postgresql-url=postgres://{pg_host}:{pg_port}/{database}",
        f"--listen-addr=127.0.0.1:{port}",
        "--state-dir=-",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]


def prepare_postgres(admin_info: str, *, database: str, owner: tuple[str, str], probe: tuple[str, str]) -> None:
    """The tenant's own PostgreSQL database for its FerretDB, owned by the tenant's MongoDB user (a
    login role, which may create schemas = MongoDB databases there and nowhere else), and a probe role
    that may only connect; PUBLIC is revoked.  No other tenant's role can connect to it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_info, autocommit=True) as conn:
        for role, password in (owner, probe):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner[0])))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(probe[0]))
        )
