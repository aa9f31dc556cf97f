"""Redis's seed files (``<seeds>/redis/*.json``: ``{"<key>": {"type": "string|hash|set|list", "value":
...}}``), rendered per tenant and written under the tenant's (or a copy's) key prefix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveops_env.errors import TemplateError
from driveops_env.seeding import load_json_template, tenant_context
from driveops_env.tenants import Tenant

REDIS_TYPES = ("string", "hash", "set", "list")


@dataclass(frozen=True)
class RedisEntry:
    key: str  # without the tenant prefix
    type: str
    value: Any
    path: Path


def render_redis_entries(seeds_dir: Path, tenant: Tenant, *, limit: int | None = None) -> tuple[RedisEntry, ...]:
    entries: list[RedisEntry] = []
    context = tenant_context(tenant)
    for path in sorted((seeds_dir / "redis").glob("*.json")):
        raw = load_json_template(path, context, tenant=tenant.slug, limit=limit)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: expected an object of keys", tenant=tenant.slug)
        for key, spec in raw.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            value = spec.get("value") if isinstance(spec, dict) else None
            ok = (
                (kind == "string" and isinstance(value, str | int | float))
                or (kind == "hash" and isinstance(value, dict) and value)
                or (kind in ("set", "list") and isinstance(value, list) and value)
            )
            if not ok:
                raise TemplateError(
                    f"{path}: key {key!r} needs a type ({', '.join(REDIS_TYPES)}) and a matching non-empty value",
                    tenant=tenant.slug,
                )
            entries.append(RedisEntry(key, str(kind), value, path))
    return tuple(entries)


def apply_redis(client: Any, entries: Iterable[RedisEntry], *, prefix: str) -> None:
    pipe = client.pipeline(transaction=True)
    for entry in entries:
        key = prefix + entry.key
        pipe.delete(key)
        if entry.type == "string":
            pipe.set(key, entry.value)
        elif entry.type == "hash":
            pipe.hset(key, mapping={k: str(v) for k, v in entry.value.items()})
        elif entry.type == "dump":  # a snapshot's key: DUMP's value and its time to live
            value, ttl = entry.value
            pipe.restore(key, ttl, value, replace=True)
        elif entry.type == "set":
            pipe.sadd(key, *[str(v) for v in entry.value])
        else:
            pipe.rpush(key, *[str(v) for v in entry.value])
    pipe.execute()
