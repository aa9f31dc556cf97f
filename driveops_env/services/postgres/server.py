"""How a PostgreSQL server is described: as a container of the configured image (the official image's
contract: ``POSTGRES_PASSWORD``, port 5432), or as a local process on a copy of the template cluster,
its superuser's password set through the socket right after it answers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driveops_env import paths
from driveops_env.secret import generate_secret
from driveops_env.services.base import ContainerSpec, ProcessSpec, Server
from driveops_env.services.postgres import admin, local
from driveops_env.state import ServiceRecord

PORT = 5432
PORT_TAKEN = ("could not bind", "address already in use", "could not create any tcp")


def port_taken(log: str) -> bool:
    return any(marker in log.lower() for marker in PORT_TAKEN)


def container(key: str, tenant: str | None, image: str) -> Server:
    password = generate_secret()
    settings = [f"-c{k}={v}" for k, v in local.SERVER_SETTINGS.items() if k != "listen_addresses"]
    spec = ContainerSpec(
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
    return _server(key, tenant, password, admin.admin_conninfo, container=spec)


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
