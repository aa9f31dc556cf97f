"""Store images that start initialised (container engines that build: docker, a remote engine).

A store's image initialises its data at a container's first start (PostgreSQL's ``initdb``, its users),
at every ``up``, on the cores Keycloak starts on.  As Keycloak's optimized image is, an image whose data
is initialised is derived once per configured image, cache and engine:

1. a builder container of the configured image runs with the service's environment, a template
   password in its secret values, and its data kept (``data_env``) outside the image's VOLUMEs, until
   the service's probe logs in with that password;
2. it is stopped gracefully and committed with the configuration of the image it ran, its entry point
   wrapped in a copy of the kept data into the container's data directory (in memory; writing the
   image's own files would copy each up to the container's layer on disk, WAL segments of 16 MB
   included: a seed took 1.3 s instead of 0.15 s): the template password is in no layer's
   configuration (only its hash is, in the data);
3. a container of it copies the data and starts the server; the service replaces the template password
   with the environment's generated one right after the start (its ``after_start``).

The template password is kept 0600 in ``<cache>/docker/<service>-ready-<digest>.json`` with the id of the image it
belongs to; an image replaced under the same tag, another base image (a changed ``--image-*`` setting,
a rebuilt stand-in) or another recipe derives again.  ``gc`` keeps the 3 most recently used per cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders, process, readiness
from driveops_env.backends import docker_engine
from driveops_env.errors import StartupError
from driveops_env.secret import generate_secret
from driveops_env.services.base import ContainerSpec, Prepare

RECIPE = "v5"  # v5: the builder makes the kept directory (mongod wants it to exist)


def collect(client: Any, cache: Path, service: str) -> list[str]:
    """For ``gc``: the service's initialised images beyond the most recently used, and those
    ``up --recreate`` replaced while a container still ran them."""
    return builders.prune_images(client, cache, kinds(service)) + builders.prune_untagged(client, cache)


def kinds(service: str) -> list[tuple[str, str]]:
    """The service's initialised images, for ``gc`` (:func:`driveops_env.builders.prune_images`): their
    repository, and the file of ``<cache>/docker`` each use touches (``{}``: the tag)."""
    return [(f"driveops-env/{service}-ready", f"{service}-ready-{{}}.json")]


@dataclass(frozen=True)
class Recipe:
    """How a service's image is initialised: its container as ``up`` describes it (the secret values get
    the template password), where the data goes instead, and a login that proves it is done."""

    service: str
    spec: ContainerSpec  # its first ``data_dirs`` entry: where a container keeps its data (in memory)
    data_env: dict[str, str]  # the builder's: its data in ``kept`` instead, which the commit keeps
    kept: str  # a directory no VOLUME of the image covers
    probe: Callable[[str, int, str], object]  # (host, port, password): raises until it logs in
    command: list[str] | None = None  # the builder's, when the data's place is an argument (mongod --dbpath)


@dataclass(frozen=True)
class Ready:
    """A derived image and the password its data was initialised with."""

    image: str
    template_password: str


def for_service(ctx: Prepare, recipe: Recipe, cache: Path, wanted: bool) -> Ready | None:
    """A unit's ``prepare``: its initialised image when ``wanted`` and the engine builds, else None."""
    client = ctx.engine.client() if ctx.engine is not None else None
    if not wanted or client is None or ctx.engine is None:
        return None
    return ensure(client, recipe, cache, ctx.progress, ctx.engine.addresses(), ctx.rebuild)


def ensure(
    client: Any,
    recipe: Recipe,
    cache: Path,
    progress: Callable[[str], None],
    addresses: tuple[str, str],
    rebuild: bool = False,
) -> Ready:
    """The initialised image of ``recipe``, derived once, or again with ``rebuild`` (``up --recreate``;
    the image it replaces is removed when no container uses it).  ``addresses``: where the engine
    publishes ports, and where this machine reaches them."""
    base = recipe.spec.image
    how = [recipe.data_env, recipe.kept, recipe.command or recipe.spec.command]
    content = json.dumps([client.images.get(base).id, RECIPE, how], sort_keys=True)
    engine = client.info().get("ID", "")
    digest = hashlib.sha256(f"{content} {cache.resolve()} {engine}".encode()).hexdigest()[:12]
    ((repository, use_file),) = kinds(recipe.service)
    tag = f"{repository}:{digest}"
    secrets = cache / "docker" / use_file.format(digest)
    secrets.parent.mkdir(parents=True, exist_ok=True)
    lock = secrets.with_suffix(".lock")
    with FileLock(str(lock)):
        known = known_password(client, tag, secrets)
        if known is not None and not rebuild:
            builders.used(secrets)
            return Ready(tag, known)
        replaced = client.images.get(tag).id if known is not None else None
        progress(f"deriving an initialised {recipe.service} image from {base} (once)")
        password = generate_secret()
        labels = {"org.driveops-env.recipe": digest, "org.driveops-env.cache": str(cache.resolve())}
        _derive(client, recipe, tag, password, labels | builders.labels(f"{recipe.service}-ready", lock), addresses)
        _write_secret(secrets, {"password": password, "image": client.images.get(tag).id})
        if replaced is not None:
            with contextlib.suppress(Exception):  # still used by a container: `gc` removes it later
                client.images.remove(replaced)
    return Ready(tag, password)


def known_password(client: Any, tag: str, secrets: Path) -> str | None:
    """The template password, if the file was written for the image the tag names now (an image
    derived again or replaced under the same tag makes the password unknown: derive again)."""
    try:
        recorded = json.loads(secrets.read_text())
        current = client.images.get(tag).id
    except Exception:  # no file, an unreadable one, or no image
        return None
    return str(recorded["password"]) if recorded.get("image") == current else None


def _derive(
    client: Any, recipe: Recipe, tag: str, password: str, labels: dict[str, str], addresses: tuple[str, str]
) -> None:
    spec = recipe.spec
    environment = spec.env | {k: password for k in spec.secret_env} | recipe.data_env
    config = client.images.get(spec.image).attrs["Config"]
    container = client.containers.run(
        spec.image,
        entrypoint=[*_make_kept(recipe), *(config.get("Entrypoint") or [])],
        command=recipe.command or spec.command or config.get("Cmd"),
        environment=environment,
        labels=labels,
        ports={f"{spec.port}/tcp": (addresses[0], None)},
        detach=True,
    )
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"][f"{spec.port}/tcp"][0]["HostPort"])
        readiness.wait_until(
            lambda: recipe.probe(addresses[1], port, password),
            timeout=300,
            service=recipe.service,
            alive=lambda: docker_engine.running(container),
            logs=lambda: process.excerpt(container.logs(tail=400).decode(errors="replace")),
        )
        container.stop(timeout=60)
        repository, name = tag.split(":")
        container.commit(repository=repository, tag=name, conf=_config(client, container, recipe, labels))
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError(
            f"deriving an initialised image from {spec.image} failed: {exc}",
            service=recipe.service,
            hint=f"check {spec.image_option}; `driveops-env gc` removes what a failed derivation left",
        ) from exc
    finally:
        container.remove(force=True, v=True)


# the builder's: the kept directory made with the owner and mode of the image's data directory (a
# server may not make it itself: mongod wants its --dbpath to exist), then the image's entry point
MAKE = 'mkdir -p "$1" && chown "$(stat -c %u:%g "$2")" "$1" && chmod "$(stat -c %a "$2")" "$1"; shift 2; exec "$@"'


def _make_kept(recipe: Recipe) -> list[str]:
    return ["/bin/sh", "-c", MAKE, "ready-make", recipe.kept, recipe.spec.data_dirs[0]]


# copies the kept data into the (empty) data directory, then runs the image's own entry point
COPY = '[ -n "$(ls -A "$2" 2>/dev/null)" ] || cp -a "$1/." "$2/" || exit 1; shift 2; exec "$@"'


def _config(client: Any, container: Any, recipe: Recipe, labels: dict[str, str]) -> dict[str, Any]:
    """The configuration of the image the builder ran, its entry point wrapped in the copy."""
    config = client.images.get(recipe.spec.image).attrs["Config"]
    entrypoint = list(config.get("Entrypoint") or [])
    copy = ["/bin/sh", "-c", COPY, "ready-copy", recipe.kept, recipe.spec.data_dirs[0]]
    conf = {k: config.get(k) for k in ("Cmd", "User", "WorkingDir", "ExposedPorts", "StopSignal")}
    base = dict(e.partition("=")[::2] for e in config.get("Env") or [])  # the data's place: the image's own
    env = [
        f"{k}={base.get(k, '')}" if k in recipe.data_env else f"{k}={v}"
        for k, _, v in (e.partition("=") for e in docker_engine.commit_env(container, recipe.spec.secret_env))
    ]
    return conf | {"Env": env, "Entrypoint": copy + entrypoint, "Labels": _without(labels)}


def _without(labels: dict[str, str]) -> dict[str, str]:
    """The image's labels: not the builder's (a container of it is no builder)."""
    return {k: v for k, v in labels.items() if k not in (builders.BUILDER, builders.BUILDER_LOCK)}


def _write_secret(path: Path, content: dict[str, str]) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)
