"""Store images that start initialised (container engines that build: docker, a remote engine).

A store's image initialises its data at a container's first start (a new cluster, its users), at every
``up``, on the cores the identity server starts on.  So an image whose data is initialised is derived
once per configured image, cache and engine:

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

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders
from driveops_env.images.derivation import Derivation
from driveops_env.secret import generate_secret
from driveops_env.services.servers import ContainerSpec, Engine, Prepare

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
    if not wanted or ctx.engine is None or not ctx.engine.builds:
        return None
    return ensure(ctx.engine, recipe, cache, ctx.progress, ctx.rebuild)


def ensure(
    engine: Engine, recipe: Recipe, cache: Path, progress: Callable[[str], None], rebuild: bool = False
) -> Ready:
    """The initialised image of ``recipe``, derived once, or again with ``rebuild`` (``up --recreate``;
    the image it replaces is removed when no container uses it)."""
    base = recipe.spec.image
    how = [recipe.data_env, recipe.kept, recipe.command or recipe.spec.command]
    content = json.dumps([engine.image_id(base), RECIPE, how], sort_keys=True)
    digest = hashlib.sha256(f"{content} {cache.resolve()} {engine.identity()}".encode()).hexdigest()[:12]
    ((repository, use_file),) = kinds(recipe.service)
    tag = f"{repository}:{digest}"
    secrets = cache / "docker" / use_file.format(digest)
    secrets.parent.mkdir(parents=True, exist_ok=True)
    lock = secrets.with_suffix(".lock")
    with FileLock(str(lock)):
        known = known_password(engine, tag, secrets)
        if known is not None and not rebuild:
            builders.used(secrets)
            return Ready(tag, known)
        replaced = engine.image_id(tag) if known is not None else None
        progress(f"deriving an initialised {recipe.service} image from {base} (once)")
        password = generate_secret()
        labels = {"org.driveops-env.recipe": digest, "org.driveops-env.cache": str(cache.resolve())}
        made = engine.derive(
            _derivation(recipe, tag, password, labels, builders.labels(f"{recipe.service}-ready", lock))
        )
        _write_secret(secrets, {"password": password, "image": made})
        if replaced is not None:
            engine.remove_image(replaced)  # still used by a container: `gc` removes it later
    return Ready(tag, password)


def known_password(engine: Engine, tag: str, secrets: Path) -> str | None:
    """The template password, if the file was written for the image the tag names now (an image
    derived again or replaced under the same tag makes the password unknown: derive again)."""
    try:
        recorded = json.loads(secrets.read_text())
        password, image = str(recorded["password"]), recorded.get("image")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no file, or not one of ours
        return None
    current = engine.image_id(tag)
    return password if current is not None and image == current else None


def _derivation(recipe: Recipe, tag: str, password: str, labels: dict[str, str], builder: dict[str, str]) -> Derivation:
    """The builder runs the configured image with the template password, its data kept outside the
    image's VOLUMEs; the image copies that data into the container's data directory at each start."""
    spec = recipe.spec
    return Derivation(
        spec.image,
        tag,
        f"an initialised {recipe.service} image",
        recipe.service,
        ready=lambda b: recipe.probe(b.host, b.ports["main"], password),
        labels=labels,
        builder_labels=builder,
        environment=spec.env | {k: password for k in spec.secret_env} | recipe.data_env,
        secret_env=spec.secret_env,
        reset_env=tuple(recipe.data_env),
        ports={"main": spec.port},
        command=recipe.command or spec.command or None,
        wrap_builder=["/bin/sh", "-c", MAKE, "ready-make", recipe.kept, spec.data_dirs[0]],
        wrap_image=["/bin/sh", "-c", COPY, "ready-copy", recipe.kept, spec.data_dirs[0]],
        hint=f"check {spec.image_option}; `driveops-env gc` removes what a failed derivation left",
    )


# the builder's: the kept directory made with the owner and mode of the image's data directory (a
# server may not make it itself: mongod wants its --dbpath to exist), then the image's entry point
MAKE = 'mkdir -p "$1" && chown "$(stat -c %u:%g "$2")" "$1" && chmod "$(stat -c %a "$2")" "$1"; shift 2; exec "$@"'


# copies the kept data into the (empty) data directory, then runs the image's own entry point
COPY = '[ -n "$(ls -A "$2" 2>/dev/null)" ] || cp -a "$1/." "$2/" || exit 1; shift 2; exec "$@"'


def _write_secret(path: Path, content: dict[str, str]) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)
