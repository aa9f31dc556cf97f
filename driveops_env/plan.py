"""The start plan: which servers an environment (or the tenants added to it) needs, and per tenant each
service's set-up step, with their order.  The same plan starts a new environment and adds tenants to
a running one (servers it already has are not started again).

Servers (in parallel, at most ``--parallel-starts`` at once): what each service's ``needs`` says for
each tenant (one server per key: a tenant's own, a shared one, the environment's one); before a server
of a ``Staged`` service, its stage step (``prepare <key>``: what its description needs made once the
servers it depends on run).  Then per tenant and service, as soon as that service's server answers: its
set-up step (roles, users, seed, realm).  Nothing here names a service.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from driveops_env.backends import Backend, StartContext
from driveops_env.services.base import Need, Plan, Preparation, Progress, Service, Sources, Work
from driveops_env.services.capabilities import Staged
from driveops_env.state import EnvState, ServiceRecord, StateStore
from driveops_env.tasks import Step
from driveops_env.tenants import Tenant


class Launch:
    """The state being filled by the parallel steps, guarded by a lock, saved at every change."""

    def __init__(self, state: EnvState, store: StateStore) -> None:
        self.state = state
        self.store = store
        self.lock = threading.Lock()

    def register(self, record: ServiceRecord) -> None:
        with self.lock:
            self.state.services[record.key] = record
            self.store.save(self.state)

    def set_access(self, slug: str, service: str, access: Any) -> None:
        with self.lock:
            self.state.tenants[slug].stores[service] = asdict(access)
            self.store.save(self.state)

    def server(self, key: str) -> ServiceRecord:
        with self.lock:
            return self.state.services[key]

    def servers(self) -> dict[str, ServiceRecord]:
        with self.lock:
            return dict(self.state.services)


@dataclass(frozen=True)
class PlanInput:
    """What the plan starts: tenants, and per service its rendered seed of each tenant."""

    tenants: Sequence[Tenant]
    stores: Sequence[Service[Any, Any]]  # the services whose stores each tenant gets
    servers: Mapping[str, Service[Any, Any]]  # every service that describes a needed server, by name
    seeds: Mapping[str, Mapping[str, Any]]  # service -> tenant slug -> seed
    isolation: str
    sources: Sources
    prepared: Mapping[str, Preparation] = field(default_factory=dict)  # what each service's prepare found


def needs_of(what: PlanInput, family: str) -> dict[str, Need]:
    """Every server the tenants' stores need, by key, in the order they are first needed."""
    found: dict[str, Need] = {}
    for tenant in what.tenants:
        for service in what.stores:
            for need in service.needs(tenant, what.isolation, family):
                found.setdefault(need.key, need)
    return found


def own_need(service: Service[Any, Any], tenant: Tenant, isolation: str, family: str) -> Need:
    """The server that holds a tenant's store of ``service``."""
    return [n for n in service.needs(tenant, isolation, family) if n.service == service.name][-1]


class StartPlan:
    def __init__(
        self, what: PlanInput, backend: Backend, ctx: StartContext, launch: Launch, progress: Progress
    ) -> None:
        self.what = what
        self.backend = backend
        self.ctx = ctx
        self.launch = launch
        self.progress = progress
        self._steps: dict[str, Step] = {}
        self._staged: dict[str, Any] = {}  # what each stage step made, by server key

    def steps(self) -> list[Step]:
        for need in needs_of(self.what, self.backend.family).values():
            after = need.after
            service = self.what.servers[need.service]
            staged = isinstance(service, Staged) and self.backend.family in service.stages
            if staged and need.key not in self.launch.state.services:
                self._add(f"prepare {need.key}", partial(self._stage, need), after=after, group="server")
                after = (*after, f"prepare {need.key}")
            self._add(need.key, partial(self._start, need), after=after, group="server")
        for tenant in self.what.tenants:
            for service in self.what.stores:
                own = own_need(service, tenant, self.what.isolation, self.backend.family)
                run = partial(self._setup, service, tenant, own.key)
                name = service.step_name.format(service=service.name, slug=tenant.slug, realm=tenant.realm)
                self._add(name, run, after=(own.key,), group=service.name)
        return list(self._steps.values())

    def limits(self) -> dict[str, int]:
        """At most this many steps of a group at a time: servers compete for two cores."""
        limits = {"server": self.ctx.settings.parallel_starts}
        for service in self.what.stores:
            limit = self.what.prepared.get(service.name, Preparation()).step_limit
            if limit is not None:
                limits[service.name] = limit
        return limits

    def _add(self, name: str, run: Any, after: tuple[str, ...] = (), group: str | None = None) -> None:
        if name in self._steps or name in self.launch.state.services:
            return  # planned already, or running already (a tenant added to a running environment)
        self._steps[name] = Step(name, run, after=tuple(a for a in after if a in self._steps), group=group)

    def _plan(self, need: Need) -> Plan:
        """What the service of ``need`` is told to describe its server with."""
        service = self.what.servers[need.service]
        return Plan(
            self.what.isolation,
            self.backend.family,
            self.what.tenants,
            self.what.seeds.get(service.name, {}),
            self.progress,
            self.what.prepared.get(service.name, Preparation()),
            self._staged.get(need.key),
            self.backend.engine(),
        )

    def _stage(self, need: Need) -> None:
        service = self.what.servers[need.service]
        deps = {key: self.launch.server(key) for key in need.after}
        if isinstance(service, Staged):
            self._staged[need.key] = service.stage(need, self._plan(need), deps)

    def _start(self, need: Need) -> str:
        service = self.what.servers[need.service]
        deps = {key: self.launch.server(key) for key in need.after}
        server = replace(service.server(need, self._plan(need), deps), explain=service.explain)
        record = self.backend.start(server, self.ctx)
        return f"{record.host}:{record.port}"

    def _setup(self, service: Service[Any, Any], tenant: Tenant, key: str) -> str | None:
        record = self.launch.server(key)
        seed = self.what.seeds[service.name][tenant.slug]
        work = Work(tenant, self.what.isolation, seed, self.launch.servers(), sources=self.what.sources)
        work.staged, work.cancel = self._staged.get(key), self.ctx.cancel
        self.launch.set_access(tenant.slug, service.name, service.setup(work, record))
        return None
