"""Realms from a snapshot: Keycloak's data holding the realms of a tenant set, made once and copied per
environment, the way the initialised base data is.  Creating realms on a JIT-cold Keycloak is what an
``up`` spent most of its time on beyond Keycloak's own start.

The snapshot is keyed by what decides its content: the Keycloak build (version, database kind,
extensions) and the rendered realms with their client secrets masked.  At ``up`` only what must be
fresh changes: each realm's API client secret (generated per environment) is set through the admin
API, as is the admin's password; tenant-level readiness is still a validated token per tenant.  A
changed template, seed or version makes a new snapshot; an old one is never used for a different
spec.  Snapshots live beside the base data, ``<cache>/keycloak/<build>.snapshots/<key>/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak import dist as keycloak_dist
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN, KeycloakInstall

MASK = "snapshot-secret-replaced-at-up"


def masked(realm: dict[str, Any]) -> dict[str, Any]:
    """The realm with its clients' secrets masked: what a snapshot holds, and what keys it.  A client
    with a secret gets a known internal id (unless it declares one), so that ``up`` sets its secret
    without looking the id up first (a request fewer per client on a JIT-cold server)."""
    result = copy.deepcopy(realm)
    for client in result.get("clients", []):
        if "secret" in client:
            client["secret"] = MASK
            client.setdefault("id", _client_uuid(str(result.get("realm")), str(client.get("clientId"))))
    return result


def _client_uuid(realm: str, client_id: str) -> str:
    """A client's internal id in a snapshot: the same for a realm and client id, unique across realms
    (Keycloak's client table is keyed by it alone)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"driveops-env:realm/{realm}/client/{client_id}"))


def key(install: KeycloakInstall, realms: Sequence[dict[str, Any]]) -> str:
    """What decides a snapshot's content: the build, the base data it was made from (its template admin,
    new whenever the base data is made again) and the masked realms."""
    base = hashlib.sha256(str(install.template_password).encode()).hexdigest()[:12]
    content = json.dumps([install.home.name, install.version, base, [masked(r) for r in realms]], sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def root(install: KeycloakInstall) -> Path:
    return install.home.with_name(install.home.name + ".snapshots")


def ensure(
    install: KeycloakInstall,
    realms: Sequence[dict[str, Any]],
    heap_mb: int,
    progress: Callable[[str], None],
    jvm_options: str = "",
) -> Path:
    """The data directory of a snapshot holding ``realms`` (made once: a Keycloak started on a copy of
    the base data, the realms created, stopped gracefully)."""
    assert install.base_data is not None and install.template_password is not None, "dev-file only"
    target = root(install) / key(install, realms)
    if (target / "data" / "h2").is_dir():
        builders.used(target)  # `gc` keeps the most recently used
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not (target / "data" / "h2").is_dir():
            started = time.monotonic()
            progress(f"making a Keycloak snapshot with {len(realms)} realm(s) (once per tenant set)")
            _make(install, [masked(r) for r in realms], target, heap_mb, jvm_options)
            progress(f"Keycloak snapshot ready in {time.monotonic() - started:.1f}s")
    return target


def _make(install: KeycloakInstall, realms: list[dict[str, Any]], target: Path, heap_mb: int, jvm: str) -> None:
    staging = keycloak_dist.fresh_staging(target)
    assert install.base_data is not None and install.template_password is not None
    keycloak_dist.copy_h2(install.base_data, staging)
    log = staging / "snapshot.log"
    with keycloak_dist.staged_server(install, staging, install.server_env(heap_mb, jvm), log) as url:
        admin = keycloak.RealmAdmin(url, TEMPLATE_ADMIN, install.template_password)
        for realm in realms:
            admin.create_realm(realm)
    shutil.rmtree(staging / "data" / "transaction-logs", ignore_errors=True)
    log.unlink(missing_ok=True)
    staging.rename(target)


def set_client_secrets(session: keycloak.AdminSession, realm: dict[str, Any], secrets: dict[str, str]) -> None:
    """Every client of ``realm`` (its representation) whose secret the snapshot masked gets this
    environment's (client id -> secret), by the internal id ``masked`` gave it."""
    name = str(realm.get("realm"))
    ids = {c["clientId"]: c["id"] for c in masked(realm).get("clients", []) if "id" in c and "clientId" in c}
    admin = session.client(name)
    for client, secret in secrets.items():
        with keycloak.refusals(f"setting the secret of client {client!r} in realm {name!r}"):
            admin.update_client(ids.get(client) or admin.get_client_id(client), {"secret": secret})


def secrets_of(realm: dict[str, Any]) -> dict[str, str]:
    """The secrets ``masked`` replaces, by client id."""
    return {c["clientId"]: c["secret"] for c in realm.get("clients", []) if "secret" in c and "clientId" in c}
