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

from driveops_env import builders, process, readiness
from driveops_env.builders import image_present
from driveops_env.errors import StartupError
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN
from driveops_env.services.keycloak.image import commit
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
        builder = builders.labels("keycloak-realms", lock)
        _make(client, optimized, tag, template_password, [masked(r) for r in realms], version, addresses, builder)
    return tag


def _make(
    client: Any,
    optimized: str,
    tag: str,
    password: str,
    realms: list[dict[str, Any]],
    version: KeycloakVersion,
    addresses: tuple[str, str],
    builder: dict[str, str],
) -> None:
    ports = version.container_ports
    command = [
        "start",
        "--optimized",
        "--http-enabled=true",
        "--hostname-strict=false",
        *version.listen_args("0.0.0.0", ports["http"], ports.get("management")),  # noqa: S104 - in the container
    ]
    labels = dict(client.images.get(optimized).labels or {})
    container = client.containers.run(
        optimized,
        command=command,
        detach=True,
        labels=labels | builder,
        ports={f"{p}/tcp": (addresses[0], None) for p in ports.values()},
    )
    try:
        container.reload()
        bound = {
            n: int(container.attrs["NetworkSettings"]["Ports"][f"{p}/tcp"][0]["HostPort"]) for n, p in ports.items()
        }
        readiness.wait_until(
            lambda: readiness.http_ok(version.health_url(addresses[1], bound["http"], bound.get("management"))),
            timeout=300,
            service="keycloak",
            logs=lambda: process.excerpt(container.logs(tail=400).decode(errors="replace")),
        )
        admin = keycloak.RealmAdmin(f"http://{addresses[1]}:{bound['http']}", TEMPLATE_ADMIN, password)
        for realm in realms:
            admin.create_realm(realm)
        commit(client, container, optimized, tag, labels)
    except Exception as exc:
        raise StartupError(f"making the Keycloak image with the realms failed: {exc}", service="keycloak") from exc
    finally:
        container.remove(force=True, v=True)
