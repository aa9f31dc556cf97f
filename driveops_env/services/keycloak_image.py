"""An optimized Keycloak image for the docker backend, derived once from the configured image.

Keycloak's own advice for containers: build an optimized image (``kc.sh build``) instead of running
``start-dev``, which re-augments the server and creates the master realm at every start.  Derived
once per base image, on the engine itself (no registry needed), cached by the base image's id:

1. ``FROM <image>`` + ``RUN kc.sh build --db=dev-file --health-enabled=true --cache=local``;
2. started once with a template admin, until ready, stopped gracefully, and committed: the image then
   holds an initialised database (schema and master realm).

A container of it runs ``start --optimized``; the template admin's password (kept 0600 in the cache,
never in the image's configuration) is replaced by the environment's generated one right after start.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import readiness
from driveops_env.errors import StartupError
from driveops_env.secret import generate_secret
from driveops_env.services import keycloak
from driveops_env.services.keycloak_dist import TEMPLATE_ADMIN

RECIPE = "v1"
DOCKERFILE = """\
FROM {base}
RUN /opt/keycloak/bin/kc.sh build --db=dev-file --health-enabled=true --cache=local
"""
START = ["start", "--optimized", "--http-enabled=true", "--hostname-strict=false", "--http-port=8080",
         "--http-management-port=9000", "--cache=local"]  # fmt: skip


def optimized(client: Any, base: str, cache: Path, progress: Callable[[str], None]) -> tuple[str, str]:
    """The optimized image's tag and its template admin's password (built once per base image)."""
    base_id = client.images.get(base).id
    digest = hashlib.sha256(f"{base_id} {RECIPE}".encode()).hexdigest()[:12]
    tag = f"driveops-env/keycloak-optimized:{digest}"
    secrets = cache / "docker" / f"keycloak-optimized-{digest}.json"
    secrets.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(secrets.with_suffix(".lock"))):
        if secrets.exists() and image_present(client, tag):
            return tag, str(json.loads(secrets.read_text())["password"])
        progress(f"deriving an optimized Keycloak image from {base} (once, about 1 min)")
        built, _ = client.images.build(
            fileobj=io.BytesIO(DOCKERFILE.format(base=base).encode()), tag=f"{tag}-build", rm=True,
            labels={"org.driveops-env.recipe": digest},
        )  # fmt: skip
        password = generate_secret()
        container = client.containers.run(
            built.id, command=START, detach=True, labels={"org.driveops-env.recipe": digest},
            ports={"9000/tcp": ("127.0.0.1", None), "8080/tcp": ("127.0.0.1", None)},
            environment={"KC_BOOTSTRAP_ADMIN_USERNAME": TEMPLATE_ADMIN,
                         "KC_BOOTSTRAP_ADMIN_PASSWORD": password},
        )  # fmt: skip
        try:
            container.reload()
            ports = container.attrs["NetworkSettings"]["Ports"]
            management = ports["9000/tcp"][0]["HostPort"]
            http = ports["8080/tcp"][0]["HostPort"]
            readiness.wait_until(
                lambda: readiness.http_ok(f"http://127.0.0.1:{management}/health/ready"),
                timeout=300, service="keycloak",
                logs=lambda: container.logs(tail=30).decode(errors="replace"),
            )  # fmt: skip
            keycloak.admin_token(f"http://127.0.0.1:{http}", TEMPLATE_ADMIN, password)
            container.stop(timeout=60)
            # the committed configuration is the built image's: the template password stays out of it
            config = client.images.get(built.id).attrs["Config"]
            container.commit(repository=tag.split(":")[0], tag=digest,
                             conf={"Env": config.get("Env"), "Cmd": config.get("Cmd"),
                                   "Entrypoint": config.get("Entrypoint"), "User": config.get("User"),
                                   "Labels": {"org.driveops-env.recipe": digest}})  # fmt: skip
        except Exception as exc:
            raise StartupError(
                f"deriving the optimized Keycloak image failed: {exc}", service="keycloak"
            ) from exc
        finally:
            container.remove(force=True, v=True)
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"username": TEMPLATE_ADMIN, "password": password}, handle)
    return tag, password


def image_present(client: Any, tag: str) -> bool:
    """Whether the engine has the image (the docker backend asks this too)."""
    try:
        client.images.get(tag)
    except Exception:  # ImageNotFound
        return False
    return True
