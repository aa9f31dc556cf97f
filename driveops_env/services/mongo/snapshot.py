"""A tenant's MongoDB database in a snapshot: a first line of JSON naming each collection with its
indexes (as the seed files write them) and its number of documents, then the documents as BSON, one
collection after the other, as the server sends them (read as raw BSON: nothing decoded unless
masked; masked field by field when asked).

Loaded into collections of staging names in the tenant's database (what the server refuses, a
duplicate of a unique index, leaves the tenant's collections as they were), then each swapped in: the
tenant's collection dropped and the staging one renamed (a cross-database rename, or a rename over an
existing collection, is what FerretDB does not do), then the tenant's collections the file lacks dropped."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import UsageError
from driveops_env.masking import Masking, Replacing
from driveops_env.services.mongo import admin, migration
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.mongo.seeds import MongoCollection

STAGING = "driveops-loading-"  # what no tenant's collection is named like (FerretDB allows "-", not ".")
HEADER_LIMIT = 1024 * 1024
MAX_DOCUMENT = 16 * 1024 * 1024  # MongoDB's own limit


def save(found: MongoAccess, target: Path, masking: Masking | None) -> None:
    from bson import encode
    from bson.raw_bson import RawBSONDocument

    conn = admin.client(found)
    header, body = [], bytearray()
    try:
        database = conn.get_database(found.database, codec_options=_raw())
        for name in sorted(database.list_collection_names()):
            indexes = [
                migration.index_of(name, n, i) for n, i in database[name].index_information().items() if n != "_id_"
            ]
            count = 0
            for document in database[name].find({}):
                raw: RawBSONDocument = document
                body += encode(masking.document(_plain(raw))) if masking is not None else raw.raw
                count += 1
            header.append({"name": name, "indexes": indexes, "documents": count})
    finally:
        conn.close()
    files.write_private(target, json.dumps({"collections": header}).encode() + b"\n" + bytes(body))


def _replaced(document: Any, replacing: Replacing) -> Any:
    from bson import encode
    from bson.raw_bson import RawBSONDocument

    return RawBSONDocument(encode(replacing.document(_plain(document))))


def _raw() -> Any:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return CodecOptions(document_class=RawBSONDocument)


def _plain(raw: Any) -> dict[str, Any]:
    from bson import decode

    return decode(raw.raw)


def load(found: MongoAccess, source: Path, tenant: str, replacing: Replacing | None = None) -> None:
    """``source`` (checked whole first) in place of ``found``'s collections (another tenant's identity
    replaced in the documents)."""
    collections = list(_read(source))
    if replacing is not None:
        collections = [(n, i, [_replaced(d, replacing) for d in docs]) for n, i, docs in collections]
    conn = admin.client(found)
    try:
        database = conn[found.database]
        for name in database.list_collection_names():
            if name.startswith(STAGING):  # a load that was killed left it
                database.drop_collection(name)
        try:
            for name, indexes, documents in collections:
                _fill(database[STAGING + name], indexes, documents)
        except Exception:
            for name, _, _ in collections:
                database.drop_collection(STAGING + name)
            raise
        for name, _, _ in collections:  # each swapped in at once: dropped, its staging one renamed
            database.drop_collection(name)
            database[STAGING + name].rename(name)
        wanted = {name for name, _, _ in collections}
        for name in database.list_collection_names():
            if name not in wanted and not name.startswith(STAGING):
                database.drop_collection(name)
    finally:
        conn.close()


def collections(source: Path) -> tuple[MongoCollection, ...]:
    """A kept part as the seed a restore refills (``up --snapshot``)."""
    return tuple(MongoCollection(n, tuple(i), tuple(d), source) for n, i, d in _read(source))


def _fill(target: Any, indexes: list[dict[str, Any]], documents: list[Any]) -> None:
    for index in indexes:
        keys = list(index["keys"].items())
        target.create_index(keys, name=index["name"], unique=bool(index.get("unique", False)))
    if documents:
        target.insert_many(documents, ordered=True)
    else:
        target.database.create_collection(target.name)


def _read(source: Path) -> Iterator[tuple[str, list[dict[str, Any]], list[Any]]]:
    """Each collection's name, indexes and documents (raw BSON, never decoded here), the whole file
    checked: the header's counts and every document's length add up to the file exactly."""
    from bson.raw_bson import RawBSONDocument

    data = files.read_bytes(source, "snapshot's MongoDB part", limit=files.limit_bytes(4096))
    line, _, _ = data[:HEADER_LIMIT].partition(b"\n")
    header = files.parse_json(line.decode("utf-8", "replace"), source, "snapshot's MongoDB part")
    described = header.get("collections") if isinstance(header, dict) else None
    if not isinstance(described, list) or not all(_described(c) for c in described):
        raise _bad("its first line does not name collections, indexes and counts")
    offset, found = len(line) + 1, []
    for collection in described:
        documents = []
        for _ in range(collection["documents"]):
            (size,) = struct.unpack_from("<i", data, offset) if offset + 4 <= len(data) else (0,)
            if not 5 <= size <= min(MAX_DOCUMENT, len(data) - offset):
                raise _bad(f"a document of {collection['name']!r} has a length beyond the file")
            documents.append(RawBSONDocument(data[offset : offset + size]))
            offset += size
        found.append((str(collection["name"]), list(collection["indexes"]), documents))
    if offset != len(data):
        raise _bad(f"{len(data) - offset} bytes follow the documents its first line counts")
    return iter(found)


def _described(item: Any) -> bool:
    if not isinstance(item, dict) or not _name(item.get("name")):
        return False
    indexes = item.get("indexes")
    if not isinstance(indexes, list) or not all(_index(i) for i in indexes):
        return False
    return isinstance(item.get("documents"), int) and item["documents"] >= 0


def _name(name: Any) -> bool:
    """A collection name a server takes (and no staging or system one)."""
    if not isinstance(name, str) or not 0 < len(name) <= 120 or name.startswith(("system.", STAGING)):
        return False
    return not any(c in name for c in "$\0")


def _index(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("keys"), dict) and isinstance(item.get("name"), str)


def _bad(what: str) -> UsageError:
    return UsageError(
        f"the snapshot's MongoDB part is refused: {what}", service="mongo", hint="use a file snapshot save wrote"
    )
