"""A server as a service describes it, and what the service is given to describe it.

A unit's ``prepare`` checks (and once, builds) what its servers need and returns a frozen
:class:`Preparation`; its ``server`` turns a :class:`Need` and the :class:`Plan` (which carries that
preparation) into a :class:`Server` and does nothing else.  A backend starts any server from the
description alone: a process (:class:`ProcessSpec`) or a container (:class:`ContainerSpec`, the same
for docker and kubernetes).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from driveops_env.images.derivation import Derivation
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant

Progress = Callable[[str], None]
PROCESS, CONTAINER = "process", "container"  # the families of backends: what a service describes for


def never(_: str) -> bool:
    return False


class Explanation(NamedTuple):
    """What an error of a service's server or client means, what to do, and whether waiting can change
    it (a refused password cannot: a start waits no longer for it)."""

    what: str
    hint: str | None = None
    permanent: bool = False


def unexplained(_: str) -> Explanation | None:
    return None


@dataclass(frozen=True)
class Need:
    """A server a tenant's store needs: its key, the service that describes it, its owner (None when
    shared), and the keys of servers that must run before it (one its server keeps its data in)."""

    key: str
    service: str
    tenant: str | None
    after: tuple[str, ...] = ()


@dataclass
class ContainerSpec:
    """A server as a container: the same description serves docker and kubernetes."""

    image: str
    image_option: str  # the option that sets the image (named in errors)
    port: int  # the main port inside the container
    env: dict[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()  # names in ``env`` that hold secrets
    command: list[str] | None = None
    command_for: Callable[[str], list[str]] | None = None  # given the URL clients reach the main port at
    ports: dict[str, int] = field(default_factory=dict)  # other named ports inside the container
    files: dict[str, bytes] = field(default_factory=dict)  # path in the container -> content
    memory_mb: int | None = None
    host_port: int | None = None  # the main port's published port, when the user fixed it
    data_dirs: tuple[str, ...] = ()  # where it keeps its data: in memory (throwaway development data)


@dataclass
class ProcessSpec:
    """A server as a local process, run in its own data directory."""

    argv: Callable[[Path, int, Mapping[str, int]], list[str]]  # (data directory, port, other ports) -> argv
    env: dict[str, str] = field(default_factory=dict)
    as_local_user: bool = False  # as root, run as --local-user
    setup: Callable[[Path], None] | None = None  # fills the data directory (absent yet) before the start
    files: Callable[[Path, int], dict[str, str]] | None = None  # (data directory, port) -> files written
    # 0600 into the data directory before each attempt
    ports: tuple[str, ...] = ()  # other named ports to allocate
    fixed_port: int | None = None
    stop_signals: tuple[int, int] = (signal.SIGTERM, signal.SIGKILL)  # graceful, fast


@dataclass
class Server:
    """One server as its service describes it; a backend starts it from this alone."""

    key: str
    service: str
    tenant: str | None
    admin_user: str
    admin_password: str = field(repr=False)
    probe: Callable[[ServiceRecord], object]
    container: ContainerSpec | None = None
    process: ProcessSpec | None = None
    after_start: Callable[[ServiceRecord], None] | None = None  # e.g. the generated admin password set
    retry_on: Callable[[str], bool] = never  # a start whose log says this (a port taken) is tried again
    explain: Callable[[str], Explanation | None] = unexplained  # its service's: what its errors mean
    extra: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    # its share of the CPU against the environment's other servers when they contend (a server on the
    # start's longest path starts first while the others wait their turn; idle, it takes nothing)
    cpu_weight: int = 1

    @property
    def alias(self) -> str:
        """Its name on the environment's network (the key with a dash: ``<service>-<tenant>``)."""
        return self.key.replace(".", "-")


class Engine(Protocol):
    """What a container backend offers a service: where ports are published and reached, a command run
    inside a server's container (a secret on its stdin), and, where it ``builds``, images: one derived
    from a recipe with one call (``derive``), one built from a Dockerfile, what an image is, and its
    removal.  ``client`` is the engine's own client (``gc``'s pruning)."""

    builds: bool

    def client(self) -> Any: ...

    def addresses(self) -> tuple[str, str]: ...

    def exec(self, record: ServiceRecord, argv: list[str], stdin: bytes | None = None) -> tuple[int, str]: ...

    def identity(self) -> str:
        """What tells this engine from another (derived images are kept per engine)."""
        ...

    def image_id(self, reference: str) -> str | None: ...

    def build(self, context: bytes, tag: str, labels: Mapping[str, str]) -> str:
        """An image built from a tar ``context`` holding a Dockerfile; its id."""
        ...

    def derive(self, derivation: Derivation) -> str:
        """The image ``derivation`` says, made (see :mod:`driveops_env.images.derivation`); its id."""
        ...

    def remove_image(self, reference: str) -> None: ...


@dataclass(frozen=True)
class Prepare:
    """Given to ``Service.prepare``, before anything starts."""

    family: str
    progress: Progress
    env_dir: Path
    run_as: str | None = None  # process family, as root: the user servers run as
    engine: Engine | None = None  # container family
    rebuild: bool = False  # ``up --recreate``: images derived per configured image are derived again


@dataclass(frozen=True)
class Preparation:
    """What ``prepare`` found, handed to ``server`` with the plan: the version that runs (the spec's
    fingerprint holds it), settings that make two environments differ, how many of the service's
    per-tenant steps may run at once (None: no limit of its own), and what the unit found (a build,
    an image, a binary: its own frozen value)."""

    version: str = ""
    fingerprint: Mapping[str, str] = field(default_factory=dict)
    step_limit: int | None = None
    found: Any = None


@dataclass(frozen=True)
class Plan:
    """What the start plan knows when it asks a service to describe a server."""

    isolation: str
    family: str
    tenants: Sequence[Tenant]
    seeds: Mapping[str, Any]  # this service's rendered seed, by tenant slug
    progress: Progress
    prepared: Preparation = Preparation()
    staged: Any = None  # what the service's stage step made for this server (a ``Staged`` service)
    engine: Engine | None = None
