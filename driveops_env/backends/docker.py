"""The docker backend: every server is a container (testcontainers-python + the docker SDK), started
from its service's container description; no service is named here.

- Images are the services' image settings (the official images by default, pinned); a missing image is
  pulled; one that cannot be pulled is named, with the setting that overrides it, before anything starts.
- The engine may be local or remote (see :mod:`.docker_engine`); ports are published on the publish
  address only (127.0.0.1 for a local engine), and every endpoint names the address clients use.
- One user-defined network per environment; every container has a stable name on it (the server's
  key with a dash: ``<service>-<tenant>``), so a service in a container of that network reaches the
  stores by name.  A server whose command names its public URL (an identity server's issuer) gets
  its host port chosen before it starts.
- Every container and network carries labels: environment name, the state directory it belongs to,
  spec hash, tenant, service.  Cleanup works by label and needs no reaper image (testcontainers' Ryuk
  is off unless you turn it on).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from driveops_env import builders, process
from driveops_env.backends import docker_derive, docker_engine
from driveops_env.backends.base import StartContext, Started, home_label, launch, record_of
from driveops_env.backends.docker_engine import LABEL, sweep
from driveops_env.errors import MissingDependencyError, StartupError
from driveops_env.images.derivation import Derivation
from driveops_env.ports import PortAllocator
from driveops_env.secret import generate_secret
from driveops_env.services import registry
from driveops_env.services.base import CONTAINER, ContainerSpec, Engine, Server
from driveops_env.settings import Settings
from driveops_env.state import ContainerPart, ServiceRecord

__all__ = ["LABEL", "DockerBackend", "home_label", "sweep"]


class DockerBackend:
    name = "docker"
    family = CONTAINER

    def __init__(self, settings: Settings, engine: str = "") -> None:
        self.settings = settings
        self.url = engine or docker_engine.engine_url()  # a running environment's: its recorded engine
        self._client: Any = None
        self._network_lock = threading.Lock()
        self._addresses: tuple[str, str] | None = None

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        """``auto``'s rule: an engine answers and has (or can pull) every image the services run."""
        if not docker_engine.engine_answers():
            return False
        try:
            cls(settings).ensure_images(progress)
        except MissingDependencyError as exc:
            progress(f"backend auto: {exc.message}; using the local backend")
            return False
        return True

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        """What ``gc`` removes from the engine (see :mod:`.docker_gc`)."""
        from driveops_env.backends import docker_gc

        return docker_gc.collect(settings, home_label(settings), dry_run=dry_run)

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        """The cache's images beyond the most recently used (see :mod:`.docker_gc`)."""
        from driveops_env.backends import docker_gc

        return docker_gc.prune(settings)

    # --- the engine -------------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            self._client = docker_engine.connect(url=self.url)
        return self._client

    def addresses(self) -> tuple[str, str]:
        """(publish address, client address), decided once."""
        if self._addresses is None:
            self._addresses = docker_engine.publish_address(self.settings.publish_address, self.url)
        return self._addresses

    def engine(self) -> Engine | None:
        return self

    builds = True  # images are derived on the engine itself

    def identity(self) -> str:
        return str(self.client().info().get("ID", ""))

    def image_id(self, reference: str) -> str | None:
        return docker_derive.image_id(self.client(), reference)

    def build(self, context: bytes, tag: str, labels: Mapping[str, str]) -> str:
        return docker_derive.build(self.client(), context, tag, labels)

    def derive(self, derivation: Derivation) -> str:
        return docker_derive.derive(self.client(), self.addresses(), derivation)

    def remove_image(self, reference: str) -> None:
        docker_derive.remove_image(self.client(), reference)

    def run_as(self) -> str | None:
        return None

    def exec(self, record: ServiceRecord, argv: list[str], stdin: bytes | None = None) -> tuple[int, str]:
        return docker_engine.exec_in(self.client(), record.container.id if record.container else "", argv, stdin)

    def _labels(self, env_name: str, **extra: str) -> dict[str, str]:
        return {
            f"{LABEL}.env": env_name,
            f"{LABEL}.home": home_label(self.settings),
            f"{LABEL}.state-file": str(self.settings.state_dir / f"{env_name}.json"),
            **extra,
        }

    def prepare(self, progress: Callable[[str], None]) -> None:
        self.ensure_images(progress)
        self.addresses()
        for line in builders.sweep_containers(self.client(), self.settings.cache_dir):
            progress(f"removed a {line} an interrupted run left")

    def ensure_images(self, progress: Callable[[str], None]) -> None:
        """Every image the services run is on the engine (pulled if it must be), or an error naming it."""
        c = self.client()
        for service in registry.services(self.settings):
            for option, image in service.images().items():
                if builders.image_present(c, image):
                    continue
                progress(f"pulling {image}")
                try:
                    c.images.pull(image)
                except Exception as exc:
                    raise _unpullable(service.name, option, image, exc) from None

    def _network(self, ctx: StartContext) -> str:
        name = f"driveops-{ctx.env_name}-{home_label(self.settings)}"
        c = self.client()
        with self._network_lock:  # the parallel start-up steps share one network
            if c.networks.list(names=[name]):
                return name
            try:
                c.networks.create(
                    name, driver="bridge", labels=self._labels(ctx.env_name, **{f"{LABEL}.spec": ctx.spec_hash})
                )
            except Exception as exc:
                raise StartupError(f"cannot create the docker network {name}: {exc}") from exc
        return name

    # --- starting ---------------------------------------------------------------------------------

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        spec = server.container
        if spec is None:
            raise StartupError(f"{server.service} describes no container", service=server.service)
        base = record_of(server, "", aliases=[server.alias], container_port=spec.port, ports=dict(spec.ports))

        def start(_: int | None) -> Started:
            host_port = spec.host_port or (self._host_port() if spec.command_for is not None else None)
            command = spec.command
            if spec.command_for is not None:  # it names the URL clients use: the host port is chosen first
                command = spec.command_for(f"http://{self.addresses()[1]}:{host_port}")
            return self._start_container(ctx, base, server, command, host_port)

        return launch(ctx, server, start, lambda r: self.stop(r, fast=True))

    def _start_container(
        self,
        ctx: StartContext,
        base: ServiceRecord,
        server: Server,
        command: list[str] | None,
        host_port: int | None,
    ) -> Started:
        spec = server.container
        assert spec is not None, "a container's description"
        publish, client_host = self.addresses()
        network = self._network(ctx)
        name = f"driveops-{ctx.env_name}-{base.aliases[0]}-{generate_secret(6).lower()}"
        labels = self._labels(
            ctx.env_name,
            **{f"{LABEL}.spec": ctx.spec_hash, f"{LABEL}.service": base.key, f"{LABEL}.tenant": base.tenant or ""},
        )
        container = self._container_of(spec, command, name, labels, network, base.aliases, server.cpu_weight)
        container.ports = {f"{spec.port}/tcp": (publish, host_port)} | {
            f"{port}/tcp": (publish, None) for port in spec.ports.values()
        }  # the publish address only: the docker SDK's (host_ip, host_port) form
        try:
            container.start()
        except Exception as exc:
            self._remove_named(name)
            raise _refused(base, spec.image, str(exc)) from None
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        mapping = wrapped.attrs["NetworkSettings"]["Ports"]

        def bound(port: int | None) -> int:
            bindings = mapping.get(f"{port}/tcp") or []
            return int(bindings[0]["HostPort"]) if bindings else 0

        record = _copy(
            base,
            host=client_host,
            port=bound(spec.port),
            container=ContainerPart(wrapped.id, name, spec.image, network),
            ports={n: bound(p) for n, p in spec.ports.items()},
        )
        return Started(record, lambda: _alive(wrapped), lambda: _logs(wrapped))

    def _container_of(
        self,
        spec: ContainerSpec,
        command: list[str] | None,
        name: str,
        labels: dict[str, str],
        network: str,
        aliases: list[str],
        cpu_weight: int,
    ) -> Any:
        from docker.types import EndpointConfig
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:  # cleanup is by label: no reaper image to pull
            testcontainers_config.ryuk_disabled = True
        container = DockerContainer(spec.image)
        for var, value in spec.env.items():
            container.with_env(var, value)
        if command is not None:
            container.with_command(command)
        for path, content in spec.files.items():
            container.with_copy_into_container(content, path, 0o644)
        for volume in sorted({*self._image_volumes(spec.image), *spec.data_dirs}):  # in memory, as the local
            container.with_tmpfs_mount(volume)  # backend's data: no anonymous volume outlives the container
        container.with_name(name)
        endpoint = EndpointConfig(self.client().api._version, aliases=aliases)  # stable names on the network
        kwargs: dict[str, Any] = {"labels": labels, "network": network, "networking_config": {network: endpoint}}
        if spec.memory_mb:
            kwargs["mem_limit"] = f"{spec.memory_mb}m"
        if cpu_weight != 1:
            kwargs["cpu_shares"] = 1024 * cpu_weight  # the engine's default: 1024
        return container.with_kwargs(**kwargs)

    def _image_volumes(self, image: str) -> list[str]:
        """The folders the image declares as volumes (``VOLUME``): each would get an anonymous volume."""
        config = self.client().images.get(image).attrs.get("Config") or {}
        return sorted(config.get("Volumes") or {})

    def _host_port(self) -> int:
        """A host port chosen before the container starts (its command names it): a free one on a local
        engine; on a remote one a random high port, retried if taken."""
        if docker_engine.is_remote(self.url):
            return random.randint(20000, 59999)  # noqa: S311 - not a secret
        return PortAllocator().allocate()

    # --- running ----------------------------------------------------------------------------------

    def _container(self, record: ServiceRecord) -> Any:
        if record.container is None:
            return None
        try:
            return self.client().containers.get(record.container.id)
        except Exception:  # gone
            return None

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        container = self._container(record)
        if container is None or container.labels.get(f"{LABEL}.home") != home_label(self.settings):
            return  # gone, or not a container of this state directory: never touched
        try:
            if not fast:
                container.stop(timeout=20)
            if record.container is not None:  # off the network first: removing many attached containers at
                docker_engine.disconnect(self.client(), record.container.network, container.id)  # once can
                # leave stale endpoints
            container.remove(force=True, v=True)
        except Exception as exc:  # already being removed
            if "No such container" not in str(exc) and "is already in progress" not in str(exc):
                raise

    def remove(self, record: ServiceRecord) -> None:
        self.stop(record, fast=True)

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


def _clash(text: str) -> bool:
    return "already in use" in text or "already allocated" in text or "address already" in text


def _refused(base: ServiceRecord, image: str, text: str) -> StartupError:
    clash = _clash(text)
    return StartupError(
        f"cannot start a container of {image}: {text[:800]}",
        service=base.kind,
        tenant=base.tenant,
        hint="the host port is taken: choose another (0 picks a free one)"
        if clash
        else "check the image and the engine (docker info)",
        log_tail=text if clash else None,
    )


def _unpullable(service: str, option: str, image: str, exc: Exception) -> MissingDependencyError:
    return MissingDependencyError(
        f"the {service} image {image!r} is not on this engine and cannot be pulled "
        f"({type(exc).__name__}: {str(exc)[:160]})",
        service=service,
        hint=f"set --{option.replace('_', '-')} or DRIVEOPS_ENV_{option.upper()} to an image "
        "that is (scripts/provision --docker builds stand-ins and prints the settings)",
    )


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
