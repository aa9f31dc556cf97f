"""Backends run the servers: ``local`` (processes) and ``docker`` (containers)."""

from __future__ import annotations

from collections.abc import Callable

from driveops_env.backends.base import Backend, StartContext
from driveops_env.errors import MissingDependencyError, UsageError
from driveops_env.options import Settings

__all__ = ["Backend", "StartContext", "create_backend", "resolve_backend_name"]


def _quiet(_: str) -> None:
    pass


def resolve_backend_name(
    requested: str, settings: Settings | None = None, progress: Callable[[str], None] = _quiet
) -> str:
    """``auto`` becomes ``docker`` when a Docker engine answers and has (or can pull) the configured
    images, else ``local``, saying why in one line.  An explicit ``docker`` is never replaced."""
    if requested in ("local", "docker"):
        return requested
    if requested != "auto":
        raise UsageError(f"unknown backend {requested!r}", hint="use auto, local or docker")
    from driveops_env.backends.docker import DockerBackend
    from driveops_env.backends.docker_engine import engine_answers

    if not engine_answers():
        return "local"
    if settings is not None:
        try:
            DockerBackend(settings).ensure_images(progress)
        except MissingDependencyError as exc:
            progress(f"backend auto: {exc.message}; using the local backend")
            return "local"
    return "docker"


def create_backend(name: str, settings: Settings, engine: str = "") -> Backend:
    """A backend by name; ``engine``: where a running environment's containers are (its state says)."""
    if name == "local":
        from driveops_env.backends.local import LocalBackend

        return LocalBackend(settings)
    if name == "docker":
        from driveops_env.backends.docker import DockerBackend

        return DockerBackend(settings, engine)
    if name == "descriptor":
        from driveops_env.backends.descriptor import DescriptorBackend

        return DescriptorBackend(settings)
    raise UsageError(f"unknown backend {name!r}", hint="use auto, local or docker")
