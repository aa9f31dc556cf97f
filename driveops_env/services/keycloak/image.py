"""An optimized Keycloak image for the docker backend, derived once from the configured image.

Keycloak's own advice for containers: build an optimized image (``kc.sh build``) instead of running
``start-dev``, which re-augments the server and creates the master realm at every start.  Derived
once per base image (and extensions' content), on the engine itself (no registry needed):

1. ``FROM <image>`` (+ the extensions and themes) + ``RUN kc.sh build --db=dev-file
   --health-enabled=true --cache=local``;
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
import tarfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from driveops_env import builders, readiness
from driveops_env.errors import StartupError
from driveops_env.images import ready
from driveops_env.images.derivation import Builder, Derivation
from driveops_env.secret import generate_secret
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak import kcadm
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN, providers_digest
from driveops_env.services.keycloak.versions import KeycloakVersion
from driveops_env.services.servers import Engine

RECIPE = "v9"  # v7: no template password in the image's configuration; v8: its hashing cheap; v9: full admin tokens
REPOSITORY = "driveops-env/keycloak-optimized"


def _context(base: str, providers: Path | None) -> bytes:
    """The build context: a Dockerfile, and the extensions and themes when given."""
    lines = [f"FROM {base}"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        jars = sorted(providers.glob("*.jar")) if providers is not None else []
        for jar in jars:
            tar.add(jar, arcname=f"providers/{jar.name}")
        if jars:
            lines.append("COPY --chown=1000:0 providers/ /opt/keycloak/providers/")
        if providers is not None and (providers / "themes").is_dir():
            tar.add(providers / "themes", arcname="themes")
            lines.append("COPY --chown=1000:0 themes/ /opt/keycloak/themes/")
        lines.append("RUN /opt/keycloak/bin/kc.sh build --db=dev-file --health-enabled=true --cache=local")
        dockerfile = ("\n".join(lines) + "\n").encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    return buffer.getvalue()


def optimized(
    engine: Engine,
    base: str,
    cache: Path,
    progress: Callable[[str], None],
    version: KeycloakVersion,
    providers: Path | None = None,
) -> tuple[str, str]:
    """The optimized image's tag and its template admin's password (built once per base image)."""
    build_digest = hashlib.sha256(
        f"{engine.image_id(base)} {RECIPE} {providers_digest(providers)}".encode()
    ).hexdigest()[:12]
    # the initialised image holds a template admin whose password only this cache knows: one per cache
    # and engine (another cache, another user of the engine, or another engine used from this cache
    # gets its own, and never overwrites this one)
    digest = hashlib.sha256(f"{build_digest} {cache.resolve()} {engine.identity()}".encode()).hexdigest()[:12]
    tag = f"{REPOSITORY}:{digest}"
    secrets = cache / "docker" / f"keycloak-optimized-{digest}.json"
    secrets.parent.mkdir(parents=True, exist_ok=True)
    lock = secrets.with_suffix(".lock")
    with FileLock(str(lock)):
        known = ready.known_password(engine, tag, secrets)
        if known is not None:
            builders.used(secrets)  # `gc` keeps the most recently used
            return tag, known
        progress(f"deriving an optimized Keycloak image from {base} (once, about 1 min)")
        intermediate = f"{REPOSITORY}:{build_digest}-build"
        try:
            built = engine.build(_context(base, providers), intermediate, {"org.driveops-env.recipe": build_digest})
        except Exception as exc:
            raise StartupError(
                f"building the optimized Keycloak image from {base} failed: {exc}", service="keycloak"
            ) from exc
        password = generate_secret()
        labels = {"org.driveops-env.recipe": digest, "org.driveops-env.cache": str(cache.resolve())}
        made = engine.derive(_initialised(built, tag, labels, version, password, lock))
        engine.remove_image(intermediate)  # its layers live on in ``tag``
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"username": TEMPLATE_ADMIN, "password": password, "image": made}, handle)
    return tag, password


def _initialised(
    built: str, tag: str, labels: dict[str, str], version: KeycloakVersion, password: str, lock: Path
) -> Derivation:
    """The built image started once (schema, master realm, template admin), told to answer plain HTTP,
    its template admin's password hashed cheaply (each ``up`` logs in), stopped and committed."""

    def work(builder: Builder) -> None:
        url = builder.url("http")
        kcadm.plain_http(builder.exec, TEMPLATE_ADMIN, password)
        keycloak.wait_for_admin(url, TEMPLATE_ADMIN, password)
        keycloak.set_admin_password(url, TEMPLATE_ADMIN, password, password, template=True)

    environment = version.bootstrap_admin_env(TEMPLATE_ADMIN, password)
    return builder_derivation(
        built,
        tag,
        "the optimized Keycloak image",
        version,
        labels,
        builders.labels("keycloak-optimized", lock),
        work,
        environment,
    )


def builder_derivation(
    base: str,
    tag: str,
    what: str,
    version: KeycloakVersion,
    labels: dict[str, str],
    builder: dict[str, str],
    work: Callable[[Builder], object],
    environment: dict[str, str] | None = None,
) -> Derivation:
    """A Keycloak builder of ``base`` (the optimized image's command), ready when its health answers,
    then ``work``, committed as ``tag``.  ``environment``'s passwords are committed with values nobody keeps."""
    ports = version.container_ports

    def ready(b: Builder) -> None:
        readiness.http_ok(version.health_url(b.host, b.ports["http"], b.ports.get("management")))

    env = environment or {}
    return Derivation(
        base,
        tag,
        what,
        "keycloak",
        ready,
        labels=labels,
        builder_labels=builder,
        environment=env,
        secret_env=tuple(k for k in env if "PASSWORD" in k),
        ports=dict(ports),
        command=optimized_command(version),
        work=work,
    )


def optimized_command(version: KeycloakVersion) -> list[str]:
    """How a builder starts the optimized image: plain HTTP on the container's ports, any host name."""
    ports = version.container_ports
    listen = version.listen_args("0.0.0.0", ports["http"], ports.get("management"))  # noqa: S104 - in the container
    return ["start", "--optimized", "--http-enabled=true", "--hostname-strict=false", *listen]
