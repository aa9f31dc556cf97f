"""A tenant's Redis keys in a snapshot: every key under the tenant's prefix (not its test copies'),
named without the prefix, with its value as ``DUMP`` gives it (Redis's own serialisation, its type
kept) and its remaining time to live (``PTTL``).  Loaded in two steps: every value restored under a
staging name (the server checks each payload whole: ``sanitize-dump-payload yes``), then one
``MULTI``/``EXEC`` that deletes the tenant's keys and restores the checked values under the loading
tenant's prefix.

Values are not masked: ``DUMP``'s form is opaque; keep personal data out of Redis, or out of snapshots."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import UsageError
from driveops_env.masking import Replacing
from driveops_env.services.redis.access import RedisAccess
from driveops_env.services.redis.seeds import RedisEntry
from driveops_env.state import ServiceRecord

BATCH = 1000
STAGING = "__loading:"  # under the tenant's prefix: what its ACL user may write; no copy token has "_"


def _client(server: ServiceRecord, db: int) -> Any:
    import redis

    return redis.Redis(
        host=server.host, port=server.port, db=db, password=server.admin_password, socket_timeout=30
    )  # bytes: DUMP's values are binary


def save(server: ServiceRecord, access: RedisAccess, target: Path, is_copy: Callable[[str, str], bool]) -> int:
    """The tenant's keys into ``target``; how many."""
    prefix = access.key_prefix.encode()
    conn = _client(server, access.db)
    entries = []
    try:
        scanned = conn.scan_iter(match=_glob(prefix), count=1000)
        keys = [k for k in scanned if not is_copy(k.decode("utf-8", "surrogateescape"), access.key_prefix)]
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            with conn.pipeline(transaction=False) as pipe:  # one round trip per batch
                for key in batch:
                    pipe.dump(key)
                    pipe.pttl(key)
                found = pipe.execute()
            entries += [_entry(k, v, t, len(prefix)) for k, v, t in zip(batch, found[::2], found[1::2], strict=True)]
    finally:
        conn.close()
    kept = [e for e in entries if e is not None]  # None: expired or deleted meanwhile
    files.write_private(target, json.dumps({"keys": kept}).encode())
    return len(kept)


def _entry(key: bytes, value: bytes | None, ttl: int, cut: int) -> dict[str, Any] | None:
    if value is None:
        return None
    name = key[cut:].decode("utf-8", "surrogateescape")
    return {"key": name, "value": base64.b64encode(value).decode(), "ttl_ms": max(ttl, 0)}


def load(
    server: ServiceRecord,
    access: RedisAccess,
    source: Path,
    is_copy: Callable[[str, str], bool],
    replacing: Replacing | None = None,
) -> None:
    """The tenant's keys replaced by ``source``'s: each value restored under a staging name first (a
    value the server refuses, a payload it finds damaged, leaves the tenant's keys as they were; another
    tenant's identity is replaced there), then, in one ``MULTI``/``EXEC``, the tenant's keys deleted and
    the checked values restored under their names with their times to live."""
    entries = _entries(source, access.key_prefix, is_copy)
    prefix, staging = access.key_prefix.encode(), f"{access.key_prefix}{STAGING}".encode()
    conn = _client(server, access.db)
    try:
        try:
            _restore(conn, [(staging + k, v, 0) for k, v, _ in entries])
            if replacing is not None:
                _replace(conn, [staging + key for key, _, _ in entries], replacing)
                entries = _dumped(conn, staging, entries)
        finally:
            _delete(conn, list(conn.scan_iter(match=_glob(staging), count=1000)))
        keys = (k for k in conn.scan_iter(match=_glob(prefix), count=1000) if not k.startswith(staging))
        old = [k for k in keys if not is_copy(k.decode("utf-8", "surrogateescape"), access.key_prefix)]
        with conn.pipeline(transaction=True) as pipe:
            _delete(pipe, old)
            for key, value, ttl in entries:
                pipe.restore(prefix + key, ttl, value, replace=True)
            pipe.execute()
    finally:
        conn.close()


def _restore(conn: Any, entries: list[tuple[bytes, bytes, int]]) -> None:
    for start in range(0, len(entries), BATCH):
        with conn.pipeline(transaction=False) as pipe:  # one round trip per batch
            for key, value, ttl in entries[start : start + BATCH]:
                pipe.restore(key, ttl, value, replace=True)
            pipe.execute()


def _dumped(conn: Any, staging: bytes, entries: list[tuple[bytes, bytes, int]]) -> list[tuple[bytes, bytes, int]]:
    """The staging keys' values as they are now (their identity replaced), with the file's times to live."""
    with conn.pipeline(transaction=False) as pipe:
        for key, _, _ in entries:
            pipe.dump(staging + key)
        values = pipe.execute()
    return [(key, value, ttl) for (key, _, ttl), value in zip(entries, values, strict=True)]


def _replace(conn: Any, keys: list[bytes], replacing: Replacing) -> None:
    """Another tenant's identity replaced in the strings and hashes' fields (whole values; the TTL kept)."""
    swap = {old.encode(): new.encode() for old, new in replacing.values.items()}
    for key in keys:
        kind = conn.type(key)
        if kind == b"string" and conn.get(key) in swap:
            conn.set(key, swap[conn.get(key)], keepttl=True)
        elif kind == b"hash":
            changed = {f: swap[v] for f, v in conn.hgetall(key).items() if v in swap}
            if changed:
                conn.hset(key, mapping=changed)


def _delete(conn: Any, keys: list[bytes]) -> None:
    for start in range(0, len(keys), 500):
        conn.delete(*keys[start : start + 500])


def entries(source: Path) -> tuple[RedisEntry, ...]:
    """A kept part as the seed a restore writes (``up --snapshot``): each key's ``DUMP`` and time to live."""
    return tuple(
        RedisEntry(key.decode("utf-8", "surrogateescape"), "dump", (value, ttl), source)
        for key, value, ttl in _entries(source)
    )


def _entries(
    source: Path, prefix: str = "", is_copy: Callable[[str, str], bool] | None = None
) -> list[tuple[bytes, bytes, int]]:
    """The part's keys, values and times to live; a key named like a test copy's or a staging key is
    refused (a reset would never clear it)."""
    raw = files.load_json(source, "snapshot's Redis part", limit=files.limit_bytes())
    rows = raw.get("keys") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        raise UsageError(
            "the snapshot's Redis part is not a list of keys", service="redis", hint="use a file snapshot save wrote"
        )
    found = []
    for row in rows:
        ok = isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("value"), str)
        if not ok or not isinstance(row.get("ttl_ms"), int) or row["ttl_ms"] < 0:
            raise UsageError(
                f"the snapshot's Redis part has an entry that is not a key, value and ttl_ms: {str(row)[:80]}",
                service="redis",
                hint="use a file snapshot save wrote",
            )
        try:
            value = base64.b64decode(row["value"], validate=True)
        except binascii.Error:
            raise UsageError(
                "the snapshot's Redis part has a value that is not base64",
                service="redis",
                hint="use a file snapshot save wrote",
            ) from None
        key = row["key"]
        if key.startswith(STAGING) or (is_copy is not None and is_copy(prefix + key, prefix)):
            raise UsageError(
                f"the snapshot's Redis part names key {key[:80]!r}, a name of driveops-env's own",
                service="redis",
                hint="use a file snapshot save wrote",
            )
        try:
            name = key.encode("utf-8", "surrogateescape")  # the bytes save read
        except UnicodeEncodeError:
            raise UsageError(
                "the snapshot's Redis part names a key that is no byte string",
                service="redis",
                hint="use a file snapshot save wrote",
            ) from None
        found.append((name, value, row["ttl_ms"]))
    return found


def _glob(prefix: bytes) -> bytes:
    """The prefix as a glob matching it literally, then anything."""
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in prefix) + b"*"
