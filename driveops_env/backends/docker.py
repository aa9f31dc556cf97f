"""The docker backend: every server is a container (testcontainers-python + the docker SDK).

- Default images are the official ones, pinned; each is overridable (``--image-postgres``,
  ``DRIVEOPS_ENV_IMAGE_POSTGRES``, ...).  A missing image is pulled; one that cannot be pulled is
  named, with the setting that overrides it, before anything starts.
- The engine may be local or remote (see :mod:`.docker_engine`); ports are published on the publish
  address only (127.0.0.1 for a local engine), and every endpoint names the address clients use.
- One user-defined network per environment; every container has a stable name on it
  (``postgres-acme``, ``redis-shared``, ``mongo-acme``, ``keycloak``), so a service in a container of
  that network reaches the stores by name, and Keycloak's issuer is the same from both sides.
- Every container and network carries labels: environment name, the state directory it belongs to,
  spec hash, tenant, service.  Cleanup works by label and needs no reaper image (testcontainers'
  Ryuk is disabled unless you enable it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from driveops_env import builders, process
from driveops_env.backends import docker_engine
from driveops_env.backends.base import Servers, StartContext, Started, launch
from driveops_env.backends.docker_engine import LABEL, engine_answers, sweep
from driveops_env.errors import MissingDependencyError, StartupError
from driveops_env.options import Settings
from driveops_env.ports import PortAllocator
from driveops_env.secret import generate_secret
from driveops_env.services import (
    keycloak,
    keycloak_image,
    keycloak_image_snapshot,
    keycloak_kcadm,
    mongo,
    postgres,
    redis,
)
from driveops_env.services.keycloak_dist import TEMPLATE_ADMIN
from driveops_env.services.keycloak_versions import KeycloakVersion
from driveops_env.services.mongo import MongoUser
from driveops_env.state import MongoLogin, ServiceRecord

__all__ = ["LABEL", "DockerBackend", "engine_answers", "home_label", "sweep"]

ADMIN = "driveops-admin"
IMAGE_OPTIONS = {"postgres": "image_postgres", "mongo": "image_mongo", "redis": "image_redis",
                 "keycloak": "image_keycloak"}  # fmt: skip


def home_label(settings: Settings) -> str:
    """Which state directory resources belong to: two users (or test sandboxes) with the same
    environment name on one engine never touch each other's containers."""
    return hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]


def _clash(text: str) -> bool:
    return "already in use" in text or "already allocated" in text or "address already" in text


class DockerBackend:
    name = "docker"

    def __init__(self, settings: Settings, engine: str = "") -> None:
        self.settings = settings
        self.engine = engine or docker_engine.engine_url()  # a running environment's: its recorded engine
        self._client: Any = None
        self._network_lock = threading.Lock()
        self._keycloak: tuple[str, str] | None = None  # optimized image, its template admin password
        self._addresses: tuple[str, str] | None = None
        self._realms_image: str | None = None  # the optimized image with the tenant set's realms

    def realm_snapshot(self, realms: list[dict[str, Any]], progress: Callable[[str], None]) -> bool:
        """An image of the optimized one whose database holds these realms (made once per tenant set)."""
        if self._keycloak is None or not realms:
            return False
        self._realms_image = keycloak_image_snapshot.ensure(
            self.client(), self._keycloak[0], self._keycloak[1], realms,
            KeycloakVersion(self.settings.keycloak_version), self.addresses(), self.settings.cache_dir / "docker",
            progress,
        )  # fmt: skip
        return True

    def needs(self, kind: str) -> tuple[str, ...]:
        return ()

    # --- the engine -------------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            self._client = docker_engine.connect(url=self.engine)
        return self._client

    def addresses(self) -> tuple[str, str]:
        """(publish address, client address), decided once."""
        if self._addresses is None:
            self._addresses = docker_engine.publish_address(self.settings.publish_address, self.engine)
        return self._addresses

    def _labels(self, env_name: str, **extra: str) -> dict[str, str]:
        return {
            f"{LABEL}.env": env_name,
            f"{LABEL}.home": home_label(self.settings),
            f"{LABEL}.state-file": str(self.settings.state_dir / f"{env_name}.json"),
            **extra,
        }

    def image(self, service: str) -> str:
        return str(getattr(self.settings, IMAGE_OPTIONS[service]))

    def _wanted(self) -> list[str]:
        wanted = list(self.settings.services)
        if "keycloak" in wanted and self.settings.keycloak_db == "postgres" and "postgres" not in wanted:
            wanted.append("postgres")
        return wanted

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # cleanup is by label, see above
        self.ensure_images(progress)
        self.addresses()
        for line in builders.sweep_containers(self.client(), self.settings.cache_dir):
            progress(f"removed a {line} an interrupted run left")
        wanted = self._wanted()
        if "keycloak" in wanted and self.settings.keycloak_db == "dev-file":
            self._keycloak = keycloak_image.optimized(
                self.client(), self.image("keycloak"), self.settings.cache_dir, progress,
                KeycloakVersion(self.settings.keycloak_version), self.settings.keycloak_providers_dir,
                self.addresses(),
            )  # fmt: skip
        return {service: self.image(service) for service in wanted}

    def ensure_images(self, progress: Callable[[str], None]) -> None:
        """Every configured image is on the engine (pulled if it must be), or an error naming it."""
        c = self.client()
        for service in self._wanted():
            image = self.image(service)
            if keycloak_image.image_present(c, image):
                continue
            progress(f"pulling {image}")
            try:
                c.images.pull(image)
            except Exception as exc:
                option = IMAGE_OPTIONS[service]
                raise MissingDependencyError(
                    f"the {service} image {image!r} is not on this engine and cannot be pulled "
                    f"({type(exc).__name__}: {str(exc)[:160]})",
                    service=service,
                    hint=f"set --{option.replace('_', '-')} or DRIVEOPS_ENV_{option.upper()} to an image "
                    "that is (scripts/provision --docker builds stand-ins and prints the settings)",
                ) from None

    def _network(self, ctx: StartContext) -> str:
        name = f"driveops-{ctx.env_name}-{home_label(self.settings)}"
        c = self.client()
        with self._network_lock:  # the parallel start-up steps share one network
            if c.networks.list(names=[name]):
                return name
            try:
                c.networks.create(
                    name,
                    driver="bridge",
                    labels=self._labels(ctx.env_name, **{f"{LABEL}.spec": ctx.spec_hash}),
                )
            except Exception as exc:
                raise StartupError(f"cannot create the docker network {name}: {exc}") from exc
        return name

    # --- starting ---------------------------------------------------------------------------------

    def _run(self, ctx: StartContext, base: ServiceRecord, *, env: dict[str, str], command: list[str] | None,
             probe: Callable[[ServiceRecord], object], files: dict[str, bytes] | None = None,
             mem_limit: str | None = None, host_port: Callable[[], tuple[int, list[str]]] | None = None,
             retry_on: Callable[[str], bool] = lambda _: False) -> ServiceRecord:  # fmt: skip
        """A container of ``base.image`` on the environment's network, its ports published on the
        publish address only, recorded and probed through :func:`launch`.  ``host_port`` chooses the
        host port (and the command naming it) at every attempt."""

        def start(_: int | None) -> Started:
            port, argv = host_port() if host_port is not None else (None, command)
            return self._start_container(ctx, base, env, argv, files, mem_limit, port)

        return launch(ctx, start, probe, lambda r: self.stop(r, fast=True), retry_on=retry_on)

    def _start_container(
        self, ctx: StartContext, base: ServiceRecord, env: dict[str, str], command: list[str] | None,
        files: dict[str, bytes] | None, mem_limit: str | None, fixed_port: int | None,
    ) -> Started:  # fmt: skip
        from testcontainers.core.container import DockerContainer

        publish, client_host = self.addresses()
        network = self._network(ctx)
        name = f"driveops-{ctx.env_name}-{base.key.replace('.', '-')}-{generate_secret(6).lower()}"
        labels = self._labels(ctx.env_name, **{f"{LABEL}.spec": ctx.spec_hash, f"{LABEL}.service": base.key,
                                               f"{LABEL}.tenant": base.tenant or ""})  # fmt: skip
        container = DockerContainer(str(base.image))
        for var, value in env.items():
            container.with_env(var, value)
        if command is not None:
            container.with_command(command)
        published: dict[str, Any] = {f"{base.container_port}/tcp": (publish, fixed_port)}
        for extra in base.ports.values():
            published[f"{extra}/tcp"] = (publish, None)
        container.ports = published  # the publish address only: the docker SDK's (host_ip, host_port) form
        for path, content in (files or {}).items():
            container.with_copy_into_container(content, path, 0o644)
        container.with_name(name)
        kwargs: dict[str, Any] = {
            "labels": labels, "network": network,
            "networking_config": {network: self._endpoint(base.aliases)},  # stable names on the network
        }  # fmt: skip
        if mem_limit:
            kwargs["mem_limit"] = mem_limit
        for volume in self._image_volumes(str(base.image)):  # in memory, as the local backend's data: no
            container.with_tmpfs_mount(volume)  # anonymous volume outlives the container
        container.with_kwargs(**kwargs)
        try:
            container.start()
        except Exception as exc:
            self._remove_named(name)
            text = str(exc)
            raise StartupError(
                f"cannot start a container of {base.image}: {text[:800]}", service=base.kind, tenant=base.tenant,
                hint="the host port is taken: choose another (0 picks a free one)" if _clash(text)
                else "check the image and the engine (docker info)", log_tail=text if _clash(text) else None,
            ) from None  # fmt: skip
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        mapping = wrapped.attrs["NetworkSettings"]["Ports"]

        def host_port(container_port: int | None) -> int:
            bindings = mapping.get(f"{container_port}/tcp") or []
            return int(bindings[0]["HostPort"]) if bindings else 0

        record = _copy(base, host=client_host, port=host_port(base.container_port), container_id=wrapped.id,
                       container_name=name, network=network,
                       ports={n: host_port(p) for n, p in base.ports.items()})  # fmt: skip
        return Started(record, lambda: _alive(wrapped), lambda: _logs(wrapped))

    def _image_volumes(self, image: str) -> list[str]:
        """The folders the image declares as volumes (``VOLUME``): each would get an anonymous volume."""
        config = self.client().images.get(image).attrs.get("Config") or {}
        return sorted(config.get("Volumes") or {})

    def _endpoint(self, aliases: list[str]) -> Any:
        from docker.types import EndpointConfig

        return EndpointConfig(self.client().api._version, aliases=aliases)

    def _base(
        self, key: str, kind: str, tenant: str | None, port: int, admin: str, password: str, **more: Any
    ) -> ServiceRecord:
        image = more.pop("image", None) or self.image(kind)
        return ServiceRecord(key, kind, tenant, "", 0, admin, password, image=image,
                             aliases=[key.replace(".", "-")], container_port=port, **more)  # fmt: skip

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        password = generate_secret()
        settings = [f"-c{k}={v}" for k, v in postgres.SERVER_SETTINGS.items() if k != "listen_addresses"]
        return self._run(
            ctx, self._base(key, "postgres", tenant, 5432, postgres.SUPERUSER, password),
            env={"POSTGRES_PASSWORD": password, "POSTGRES_USER": postgres.SUPERUSER,
                 "POSTGRES_INITDB_ARGS": "--locale=C -E UTF8"},
            command=["postgres", *settings], probe=lambda record: postgres.probe(postgres.admin_conninfo(record)),
        )  # fmt: skip

    def start_redis(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        password = generate_secret()
        # every interface inside the container; published on the publish address only
        config = redis.config_text(port=6379, data_dir=None, admin_password=password, bind="0.0.0.0")  # noqa: S104
        path = "/etc/driveops-env/redis.conf"
        return self._run(
            ctx, self._base(key, "redis", tenant, 6379, "default", password), env={}, command=[path],
            files={path: config.encode()}, probe=lambda record: redis.probe(record.host, record.port, None, password),
        )  # fmt: skip

    def start_mongo(self, key: str, tenant: str, user: MongoUser, ctx: StartContext, deps: Servers) -> ServiceRecord:
        password = generate_secret()
        login = MongoLogin(self.image("mongo"), admin_source="admin", users_in_own_database=True)
        record = self._run(
            ctx, self._base(key, "mongo", tenant, 27017, ADMIN, password, mongo=login),
            env={"MONGO_INITDB_ROOT_USERNAME": ADMIN, "MONGO_INITDB_ROOT_PASSWORD": password}, command=None,
            probe=lambda r: mongo.probe(mongo.admin_access(r)),
        )  # fmt: skip
        mongo.create_user(mongo.admin_access(record), user)
        return record

    def start_keycloak(
        self, key: str, ctx: StartContext, database: keycloak.Database | None, db_server: ServiceRecord | None
    ) -> ServiceRecord:
        """The optimized image (``start --optimized`` on its initialised database), or with
        ``--keycloak-db postgres`` the configured image's ``start-dev`` on that database.  Its hostname
        is the URL clients use from the host, so tokens fetched inside the network carry the same
        issuer."""
        password, heap = generate_secret(), self.settings.keycloak_heap_mb
        version = KeycloakVersion(self.settings.keycloak_version)
        env = {"JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap}m", "JAVA_OPTS_APPEND": self.settings.keycloak_jvm_options}
        listen = version.listen_args("0.0.0.0", 8080, 9000 if version.has_management_port else None)  # noqa: S104
        if self._keycloak is not None:
            image, admin = self._realms_image or self._keycloak[0], TEMPLATE_ADMIN
            mode = ["start", "--optimized", "--http-enabled=true"]
        else:
            image, admin = self.image("keycloak"), ADMIN
            mode = ["start-dev"]
            env |= version.bootstrap_admin_env(ADMIN, password) | {"KC_HEALTH_ENABLED": "true"}
        if database is not None and db_server is not None:
            env |= {"KC_DB": "postgres"} | keycloak_dist_env(database, db_server)
        base = self._base(key, "keycloak", None, 8080, admin, password, image=image)
        base.aliases = ["keycloak"]
        if version.has_management_port:
            base.ports["management"] = 9000
        host, fixed = self.addresses()[1], self.settings.keycloak_port

        def port_and_command() -> tuple[int, list[str]]:  # its hostname names the host port
            port = fixed or self._host_port()
            return port, [*mode, *version.hostname_args(f"http://{host}:{port}"), *listen]

        record = self._run(ctx, base, env=env, command=None, probe=keycloak.probe_ready, mem_limit=f"{heap + 512}m",
                           host_port=port_and_command, retry_on=(lambda _: False) if fixed else _clash)  # fmt: skip
        if self._keycloak is not None:
            keycloak.set_admin_password(keycloak.base_url(record), admin, self._keycloak[1], password)
        else:  # start-dev: the master realm told to answer plain HTTP (a bridge's address is not private)
            run = partial(docker_engine.exec_in, self.client(), str(record.container_id))
            keycloak_kcadm.plain_http(run, admin, password)
        return record

    def _host_port(self) -> int:
        """A host port for Keycloak chosen before it starts (its hostname names it): a free one on a
        local engine; on a remote one a random high port, retried if taken."""
        if docker_engine.is_remote(self.engine):
            return random.randint(20000, 59999)  # noqa: S311 - not a secret
        return PortAllocator().allocate()

    # --- running ----------------------------------------------------------------------------------

    def _container(self, record: ServiceRecord) -> Any:
        if not record.container_id:
            return None
        try:
            return self.client().containers.get(record.container_id)
        except Exception:  # gone
            return None

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        container = self._container(record)
        if container is None or container.labels.get(f"{LABEL}.home") != home_label(self.settings):
            return  # gone, or not a container of this state directory: never touched
        try:
            if not fast:
                container.stop(timeout=20)
            if record.network:  # off the network first: removing many attached containers at once can leave
                docker_engine.disconnect(self.client(), record.network, container.id)  # stale endpoints
            container.remove(force=True, v=True)
        except Exception as exc:  # already being removed
            if "No such container" not in str(exc) and "is already in progress" not in str(exc):
                raise

    def is_running(self, record: ServiceRecord) -> bool:
        container = self._container(record)
        return container is not None and container.status == "running"

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        container = self._container(record)
        if container is None:
            return ""
        data: bytes = container.logs(tail=lines if lines else "all")
        return data.decode(errors="replace")

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        container = self._container(record)
        if container is None:
            return
        for chunk in container.logs(stream=True, follow=True, tail=0):
            yield chunk.decode(errors="replace")

    def _remove_named(self, name: str) -> None:
        with contextlib.suppress(Exception):  # never created
            self.client().containers.get(name).remove(force=True, v=True)

    def cleanup(self, env_name: str) -> list[str]:
        """Remove every container, network and volume labelled with this environment (of this state
        directory), whether or not the state file knows it.  Returns what was removed."""
        return sweep(self.client(), {f"{LABEL}.env": env_name, f"{LABEL}.home": home_label(self.settings)})


def keycloak_dist_env(database: keycloak.Database, db_server: ServiceRecord) -> dict[str, str]:
    from driveops_env.services.keycloak_dist import database_env

    return database_env(database, f"{db_server.aliases[0]}:{db_server.container_port}")


def _alive(wrapped: Any) -> bool:
    """False only when the engine says the container is gone or has stopped: a slow or failed answer
    of a busy engine is not a dead container."""
    import docker.errors

    try:
        wrapped.reload()
    except docker.errors.NotFound:
        return False
    except Exception:  # the engine did not answer this time
        return True
    return bool(wrapped.status not in ("exited", "dead"))


def _logs(wrapped: Any) -> str:
    try:
        return process.excerpt(wrapped.logs(tail=400).decode(errors="replace"))
    except Exception:  # the container may be gone
        return ""


def _copy(base: ServiceRecord, **changes: Any) -> ServiceRecord:
    from dataclasses import replace

    return replace(base, **changes)
