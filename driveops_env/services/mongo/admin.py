"""A MongoDB-protocol server as its administrator: users, readiness, seeding and restoring a tenant's
database.  Works against a real ``mongod`` (the official image) and against FerretDB, using only what
both support (no transactions, indexes with ``keys``, ``name``, ``unique`` only).

How users log in depends on the server, and its service records it in the server's ``extra``:
``mechanism`` (PLAIN: FerretDB passes the credentials through to PostgreSQL), ``admin_source``
(``admin`` on a mongod) and ``own_database`` (a tenant's user lives in its database)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driveops_env.errors import SeedError, ServiceError
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.mongo.seeds import MongoCollection
from driveops_env.services.servers import Explanation
from driveops_env.state import ServiceRecord

# MongoDB error codes FerretDB answers for what it does not implement
NOT_IMPLEMENTED = 238
COMMAND_NOT_FOUND = 59
UNSUPPORTED = (NOT_IMPLEMENTED, COMMAND_NOT_FOUND)


def explain(error: str) -> Explanation | None:
    """What a refused login (FerretDB reports it as an InternalError) or a server that is not found
    means, as pymongo says it."""
    if "Authentication failed" in error or ("InternalError" in error and "authentication failed" in error):
        return Explanation(
            "authentication failed: the server refused the user or its password",
            "the credentials are not the environment's: re-read them with `driveops-env env`",
            permanent=True,
        )
    if "No servers found" in error or "ServerSelectionTimeoutError" in error:
        return Explanation(
            "no answer: the server was not reached",
            "the server is down: `driveops-env status`, then `driveops-env up` heals the environment",
        )
    return None


def client(access: MongoAccess) -> Any:
    import pymongo

    return pymongo.MongoClient(access.uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True)


@dataclass(frozen=True)
class MongoUser:
    name: str
    password: str = field(repr=False)
    database: str = ""  # the tenant's database, where a real mongod keeps the user


def create_user(admin: MongoAccess, user: MongoUser) -> None:
    """A user that may read and write its database only.  FerretDB 1.x implements users without
    roles only (no authorization): there the user is created without, and isolation rests on each
    tenant having its own server."""
    import pymongo.errors

    conn = client(admin)
    try:
        database = conn[user.database]
        try:
            database.command(
                "createUser", user.name, pwd=user.password, roles=[{"role": "readWrite", "db": user.database}]
            )
        except pymongo.errors.OperationFailure as exc:
            if exc.code not in UNSUPPORTED:
                raise
            database.command("createUser", user.name, pwd=user.password, roles=[])
    finally:
        conn.close()


def grant_database(admin: MongoAccess, access: MongoAccess, database: str, command: str = "grantRolesToUser") -> None:
    """Let the tenant's user read and write another database of its own (an xdist worker's copy);
    ``revokeRolesFromUser``: no longer (a dropped ready database of a restore pool)."""
    import pymongo.errors

    if access.auth_mechanism == "PLAIN":  # FerretDB with PostgreSQL: the role may create schemas
        return
    conn = client(admin)
    try:
        conn[access.auth_source or access.database].command(
            command, access.user, roles=[{"role": "readWrite", "db": database}]
        )
    except pymongo.errors.OperationFailure as exc:
        if exc.code not in UNSUPPORTED:  # FerretDB: users are not restricted anyway
            raise
    finally:
        conn.close()


def tenant_access(record: ServiceRecord, user: MongoUser) -> MongoAccess:
    """How a tenant's user logs in to ``record``: PLAIN pass-through (FerretDB over PostgreSQL) or SCRAM
    against the user's own database (a mongod)."""
    source = user.database if record.extra.get("own_database") else None
    mechanism = record.extra.get("mechanism") or None
    return MongoAccess(record.key, record.host, record.port, user.database, user.name, user.password, mechanism, source)


def admin_access(record: ServiceRecord) -> MongoAccess:
    """How driveops-env itself logs in to a MongoDB-protocol server (readiness, status)."""
    return MongoAccess(
        record.key,
        record.host,
        record.port,
        "admin",
        record.admin_user,
        record.admin_password,
        record.extra.get("mechanism") or None,
        record.extra.get("admin_source") or None,
    )


def set_password(access: MongoAccess, user: str, password: str) -> None:
    """A user of the ``admin`` database gets ``password`` (an initialised image's root user, at start)."""
    conn = client(access)
    try:
        conn.admin.command("updateUser", user, pwd=password)
    finally:
        conn.close()


def probe(access: MongoAccess) -> None:
    """Readiness: an authenticated ``ping`` (FerretDB asks its PostgreSQL, so this is end to end)."""
    conn = client(access)
    try:
        conn.admin.command("ping")
    finally:
        conn.close()


def seed(access: MongoAccess, collections: Iterable[MongoCollection], *, tenant: str) -> int:
    """Create the collections with their indexes and documents; returns the number of documents."""
    import pymongo

    conn = client(access)
    count = 0
    try:
        database = conn[access.database]
        for collection in collections:
            target = database[collection.name]
            for index in collection.indexes:
                keys = list(index["keys"].items())
                options: dict[str, Any] = {"unique": bool(index.get("unique", False))}
                if index.get("name"):
                    options["name"] = index["name"]
                target.create_index(keys, **options)
            if collection.documents:
                target.insert_many([dict(d) for d in collection.documents], ordered=True)
                count += len(collection.documents)
    except pymongo.errors.PyMongoError as exc:
        raise _seed_failure(exc, collection.path, tenant) from exc
    finally:
        conn.close()
    return count


def _seed_failure(exc: Exception, path: Path, tenant: str) -> Exception:
    """A refused seed file (bad input, exit 2), or a server that failed (a full disk, no answer: exit 1)."""
    from driveops_env.diagnosis import NO_SPACE, diagnose

    detail, hint = diagnose(exc)
    if isinstance(exc, pymongo_server_errors()) or detail.startswith((NO_SPACE, "no answer")):
        return ServiceError(f"seeding {path.name} failed: {detail}", service="mongo", tenant=tenant, hint=hint)
    return SeedError(
        f"seed file {path} was refused: {str(exc)[:300]}",
        service="mongo",
        tenant=tenant,
        hint="fix the seed file; nothing of the environment was left running",
    )


def pymongo_server_errors() -> tuple[type[Exception], ...]:
    import pymongo.errors

    return (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)


def restore(access: MongoAccess, collections: Iterable[MongoCollection], *, tenant: str) -> None:
    """Back to the seeded documents without recreating what need not be: seeded collections are
    emptied and refilled (their indexes stay), any other collection is dropped."""
    conn = client(access)
    try:
        database = conn[access.database]
        existing = set(database.list_collection_names())
        wanted = list(collections)
        for name in existing - {c.name for c in wanted}:
            database.drop_collection(name)
        missing = [c for c in wanted if c.name not in existing]
        for collection in wanted:
            if collection.name in existing:
                database[collection.name].delete_many({})
                if collection.documents:
                    database[collection.name].insert_many([dict(d) for d in collection.documents], ordered=True)
    finally:
        conn.close()
    if missing:
        seed(access, missing, tenant=tenant)


def drop_all(access: MongoAccess) -> None:
    conn = client(access)
    try:
        database = conn[access.database]
        for name in database.list_collection_names():
            database.drop_collection(name)
    finally:
        conn.close()


def drop_database(admin: MongoAccess, database: str) -> None:
    conn = client(admin)
    try:
        conn.drop_database(database)
    finally:
        conn.close()
