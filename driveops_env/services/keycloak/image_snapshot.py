"""Realms from a snapshot on the docker backend: an image derived from the optimized Keycloak image whose
database already holds the realms of a tenant set (client secrets masked), made once per tenant set,
base image and cache, on the engine itself.  As on the local backend (:mod:`.keycloak_snapshot`), an
environment's container then only gets its own client secrets and admin password."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from filelock import FileLock

from driveops_env import builders
from driveops_env.builders import image_present
from driveops_env.errors import StartupError
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN
from driveops_env.services.keycloak.image import builder_container, commit
from driveops_env.services.keycloak.snapshot import masked
from driveops_env.services.keycloak.versions import KeycloakVersion

REPOSITORY = "driveops-env/keycloak-realms"


def ensure(
    client: Any,
    optimized: str,
    template_password: str,
    realms: Sequence[dict[str, Any]],
    version: KeycloakVersion,
    addresses: tuple[str, str],
    lock_dir: Any,
    progress: Callable[[str], None],
) -> str:
    """The tag of an image holding ``realms`` (made once from ``optimized``)."""
    # keyed by the optimized image's id: one derived again (another template password) gets new snapshots
    content = json.dumps([client.images.get(optimized).id, [masked(r) for r in realms]], sort_keys=True)
    tag = f"{REPOSITORY}:{hashlib.sha256(content.encode()).hexdigest()[:16]}"
    lock = lock_dir / f".{tag.split(':')[1]}.lock"
    with FileLock(str(lock)):
        builders.used(lock)  # `gc` keeps the most recently used
        if image_present(client, tag):
            return tag
        progress(f"making a Keycloak image with {len(realms)} realm(s) (once per tenant set)")
        labels = dict(client.images.get(optimized).labels or {})
        running = builder_container(
            client, optimized, version, addresses, labels | builders.labels("keycloak-realms", lock)
        )
        try:
            with running as (container, url):
                admin = keycloak.RealmAdmin(url, TEMPLATE_ADMIN, template_password)
                for realm in map(masked, realms):
                    admin.create_realm(realm)
                commit(client, container, optimized, tag, labels)
        except Exception as exc:
            raise StartupError(f"making the Keycloak image with the realms failed: {exc}", service="keycloak") from exc
    return tag
