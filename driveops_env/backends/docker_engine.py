"""The Docker engine: which one (``DOCKER_HOST``, or the current docker context, or the local socket),
which address ports are published on and clients use, and cleanup by label.

- ``DOCKER_HOST`` as ``unix://``, ``tcp://`` (TLS through ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) or
  ``ssh://``, read the way the docker SDK reads it; else the current docker context (``docker context
  use``), else the local socket.
- Publish address: ``--publish-address`` if given; else 127.0.0.1 for a local engine and the remote
  engine's address for a remote one (never 0.0.0.0 unless asked for).  Clients use the same address
  (for 0.0.0.0: the engine's host).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from driveops_env import readiness
from driveops_env.errors import MissingDependencyError, ReadinessTimeoutError, UsageError
from driveops_env.secret import generate_secret

LABEL = "org.driveops-env"
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def _context_endpoint() -> tuple[str, Any] | None:
    """The current docker context's engine address and TLS settings, when it is not the default."""
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
    except Exception:  # no docker config, or a broken one: the default engine
        return None
    if context is None or context.name == "default" or not context.Host:
        return None
    return str(context.Host), context.TLSConfig


def engine_url() -> str:
    """The engine's address as the client will use it."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    found = _context_endpoint()
    return found[0] if found else "unix:///var/run/docker.sock"


def client(timeout: int = 60, url: str | None = None) -> Any:
    """A docker SDK client of the engine, or of the engine at ``url`` (an environment's recorded one)
    when that is not the current one (raises the SDK's errors when none answers)."""
    import docker

    if url is not None and url != engine_url():
        return docker.DockerClient(base_url=url, timeout=timeout, use_ssh_client=True)
    if not os.environ.get("DOCKER_HOST"):
        found = _context_endpoint()
        if found is not None:
            host, tls = found
            return docker.DockerClient(base_url=host, tls=tls or False, timeout=timeout, use_ssh_client=True)
    return docker.from_env(timeout=timeout, use_ssh_client=True)


def engine_answers(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers (used by ``--backend auto``)."""
    try:
        c = client(timeout=int(max(1, timeout)))
        try:
            return bool(c.ping())
        finally:
            c.close()
    except Exception:  # any failure means: no usable engine
        return False


def connect(timeout: int = 60, url: str | None = None) -> Any:
    try:
        c = client(timeout, url)
        c.ping()
    except Exception as exc:
        raise MissingDependencyError(
            f"--backend docker: no Docker engine answers at {url or engine_url()} "
            f"({type(exc).__name__}: {str(exc)[:160]})",
            hint="start one (scripts/provision --docker does), set DOCKER_HOST or a docker context, or --backend local",
        ) from None
    return c


def engine_host(url: str | None = None) -> str:
    """The host name or address of the engine's machine ('' for a local socket)."""
    parsed = urlparse(url or engine_url())
    if parsed.scheme in ("unix", "npipe", ""):
        return ""
    return parsed.hostname or ""


def is_remote(url: str | None = None) -> bool:
    return engine_host(url) not in LOCAL_HOSTS


def publish_address(configured: str, url: str | None = None) -> tuple[str, str]:
    """(address ports are published on, address clients connect to)."""
    host = engine_host(url)
    if configured:
        _check_address(configured)
        if configured != "0.0.0.0":  # noqa: S104 - every interface only when the user asks for it
            return configured, configured
        return configured, _resolve(host) if host not in LOCAL_HOSTS else "127.0.0.1"
    if host in LOCAL_HOSTS:
        return "127.0.0.1", "127.0.0.1"
    address = _resolve(host)
    return address, address


def _check_address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise UsageError(
            f"--publish-address {value!r} is not an IP address", hint="e.g. 127.0.0.1 or 198.18.0.2"
        ) from None


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        raise MissingDependencyError(f"cannot resolve the Docker engine's host {host!r}: {exc}") from None


def labelled(c: Any, labels: dict[str, str] | list[str]) -> dict[str, list[dict[str, Any]]]:
    """Containers, networks and volumes carrying the labels, through the engine's list calls (the
    high-level SDK inspects each container it lists, and fails when one is removed meanwhile)."""
    wanted = [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else labels
    filters = {"label": wanted}
    volumes = c.api.volumes(filters=filters).get("Volumes") or []
    return {
        "containers": c.api.containers(all=True, filters=filters),
        "networks": c.api.networks(filters=filters),
        "volumes": volumes,
    }


def sweep(c: Any, labels: dict[str, str], *, dry_run: bool = False) -> list[str]:
    """Remove (or list, with ``dry_run``) everything carrying ``labels``."""
    import docker.errors

    found = labelled(c, labels)
    removed, names = [], []
    for container in found["containers"]:
        name = (container.get("Names") or [container["Id"][:12]])[0].lstrip("/")
        removed.append(f"container {name}")
        names.append(name)
        if not dry_run:
            try:
                c.api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
    for network in found["networks"]:
        removed.append(f"network {network['Name']}")
        if not dry_run:
            remove_network(c, network["Id"], names)
    for volume in found["volumes"]:
        removed.append(f"volume {volume['Name']}")
        if not dry_run:
            with contextlib.suppress(docker.errors.NotFound):
                c.api.remove_volume(volume["Name"], force=True)
    return removed


def disconnect(c: Any, network: str, container: str) -> None:
    """Force a container (or a stale endpoint of that name) off a network; gone is fine."""
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        c.api.disconnect_container_from_network(container, network, force=True)


def remove_network(c: Any, network: str, names: list[str], timeout: float = 30.0) -> None:
    """Remove a network, forcing off what the engine still counts on it: the containers it lists, and
    the endpoints of the removed containers ``names`` (an engine may keep them after parallel removals,
    listing no container, and refuse with "has active endpoints")."""
    import docker.errors

    def removed() -> None:
        try:
            c.api.remove_network(network)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            attached = list((c.api.inspect_network(network).get("Containers") or {}).keys())
            for endpoint in [*attached, *names]:
                disconnect(c, network, endpoint)
            raise

    try:
        readiness.wait_until(removed, timeout=timeout, service="docker network", interval=0.2, max_interval=0.2)
    except ReadinessTimeoutError:
        c.api.remove_network(network)  # once more: the engine's own refusal says why


def exec_in(c: Any, container: str, argv: list[str], stdin: bytes | None = None) -> tuple[int, str]:
    """Run ``argv`` in a running container; ``stdin`` (a secret, say: never in an argv) is typed on a
    terminal, where kcadm reads a password (26 reads it from a console only).  Its exit code and output."""
    exec_id = c.api.exec_create(container, argv, stdin=stdin is not None, tty=stdin is not None)["Id"]
    if stdin is None:
        output = c.api.exec_start(exec_id)
    else:
        sock = c.api.exec_start(exec_id, socket=True, tty=True)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(120)
        raw.sendall(stdin)  # the terminal keeps it until the program reads; it ends when the program does
        chunks = []
        try:
            while chunk := raw.recv(65536):
                chunks.append(chunk)
        finally:
            raw.close()
        output = b"".join(chunks)
    code = c.api.exec_inspect(exec_id).get("ExitCode")
    return int(code if code is not None else 1), bytes(output).decode(errors="replace")


def commit_env(container: Any, secrets: Iterable[str]) -> list[str]:
    """The environment a builder ``container`` is committed with.  The engine keeps every variable of the
    container that the given environment lacks, so a template password cannot be left out: each of
    ``secrets`` is given a fresh random value instead, which nobody keeps (for a server whose data is
    initialised already, a variable it reads at first start only)."""
    hidden = set(secrets)
    own = container.attrs["Config"].get("Env") or []
    return [f"{k}={generate_secret()}" if k in hidden else f"{k}={v}" for k, _, v in (e.partition("=") for e in own)]


def running(container: Any) -> bool:
    """Whether a container still runs (a builder that exited fails at once, not at its timeout)."""
    try:
        container.reload()
    except Exception:  # removed meanwhile
        return False
    return bool(container.status in ("created", "running"))
