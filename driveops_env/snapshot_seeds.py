"""Tenants started from a snapshot (``up --snapshot beta=beta.snap``, the plugin's
``--driveops-snapshot``): the file's data instead of the seed, and what a reset or a test's restore
goes back to.

Before anything starts, each file is read whole and checked (its tenant is one of the environment's,
its migrations are the environment's, it holds no store the environment does not run): bad input,
exit 2.  Once the tenants are set up, each file's parts are kept in the environment's directory
(``snapshot/<service>.<tenant>``, 0600) and loaded into the tenant's stores; a service whose restores
refill from its seed renders the seed from its kept part (:func:`part_of`), one that clones a template
makes the template from the loaded data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from driveops_env import envdirs, snapshot
from driveops_env.errors import UsageError
from driveops_env.services.capabilities import Migrates, Snapshots
from driveops_env.settings import Settings

FOLDER = "snapshot"


def files_of(settings: Settings) -> dict[str, Path]:
    """The ``snapshot`` option's ``slug=FILE`` entries, by tenant."""
    found: dict[str, Path] = {}
    for entry in settings.snapshot:
        slug, sep, file = entry.partition("=")
        if not sep or not slug.strip() or not file.strip():
            raise UsageError(f"snapshot: {entry!r} is not TENANT=FILE", hint="e.g. --snapshot beta=beta.snap")
        found[slug.strip()] = Path(file.strip()).expanduser()
    return found


def check(settings: Settings, tenants: Iterable[str], services: Mapping[str, Any]) -> dict[str, str]:
    """Every file read and checked before anything starts; their hashes (the environment's spec)."""
    files, known = files_of(settings), list(tenants)
    migrations = {k: v for s in services.values() if isinstance(s, Migrates) for k, v in s.migration_key().items()}
    runs = {n for n, s in services.items() if isinstance(s, Snapshots)}
    hashes = {}
    for slug, file in files.items():
        if slug not in known:
            raise UsageError(f"snapshot: tenant {slug!r} is not one of {', '.join(known)}", hint="add it to --tenants")
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".snapshot-", dir=settings.cache_dir) as folder:
            manifest, _ = snapshot.read(file, Path(folder))
        if manifest.migrations != dict(sorted(migrations.items())):
            raise UsageError(
                f"snapshot {file} was saved with other migrations than this environment's",
                hint="start on the history it was saved with, or load it later with `snapshot load --force`",
            )
        extra = sorted(set(manifest.parts) - runs)
        if extra:
            raise UsageError(
                f"snapshot {file} holds data of {', '.join(extra)}, which is not run", hint="add it to --services"
            )
        hashes[slug] = snapshot.digest_of(file)[1][:16]
    return hashes


def keep(settings: Settings, slug: str, parts: Mapping[str, Path]) -> dict[str, Path]:
    """The parts copied into the environment's directory, where :func:`part_of` finds them."""
    folder = envdirs.env_dir(settings, settings.name) / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    kept = {}
    for service, part in parts.items():
        target = folder / f"{service}.{slug}"
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, part.open("rb") as data:
            shutil.copyfileobj(data, out)
        kept[service] = target
    return kept


def part_of(settings: Settings, service: str, slug: str) -> Path | None:
    """The kept part a tenant was started from, for a service's seed (None: the seed files; also when
    the environment was not started from a file for that tenant, whatever an earlier run left)."""
    if not any(entry.partition("=")[0].strip() == slug for entry in settings.snapshot):
        return None
    found = envdirs.env_dir(settings, settings.name) / FOLDER / f"{service}.{slug}"
    return found if found.is_file() else None


def password_of(secret: str, username: str) -> str:
    """A user's password the snapshot could not carry: the same for the same environment (its secret)."""
    return hashlib.sha256(f"{secret}\0{username}".encode()).hexdigest()[:24]
