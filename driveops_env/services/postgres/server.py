"""How a PostgreSQL server is described: as a container of the configured image (the official image's
contract: ``POSTGRES_PASSWORD``, port 5432), or as a local process on a copy of the template cluster,
its superuser's password set through the socket right after it answers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from driveops_env import paths
from driveops_env.images import ready as ready_image
from driveops_env.secret import generate_secret
from driveops_env.services.base import ContainerSpec, ProcessSpec, Server
from driveops_env.services.postgres import admin, local
from driveops_env.state import ServiceRecord

PORT = 5432
READY_DATA = "/var/lib/driveops-ready/pgdata"  # the initialised image's data: no VOLUME over it
PORT_TAKEN = ("could not bind", "address already in use", "could not create any tcp")


def port_taken(log: str) -> bool:
    return any(marker in log.lower() for marker in PORT_TAKEN)


def container_spec(image: str, password: str) -> ContainerSpec:
    settings = [f"-c{k}={v}" for k, v in local.SERVER_SETTINGS.items() if k != "listen_addresses"]
    return ContainerSpec(
        image=image,
        image_option="image_postgres",
        port=PORT,
        env={
            "POSTGRES_PASSWORD": password,
            "POSTGRES_USER": admin.SUPERUSER,
            "POSTGRES_INITDB_ARGS": "--locale=C -E UTF8",
        },
        secret_env=("POSTGRES_PASSWORD",),
        data_dirs=("/var/lib/postgresql/data",),
        command=["postgres", *settings],
    )


def ready_recipe(image: str) -> ready_image.Recipe:
    """How the initialised image is derived: the same container, its data in a directory no VOLUME
    covers (the commit keeps it), done when the superuser logs in."""
    return ready_image.Recipe(
        "postgres",
        container_spec(image, ""),
        {"PGDATA": READY_DATA},
        READY_DATA,
        lambda host, port, password: admin.probe(admin.conninfo(host, port, admin.SUPERUSER, password, "postgres")),
    )


def container(key: str, tenant: str | None, image: str, ready: ready_image.Ready | None = None) -> Server:
    """A container of ``image``, or of its initialised image (``ready``): that one starts on data whose
    superuser has the template password, replaced by the generated one as soon as it answers."""
    password = generate_secret()
    if ready is None:
        return _server(key, tenant, password, admin.admin_conninfo, container=container_spec(image, password))

    def template(record: ServiceRecord) -> str:
        return admin.admin_conninfo(replace(record, admin_password=ready.template_password))

    return _server(
        key,
        tenant,
        password,
        template,
        container=container_spec(ready.image, password),
        after_start=lambda record: admin.set_superuser_password(template(record), password),
    )


def process(key: str, tenant: str | None, bin_dir: Path, template: Path, env_dir: Path, user: str | None) -> Server:
    """A copy of the template cluster in the server's data directory; its socket in a short folder of
    the environment's that only the server's user reaches (trust there, scram over TCP)."""
    password = generate_secret()
    sockets = local.socket_dir(env_dir, key)

    def setup(data_dir: Path) -> None:
        local.copy_cluster(template, data_dir)
        paths.own_dir(sockets.parent, 0o711, None)
        paths.own_dir(sockets, 0o700, user)

    def socket_info(record: ServiceRecord) -> str:
        return admin.conninfo(str(sockets), record.port, admin.SUPERUSER, None, "postgres")

    def argv(data_dir: Path, port: int, _: object) -> list[str]:
        return local.server_argv(bin_dir, data_dir, port, sockets)

    spec = ProcessSpec(
        argv=argv, as_local_user=True, setup=setup, stop_signals=(signal.SIGINT, signal.SIGQUIT)
    )  # fast shutdown; immediate (SIGQUIT, which still cleans up) when the data is thrown away
    return _server(
        key,
        tenant,
        password,
        socket_info,
        process=spec,
        after_start=lambda record: admin.set_superuser_password(socket_info(record), password),
        retry_on=port_taken,
        extra={"local_dirs": str(sockets)},  # removed with the server; never in a descriptor
    )


def _server(key: str, tenant: str | None, password: str, reach: Callable[[ServiceRecord], str], **parts: Any) -> Server:
    """The server as its superuser sees it; ``reach``: the conninfo its readiness probe connects with."""
    return Server(key, "postgres", tenant, admin.SUPERUSER, password, probe=lambda r: admin.probe(reach(r)), **parts)
