"""The docker engine's side of ``Engine.derive`` and the other image calls the units' recipes make
(:mod:`driveops_env.images`): a derivation's builder container run, waited for, worked on, stopped
gracefully and committed with the configuration of the image it ran."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from functools import partial
from typing import Any

from driveops_env import process, readiness
from driveops_env.backends import docker_engine
from driveops_env.errors import StartupError
from driveops_env.images.derivation import Builder, Derivation

KEPT = ("Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "StopSignal")  # of the base image


def derive(client: Any, addresses: tuple[str, str], recipe: Derivation) -> str:
    """``recipe`` run and committed; the new image's id.  ``addresses``: where the engine publishes
    ports, and where this machine reaches them."""
    base = client.images.get(recipe.base).attrs["Config"]
    entrypoint = [*recipe.wrap_builder, *(base.get("Entrypoint") or [])] if recipe.wrap_builder else None
    command = recipe.command if recipe.command is not None else base.get("Cmd")  # an entry point given clears it
    container = client.containers.run(
        recipe.base,
        entrypoint=entrypoint,
        command=list(command) if command is not None else None,
        environment=dict(recipe.environment),
        labels={**recipe.labels, **recipe.builder_labels},
        ports={f"{port}/tcp": (addresses[0], None) for port in recipe.ports.values()},
        detach=True,
    )
    try:
        builder = _builder(client, container, recipe.ports, addresses[1])
        readiness.wait_until(
            lambda: recipe.ready(builder),
            timeout=300,
            service=recipe.service,
            alive=lambda: docker_engine.running(container),
            logs=lambda: process.excerpt(container.logs(tail=400).decode(errors="replace")),
        )
        if recipe.work is not None:
            recipe.work(builder)
        container.stop(timeout=60)
        repository, _, tag = recipe.tag.rpartition(":")
        container.commit(repository=repository, tag=tag, conf=_config(base, container, recipe))
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError(
            f"deriving {recipe.what} from {recipe.base} failed: {exc}", service=recipe.service, hint=recipe.hint
        ) from exc
    finally:
        container.remove(force=True, v=True)
    return str(client.images.get(recipe.tag).id)


def _builder(client: Any, container: Any, ports: Mapping[str, int], host: str) -> Builder:
    container.reload()
    found = container.attrs["NetworkSettings"]["Ports"]
    bound = {name: int(found[f"{port}/tcp"][0]["HostPort"]) for name, port in ports.items()}
    return Builder(host, bound, partial(docker_engine.exec_in, client, container.id))


def _config(base: dict[str, Any], container: Any, recipe: Derivation) -> dict[str, Any]:
    """The base image's configuration; its environment the builder's (the engine keeps every variable
    a commit's configuration lacks), with the secrets replaced and the builder's own places reset."""
    conf = {key: base.get(key) for key in KEPT}
    if recipe.wrap_image:
        conf["Entrypoint"] = [*recipe.wrap_image, *(base.get("Entrypoint") or [])]
    original = dict(e.partition("=")[::2] for e in base.get("Env") or [])
    env = [
        f"{k}={original.get(k, '')}" if k in recipe.reset_env else f"{k}={v}"
        for k, _, v in (e.partition("=") for e in docker_engine.commit_env(container, recipe.secret_env))
    ]
    return conf | {"Env": env, "Labels": dict(recipe.labels)}


def image_id(client: Any, reference: str) -> str | None:
    try:
        return str(client.images.get(reference).id)
    except Exception:  # ImageNotFound, or a reference the engine refuses
        return None


def build(client: Any, context: bytes, tag: str, labels: Mapping[str, str]) -> str:
    """An image built from a tar ``context`` holding a Dockerfile; its id."""
    built, _ = client.images.build(
        fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, labels=dict(labels)
    )
    return str(built.id)


def remove_image(client: Any, reference: str) -> None:
    """Removed, unless a container still uses it (``gc`` removes it later)."""
    with contextlib.suppress(Exception):
        client.images.remove(reference)
