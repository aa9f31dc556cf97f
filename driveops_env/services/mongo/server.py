"""How a tenant's MongoDB-protocol server is described: a container of the configured image (the
official image's contract: a root user from ``MONGO_INITDB_ROOT_*``, port 27017), or a local FerretDB
over a PostgreSQL database of the tenant's own, on the tenant's (or the shared) PostgreSQL server."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from driveops_env.images import ready as ready_image
from driveops_env.secret import generate_secret
from driveops_env.services.base import ContainerSpec, ProcessSpec, Server
from driveops_env.services.mongo import admin, ferretdb
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.postgres import admin as pg_admin
from driveops_env.state import ServiceRecord
from driveops_env.tenants import database_name

PORT = 27017
READY_DATA = "/var/lib/driveops-ready/db"  # the initialised image's data: no VOLUME over it
ADMIN = "driveops-admin"


def container_spec(image: str, password: str) -> ContainerSpec:
    return ContainerSpec(
        image=image,
        image_option="image_mongo",
        port=PORT,
        env={"MONGO_INITDB_ROOT_USERNAME": ADMIN, "MONGO_INITDB_ROOT_PASSWORD": password},
        secret_env=("MONGO_INITDB_ROOT_PASSWORD",),
        data_dirs=("/data/db",),
    )


def ready_recipe(image: str) -> ready_image.Recipe:
    """How the initialised image is derived: the same container, its data where no VOLUME covers it
    (``mongod --dbpath``, which the official image reads too), done when the root user logs in."""
    return ready_image.Recipe(
        "mongo",
        container_spec(image, ""),
        {},
        READY_DATA,
        lambda host, port, password: admin.probe(_root(host, port, password)),
        command=["mongod", "--dbpath", READY_DATA],
    )


def container(key: str, tenant: str, image: str, ready: ready_image.Ready | None = None) -> Server:
    """A container of ``image``, or of its initialised image (``ready``): its root user has the template
    password until it answers, then the generated one."""
    password = generate_secret()
    login = admin.admin_access if ready is None else partial(_as, ready.template_password)
    return Server(
        key,
        "mongo",
        tenant,
        ADMIN,
        password,
        probe=lambda record: admin.probe(login(record)),
        after_start=None if ready is None else lambda record: admin.set_password(login(record), ADMIN, password),
        container=container_spec(ready.image if ready else image, password),
        extra={"server": image, "admin_source": "admin", "own_database": "yes"},
    )


def _as(password: str, record: ServiceRecord) -> MongoAccess:
    return replace(admin.admin_access(record), password=password)


def _root(host: str, port: int, password: str) -> MongoAccess:
    return MongoAccess("mongo", host, port, "admin", ADMIN, password, None, "admin")


@dataclass(frozen=True)
class Storage:
    """What a local FerretDB keeps its data in: a PostgreSQL database of the tenant's own, owned by the
    tenant's user (a PostgreSQL role FerretDB passes the client's login through to), and a role that
    may only connect (its probe)."""

    owner: admin.MongoUser
    probe_user: str
    probe_password: str = field(repr=False)


def ferret_storage(tenant: str, pg: ServiceRecord) -> Storage:
    """The tenant's user and FerretDB's database on ``pg``, made before FerretDB starts over it."""
    name = database_name(tenant)
    owner = admin.MongoUser(f"{name}_mongo", generate_secret(), name)
    storage = Storage(owner, ferretdb.probe_role(tenant), generate_secret())
    ferretdb.prepare_postgres(
        pg_admin.admin_conninfo(pg),
        database=ferretdb.pg_database(tenant),
        owner=(owner.name, owner.password),
        probe=(storage.probe_user, storage.probe_password),
    )
    return storage


def ferret(key: str, tenant: str, binary: Path, pg: ServiceRecord, storage: Storage) -> Server:
    """FerretDB over the tenant's database of ``pg`` (see :func:`ferret_storage`)."""
    database = ferretdb.pg_database(tenant)

    def argv(_: Path, port: int, __: object) -> list[str]:
        return ferretdb.server_argv(binary, port=port, pg_host=pg.host, pg_port=pg.port, database=database)

    return Server(
        key,
        "mongo",
        tenant,
        storage.probe_user,
        storage.probe_password,
        probe=lambda record: admin.probe(admin.admin_access(record)),
        process=ProcessSpec(argv=argv),
        retry_on=lambda log: "address already in use" in log.lower(),
        extra={"server": f"FerretDB {ferretdb.DEFAULT_VERSION} (PostgreSQL handler)", "mechanism": "PLAIN"},
        depends_on=[pg.key],
    )
