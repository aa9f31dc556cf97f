"""What every service is: a small core, and the capabilities it has besides (:mod:`.capabilities`).

A service is one unit (``driveops_env/services/<name>/``, or a plugged-in one) that knows everything
about one kind of store.  Its core, below: what servers a tenant's store needs, how it prepares them
(a frozen :class:`~.servers.Preparation`) and describes them (:class:`~.servers.Server`, nothing
else), a tenant's set-up on its server, its probe, its access record (:mod:`.records`: what ``env``
prints, what status shows, the endpoint), its checks, what its errors mean, its fixtures, the images
it runs.  Orchestration, plan, reset, copies, env, render, health, teardown, bundle and the plugin
iterate the registry (:mod:`.registry`) and name no service.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, get_args, get_origin

from driveops_env import typed_json
from driveops_env.services.records import AccessRecord
from driveops_env.services.servers import (
    CONTAINER,
    PROCESS,
    ContainerSpec,
    Engine,
    Explanation,
    Need,
    Plan,
    Preparation,
    Prepare,
    ProcessSpec,
    Progress,
    Server,
    never,
)
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant

__all__ = [
    "CONTAINER",
    "COPY_TOKEN",
    "PROCESS",
    "AccessRecord",
    "Check",
    "ContainerSpec",
    "Engine",
    "Explanation",
    "Fixture",
    "Need",
    "Plan",
    "Preparation",
    "Prepare",
    "ProcessSpec",
    "Progress",
    "Server",
    "Service",
    "Sources",
    "View",
    "Work",
    "never",
]

A = TypeVar("A", bound=AccessRecord)  # a service's access record (a dataclass)
P = TypeVar("P")  # a dataclass of the service's own options (option_types.declare), or None
# names a test process's copy: ``main`` (a session without xdist) or the xdist worker (``gw0``), then
# ``_<session id>`` when other sessions share the environment; a slug cannot contain "_"
COPY_TOKEN = re.compile(r"(main|gw\d+)(_[0-9a-f]{6})?")
# hooks of earlier versions, now the access record's (env ... secrets) or a prepared value's (fingerprint,
# step_limit), a capability, or a class attribute (step_name): a unit that still has them is told so
MOVED = ("env", "from_env", "describe", "data", "endpoint", "inside", "secrets", "fingerprint", "step", "step_limit")


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
    staged: Any = None  # what the plan's stage step made for the store's server (a ``Staged`` service)
    cancel: threading.Event | None = None  # set when the start-up is cancelled (Ctrl-C): long work ends


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
    """The base of every service; a unit overrides the hooks it has.  One object per command, made with
    the settings it runs with; it keeps nothing between hooks but caches (a login, a pool of copies).  A
    unit declares itself as ``class QueueService(Service[QueueAccess, QueueOptions], name="queue",
    title="Queue")``: the access record and the options dataclass come from the type arguments."""

    name: ClassVar[str]
    title: ClassVar[str]  # how people call it, in messages
    access_type: ClassVar[type[AccessRecord]]
    options: ClassVar[type | None] = None
    default: ClassVar[bool] = True  # runs when ``services`` is not set
    step_name: ClassVar[str] = "seed {service}.{slug}"  # a tenant's set-up step ({slug}, {realm})
    commands: ClassVar[tuple[str, ...]] = ()  # its local processes' command names (found when a state is lost)
    local_user: ClassVar[str | None] = None  # the account its local processes run as, as root (its package's)
    # the client libraries its steps import, imported before the steps run in parallel threads (the first
    # import of a package with import cycles, such as requests, from two threads at once can fail)
    clients: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, *, name: str = "", title: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        arguments = [get_args(b) for b in getattr(cls, "__orig_bases__", ()) if get_origin(b) is Service]
        if not name or not arguments:
            raise TypeError(f"{cls.__name__}: declare it as Service[Access, Options] with name= and title=")
        moved = sorted(hook for hook in MOVED if hook in vars(cls))
        access = arguments[0][0]
        if moved or not (isinstance(access, type) and issubclass(access, AccessRecord)):
            raise TypeError(
                f"{cls.__name__}: the access record must derive from AccessRecord, which formats its own values "
                f"(env, describe, data, endpoint); {', '.join(moved) or 'no hook'} moved there, to what prepare "
                "returns, or to a capability (see the README's 'Your own service')"
            )
        cls.name = name
        cls.title = title or name
        cls.access_type = access
        cls.options = None if arguments[0][1] is type(None) else arguments[0][1]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        own = settings.of(self.options) if self.options else None
        self.own = cast(P, own)  # its own options' values

    def needs(self, tenant: Tenant, isolation: str, family: str) -> list[Need]:
        """The servers a tenant's store needs; the same key from several tenants is one server."""
        owner = tenant.slug if isolation == "dedicated" else None
        return [Need(f"{self.name}.{owner or 'shared'}", self.name, owner)]

    def prepare(self, ctx: Prepare) -> Preparation:
        """Check (and, once, build) what the servers need before anything starts."""
        return Preparation()

    def images(self) -> dict[str, str]:
        """The images the container family runs, by the option that sets each."""
        return {}

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        """The server of ``need`` described (``plan.prepared`` is what ``prepare`` found); nothing done."""
        raise NotImplementedError(f"{self.name} describes no server")

    def setup(self, work: Work, server: ServiceRecord) -> A:
        """The tenant's store on its server: users, databases, seed, whatever restores need."""
        raise NotImplementedError

    def probe(self, record: ServiceRecord) -> None:
        """Readiness and ``status``: a real request as the server's administrator."""
        raise NotImplementedError

    def load(self, raw: Mapping[str, Any]) -> A:
        """The access record from its JSON (a state file, a descriptor), every field checked."""
        return cast(A, typed_json.build(self.access_type, dict(raw)))

    def checks(self) -> dict[str, Check]:
        """The production guide's checks of a tenant's store, by name."""
        return {}

    def drop_tenant(self, access: A, work: Work) -> None:
        """The tenant gone from a server that stays (a shared one)."""

    def explain(self, error: str) -> Explanation | None:
        """What an error of its server or its client library means (a refused password, a difference
        from what clients expect), what to do, and whether waiting could change it."""
        return None

    def fixtures(self) -> list[Fixture]:
        """The pytest fixtures it hands out."""
        return []
