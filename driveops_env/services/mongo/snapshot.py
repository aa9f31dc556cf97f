"""A tenant's MongoDB database in a snapshot: every collection with its indexes and documents, as
canonical Extended JSON (the form of the migrated state, :mod:`.migration`), masked field by field
when asked.  Loaded first into a staging database (what the server refuses, a duplicate of a unique
index, is found there, the tenant's database untouched), then into the tenant's, emptied first."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from driveops_env import files
from driveops_env.masking import Masking
from driveops_env.services.mongo import admin, migration
from driveops_env.services.mongo.access import MongoAccess


def save(found: MongoAccess, target: Path, masking: Masking | None) -> None:
    state = migration.exported(found)
    if masking is not None:
        state = {n: {**c, "documents": masking.document(c["documents"])} for n, c in state.items()}
    files.write_private(target, json.dumps(state).encode())


def load(found: MongoAccess, server_admin: MongoAccess, source: Path, tenant: str) -> None:
    """``source`` (read and checked whole first) in place of ``found``'s database; ``server_admin``
    may grant and drop the staging database."""
    collections = migration.read(source, tenant)
    staging = replace(found, database=f"{found.database}__next")
    if found.auth_mechanism != "PLAIN":  # a mongod user may use its own database only
        admin.grant_database(server_admin, found, staging.database)
    admin.drop_database(server_admin, staging.database)
    try:
        admin.seed(staging, collections, tenant=tenant)
    finally:
        admin.drop_database(server_admin, staging.database)
    admin.drop_all(found)
    admin.seed(found, collections, tenant=tenant)
