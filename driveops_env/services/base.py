"""What a service is, and how it describes its servers to any backend.

A service is one unit (``driveops_env/services/<name>/``, or a plugged-in one) that knows everything
about one kind of store: its options, its access record and what ``env`` prints of it, how its server
is described (for containers and for local processes), its per-tenant work (set up, seed, copy,
restore to the seed, drop: a tenant's reset and a test's restore are the same code), its probe and its
checks, and what the fixtures hand out.  Orchestration, plan, reset, copies, env, render, health,
teardown, bundle and the plugin iterate the registry (:mod:`.registry`) and name no service.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, get_args, get_origin

from driveops_env import typed_json
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant

A = TypeVar("A")  # a service's access record (a dataclass)
P = TypeVar("P")  # a dataclass of the service's own options (option_types.declare), or None
# names a test process's copy: ``main`` (a session without xdist) or the xdist worker (``gw0``), then
# ``_<session id>`` when other sessions share the environment; a slug cannot contain "_"
COPY_TOKEN = re.compile(r"(main|gw\d+)(_[0-9a-f]{6})?")
Progress = Callable[[str], None]
PROCESS, CONTAINER = "process", "container"  # the families of backends: what a service describes for


def never(_: str) -> bool:
    return False


@dataclass
class DatabaseAccess:
    """A database reached as a user with a password: the shape of a relational or document store's
    access record (a unit's own record derives from it and adds what its clients need)."""

    service: str  # the server's key
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Need:
    """A server a tenant's store needs: its key, the service that describes it, its owner (None when
    shared), and the keys of servers that must run before it (FerretDB's PostgreSQL)."""

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
    extra: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    # its share of the CPU against the environment's other servers when they contend (a server on the
    # start's longest path starts first while the others wait their turn; idle, it takes nothing)
    cpu_weight: int = 1

    @property
    def alias(self) -> str:
        """Its name on the environment's network (``postgres-acme``)."""
        return self.key.replace(".", "-")


class Engine(Protocol):
    """What a container backend offers a service: the engine's client (deriving images), where ports are
    published and reached, and a command run inside a server's container (a secret on its stdin)."""

    def client(self) -> Any: ...

    def addresses(self) -> tuple[str, str]: ...

    def exec(self, record: ServiceRecord, argv: list[str], stdin: bytes | None = None) -> tuple[int, str]: ...


@dataclass
class Prepare:
    """Given to :meth:`Service.prepare`, before anything starts."""

    family: str
    progress: Progress
    env_dir: Path
    run_as: str | None = None  # process family, as root: the user servers run as
    engine: Engine | None = None  # container family
    rebuild: bool = False  # ``up --recreate``: images derived per configured image are derived again


@dataclass
class Plan:
    """What the start plan knows when it asks a service to describe a server."""

    isolation: str
    family: str
    tenants: Sequence[Tenant]
    seeds: Mapping[str, Any]  # this service's rendered seed, by tenant slug
    progress: Progress
    engine: Engine | None = None


@dataclass(frozen=True)
class Sources:
    """Where seeds and templates come from, and how large an input file may be."""

    seeds_dir: Path
    realms_dir: Path
    limit: int


@dataclass
class Work:
    """A tenant's store being set up, restored, copied or dropped."""

    tenant: Tenant
    isolation: str
    seed: Any
    servers: Mapping[str, ServiceRecord]
    token: str | None = None  # a test process's copy (None: the tenant's own store)
    memo: dict[str, str] = field(default_factory=dict)  # the service's notes since the last restore
    sources: Sources | None = None  # to render a seed again (a copy's own realm)


@dataclass(frozen=True)
class Fixture:
    """A pytest fixture a service hands out; ``make`` gets the test's tenant handle."""

    name: str
    doc: str
    make: Callable[[Any], Iterator[Any]] | Callable[[Any], AsyncIterator[Any]]
    is_async: bool = False


class View(Protocol):
    """A tenant as a check sees it: its stores' access records, and tokens where a service issues them."""

    slug: str
    tenant_id: str

    def access(self, service: str) -> Any: ...

    def has(self, service: str) -> bool: ...

    def token_claims(self) -> tuple[str, dict[str, Any]] | None: ...


Check = Callable[[View], str]


class Service(Generic[A, P]):
    """The base of every service; a unit overrides what differs.  One object per command, made with the
    settings it runs with (``prepare`` may keep what it found, for ``server``).  A unit declares itself
    as ``class QueueService(Service[QueueAccess, QueueOptions], name="queue", title="Queue", formats=m)``:
    the access record and the options dataclass come from the type arguments."""

    name: ClassVar[str]
    title: ClassVar[str]  # how people call it: "PostgreSQL"
    # a module of the unit with env(access, style), from_env(environ, slug) and data(access, show_secrets)
    formats: ClassVar[Any] = None
    access_type: ClassVar[type]
    options: ClassVar[type | None] = None
    default: ClassVar[bool] = True  # runs when ``services`` is not set
    restored_per_test: ClassVar[bool] = True  # a test that uses it starts from its seed
    reset_marker: ClassVar[str | None] = None  # a test marked so gets the store made afresh
    issues_tokens: ClassVar[bool] = False
    commands: ClassVar[tuple[str, ...]] = ()  # its local processes' command names (found when a state is lost)
    # the client libraries its steps import, imported before the steps run in parallel threads (the first
    # import of a package with import cycles, such as requests, from two threads at once can fail)
    clients: ClassVar[tuple[str, ...]] = ()
    endpoint_type: ClassVar[Any] = None  # what ``endpoint`` makes of an access: ``endpoint_type.of(access)``

    def __init_subclass__(cls, *, name: str = "", title: str = "", formats: Any = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        arguments = [get_args(b) for b in getattr(cls, "__orig_bases__", ()) if get_origin(b) is Service]
        if not name or not arguments:
            raise TypeError(f"{cls.__name__}: declare it as Service[Access, Options] with name= and title=")
        cls.name = name
        cls.title = title or name
        cls.formats = formats
        cls.access_type = arguments[0][0]
        cls.options = None if arguments[0][1] is type(None) else arguments[0][1]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        own = settings.of(self.options) if self.options else None
        self.own = cast(P, own)  # its own options' values

    # --- planning and preparing -------------------------------------------------------------------

    def needs(self, tenant: Tenant, isolation: str, family: str) -> list[Need]:
        """The servers a tenant's store needs; the same key from several tenants is one server."""
        owner = tenant.slug if isolation == "dedicated" else None
        return [Need(f"{self.name}.{owner or 'shared'}", self.name, owner)]

    def prepare(self, ctx: Prepare) -> str:
        """Check (and, once, build) what the server needs before anything starts; its version."""
        return ""

    def images(self) -> dict[str, str]:
        """The images the container family runs, by the option that sets each."""
        return {}

    def fingerprint(self) -> dict[str, str]:
        """Settings that make two environments of this service different."""
        return {}

    def step_limit(self) -> int | None:
        """At most this many of its per-tenant steps at once (None: no limit of its own)."""
        return None

    def render(self, tenant: Tenant, sources: Sources, access: A | None) -> Any:
        """The tenant's seed, read and rendered before anything starts (bad input: exit 2)."""
        return None

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        raise NotImplementedError(f"{self.name} describes no server")

    # --- per tenant -------------------------------------------------------------------------------

    def step(self, tenant: Tenant) -> str:
        """The name of the tenant's set-up step in the progress lines."""
        return f"seed {self.name}.{tenant.slug}"

    def setup(self, work: Work, server: ServiceRecord) -> A:
        """The tenant's store on its server: users, databases, seed, whatever restores need."""
        raise NotImplementedError

    def restore(self, access: A, work: Work) -> A:
        """The store (the tenant's, or a test process's copy) back to the seed; the access to use."""
        raise NotImplementedError

    def copy(self, access: A, work: Work) -> A:
        """A test process's own copy (``work.token``) of the tenant's store, before its first restore."""
        return access

    def drop_copy(self, access: A, work: Work) -> None:
        """The copy gone (the environment outlives the test process)."""

    def drop_tenant(self, access: A, work: Work) -> None:
        """The tenant gone from a server that stays (a shared one)."""

    # --- reading ----------------------------------------------------------------------------------

    def load(self, raw: Mapping[str, Any]) -> A:
        """The access record from its JSON (a state file, a descriptor), every field checked."""
        result: A = typed_json.build(self.access_type, dict(raw))
        return result

    def probe(self, record: ServiceRecord) -> None:
        """Readiness and ``status``: a real request as the server's administrator."""
        raise NotImplementedError

    def checks(self) -> dict[str, Check]:
        """The production guide's checks of a tenant's store, by name."""
        return {}

    def env(self, access: A, style: str) -> dict[str, str]:
        """What ``env`` prints of the store, in ``plain`` (DRIVEOPS_*) or ``dotnet`` style."""
        return dict(self.formats.env(access, style)) if self.formats else {}

    def from_env(self, environ: Mapping[str, str], slug: str) -> A | None:
        """The access record the ``plain`` variables describe, if they hold one."""
        found: A | None = self.formats.from_env(environ, slug) if self.formats else None
        return found

    def inside(self, access: A, servers: Mapping[str, ServiceRecord]) -> tuple[A, dict[str, str]]:
        """The access as a container on the environment's network sees it, and extra dotnet keys."""
        host_port = _inside(access, servers)
        return (access if host_port is None else _moved(access, *host_port)), {}

    def describe(self, access: A, show_secrets: bool) -> str:
        """One line for the endpoints table."""
        return ""

    def data(self, access: A, show_secrets: bool) -> dict[str, Any]:
        """The same as data (``status --json``)."""
        return dict(self.formats.data(access, show_secrets)) if self.formats else {}

    def admin(self, record: ServiceRecord, show_secrets: bool) -> dict[str, str] | None:
        """A server's administration entry point worth printing (a console URL), if any."""
        return None

    def secrets(self, access: A) -> list[str]:
        """What logs and reports must never show: the access record's fields kept out of its repr."""
        found: list[Any] = []
        for item in dataclasses.fields(access):  # type: ignore[arg-type]
            value = getattr(access, item.name)
            if not item.repr:
                found += list(value.values()) if isinstance(value, Mapping) else [value]
        return [str(v) for v in found if v]

    def builds(self, cache: Path) -> list[Path]:
        """Folders of the cache where it makes things in ``*.partial`` folders under a lock (see
        :mod:`driveops_env.builders`): one whose maker died is removed."""
        return []

    def collect(self, cache: Path, client: Any | None) -> list[str]:
        """What ``gc`` removes of what it keeps in the cache (and, with a container engine's ``client``,
        there): old snapshots beyond the most recently used."""
        return []

    def explain(self, error: str) -> tuple[str, str | None] | None:
        """What an error of its server means, when it is the server's own (a difference from what clients
        expect), and what to do instead."""
        return None

    def endpoint(self, access: A, servers: Mapping[str, ServiceRecord]) -> Any:
        """What ``TenantHandle.<service>`` gives: values and ``connect()``."""
        return self.endpoint_type.of(access) if self.endpoint_type else access

    def fixtures(self) -> list[Fixture]:
        return []

    # --- tokens (a service with ``issues_tokens``) --------------------------------------------------

    def token(self, access: A, user: str | None, password: str | None, *, client_credentials: bool = False) -> str:
        """A token of ``user`` (default: the first seeded one), or of the API client's service account."""
        raise NotImplementedError(f"{self.name} issues no tokens")

    def claims(self, access: A, token: str) -> dict[str, Any]:
        raise NotImplementedError(f"{self.name} issues no tokens")


def _inside(access: Any, servers: Mapping[str, ServiceRecord]) -> tuple[str, int] | None:
    server = servers.get(str(getattr(access, "service", "")))
    if server is None or not server.aliases or server.container_port is None or not hasattr(access, "host"):
        return None
    return server.aliases[0], server.container_port


def _moved(access: A, host: str, port: int) -> A:
    from dataclasses import replace

    moved: A = replace(access, host=host, port=port)  # type: ignore[type-var]
    return moved
