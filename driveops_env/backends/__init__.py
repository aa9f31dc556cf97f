"""Backends run the servers: ``local`` (processes) and ``docker`` (containers)."""

from __future__ import annotations

from driveops_env.backends.base import Backend, StartContext
from driveops_env.errors import UsageError
from driveops_env.options import Settings

__all__ = ["Backend", "StartContext", "create_backend", "resolve_backend_name"]


def resolve_backend_name(requested: str) -> str:
    """``auto`` becomes ``docker`` when a Docker engine answers, else ``local``."""
    if requested in ("local", "docker"):
        return requested
    if requested == "auto":
        from driveops_env.backends.docker import engine_answers

        return "docker" if engine_answers() else "local"
    raise UsageError(f"unknown backend {requested!r}", hint="use auto, local or docker")


def create_backend(name: str, settings: Settings) -> Backend:
    if name == "local":
        from driveops_env.backends.local import LocalBackend

        return LocalBackend(settings)
    if name == "docker":
        from driveops_env.backends.docker import DockerBackend

        return DockerBackend(settings)
    raise UsageError(f"unknown backend {name!r}", hint="use auto, local or docker")
