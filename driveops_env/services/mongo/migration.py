"""A tenant's MongoDB migrations (``migrate_mongo``: migrate-mongo, say): the command runs once per
change of the history, for the first tenant that needs it, with the tenant's values (its
``DRIVEOPS_MONGO_URI`` and ``DRIVEOPS_MONGO_DATABASE``); what it made (every collection, its indexes,
its documents, the tool's changelog) is exported as MongoDB Extended JSON into the cache
(:mod:`driveops_env.migrated`) and loaded into every other tenant.  The state is part of the seed a
reset or a test's restore refills, so a restore gives the migrated and seeded database.  The export
names no server version: documents and indexes load into any server of the protocol."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from driveops_env import envdirs, envvars, files, migrate, migrated
from driveops_env.errors import StartupError, TemplateError
from driveops_env.services.base import Work
from driveops_env.services.mongo import admin
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.mongo.seeds import MongoCollection, parse_collection
from driveops_env.settings import Settings

SERVICE = "mongo"
SUFFIX = ".mongo.json"


def kept_of(settings: Settings, argv: tuple[str, ...], tenant: str) -> tuple[migrated.Kept, dict[str, Any]]:
    """The key's state in the cache, and its manifest (with ``migrate_per_tenant``, the tenant's own)."""
    migration = migrate.of(settings, argv)
    inputs = migrate.files_of(migration)
    key = migrate.key_of(migration.command, inputs) + (f".{tenant}" if settings.migrate_per_tenant else "")
    kept = migrated.Kept(migrated.folder(settings.cache_dir, SERVICE), key, SUFFIX)
    scope = tenant if settings.migrate_per_tenant else ""
    return kept, migrated.manifest_of(migration.command, migration.cwd, inputs, scope)


def run(settings: Settings, argv: tuple[str, ...], work: Work, found: MongoAccess, *, append: bool = False) -> None:
    """``found``'s database migrated: the key's state loaded, or the command run and its state saved."""
    migration = migrate.of(settings, argv)
    log = migrate.log_of(settings, SERVICE, work.tenant.slug)
    values = envvars.identity(settings.name, work.tenant) | found.env("plain")
    tenant, secret = work.tenant.slug, found.password

    def command() -> float:
        return migrate.run(
            migration, values, log, service=SERVICE, tenant=tenant, secret=secret, append=append, cancel=work.cancel
        )

    kept, manifest = kept_of(settings, argv, work.tenant.slug)
    store = migrated.Tenant(
        work.tenant.slug, command, lambda target: export(found, target), lambda source: load(found, source), log
    )
    migrated.once(kept, manifest, store, service=SERVICE, timeout=settings.startup_timeout, cancel=work.cancel)
    _settle(settings, kept, work.tenant.slug)


def _here(settings: Settings, tenant: str) -> Path:
    """The state a tenant's restores refill, in the environment's directory: the key it was set up
    (or last migrated) with, whatever the cache or the history on disk hold later."""
    return envdirs.env_dir(settings, settings.name) / "migrated" / f"{SERVICE}.{tenant}.json"


def _settle(settings: Settings, kept: migrated.Kept, tenant: str) -> None:
    target = _here(settings, tenant)
    target.parent.mkdir(mode=0o700, exist_ok=True)
    files.write_private(target, files.read_bytes(kept.state, "migrated state", limit=files.limit_bytes()))


def seed(settings: Settings, tenant: str, collections: Iterable[MongoCollection]) -> Any:
    """The seed a restore refills: the tenant's migrated state (once set up) under the seed files' collections."""
    here = _here(settings, tenant)
    state = read(here, tenant) if here.is_file() else ()
    by_name = {c.name: c for c in state}
    for extra in collections:
        before = by_name.get(extra.name)
        by_name[extra.name] = (
            extra
            if before is None
            else replace(extra, indexes=before.indexes + extra.indexes, documents=before.documents + extra.documents)
        )
    return tuple(by_name.values())


def export(found: MongoAccess, target: Path) -> None:
    """Every collection of ``found``'s database, its indexes and documents, as canonical Extended JSON."""
    files.write_private(target, json.dumps(exported(found)).encode())


def exported(found: MongoAccess) -> dict[str, Any]:
    """Every collection of ``found``'s database as the seed files write one (canonical Extended JSON)."""
    from bson import json_util

    conn = admin.client(found)
    state: dict[str, Any] = {}
    try:
        database = conn[found.database]
        for name in sorted(database.list_collection_names()):
            found_indexes = database[name].index_information().items()
            documents = json_util.dumps(list(database[name].find({})), json_options=json_util.CANONICAL_JSON_OPTIONS)
            indexes = [index_of(name, n, info) for n, info in found_indexes if n != "_id_"]
            state[name] = {"indexes": indexes, "documents": json.loads(documents)}  # the seed files' form
    finally:
        conn.close()
    return state


def index_of(collection: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """An index as the seed files write it: keys, name, unique (what FerretDB has); anything more
    (a TTL, a partial filter, text weights) cannot be carried to the other tenants, and is said."""
    extra = sorted(set(info) - {"key", "v", "unique", "ns"})
    if extra:
        raise StartupError(
            f"index {name!r} of collection {collection!r} has option(s) {', '.join(extra)} the migrated state "
            "cannot carry to the other tenants",
            service=SERVICE,
            hint="keep to keys, name and unique in migrations (what FerretDB supports as well)",
        )
    return {"keys": dict(info["key"]), "name": name, "unique": bool(info.get("unique", False))}


def read(source: Path, tenant: str) -> tuple[MongoCollection, ...]:
    raw = files.load_json(source, "migrated state", limit=files.limit_bytes())
    if not isinstance(raw, dict):
        raise TemplateError(f"{source}: not a migrated state", tenant=tenant, hint="remove it: the next up rebuilds it")
    return tuple(parse_collection(source.with_name(f"{name}.json"), value, tenant) for name, value in raw.items())


def load(found: MongoAccess, source: Path) -> None:
    admin.seed(found, read(source, found.database), tenant=found.database)


def apply(settings: Settings, argv: tuple[str, ...], work: Work, found: MongoAccess, scratch: MongoAccess) -> float:
    """``driveops-env migrate``: the command on the tenant's database (its data kept), then the new
    key's state built in ``scratch`` (from the previous key's when the history grew) for the restores."""
    migration = migrate.of(settings, argv)
    log = migrate.log_of(settings, SERVICE, work.tenant.slug)
    values = envvars.identity(settings.name, work.tenant) | found.env("plain")
    took = migrate.run(
        migration, values, log, service=SERVICE, tenant=work.tenant.slug, secret=found.password, cancel=work.cancel
    )
    migrate.note(log, f"pending migrations applied to {found.database} in {took:.2f} s")
    kept, _ = kept_of(settings, argv, work.tenant.slug)
    if kept.ready():
        _settle(settings, kept, work.tenant.slug)
    else:
        admin.drop_all(scratch)
        run(settings, argv, work, scratch, append=True)
    return took
