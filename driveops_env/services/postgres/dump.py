"""A tenant database's migrated state as a file: ``pg_dump``'s custom format, written and read by
binaries whose major version is at least the server's (older ones refuse a newer server), logged in as
the tenant's role (the objects the load makes are the tenant's), without owners or grants (every
tenant's role differs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from driveops_env import migrate
from driveops_env.errors import StartupError
from driveops_env.services.postgres.access import PostgresAccess

SUFFIX = ".pgdump"
_BINARIES = ("pg_dump", "pg_restore")


def server_major(info: str) -> int:
    import psycopg

    with psycopg.connect(info, autocommit=True) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) // 10000 if row else 0


def tools(configured: Path | None, wanted: int) -> Path | None:
    """A folder with pg_dump and pg_restore of major version ``wanted`` or newer: the configured server
    binaries, Debian's newest, or those on PATH; None when none is new enough."""
    found = shutil.which("pg_dump")
    candidates = [configured] if configured is not None else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_folder_major, reverse=True)
    candidates += [Path(found).resolve().parent] if found else []
    for folder in candidates:
        if all((folder / name).is_file() for name in _BINARIES) and _major(folder) >= wanted:
            return folder
    return None


def _folder_major(folder: Path) -> int:
    return int(folder.parent.name) if folder.parent.name.isdigit() else 0


def _major(folder: Path) -> int:
    try:
        out = subprocess.run([str(folder / "pg_dump"), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return 0
    match = re.search(r"\) (\d+)", out.stdout)
    return int(match.group(1)) if match else 0


MIGRATED_HINT = "run up --recreate; with migrate_per_tenant = true the command runs for each tenant instead"


def save(
    folder: Path, access: PostgresAccess, target: Path, *, tenant: str, what: str = "save the migrated state"
) -> None:
    """``access``'s database written to ``target`` (0600), whole or not at all."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    argv = [str(folder / "pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}"]
    _run(argv, access, what, tenant=tenant)
    os.chmod(partial, 0o600)
    os.replace(partial, target)


def load(
    folder: Path,
    access: PostgresAccess,
    source: Path,
    *,
    tenant: str,
    what: str = "load the migrated state",
    hint: str = MIGRATED_HINT,
) -> None:
    """``source`` loaded into ``access``'s (empty) database, in one transaction."""
    argv = [str(folder / "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    _run([*argv, f"--dbname={access.database}", str(source)], access, f"{what} from {source}", tenant=tenant, hint=hint)


def _run(argv: list[str], access: PostgresAccess, what: str, *, tenant: str, hint: str = MIGRATED_HINT) -> None:
    env = migrate.environment(access.env("plain"))  # the password through the environment, never argv
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise StartupError(
            f"could not {what}: {Path(argv[0]).name} exited with {done.returncode}",
            service="postgres",
            tenant=tenant,
            hint=hint,
            log_tail=done.stderr.replace(access.password, "****")[-2000:],
        )
