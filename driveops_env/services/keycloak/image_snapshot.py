"""Realms from a snapshot on the docker backend: an image derived from the optimized Keycloak image whose
database already holds the realms of a tenant set (client secrets masked), made once per tenant set,
base image and cache, on the engine itself.  As on the local backend (:mod:`.keycloak_snapshot`), an
environment's container then only gets its own client secrets and admin password."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders
from driveops_env.images.derivation import Builder
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN
from driveops_env.services.keycloak.image import builder_derivation
from driveops_env.services.keycloak.snapshot import masked
from driveops_env.services.keycloak.versions import KeycloakVersion
from driveops_env.services.servers import Engine

REPOSITORY = "driveops-env/keycloak-realms"


def ensure(
    engine: Engine,
    optimized: str,
    template_password: str,
    realms: Sequence[dict[str, Any]],
    version: KeycloakVersion,
    lock_dir: Path,
    progress: Callable[[str], None],
) -> str:
    """The tag of an image holding ``realms`` (made once from ``optimized``)."""
    # keyed by the optimized image's id: one derived again (another template password) gets new snapshots
    content = json.dumps([engine.image_id(optimized), [masked(r) for r in realms]], sort_keys=True)
    tag = f"{REPOSITORY}:{hashlib.sha256(content.encode()).hexdigest()[:16]}"
    lock = lock_dir / f".{tag.split(':')[1]}.lock"
    with FileLock(str(lock)):
        builders.used(lock)  # `gc` keeps the most recently used
        if engine.image_id(tag) is not None:
            return tag
        progress(f"making a Keycloak image with {len(realms)} realm(s) (once per tenant set)")

        def create(builder: Builder) -> None:
            admin = keycloak.RealmAdmin(builder.url("http"), TEMPLATE_ADMIN, template_password)
            for realm in map(masked, realms):
                admin.create_realm(realm)

        labels = {
            "org.driveops-env.cache": str(lock_dir.parent.resolve()),
            "org.driveops-env.recipe": tag.split(":")[1],
        }
        what = "the Keycloak image with the realms"
        engine.derive(
            builder_derivation(optimized, tag, what, version, labels, builders.labels("keycloak-realms", lock), create)
        )
    return tag
