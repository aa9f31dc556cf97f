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

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders, process, readiness
from driveops_env.backends import docker_engine, ready_image
from driveops_env.errors import StartupError
from driveops_env.secret import generate_secret
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak import kcadm
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN, providers_digest
from driveops_env.services.keycloak.versions import KeycloakVersion

RECIPE = "v9"  # v7: no template password in the image's configuration; v8: its hashing cheap; v9: full admin tokens
REPOSITORY = "driveops-env/keycloak-optimized"


def _context(base: str, providers: Path | None) -> io.BytesIO:
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
    buffer.seek(0)
    return buffer


def optimized(
    client: Any,
    base: str,
    cache: Path,
    progress: Callable[[str], None],
    version: KeycloakVersion,
    providers: Path | None = None,
    addresses: tuple[str, str] = ("127.0.0.1", "127.0.0.1"),
) -> tuple[str, str]:
    """``addresses``: where the engine publishes ports, and where this machine reaches them."""
    """The optimized image's tag and its template admin's password (built once per base image)."""
    base_id = client.images.get(base).id
    build_digest = hashlib.sha256(f"{base_id} {RECIPE} {providers_digest(providers)}".encode()).hexdigest()[:12]
    # the initialised image holds a template admin whose password only this cache knows: one per cache
    # and engine (another cache, another user of the engine, or another engine used from this cache
    # gets its own, and never overwrites this one)
    engine = client.info().get("ID", "")
    digest = hashlib.sha256(f"{build_digest} {cache.resolve()} {engine}".encode()).hexdigest()[:12]
    tag = f"{REPOSITORY}:{digest}"
    secrets = cache / "docker" / f"keycloak-optimized-{digest}.json"
    secrets.parent.mkdir(parents=True, exist_ok=True)
    lock = secrets.with_suffix(".lock")
    with FileLock(str(lock)):
        known = ready_image.known_password(client, tag, secrets)
        if known is not None:
            builders.used(secrets)  # `gc` keeps the most recently used
            return tag, known
        progress(f"deriving an optimized Keycloak image from {base} (once, about 1 min)")
        try:
            built, _ = client.images.build(
                fileobj=_context(base, providers),
                custom_context=True,
                tag=f"{REPOSITORY}:{build_digest}-build",
                rm=True,
                labels={"org.driveops-env.recipe": build_digest},
            )
        except Exception as exc:
            raise StartupError(
                f"building the optimized Keycloak image from {base} failed: {exc}", service="keycloak"
            ) from exc
        password = generate_secret()
        labels = {"org.driveops-env.recipe": digest, "org.driveops-env.cache": str(cache.resolve())}
        _initialise(client, built, tag, labels, version, password, addresses, lock)
        with contextlib.suppress(Exception):  # the intermediate tag: its layers live on in ``tag``
            client.images.remove(f"{REPOSITORY}:{build_digest}-build")
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"username": TEMPLATE_ADMIN, "password": password, "image": client.images.get(tag).id}, handle)
    return tag, password


def _initialise(
    client: Any,
    built: Any,
    tag: str,
    labels: dict[str, str],
    version: KeycloakVersion,
    password: str,
    addresses: tuple[str, str],
    lock: Path,
) -> None:
    """Start the built image once (schema, master realm, template admin), stop it, commit it.  The
    container carries the builder labels: if this process dies, the next ``up`` or ``gc`` removes it."""
    running = builder_container(
        client,
        built.id,
        version,
        addresses,
        labels | builders.labels("keycloak-optimized", lock),
        version.bootstrap_admin_env(TEMPLATE_ADMIN, password),
    )
    try:
        with running as (container, url):
            kcadm.plain_http(partial(docker_engine.exec_in, client, container.id), TEMPLATE_ADMIN, password)
            keycloak.wait_for_admin(url, TEMPLATE_ADMIN, password)
            keycloak.set_admin_password(url, TEMPLATE_ADMIN, password, password, template=True)  # each up logs in
            commit(client, container, built.id, tag, labels)
    except Exception as exc:
        raise StartupError(f"deriving the optimized Keycloak image failed: {exc}", service="keycloak") from exc


@contextlib.contextmanager
def builder_container(
    client: Any,
    image: str,
    version: KeycloakVersion,
    addresses: tuple[str, str],
    labels: dict[str, str],
    environment: dict[str, str] | None = None,
) -> Iterator[tuple[Any, str]]:
    """A builder's Keycloak container of ``image``, ready, until the block ends (then removed with its
    volumes): the container and its base URL.  ``addresses``: where the engine publishes ports, and
    where this machine reaches them."""
    ports = version.container_ports
    published = {f"{p}/tcp": (addresses[0], None) for p in ports.values()}
    command = optimized_command(version)
    container = client.containers.run(
        image, command=command, detach=True, labels=labels, ports=published, environment=environment
    )
    try:
        container.reload()
        found = container.attrs["NetworkSettings"]["Ports"]
        bound = {name: int(found[f"{p}/tcp"][0]["HostPort"]) for name, p in ports.items()}
        health = version.health_url(addresses[1], bound["http"], bound.get("management"))
        readiness.wait_until(
            lambda: readiness.http_ok(health),
            timeout=300,
            service="keycloak",
            alive=lambda: docker_engine.running(container),
            logs=lambda: process.excerpt(container.logs(tail=400).decode(errors="replace")),
        )
        yield container, f"http://{addresses[1]}:{bound['http']}"
    finally:
        container.remove(force=True, v=True)


def commit(client: Any, container: Any, source: str, tag: str, labels: dict[str, str]) -> None:
    """Stop the container gracefully and commit it as ``tag`` with the configuration of the image it
    ran (``source``): the environment it was started with (the template password) stays out."""
    container.stop(timeout=60)
    config = client.images.get(source).attrs["Config"]
    conf = {k: config.get(k) for k in ("Cmd", "Entrypoint", "User")}
    secrets = [e.split("=", 1)[0] for e in container.attrs["Config"].get("Env") or [] if "PASSWORD=" in e]
    conf |= {"Env": docker_engine.commit_env(container, secrets), "Labels": labels}
    container.commit(repository=tag.split(":")[0], tag=tag.split(":")[1], conf=conf)


def optimized_command(version: KeycloakVersion) -> list[str]:
    """How a builder starts the optimized image: plain HTTP on the container's ports, any host name."""
    ports = version.container_ports
    listen = version.listen_args("0.0.0.0", ports["http"], ports.get("management"))  # noqa: S104 - in the container
    return ["start", "--optimized", "--http-enabled=true", "--hostname-strict=false", *listen]
