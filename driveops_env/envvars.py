"""A tenant's connection settings as environment variables, and their text formats.

``plain``: ``DRIVEOPS_*`` names (and each service's own, libpq's ``PG*``) for scripts and tests.
``dotnet``: the configuration keys of the production .NET API (``Section__Key``).
Each service says what it contributes; the tenant's own values are the same for all.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from driveops_env import dotenv_lines
from driveops_env.errors import UsageError
from driveops_env.services.base import Service
from driveops_env.state import ServiceRecord, TenantRecord
from driveops_env.tenants import Tenant

FORMATS = ("dotenv", "json", "shell", "dotnet")
STYLES = ("plain", "dotnet")


def variables(
    env_name: str,
    tenant: TenantRecord,
    services: Mapping[str, Service[Any, Any]],
    style: str = "plain",
    network: Mapping[str, ServiceRecord] | None = None,
) -> dict[str, str]:
    """The tenant's variables in ``style``; with ``network`` (the servers), as a container on the
    environment's network sees them (servers by their names there)."""
    if style not in STYLES:
        raise UsageError(f"unknown env var style {style!r}", hint="use 'plain' or 'dotnet'")
    out: dict[str, str] = {}
    if style == "plain":
        out = identity(env_name, tenant)
    for name, service in services.items():  # the registry's order
        if name not in tenant.stores:
            continue
        access, extra = service.load(tenant.stores[name]), dict[str, str]()
        if network is not None:
            access, extra = access.inside(network)
        out |= access.env(style) | (extra if style == "dotnet" else {})
    if style == "dotnet":
        out["TenantId"] = tenant.tenant_id
    return out


def identity(env_name: str, tenant: TenantRecord | Tenant) -> dict[str, str]:
    """The environment's and the tenant's names and id, as ``env`` prints them."""
    return {
        "DRIVEOPS_ENV_NAME": env_name,
        "DRIVEOPS_TENANT": tenant.slug,
        "DRIVEOPS_TENANT_ID": tenant.tenant_id,
        "DRIVEOPS_TENANT_NAME": tenant.display_name,
    }


def render(values: Mapping[str, str], fmt: str) -> str:
    """``json`` for programs; ``shell`` (``export K='v'``) for ``eval`` and ``sh`` sourcing;
    ``dotenv`` and ``dotnet`` (``K=v``, the value as it is) for ``docker run --env-file``, GitHub's
    ``$GITHUB_ENV`` and python-dotenv with ``interpolate=False``: these keep everything after the first
    ``=`` literally, so nothing is quoted; a value python-dotenv would read differently (a line break,
    a leading quote, white space at an end, ``" #"``: :mod:`.dotenv_lines`) is refused."""
    if fmt == "json":
        return json.dumps(dict(values), indent=2)
    if fmt == "shell":
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items())
    for key, value in values.items():
        if (said := dotenv_lines.problem(value)) is not None:
            raise UsageError(
                f"{key} holds {said}, which the {fmt} format (docker --env-file, $GITHUB_ENV, python-dotenv) "
                "cannot carry unchanged",
                hint="use --format json or --format shell",
            )
    return "\n".join(f"{k}={v}" for k, v in values.items())


def record_from_plain(environ: Mapping[str, str], services: Mapping[str, Service[Any, Any]]) -> TenantRecord:
    """The inverse of ``plain``: a tenant described by the variables ``env`` prints (smoke checks
    against an environment this process did not start)."""

    try:
        slug = environ["DRIVEOPS_TENANT"]
        record = TenantRecord(slug, environ["DRIVEOPS_TENANT_ID"], environ.get("DRIVEOPS_TENANT_NAME", slug), slug)
    except KeyError as exc:
        raise UsageError(
            f"{exc.args[0]} is not set", hint="eval the output of `driveops-env env --format shell`"
        ) from None
    for name, service in services.items():
        access = service.access_type.from_env(environ, slug)
        if access is not None:
            record.stores[name] = access.as_dict()
            record.realm = str(getattr(access, "realm", record.realm))
    return record
