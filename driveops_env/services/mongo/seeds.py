"""MongoDB's seed files: one per collection, ``<seeds>/mongo/<collection>.json`` = ``{"indexes": [...],
"documents": [...]}``; documents may use MongoDB Extended JSON (``{"$date": ...}``, ``{"$oid": ...}``).
Only what FerretDB supports is accepted (keys, name and unique indexes; no nested arrays; portable field
names), so a seed that works here works on a real mongod too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveops_env.errors import TemplateError
from driveops_env.seeding import load_json_template, tenant_context
from driveops_env.tenants import Tenant

INDEX_KEYS = frozenset({"keys", "name", "unique"})


@dataclass(frozen=True)
class MongoCollection:
    name: str
    indexes: tuple[dict[str, Any], ...]
    documents: tuple[dict[str, Any], ...]
    path: Path


def _check_keys(value: Any, path: Path, tenant: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key:
                raise TemplateError(
                    f"{path}: field name {key!r} is not portable (no '$' prefix, no '.')", tenant=tenant
                )
            _check_keys(item, path, tenant)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                raise TemplateError(f"{path}: nested arrays are not supported by FerretDB", tenant=tenant)
            _check_keys(item, path, tenant)


def parse_collection(path: Path, raw: Any, tenant: str) -> MongoCollection:
    """One ``seeds/mongo/<collection>.json``: ``{"indexes": [...], "documents": [...]}``; documents may
    use MongoDB Extended JSON (``{"$date": ...}``, ``{"$oid": ...}``)."""
    from bson import json_util

    if not isinstance(raw, dict) or not isinstance(raw.get("documents", []), list):
        raise TemplateError(f"{path}: expected an object with a 'documents' list", tenant=tenant)
    unknown = set(raw) - {"indexes", "documents"}
    if unknown:
        raise TemplateError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}", tenant=tenant)
    indexes = raw.get("indexes", [])
    for index in indexes:
        if not isinstance(index, dict) or not isinstance(index.get("keys"), dict) or not index["keys"]:
            raise TemplateError(f"{path}: an index needs a non-empty 'keys' object: {index!r}", tenant=tenant)
        extra = set(index) - INDEX_KEYS
        if extra:
            raise TemplateError(
                f"{path}: index option(s) {', '.join(sorted(extra))} are not supported by FerretDB",
                tenant=tenant,
                hint="use keys, name and unique only",
            )
    for document in raw.get("documents", []):
        if not isinstance(document, dict):
            raise TemplateError(f"{path}: every document must be an object", tenant=tenant)
    documents = json_util.loads(json.dumps(raw.get("documents", [])))
    for document in documents:
        _check_keys(document, path, tenant)
    return MongoCollection(path.stem, tuple(indexes), tuple(documents), path)


def render_mongo_collections(seeds_dir: Path, tenant: Tenant, *, limit: int | None = None) -> tuple[Any, ...]:
    """``seeds/mongo/<collection>.json`` rendered for the tenant (see services.mongo.parse_collection)."""
    context = tenant_context(tenant)
    return tuple(
        parse_collection(path, load_json_template(path, context, tenant=tenant.slug, limit=limit), tenant.slug)
        for path in sorted((seeds_dir / "mongo").glob("*.json"))
    )
