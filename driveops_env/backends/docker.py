"""The docker backend: every server is a container (testcontainers-python + the docker SDK).

- Default images are the official ones, pinned; each is overridable (``--image-postgres``,
  ``DRIVEOPS_ENV_IMAGE_POSTGRES``, ...).  A missing image is pulled; one that cannot be pulled is
  named, with the setting that overrides it, before anything starts.
- One user-defined network per environment; ports published on 127.0.0.1 only, on free host ports.
- Every container and network carries labels: environment name, the state directory it belongs to,
  spec hash, tenant, service, owning process.  Cleanup works by label and needs no reaper image
  (testcontainers' Ryuk is disabled unless you enable it).
- MongoDB runs one container per tenant in both isolation modes: the stand-in image (FerretDB) cannot
  restrict a user to its database, so isolation is enforced by separate servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from driveops_env import process, readiness
from driveops_env.backends.base import StartContext
from driveops_env.errors import Interrupted, MissingDependencyError, StartupError
from driveops_env.options import Settings
from driveops_env.secret import generate_secret
from driveops_env.services import keycloak, keycloak_image, mongo, postgres, redis
from driveops_env.services.keycloak_dist import TEMPLATE_ADMIN
from driveops_env.services.redis import AclUser
from driveops_env.state import ServiceRecord

LABEL = "org.driveops-env"
ADMIN = "driveops-admin"
IMAGE_OPTIONS = {"postgres": "image_postgres", "mongo": "image_mongo", "redis": "image_redis",
                 "keycloak": "image_keycloak"}  # fmt: skip


def engine_answers(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers (used by ``--backend auto``)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means: no usable engine
        return False


def home_label(settings: Settings) -> str:
    """Which state directory resources belong to: two users (or test sandboxes) with the same
    environment name on one engine never touch each other's containers."""
    return hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]


class DockerBackend:
    name = "docker"
    mongo_needs_postgres = False  # real mongod (or the stand-in) keeps its own data
    mongo_per_tenant = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._network_lock = threading.Lock()
        self._keycloak: tuple[str, str] | None = None  # optimized image, its template admin password

    # --- the engine -------------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env(timeout=60)
                self._client.ping()
            except Exception as exc:
                self._client = None
                raise MissingDependencyError(
                    f"--backend docker: no Docker engine answers ({type(exc).__name__}: {str(exc)[:160]})",
                    hint="start one (scripts/provision --docker does), set DOCKER_HOST, or --backend local",
                ) from None
        return self._client

    def _labels(self, ctx_env: str, **extra: str) -> dict[str, str]:
        owner = os.getpid()
        return {
            f"{LABEL}.env": ctx_env,
            f"{LABEL}.home": home_label(self.settings),
            f"{LABEL}.state-file": str(self.settings.state_dir / f"{ctx_env}.json"),
            f"{LABEL}.owner": f"{owner}:{process.start_time_of(owner)}",
            **extra,
        }

    def image(self, service: str) -> str:
        return str(getattr(self.settings, IMAGE_OPTIONS[service]))

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        client = self.client()
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # cleanup is by label, see above
        wanted = [s for s in self.settings.services]
        if "keycloak" in wanted and self.settings.keycloak_db == "postgres" and "postgres" not in wanted:
            wanted.append("postgres")
        versions = {}
        for service in wanted:
            image = self.image(service)
            versions[service] = image
            if keycloak_image.image_present(client, image):
                continue
            progress(f"pulling {image}")
            try:
                client.images.pull(image)
            except Exception as exc:
                option = IMAGE_OPTIONS[service]
                raise MissingDependencyError(
                    f"the {service} image {image!r} is not on this engine and cannot be pulled "
                    f"({type(exc).__name__}: {str(exc)[:160]})",
                    service=service,
                    hint=f"set --{option.replace('_', '-')} or DRIVEOPS_ENV_{option.upper()} to an image "
                    "that is (scripts/provision --docker builds stand-ins and prints the settings)",
                ) from None
        if "keycloak" in wanted and self.settings.keycloak_db == "dev-file":
            self._keycloak = keycloak_image.optimized(
                client, self.image("keycloak"), self.settings.cache_dir, progress
            )
        return versions

    def _network(self, ctx: StartContext) -> str:
        name = f"driveops-{ctx.env_name}-{home_label(self.settings)}"
        client = self.client()
        with self._network_lock:  # the parallel start-up steps share one network
            if client.networks.list(names=[name]):
                return name
            try:
                client.networks.create(
                    name,
                    driver="bridge",
                    labels=self._labels(ctx.env_name, **{f"{LABEL}.spec": ctx.spec_hash}),
                )
            except Exception as exc:
                raise StartupError(f"cannot create the docker network {name}: {exc}") from exc
        return name

    # --- starting ---------------------------------------------------------------------------------

    def _run(
        self,
        ctx: StartContext,
        *,
        key: str,
        kind: str,
        tenant: str | None,
        port: int,
        env: dict[str, str],
        command: list[str] | None,
        probe: Callable[[ServiceRecord], None],
        admin_user: str,
        admin_password: str,
        more_ports: dict[str, int] | None = None,
        files: dict[str, bytes] | None = None,
        mem_limit: str | None = None,
        fixed_port: int | None = None,
        image: str | None = None,
    ) -> ServiceRecord:
        if ctx.cancel.is_set():
            raise Interrupted("start-up was cancelled", service=kind, tenant=tenant)
        from testcontainers.core.container import DockerContainer

        image = image or self.image(kind)
        network = self._network(ctx)
        labels = self._labels(ctx.env_name, **{f"{LABEL}.spec": ctx.spec_hash, f"{LABEL}.service": key,
                                                f"{LABEL}.tenant": tenant or ""})  # fmt: skip
        name = f"driveops-{ctx.env_name}-{key.replace('.', '-')}-{generate_secret(6).lower()}"
        container = DockerContainer(image)
        for var, value in env.items():
            container.with_env(var, value)
        if command is not None:
            container.with_command(command)
        published: dict[str, Any] = {f"{port}/tcp": ("127.0.0.1", fixed_port)}
        for extra in (more_ports or {}).values():
            published[f"{extra}/tcp"] = ("127.0.0.1", None)
        container.ports = published  # 127.0.0.1 only: the docker SDK's (host_ip, host_port) form
        for path, content in (files or {}).items():
            container.with_copy_into_container(content, path, 0o644)
        container.with_name(name)
        kwargs: dict[str, Any] = {"labels": labels, "network": network}
        if mem_limit:
            kwargs["mem_limit"] = mem_limit
        container.with_kwargs(**kwargs)
        try:
            container.start()
        except Exception as exc:
            self._remove_named(name)
            text = str(exc)
            clash = "already in use" in text or "already allocated" in text
            raise StartupError(
                f"cannot start a container of {image}: {text[:800]}", service=kind, tenant=tenant,
                hint="the host port is taken: choose another (0 picks a free one)" if clash
                else "check the image and the engine (docker info)",
            ) from None  # fmt: skip
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        mapping = wrapped.attrs["NetworkSettings"]["Ports"]

        def host_port(container_port: int) -> int:
            bindings = mapping.get(f"{container_port}/tcp") or []
            return int(bindings[0]["HostPort"]) if bindings else 0

        record = ServiceRecord(
            key=key, kind=kind, tenant=tenant, host="127.0.0.1", port=host_port(port), admin_user=admin_user,
            admin_password=admin_password, container_id=wrapped.id,
            ports={name_: host_port(p) for name_, p in (more_ports or {}).items()},
            extra={"image": image, "network": network, "name": name, "container_port": str(port)},
        )  # fmt: skip
        ctx.register(record)

        def logs() -> str:
            try:
                return "\n".join(wrapped.logs(tail=30).decode(errors="replace").splitlines()[-30:])
            except Exception:  # the container may be gone
                return ""

        def alive() -> bool:
            """False only when the engine says the container is gone or has stopped: a slow or
            failed answer of a busy engine is not a dead container."""
            import docker.errors

            try:
                wrapped.reload()
            except docker.errors.NotFound:
                return False
            except Exception:  # the engine did not answer this time
                return True
            return bool(wrapped.status not in ("exited", "dead"))

        readiness.wait_until(
            lambda: probe(record), timeout=ctx.timeout, service=kind, tenant=tenant, cancel=ctx.cancel,
            alive=alive, logs=logs,
        )  # fmt: skip
        return record

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        password = generate_secret()
        return self._run(
            ctx, key=key, kind="postgres", tenant=tenant, port=5432,
            env={"POSTGRES_PASSWORD": password, "POSTGRES_USER": postgres.SUPERUSER,
                 "POSTGRES_INITDB_ARGS": "--locale=C -E UTF8"},
            command=["postgres", *[f"-c{k}={v}" for k, v in postgres.SERVER_SETTINGS.items()
                                   if k != "listen_addresses"]],
            probe=lambda record: postgres.probe(postgres.admin_conninfo(record)),
            admin_user=postgres.SUPERUSER, admin_password=password,
        )  # fmt: skip

    def start_redis(
        self, key: str, tenant: str | None, users: list[AclUser], ctx: StartContext
    ) -> ServiceRecord:
        password = generate_secret()
        config = redis.config_text(
            port=6379,
            data_dir=None,
            admin_password=password,
            tenants=users,
            bind="0.0.0.0",  # noqa: S104 - inside the container; published on 127.0.0.1 only
        )
        path = "/etc/driveops-env/redis.conf"
        return self._run(
            ctx, key=key, kind="redis", tenant=tenant, port=6379, env={}, command=[path],
            files={path: config.encode()},
            probe=lambda record: redis.probe(record.host, record.port, None, password),
            admin_user="default", admin_password=password,
        )  # fmt: skip

    def start_mongo(
        self,
        key: str,
        tenant: str | None,
        users: list[mongo.MongoUser],
        ctx: StartContext,
        pg: ServiceRecord | None,
    ) -> ServiceRecord:
        password = generate_secret()

        def probe(record: ServiceRecord) -> None:
            mongo.probe(mongo.admin_access(record))

        record = self._run(
            ctx, key=key, kind="mongo", tenant=tenant, port=27017,
            env={"MONGO_INITDB_ROOT_USERNAME": ADMIN, "MONGO_INITDB_ROOT_PASSWORD": password},
            command=None, probe=probe, admin_user=ADMIN, admin_password=password,
        )  # fmt: skip
        record.extra["auth_source"] = "admin"
        record.extra["user_auth"] = "scram-database"
        for user in users:
            mongo.create_user(mongo.admin_access(record), user)
        ctx.register(record)
        return record

    def start_keycloak(
        self, key: str, ctx: StartContext, database: keycloak.Database | None, db_server: ServiceRecord | None
    ) -> ServiceRecord:
        """The optimized image (``start --optimized`` on its initialised database), or with
        ``--keycloak-db postgres`` the configured image's ``start-dev`` on that database."""
        password = generate_secret()
        heap = self.settings.keycloak_heap_mb
        env = {"JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap}m"}
        image = None
        command = ["start-dev", "--http-port=8080", "--http-management-port=9000"]
        admin_user = ADMIN
        if self._keycloak is not None:
            image, command, admin_user = self._keycloak[0], keycloak_image.START, TEMPLATE_ADMIN
        else:
            env |= {"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN, "KC_BOOTSTRAP_ADMIN_PASSWORD": password,
                    "KC_HEALTH_ENABLED": "true"}  # fmt: skip
        if database is not None and db_server is not None:
            env |= {
                "KC_DB": "postgres",
                "KC_DB_URL": f"jdbc:postgresql://{db_server.extra['name']}:5432/{database.name}",
                "KC_DB_USERNAME": database.user,
                "KC_DB_PASSWORD": database.password,
            }
        record = self._run(
            ctx, key=key, kind="keycloak", tenant=None, port=8080, env=env, command=command, image=image,
            more_ports={"management": 9000}, mem_limit=f"{heap + 512}m", probe=_keycloak_ready,
            admin_user=admin_user, admin_password=password, fixed_port=self.settings.keycloak_port or None,
        )  # fmt: skip
        if self._keycloak is not None:
            keycloak.set_admin_password(
                f"http://{record.host}:{record.port}", admin_user, self._keycloak[1], password
            )
        return record

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
        if container is None:
            return
        try:
            if not fast:
                container.stop(timeout=20)
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

    def _remove_named(self, name: str) -> None:
        with contextlib.suppress(Exception):  # never created
            self.client().containers.get(name).remove(force=True, v=True)

    def cleanup(self, env_name: str) -> list[str]:
        """Remove every container, network and volume labelled with this environment (of this state
        directory), whether or not the state file knows it.  Returns what was removed."""
        return sweep(self.client(), {f"{LABEL}.env": env_name, f"{LABEL}.home": home_label(self.settings)})


def _keycloak_ready(record: ServiceRecord) -> None:
    readiness.http_ok(f"http://{record.host}:{record.ports['management']}/health/ready")


def labelled(client: Any, labels: dict[str, str] | list[str]) -> dict[str, list[dict[str, Any]]]:
    """Containers, networks and volumes carrying the labels, through the engine's list calls (the
    high-level SDK inspects each container it lists, and fails when one is removed meanwhile)."""
    wanted = [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else labels
    filters = {"label": wanted}
    volumes = client.api.volumes(filters=filters).get("Volumes") or []
    return {
        "containers": client.api.containers(all=True, filters=filters),
        "networks": client.api.networks(filters=filters),
        "volumes": volumes,
    }


def sweep(client: Any, labels: dict[str, str], *, dry_run: bool = False) -> list[str]:
    import docker.errors

    found = labelled(client, labels)
    removed = []
    for container in found["containers"]:
        name = (container.get("Names") or [container["Id"][:12]])[0].lstrip("/")
        removed.append(f"container {name}")
        if not dry_run:
            try:
                client.api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
    deadline = time.monotonic() + 10
    for network in found["networks"]:
        removed.append(f"network {network['Name']}")
        while not dry_run:
            try:
                client.api.remove_network(network["Id"])
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:  # endpoints still detaching
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    for volume in found["volumes"]:
        removed.append(f"volume {volume['Name']}")
        if not dry_run:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_volume(volume["Name"], force=True)
    return removed
