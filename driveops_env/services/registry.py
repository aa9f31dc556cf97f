"""The registry: one table of the services driveops-env knows, built in and plugged in.

A service of your own plugs in through the entry point group ``driveops_env.services`` (``name =
"package.module:ServiceClass"``), a subclass of :class:`~driveops_env.services.base.Service`; it runs
when ``services`` names it.  Everything else iterates this table.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Sequence
from typing import Any

from driveops_env.errors import UsageError
from driveops_env.option_types import Option, table
from driveops_env.services.base import Service
from driveops_env.settings import Settings

ENTRY_POINTS = "driveops_env.services"
# the built-in services, in the order everything lists them
BUILT_IN = (
    "driveops_env.services.keycloak:KeycloakService",
    "driveops_env.services.postgres:PostgresService",
    "driveops_env.services.mongo:MongoService",
    "driveops_env.services.redis:RedisService",
)


def _load(reference: str) -> type[Service[Any, Any]]:
    module, _, name = reference.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Service)):
        raise UsageError(
            f"{reference} is not a driveops-env service", hint="subclass driveops_env.services.base.Service"
        )
    return found


def _plugged(entry: importlib.metadata.EntryPoint) -> type[Service[Any, Any]]:
    """A service of the entry point group; one whose package is gone or broken is named, not a traceback."""
    try:
        return _load(entry.value)
    except (ImportError, TypeError) as exc:  # gone, broken, or written for an earlier driveops-env
        package = entry.dist.name if entry.dist is not None else "its package"
        raise UsageError(
            f"the service plugged in as {entry.name!r} ({entry.value}) cannot be imported: {exc}",
            hint=f"reinstall {package}, or remove it: pip uninstall {package}",
        ) from None


def classes(*, plugged: bool = True) -> list[type[Service[Any, Any]]]:
    """Every service class: the built-in ones, then (``plugged``) those of the entry point group."""
    found = [_load(reference) for reference in BUILT_IN]
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS) if plugged else ():
        found.append(_plugged(entry))
    names = [cls.name for cls in found]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise UsageError(f"two services are named {', '.join(doubled)}", hint="rename one of the plugged-in services")
    return found


def names() -> list[str]:
    return [cls.name for cls in classes()]


def default_names() -> tuple[str, ...]:
    return tuple(cls.name for cls in classes() if cls.default)


def options(*, plugged: bool = True) -> tuple[Option, ...]:
    """Every option: the generic ones, then each service's own (``plugged``: plugged-in ones' too)."""
    result = list(table(Settings))
    for cls in classes(plugged=plugged):
        if cls.options is not None:
            result += table(cls.options)
    return tuple(result)


def service(name: str, settings: Settings) -> Service[Any, Any]:
    for cls in classes():
        if cls.name == name:
            return cls(settings)
    raise UsageError(f"no service is named {name!r}", hint=f"the services: {', '.join(names())}")


def services(settings: Settings, selected: Sequence[str] | None = None) -> list[Service[Any, Any]]:
    """The services ``settings`` runs (or ``selected``), in the registry's order."""
    wanted = set(settings.services if selected is None else selected)
    return [cls(settings) for cls in classes() if cls.name in wanted]


def every(settings: Settings) -> dict[str, Service[Any, Any]]:
    """Every registered service by name (what a running environment's records may name)."""
    return {cls.name: cls(settings) for cls in classes()}


def load_clients(services: Iterable[Service[Any, Any]]) -> None:
    """Import the services' client libraries here, before their steps run in parallel threads."""
    for service in services:
        for module in service.clients:
            importlib.import_module(module)
