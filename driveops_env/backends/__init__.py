"""Backends run the servers; they are found in one table (as nox's virtualenv backends), and ``auto``
is a rule over it: the first of ``AUTO`` that says it is available.

| name | family | what it runs |
|---|---|---|
| local | process | processes on this machine (``--local-user`` as root) |
| docker | container | containers on a Docker engine, local or remote |
| kubernetes | container | Pods on a cluster of the kubeconfig (named only: ``auto`` never picks it) |
| descriptor | - | nothing: an environment known from another machine's descriptor, reached over the network |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from driveops_env.backends.base import Backend, StartContext
from driveops_env.errors import UsageError
from driveops_env.settings import Settings

__all__ = ["CHOOSABLE", "Backend", "StartContext", "backend_class", "create_backend", "resolve_backend_name"]

BACKENDS = {
    "local": "driveops_env.backends.local:LocalBackend",
    "docker": "driveops_env.backends.docker:DockerBackend",
    "kubernetes": "driveops_env.backends.kubernetes:KubernetesBackend",
    "descriptor": "driveops_env.backends.readonly:ReadOnlyBackend",
}
AUTO = ("docker", "local")  # what ``auto`` tries, in order
CHOOSABLE = ("local", "docker", "kubernetes")


def _quiet(_: str) -> None:
    pass


def backend_class(name: str) -> type[Backend]:
    reference = BACKENDS.get(name)
    if reference is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"use auto, {', '.join(CHOOSABLE)}")
    module, _, attribute = reference.partition(":")
    found: type[Backend] = getattr(importlib.import_module(module), attribute)
    return found


def resolve_backend_name(requested: str, settings: Settings, progress: Callable[[str], None] = _quiet) -> str:
    """``auto`` becomes the first backend of ``AUTO`` that is available (docker: an engine answers and
    has, or can pull, the images; it says in one line why not), else the last.  An explicit name is
    never replaced."""
    if requested != "auto":
        backend_class(requested)
        return requested
    for name in AUTO[:-1]:
        if backend_class(name).available(settings, progress):
            return name
    return AUTO[-1]


def create_backend(name: str, settings: Settings, engine: str = "") -> Backend:
    """A backend by name; ``engine``: where a running environment's servers are (its state says)."""
    return backend_class(name)(settings, engine)
