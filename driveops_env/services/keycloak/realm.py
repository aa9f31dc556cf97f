"""A tenant's realm: ``<realms>/tenant-realm.json`` rendered for the tenant (``{{ api_client_secret }}`` is
the API client's secret, generated per environment), with the users of ``<seeds>/users.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveops_env.errors import TemplateError
from driveops_env.seeding import load_json_template, tenant_context
from driveops_env.tenants import Tenant

REALM_TEMPLATE = "tenant-realm.json"


@dataclass(frozen=True)
class RealmSeed:
    representation: dict[str, Any]  # a RealmRepresentation, users included
    users: dict[str, str]  # username -> password, in seed order
    secret: str  # the API client's secret it was rendered with


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
    return RealmSeed(realm, users, api_client_secret)
