"""How the environment's one Keycloak is described.

- As a local process: the distribution built once in the cache (``start --optimized``), on a copy of
  its initialised data (or of a realm snapshot holding the tenants' realms), health on the management
  port where the version has one.
- As a container: the optimized image the engine derived once (or one with the tenants' realms), its
  hostname the URL clients use (so ``iss`` is the same from inside the network and from outside); with
  ``--keycloak-db postgres`` the configured image's ``start-dev`` on the environment's PostgreSQL.

Either way the template admin's password (the same in every copy of the cached data) is replaced by
the environment's generated one right after the start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from driveops_env.secret import generate_secret
from driveops_env.services.base import ContainerSpec, Engine, ProcessSpec, Server, never
from driveops_env.services.keycloak import admin, dist, kcadm
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN, KeycloakInstall
from driveops_env.services.keycloak.versions import KeycloakVersion
from driveops_env.state import ServiceRecord

HTTP, MANAGEMENT = 8080, 9000
_PORT_TAKEN = re.compile(r"address already in use|already in use|already allocated|could not bind", re.I)


def port_taken(log: str) -> bool:
    return _PORT_TAKEN.search(log) is not None


OnLogin = Callable[[ServiceRecord, dict[str, Any]], None]  # told the admin login the start made


def _after(
    template_password: str | None, password: str, on_login: OnLogin | None
) -> Callable[[ServiceRecord], None] | None:
    if template_password is None:
        return None

    def replace_password(record: ServiceRecord) -> None:
        token = admin.set_admin_password(admin.base_url(record), TEMPLATE_ADMIN, template_password, password)
        if on_login is not None:
            on_login(record, token)

    return replace_password


def process(
    install: KeycloakInstall,
    data: Path | None,
    database_env: dict[str, str],
    *,
    heap_mb: int,
    jvm: str,
    port: int,
    on_login: OnLogin | None = None,
) -> Server:
    """``data``: the initialised data to copy (the base data or a realm snapshot), None for a fresh one."""
    password = generate_secret()
    env = install.server_env(heap_mb, jvm) | database_env
    if data is None:  # a fresh database: Keycloak creates the admin from these at first start
        env |= install.versions.bootstrap_admin_env(TEMPLATE_ADMIN, password)

    def setup(data_dir: Path) -> None:
        data_dir.mkdir(mode=0o700)
        if data is not None:
            dist.copy_h2(data, data_dir)

    spec = ProcessSpec(
        argv=lambda data_dir, http, ports: install.server_argv(data_dir, http, ports.get("management")),
        env=env,
        setup=setup,
        ports=("management",) if install.versions.has_management_port else (),
        fixed_port=port or None,
    )
    after = _after(install.template_password if data is not None else None, password, on_login)
    return _server(password, after, port, process=spec)


def container(
    image: str,
    template_password: str | None,
    version: KeycloakVersion,
    database_env: dict[str, str],
    *,
    heap_mb: int,
    jvm: str,
    port: int,
    engine: Engine | None,
    on_login: OnLogin | None = None,
) -> Server:
    """``template_password``: the optimized image's template admin's (its master realm answers plain
    HTTP already), None for the configured image (told so right after the start, through ``engine``).
    ``port``: the host port to publish on (0: a free one, another if it is taken meanwhile)."""
    password = generate_secret()
    env = {"JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap_mb}m", "JAVA_OPTS_APPEND": jvm} | database_env
    listen = version.listen_args("0.0.0.0", HTTP, MANAGEMENT if version.has_management_port else None)  # noqa: S104
    mode = ["start", "--optimized", "--http-enabled=true"]
    if template_password is None:
        mode = ["start-dev"]
        env |= version.bootstrap_admin_env(TEMPLATE_ADMIN, password) | {"KC_HEALTH_ENABLED": "true"}
    spec = ContainerSpec(
        image=image,
        image_option="image_keycloak",
        port=HTTP,
        env=env,
        secret_env=tuple(k for k in env if "PASSWORD" in k),
        command_for=lambda url: [*mode, *version.hostname_args(url), *listen],
        ports={"management": MANAGEMENT} if version.has_management_port else {},
        memory_mb=heap_mb + 512,
        host_port=port or None,
    )
    after = _after(template_password, password, on_login) or _plain_http(engine, password)
    return _server(password, after, port, container=spec)


def _server(
    password: str,
    after: Callable[[ServiceRecord], None] | None,
    port: int,
    *,
    process: ProcessSpec | None = None,
    container: ContainerSpec | None = None,
) -> Server:
    """The one Keycloak server; ``port``: a fixed one (0: a free one, another if taken meanwhile)."""
    return Server(
        "keycloak",
        "keycloak",
        None,
        TEMPLATE_ADMIN,
        password,
        probe=admin.probe_ready,
        process=process,
        container=container,
        after_start=after,
        retry_on=never if port else port_taken,
        # the longest start, beside up to 30 store processes (or containers) whose starts and seeds each
        # weigh as much: with 4 times their weight, 10 tenants' stores still took 1.2 s of its 5.2 s start
        # on two cores (measured 2026-12-02); 32 times: about half the CPU for it while they all contend
        cpu_weight=32,
    )


def _plain_http(engine: Engine | None, password: str) -> Callable[[ServiceRecord], None] | None:
    if engine is None:
        return None
    return lambda record: kcadm.plain_http(partial(engine.exec, record), TEMPLATE_ADMIN, password)
