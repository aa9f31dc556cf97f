"""What Keycloak's server needs before its description: what ``prepare`` found (the built distribution,
or the optimized image), and what the plan's stage step makes once the servers it depends on run (its
database on the environment's PostgreSQL with ``--keycloak-db postgres``; a snapshot of its data, or an
image, holding the tenants' realms)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from driveops_env.errors import StartupError
from driveops_env.secret import generate_secret
from driveops_env.services.base import CONTAINER, Plan, Prepare
from driveops_env.services.keycloak import admin, dist, image, image_snapshot
from driveops_env.services.keycloak import snapshot as snapshots
from driveops_env.services.keycloak.options import KeycloakOptions
from driveops_env.services.postgres import admin as pg_admin
from driveops_env.state import ServiceRecord

DATABASE = "postgres.keycloak"  # the PostgreSQL server of ``--keycloak-db postgres``


@dataclass(frozen=True)
class Installed:
    """Locally: the distribution, built once in the cache."""

    install: dist.KeycloakInstall


@dataclass(frozen=True)
class Optimized:
    """On an engine that builds: the optimized image and its template admin's password; None and None
    where the configured image runs as it is."""

    image: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class Stage:
    """What the stage step made: the database's settings, the data (local) or image (engine) holding the
    tenants' realms and that data's template password, and which realms it holds (their set-up only
    sets this environment's secrets)."""

    database: dict[str, str] = field(default_factory=dict)
    data: Path | None = None
    image: str | None = None
    template: str | None = None
    realms: frozenset[str] = frozenset()


def optimized(own: KeycloakOptions, cache: Path, ctx: Prepare) -> Optimized:
    """The optimized image of the configured one, derived once (``own``: Keycloak's options)."""
    if own.keycloak_db != "dev-file" or ctx.engine is None or not ctx.engine.builds:
        return Optimized()
    tag, template = image.optimized(
        ctx.engine, own.image_keycloak, cache, ctx.progress, own.version, own.keycloak_providers_dir
    )
    return Optimized(tag, template)


def installed(plan: Plan) -> dist.KeycloakInstall:
    found = plan.prepared.found
    if not isinstance(found, Installed):
        raise StartupError("Keycloak was not prepared for local processes", service="keycloak", hint=_ORDER)
    return found.install


def staged(plan: Plan) -> Stage:
    found = plan.staged
    if not isinstance(found, Stage):
        raise StartupError("Keycloak's stage step made nothing", service="keycloak", hint=_ORDER)
    return found


_ORDER = "describe its server with the plan of its prepare and stage steps (driveops_env.plan does)"


def stage(own: KeycloakOptions, cache: Path, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Stage:
    """The stage step: the database, then the realms' snapshot where the tenants have realms."""
    base = Stage(database(own, deps, plan.family))
    realms = [seed.representation for seed in plan.seeds.values()]
    names = frozenset(str(r.get("realm")) for r in realms)
    if plan.family == CONTAINER:
        found = plan.prepared.found
        if not isinstance(found, Optimized) or found.image is None or found.template is None or plan.engine is None:
            return base
        tag = found.image
        if realms:
            engine = plan.engine
            tag = image_snapshot.ensure(
                engine, tag, found.template, realms, own.version, cache / "docker", plan.progress
            )
        return Stage(base.database, image=tag, template=found.template, realms=names if realms else frozenset())
    install = installed(plan)
    if install.base_data is None or install.template_password is None or not realms:
        return Stage(base.database, data=install.base_data)
    data = snapshots.ensure(install, realms, own.keycloak_heap_mb, plan.progress, own.keycloak_jvm_options)
    return Stage(base.database, data=data, realms=names)


def database(own: KeycloakOptions, deps: Mapping[str, ServiceRecord], family: str) -> dict[str, str]:
    """With ``--keycloak-db postgres``: Keycloak's own database and role on that server, and how it
    reaches them (a container by the server's name on the network)."""
    if own.keycloak_db != "postgres":
        return {}
    pg = deps[DATABASE]
    made = admin.Database("keycloak", "keycloak", generate_secret())
    pg_admin.create_tenant_database(
        pg_admin.admin_conninfo(pg), role=made.user, password=made.password, database=made.name
    )
    if family == CONTAINER:
        return {"KC_DB": "postgres"} | dist.database_env(made, f"{pg.aliases[0]}:{pg.container_port}")
    return dist.database_env(made, f"{pg.host}:{pg.port}")
