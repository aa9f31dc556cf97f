"""Seed data: read, render per tenant, and load into the stores.

Reading and rendering happen before anything starts, so a broken file is reported (file, tenant,
exit 2) while nothing runs yet.  Placeholders are ``{{ name }}``; in ``.sql`` files they render as
quoted SQL literals, in JSON files inside strings as plain text.

Layout of a seeds directory::

    tenants.json          tenant catalogue (slug, tenant_id, name)
    postgres/*.sql        applied per tenant in file-name order, as the tenant's own role
    redis/*.json          {"<key>": {"type": "string|hash|set|list", "value": ...}};
                          keys get the tenant prefix
    mongo/*.json          one file per collection: {"indexes": [...], "documents": [...]}
    users.json            Keycloak users of every tenant realm (username, role, names, password)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import SeedError, TemplateError
from driveops_env.spec import Tenant

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def tenant_context(tenant: Tenant) -> dict[str, str]:
    return {
        "tenant_id": tenant.tenant_id,
        "tenant_slug": tenant.slug,
        "tenant_name": tenant.display_name,
        "realm": tenant.realm,
        "database": tenant.database,
    }


def render_text(
    text: str,
    context: Mapping[str, str],
    *,
    path: Path,
    tenant: str,
    quote: Callable[[str], str] = lambda value: value,
) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in context:
            line = text.count("\n", 0, match.start()) + 1
            raise TemplateError(
                f"{path} line {line}: unknown placeholder {{{{{name}}}}}",
                tenant=tenant,
                hint=f"known placeholders: {', '.join(sorted(context))}",
            )
        return quote(context[name])

    return PLACEHOLDER.sub(substitute, text)


def sql_literal(value: str) -> str:
    """A quoted SQL literal that stays on one line, so it is inert in every position a placeholder can
    take, a ``--`` comment included: control characters become ``E''`` escapes."""
    if not any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029" for c in value):
        return "'" + value.replace("'", "''") + "'"
    escaped = "".join(
        f"\\u{ord(c):04x}"
        if ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029"
        else "\\\\"
        if c == "\\"
        else "''"
        if c == "'"
        else c
        for c in value
    )
    return "E'" + escaped + "'"


def render_json(value: Any, context: Mapping[str, str], *, path: Path, tenant: str) -> Any:
    """Substitute placeholders inside every string of a parsed JSON document."""
    if isinstance(value, str):
        return render_text(value, context, path=path, tenant=tenant)
    if isinstance(value, list):
        return [render_json(item, context, path=path, tenant=tenant) for item in value]
    if isinstance(value, dict):
        return {
            render_text(k, context, path=path, tenant=tenant): render_json(v, context, path=path, tenant=tenant)
            for k, v in value.items()
        }
    return value


def load_json_template(path: Path, context: Mapping[str, str], *, tenant: str, limit: int | None = None) -> Any:
    """A JSON file with placeholders inside its strings, rendered for one tenant.  Unknown
    placeholders are found in the raw text first, so the error gives the file's own line."""
    text = read_seed(path, tenant, limit)
    render_text(text, context, path=path, tenant=tenant)
    try:
        parsed = files.parse_json(text, path, "seed file")
    except TemplateError as exc:
        exc.tenant = tenant
        raise
    return render_json(parsed, context, path=path, tenant=tenant)


def read_seed(path: Path, tenant: str, limit: int | None) -> str:
    """A seed or template file's text: a regular file of bounded size (else exit 2 naming it)."""
    try:
        return files.read_text(path, "seed file", limit=limit)
    except TemplateError as exc:
        exc.tenant = tenant
        raise


# --- SQL ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlStatement:
    text: str
    line: int  # 1-based line of the statement's first character in its file


@dataclass(frozen=True)
class SqlFile:
    path: Path
    statements: tuple[SqlStatement, ...]


def split_sql(text: str) -> list[SqlStatement]:
    """Split SQL into statements at top-level ``;``, aware of quotes, comments and dollar quoting."""
    statements: list[SqlStatement] = []
    i, n = 0, len(text)
    start: int | None = None
    while i < n:
        ch = text[i]
        if ch in " \t\r\n" and start is None:
            i += 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if start is None:
            start = i
        if ch in ("'", '"'):
            i += 1
            while i < n:
                if text[i] == ch:
                    if i + 1 < n and text[i + 1] == ch:  # doubled quote is an escaped quote
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            continue
        if ch == "$":
            match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:])
            if match:
                tag = match.group(0)
                end = text.find(tag, i + len(tag))
                i = n if end < 0 else end + len(tag)
                continue
        if ch == ";":
            body = text[start:i].strip()
            if body:
                statements.append(SqlStatement(body, text.count("\n", 0, start) + 1))
            start = None
        i += 1
    if start is not None and text[start:].strip():
        statements.append(SqlStatement(text[start:].strip(), text.count("\n", 0, start) + 1))
    return statements


def render_sql_files(seeds_dir: Path, tenant: Tenant, *, limit: int | None = None) -> tuple[SqlFile, ...]:
    result = []
    context = tenant_context(tenant)
    for path in sorted((seeds_dir / "postgres").glob("*.sql")):
        text = read_seed(path, tenant.slug, limit)
        rendered = render_text(text, context, path=path, tenant=tenant.slug, quote=sql_literal)
        for statement in split_sql(rendered):
            if statement.text.startswith("\\"):
                raise TemplateError(
                    f"{path} line {statement.line}: psql meta-commands are not supported in seed files",
                    tenant=tenant.slug,
                )
        result.append(SqlFile(path, tuple(split_sql(rendered))))
    return tuple(result)


def apply_sql(conninfo: str, files: Sequence[SqlFile], *, tenant: str) -> None:
    """Run the seed files in one transaction; an error names the file, line and tenant."""
    import psycopg

    with psycopg.connect(conninfo) as conn, conn.transaction():
        for seed in files:
            for statement in seed.statements:
                try:
                    conn.execute(statement.text.encode())  # no params: sent as is
                except psycopg.Error as exc:
                    line = statement.line
                    position = getattr(exc.diag, "statement_position", None)
                    if position and str(position).isdigit():
                        line += statement.text.count("\n", 0, int(position) - 1)
                    first = (str(exc).splitlines() or ["error"])[0]
                    raise SeedError(
                        f"seed file {seed.path} line {line}: {first}",
                        service="postgres",
                        tenant=tenant,
                        hint="fix the seed file; nothing of the environment was left running",
                    ) from None


# --- Redis ----------------------------------------------------------------------------------------

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
        elif entry.type == "set":
            pipe.sadd(key, *[str(v) for v in entry.value])
        else:
            pipe.rpush(key, *[str(v) for v in entry.value])
    pipe.execute()


# --- Keycloak realm -------------------------------------------------------------------------------

REALM_TEMPLATE = "tenant-realm.json"


@dataclass(frozen=True)
class RealmSeed:
    representation: dict[str, Any]  # a RealmRepresentation, users included
    users: dict[str, str]  # username -> password, in seed order


def render_realm(
    realms_dir: Path, seeds_dir: Path, tenant: Tenant, *, api_client_secret: str, limit: int | None = None
) -> RealmSeed:
    """The tenant's realm: ``realms/tenant-realm.json`` rendered, with the users of ``seeds/users.json``."""
    path = realms_dir / REALM_TEMPLATE
    if not path.exists():
        raise TemplateError(f"the realm template {path} does not exist", tenant=tenant.slug, hint="check --realms-dir")
    context = tenant_context(tenant) | {"api_client_secret": api_client_secret}
    realm = load_json_template(path, context, tenant=tenant.slug, limit=limit)
    if not isinstance(realm, dict) or realm.get("realm") != tenant.realm:
        raise TemplateError(
            f'{path}: the template must be an object whose "realm" is {{{{ realm }}}}',
            tenant=tenant.slug,
        )
    roles = {r.get("name") for r in realm.get("roles", {}).get("realm", []) if isinstance(r, dict)}
    users_path = seeds_dir / "users.json"
    users: dict[str, str] = {}
    representations = list(realm.get("users", []))
    if users_path.exists():
        raw = load_json_template(users_path, context, tenant=tenant.slug, limit=limit)
        rows = raw.get("users") if isinstance(raw, dict) else None
        if not isinstance(rows, list):
            raise TemplateError(f"{users_path}: expected an object with a 'users' list", tenant=tenant.slug)
        for row in rows:
            missing = [k for k in ("username", "role", "password", "firstName", "lastName") if not row.get(k)]
            if missing:
                raise TemplateError(f"{users_path}: user {row!r} lacks {', '.join(missing)}", tenant=tenant.slug)
            if row["role"] not in roles:
                raise TemplateError(
                    f"{users_path}: user {row['username']!r} has role {row['role']!r}, "
                    f"which the realm template does not define ({', '.join(sorted(map(str, roles)))})",
                    tenant=tenant.slug,
                )
            users[row["username"]] = row["password"]
            representations.append(
                {
                    "username": row["username"],
                    "email": row.get("email", row["username"] if "@" in row["username"] else None),
                    "emailVerified": True,
                    "enabled": True,
                    "firstName": row["firstName"],
                    "lastName": row["lastName"],
                    "realmRoles": [row["role"], f"default-roles-{tenant.realm}"],
                    "credentials": [{"type": "password", "value": row["password"], "temporary": False}],
                }
            )
    realm["users"] = representations
    return RealmSeed(realm, users)


# --- MongoDB --------------------------------------------------------------------------------------


def render_mongo_collections(seeds_dir: Path, tenant: Tenant, *, limit: int | None = None) -> tuple[Any, ...]:
    """``seeds/mongo/<collection>.json`` rendered for the tenant (see services.mongo.parse_collection)."""
    from driveops_env.services import mongo

    context = tenant_context(tenant)
    return tuple(
        mongo.parse_collection(path, load_json_template(path, context, tenant=tenant.slug, limit=limit), tenant.slug)
        for path in sorted((seeds_dir / "mongo").glob("*.json"))
    )


# --- the whole set --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantSeeds:
    sql: tuple[SqlFile, ...]
    redis: tuple[RedisEntry, ...]
    realm: RealmSeed | None
    mongo: tuple[Any, ...] = ()  # services.mongo.MongoCollection


def render_tenant_seeds(
    seeds_dir: Path, realms_dir: Path, tenant: Tenant, *, api_client_secret: str | None, limit: int | None = None
) -> TenantSeeds:
    """Everything seeded for one tenant; ``api_client_secret`` None means no Keycloak."""
    if not seeds_dir.is_dir():
        raise TemplateError(f"the seeds directory {seeds_dir} does not exist", hint="check --seeds-dir")
    realm = None
    if api_client_secret is not None:
        realm = render_realm(realms_dir, seeds_dir, tenant, api_client_secret=api_client_secret, limit=limit)
    return TenantSeeds(
        sql=render_sql_files(seeds_dir, tenant, limit=limit),
        redis=render_redis_entries(seeds_dir, tenant, limit=limit),
        realm=realm,
        mongo=render_mongo_collections(seeds_dir, tenant, limit=limit),
    )


def content_hash(*directories: Path, limit: int | None = None) -> str:
    """Hash of every file under the given directories (names and bytes); each must be a regular file
    of bounded size (a FIFO or a link to a device is refused, never read)."""
    digest = hashlib.sha256()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.rglob("*") if not p.is_dir()):
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(b"\0")
            digest.update(files.read_bytes(path, "seed file", limit=limit))
            digest.update(b"\0")
    return digest.hexdigest()
