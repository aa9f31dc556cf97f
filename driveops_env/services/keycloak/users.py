"""A tenant's realm users in a snapshot: each user's profile (username, e-mail, names, attributes,
enabled), realm roles and groups, read through the admin API.  The realm's settings and clients are
the seed's (the loading environment's own, its client secret kept), not the file's.

Keycloak's admin API never returns a credential's hash, so passwords are not in the file: a user the
seed has (``seeded_as``: its seeded username, also when masked) gets its seeded password back; a user
added later gets one derived from the environment's client secret, kept in the environment's record
(``token --user``, the plugin's tenant handle use it).  A load makes the realm under a staging name
first (what Keycloak refuses is found there), then deletes the tenant's realm and makes it again with
the file's users.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import UsageError
from driveops_env.masking import Masking, Replacing, value
from driveops_env.snapshot_seeds import password_of

PROFILE = ("username", "email", "firstName", "lastName", "enabled", "emailVerified", "attributes")
DEFAULT_ROLES = "default-roles-"


def exported(client: Any, seeded: dict[str, str], masking: Masking | None) -> list[dict[str, Any]]:
    """The realm's users (``client``: a ``KeycloakAdmin`` of the realm), masked when asked."""
    found = []
    for user in client.get_users({}):
        entry = {k: user[k] for k in PROFILE if k in user}
        roles = client.get_realm_roles_of_user(user["id"])
        entry["realmRoles"] = sorted(r["name"] for r in roles if not r["name"].startswith(DEFAULT_ROLES))
        entry["groups"] = sorted(g["path"] for g in client.get_user_groups(user["id"]))
        if user["username"] in seeded:
            entry["seeded_as"] = user["username"]
        found.append(_masked(entry, masking) if masking is not None else entry)
    return sorted(found, key=lambda e: str(e["username"]))


def _masked(entry: dict[str, Any], masking: Masking) -> dict[str, Any]:
    out = masking.document({k: v for k, v in entry.items() if k != "username"})
    name = str(entry["username"])
    out["username"] = value("email", name) if "@" in name else name
    return dict(out)


def save(target: Path, users: list[dict[str, Any]]) -> None:
    files.write_private(target, json.dumps({"users": users}).encode())


def realm_with(
    representation: dict[str, Any],
    source: Path,
    seeded: dict[str, str],
    secret: str,
    replacing: Replacing | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The seed's realm with the file's users instead of the seed's; each user's password by username
    (a seeded user's seeded one, another's derived from the environment's ``secret``: the same at
    every render)."""
    realm = copy.deepcopy(representation)
    defaults = f"{DEFAULT_ROLES}{realm['realm']}"
    users, passwords = [], {}
    order = list(seeded)
    for entry in sorted(
        _entries(source), key=lambda e: order.index(e["seeded_as"]) if e.get("seeded_as") in order else len(order)
    ):
        password = seeded.get(str(entry.pop("seeded_as", ""))) or password_of(secret, str(entry["username"]))
        passwords[str(entry["username"])] = password
        if replacing is not None:  # another tenant's file: its identity in attributes becomes this one's
            entry["attributes"] = replacing.document(entry.get("attributes", {}))
        entry["realmRoles"] = [*entry.get("realmRoles", []), defaults]
        entry["credentials"] = [{"type": "password", "value": password, "temporary": False}]
        users.append(entry)
    realm["users"] = users
    return realm, passwords


def _entries(source: Path) -> list[dict[str, Any]]:
    raw = files.load_json(source, "snapshot's Keycloak part", limit=files.limit_bytes())
    rows = raw.get("users") if isinstance(raw, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("username"), str) for r in rows):
        raise UsageError(
            "the snapshot's Keycloak part is not a list of users",
            service="keycloak",
            hint="use a file snapshot save wrote",
        )
    allowed = {*PROFILE, "realmRoles", "groups", "seeded_as"}
    return [{k: v for k, v in r.items() if k in allowed} for r in rows]


def trial_of(representation: dict[str, Any], name: str) -> dict[str, Any]:
    """The realm under another name, to try it: its users without the default roles' role, whose name
    follows the realm's."""
    trial = copy.deepcopy(representation) | {"realm": name}
    for user in trial.get("users", []):
        user["realmRoles"] = [r for r in user.get("realmRoles", []) if not str(r).startswith(DEFAULT_ROLES)]
    return trial
