"""Back to the seed: a tenant's own stores (``reset``) and a test process's copies of them, through the
same code of each service (``restore``), while the environment keeps running.

A copy is named by a token (``main``, an xdist worker ``gw0``, then ``_<session>`` when other sessions
share the environment); each service makes its copy its own way (a cloned database, a leased logical
database or an ACL user of its own, a realm of its own when a test asks for one) and the tenant's own
credentials reach it, and nothing else.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from driveops_env import timing
from driveops_env.diagnosis import NO_SPACE, diagnose
from driveops_env.errors import ServiceError, UsageError
from driveops_env.kept import KeptCopy
from driveops_env.running import services_of, sources_of, work_of
from driveops_env.services import registry
from driveops_env.services.base import COPY_TOKEN, Service
from driveops_env.services.capabilities import Copied, KeepsCopies, Seeded, restored_per_test, seed_of
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore, TenantRecord

ROOM = 64 * 1024 * 1024  # bytes free a server's disk needs for a reset (a WAL segment, a copy, headroom)


def tenant_record(state: EnvState, slug: str) -> TenantRecord:
    record = state.tenants.get(slug)
    if record is None:
        raise UsageError(
            f"tenant {slug!r} is not part of environment {state.name!r}",
            hint=f"its tenants are: {', '.join(state.tenants)}",
        )
    return record


def reset_tenant(state: EnvState, slug: str, stores: Iterable[str], settings: Settings) -> dict[str, float]:
    """``stores`` of tenant ``slug`` back to the seed, in parallel; the seconds each took."""
    record = tenant_record(state, slug)
    services, sources = services_of(state, settings), sources_of(state, settings)
    wanted = [name for name in stores if name in record.stores]
    unseeded = [name for name in wanted if not isinstance(services.get(name), Seeded)]
    if unseeded:
        raise UsageError(f"{', '.join(unseeded)} keep(s) no seed to go back to", hint="reset the other stores")
    _check_room(state, record, wanted)
    registry.load_clients(services[name] for name in wanted)
    jobs: dict[str, Callable[[], object]] = {}
    restored: dict[str, Any] = {}
    for name in wanted:
        service = services[name]
        assert isinstance(service, Seeded)  # checked above, for every store at once
        access = service.load(record.stores[name])
        work = work_of(state, record, seed_of(service, record.as_tenant(), sources, access), sources)
        jobs[name] = _said(name, slug, _restore(service, access, work, restored, name), state.data_dir, services)
    took = timing.run_timed(jobs)
    changed = {n: asdict(a) for n, a in restored.items() if asdict(a) != record.stores[n]}
    if changed:  # a record the seed gives back (a realm's users after a snapshot's were loaded)
        _record_changed(settings, state, slug, changed)
    return took


def _restore(service: Seeded, access: Any, work: Any, out: dict[str, Any], name: str) -> Callable[[], object]:
    return lambda: out.__setitem__(name, service.restore(access, work))


def _record_changed(settings: Settings, state: EnvState, slug: str, stores: dict[str, Any]) -> None:
    store = StateStore(settings.state_dir)
    with store.lock(state.name):
        current = store.load(state.name)
        if current is not None and slug in current.tenants:
            current.tenants[slug].stores.update(stores)
            store.save(current)
    state.tenants[slug].stores.update(stores)


def _said(
    store: str, slug: str, job: Callable[[], object], folder: str, services: Mapping[str, Service[Any, Any]]
) -> Callable[[], None]:
    """``job``, whose failure is an error naming the store and tenant, with a hint (and, for a full
    disk, the folder the servers keep their data in)."""

    def run() -> None:
        try:
            job()
        except Exception as exc:  # ours already said in words; a server's error, whatever its library
            detail, hint = diagnose(exc, [s.explain for s in services.values()])
            if detail.startswith(NO_SPACE):
                hint = f"free disk space in {folder or 'the Docker engine'}, then reset again"
            raise ServiceError(
                f"resetting {store} failed: {detail}",
                service=store,
                tenant=slug,
                hint=hint or "`driveops-env status` shows which server is down; `driveops-env up` heals it",
            ) from None

    return run


def _check_room(state: EnvState, record: TenantRecord, stores: Iterable[str]) -> None:
    """Refuse a reset (touching nothing) while a server that keeps its data on this machine has less
    than ROOM free: on a full disk, a server may not even write the log of a failed copy."""
    for store in stores:
        server = state.services.get(str(record.stores[store].get("service", "")))
        folder = server.process.data_dir if server is not None and server.process is not None else None
        if folder and os.path.isdir(folder) and shutil.disk_usage(folder).free < ROOM:
            free = shutil.disk_usage(folder).free // (1024 * 1024)
            raise ServiceError(
                f"resetting {store} failed: no space left on device in {folder} ({free} MB free; a reset needs "
                f"{ROOM // (1024 * 1024)} MB); nothing was changed",
                service=store,
                tenant=record.slug,
                hint=f"free disk space in {Path(folder).parent}, then reset again",
            )


class TenantCopy:
    """One test process's copy of one tenant; ``record`` points at it."""

    def __init__(self, state: EnvState, slug: str, token: str, settings: Settings) -> None:
        if COPY_TOKEN.fullmatch(token) is None:
            raise ValueError(f"not a copy token: {token!r}")
        self.state, self.token = state, token
        self.original = tenant_record(state, slug)
        self.services = {n: s for n, s in services_of(state, settings).items() if n in self.original.stores}
        registry.load_clients(self.services.values())
        self.sources = sources_of(state, settings)
        self.accesses = {n: s.load(self.original.stores[n]) for n, s in self.services.items()}
        self.seeds = {
            n: seed_of(s, self.original.as_tenant(), self.sources, self.accesses[n]) for n, s in self.services.items()
        }
        self.memo: dict[str, dict[str, str]] = {n: {} for n in self.services}
        self._made = False

    @property
    def record(self) -> TenantRecord:
        """The tenant as this process's tests see it: its stores are the copies."""
        return replace(self.original, stores={n: asdict(a) for n, a in self.accesses.items()})

    def _work(self, name: str) -> Any:
        work = work_of(self.state, self.original, self.seeds[name], self.sources, token=self.token)
        return replace(work, memo=self.memo[name])

    def make(self) -> None:
        """Create the copies (once), each then restored to the seed."""
        if self._made:
            return
        self._made = True
        for name, service in self.services.items():
            if isinstance(service, Copied):
                self.accesses[name] = service.copy(self.accesses[name], self._work(name))
        self.restore([n for n, s in self.services.items() if restored_per_test(s)])

    def restore(self, stores: Iterable[str]) -> dict[str, float]:
        """Back to the seed in ``stores``, in parallel; returns the seconds each took."""
        jobs = {name: self._restorer(name) for name in stores if isinstance(self.services.get(name), Seeded)}
        return timing.run_timed(jobs)

    def _restorer(self, name: str) -> Callable[[], None]:
        service = self.services[name]

        def run() -> None:
            if isinstance(service, Seeded):
                self.accesses[name] = service.restore(self.accesses[name], self._work(name))

        return run

    def keep(self, test: str, hours: float) -> KeptCopy:
        """The copies left as they are for ``hours`` (a failed test's): no longer this process's (never
        restored or dropped by it); what its stores hold for them released."""
        for name, service in self.services.items():
            if isinstance(service, KeepsCopies):
                service.keep_copy(self.accesses[name], self._work(name))
        self._made = False
        now = time.time()
        stores = {n: asdict(a) for n, a in self.accesses.items()}
        memo = {n: dict(m) for n, m in self.memo.items() if m}
        return KeptCopy(
            f"{self.original.slug}-{self.token}",
            self.original.slug,
            self.token,
            test,
            now,
            now + hours * 3600,
            stores,
            memo,
        )

    def drop(self) -> None:
        """Remove the copies (the environment outlives this process); one failing does not keep the others."""
        if not self._made:
            return
        self._made = False
        jobs = {name: self._dropper(name) for name, s in self.services.items() if isinstance(s, Copied)}
        timing.run_timed(jobs)

    def _dropper(self, name: str) -> Callable[[], None]:
        service = self.services[name]
        return lambda: service.drop_copy(self.accesses[name], self._work(name)) if isinstance(service, Copied) else None
