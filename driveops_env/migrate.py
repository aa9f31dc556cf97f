"""A team's migrations: a command (an argv list, never a shell string) a store's unit runs for a
tenant after the tenant's database exists and before the seed's data, with the store's values in the
environment, its output kept in a log of the environment's directory.

What decides whether the migrations changed is the content of ``migrate_inputs`` and the command: the
key :func:`key` returns is part of the environment's fingerprint, so an ``up`` with unchanged
migrations reuses the running environment and a changed file starts it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from driveops_env import envdirs, files, process, readiness
from driveops_env.errors import ReadinessTimeoutError, StartupError, UsageError
from driveops_env.settings import Settings

# what the command does not inherit: the tool's own options and values, and whatever would point a
# client at another database (libpq's PG* variables, a DATABASE_URL): the store's values stand alone
_DROPPED_PREFIXES = ("DRIVEOPS_", "PG")
_DROPPED = ("DATABASE_URL",)
# what a migration tool writes beside the history when it runs it: not part of the key
_CACHE_DIR = "__pycache__"
_CACHED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Migration:
    """A store's migration command, where it runs, what decides its key and how long it may take."""

    argv: tuple[str, ...]
    cwd: Path
    inputs: tuple[Path, ...]
    timeout: float
    limit: int = files.limit_bytes()  # the largest input file read for the key

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def of(settings: Settings, argv: tuple[str, ...]) -> Migration:
    """The migration a store's option names, with the environment's folder, inputs and time bound."""
    return Migration(
        argv, settings.migrate_dir, settings.migrate_inputs, settings.startup_timeout, settings.input_limit
    )


def log_of(settings: Settings, service: str, tenant: str) -> Path:
    """Where a tenant's migration of ``service`` writes: ``<env dir>/logs/migrate.<service>.<tenant>.log``."""
    return envdirs.log_path(envdirs.env_dir(settings, settings.name), f"migrate.{service}.{tenant}")


def check(migration: Migration, option: str) -> None:
    """Bad input said before anything starts (exit 2): a folder or an input that is not there."""
    if not migration.cwd.is_dir():
        raise UsageError(f"{option}: the folder it runs in, {migration.cwd}, does not exist", hint="set migrate_dir")
    for path in migration.inputs:
        if not path.exists():
            raise UsageError(
                f"migrate_inputs: {path} does not exist",
                hint="name the files and folders of your migration history, relative to where the option is set",
            )


def key(migration: Migration) -> str:
    """The content hash of the command and of every file under ``inputs`` (names and bytes), but what
    tools write beside a history when they run it (Python's byte code: Alembic imports the revisions).
    Regular files only, each at most the input limit (exit 2 otherwise)."""
    return key_of(migration.command, files_of(migration))


def key_of(command: str, found: Mapping[str, str]) -> str:
    """The key of a command and its inputs' hashes (:func:`files_of`)."""
    digest = hashlib.sha256(command.encode())
    for name, sha in sorted(found.items()):
        digest.update(name.encode())
        digest.update(bytes.fromhex(sha))
    return digest.hexdigest()[:16]


def files_of(migration: Migration) -> dict[str, str]:
    """Every input file's name (relative to where the command runs, when it is inside) and SHA-256."""
    found: dict[str, str] = {}
    for root in migration.inputs:
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in filter(_written_by_hand, paths):
            name = str(path.relative_to(migration.cwd) if path.is_relative_to(migration.cwd) else path)
            found[name] = hashlib.sha256(files.read_bytes(path, "migration input", limit=migration.limit)).hexdigest()
    return found


def _written_by_hand(path: Path) -> bool:
    return path.suffix not in _CACHED_SUFFIXES and _CACHE_DIR not in path.parts


def environment(values: Mapping[str, str], inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (``inherited``: os.environ) without what could point the command
    elsewhere, and the store's values over it."""
    found = os.environ if inherited is None else inherited
    kept = {k: v for k, v in found.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    return kept | dict(values)


def run(
    migration: Migration,
    values: Mapping[str, str],
    log: Path,
    *,
    service: str,
    tenant: str,
    secret: str,
    append: bool = False,
    cancel: threading.Event | None = None,
) -> float:
    """Run the command for one tenant's store; its output goes to ``log`` (0600, a link refused;
    ``append``: after what is there).
    Returns how long it took; a command that is not there, fails or runs past its time is an error
    naming the tenant, the command, its exit code and its last lines (``secret`` masked there).
    Whatever it left running in its process group is ended with it, and so is the command when
    ``cancel`` is set (Ctrl-C during ``up``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | os.O_NOFOLLOW
    fd = os.open(log, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        try:
            child = subprocess.Popen(
                list(migration.argv),
                cwd=migration.cwd,
                env=environment(values),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its children end with it
            )
        except OSError as exc:
            raise StartupError(
                f"the migration command {migration.command!r} cannot run: {exc.strerror}",
                service=service,
                tenant=tenant,
                hint="install it, or give its path (migrate options take an argv list)",
            ) from None
        try:
            return _wait(child, migration, log, service=service, tenant=tenant, secret=secret, cancel=cancel)
        finally:
            _kill(child)


class _Running(Exception):
    """The command has not ended yet (what the wait polls)."""


def _ended(child: subprocess.Popen[bytes]) -> int:
    code = child.poll()
    if code is None:
        raise _Running
    return code


def _wait(
    child: subprocess.Popen[bytes],
    migration: Migration,
    log: Path,
    *,
    service: str,
    tenant: str,
    secret: str,
    cancel: threading.Event | None,
) -> float:
    started = time.monotonic()
    try:
        code = readiness.wait_until(
            lambda: _ended(child),
            timeout=migration.timeout,
            service=service,
            tenant=tenant,
            cancel=cancel,
            max_interval=0.1,
        )
    except ReadinessTimeoutError:
        raise StartupError(
            f"the migration {migration.command!r} did not end within {migration.timeout:g} s",
            service=service,
            tenant=tenant,
            hint="raise --startup-timeout, or look for a migration that waits on a lock",
            log_tail=_masked(process.log_excerpt(log), secret),
        ) from None
    if code != 0:
        raise StartupError(
            f"the migration {migration.command!r} exited with {code}",
            service=service,
            tenant=tenant,
            hint="fix the migration and run up again (its last lines are below; the environment's logs go with it)",
            log_tail=_masked(process.log_excerpt(log), secret),
        )
    return time.monotonic() - started


def _masked(text: str, secret: str) -> str:
    return text.replace(secret, "****") if secret else text


def _kill(child: subprocess.Popen[bytes]) -> None:
    """The command's process group ended: its own process (past its time) and what it left behind (a
    group outlives its leader only while a member runs, so its id is still the command's)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def note(log: Path, text: str) -> None:
    """A line of driveops-env's own at the end of a tenant's migration log (0600, a link refused)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(f"driveops-env: {text}\n")
