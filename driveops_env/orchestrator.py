"""Bringing an environment up and down.

``up`` is a short sequence of stages: *prepare* (tenants resolved, every service's seeds rendered, the
backend and the services prepared; nothing runs yet) -> under the environment's lock, *decide reuse*
(attach, refuse, or sweep what a dead run left) -> *plan* -> *start* (the plan's steps, in parallel)
-> *record* (state file).  Any failure or Ctrl-C stops what was started, removes its data and the
state file, and re-raises.  Nothing here names a service: the registry and the plan do the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from driveops_env import builders, envdirs, process, seeding, snapshot_seeds, snapshotting, tasks, teardown
from driveops_env.backends import Backend, StartContext, create_backend, resolve_backend_name
from driveops_env.diagnosis import diagnose
from driveops_env.errors import DriveopsEnvError, Interrupted, SpecMismatchError, StartupError, TemplateError
from driveops_env.plan import Launch, PlanInput, StartPlan, needs_of
from driveops_env.ports import PortAllocator
from driveops_env.recorded import EXPLICIT, recorded
from driveops_env.running import backend_of, owner_alive, running_settings
from driveops_env.secret import generate_secret
from driveops_env.services import registry
from driveops_env.services.base import Prepare, Sources
from driveops_env.services.capabilities import seed_of
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore, TenantRecord
from driveops_env.tenants import Tenant, describe_differences, load_catalogue, resolve_tenants

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class UpResult:
    state: EnvState
    attached: bool
    elapsed: float


@dataclass(frozen=True)
class Prepared:
    """Everything ``up`` decided before taking the lock: nothing runs yet."""

    settings: Settings
    backend: Backend
    what: PlanInput
    finger: dict[str, Any]
    spec_hash: str


def sources_of(settings: Settings) -> Sources:
    return Sources(settings.seeds_dir, settings.realms_dir, settings.input_limit)


def plan_input(
    settings: Settings, tenants: Sequence[Tenant], family: str, accesses: Sequence[TenantRecord] = ()
) -> PlanInput:
    """The tenants' seeds, rendered by each service (bad input: exit 2, before anything starts)."""
    sources = sources_of(settings)
    if not sources.seeds_dir.is_dir():
        raise TemplateError(f"the seeds directory {sources.seeds_dir} does not exist", hint="check --seeds-dir")
    stores = registry.services(settings)
    seeds = {s.name: {t.slug: seed_of(s, t, sources, None) for t in tenants} for s in stores}
    what = PlanInput(tenants, stores, {s.name: s for s in stores}, seeds, settings.isolation, sources)
    needed = {need.service for need in needs_of(what, family).values()} - set(what.servers)
    servers = {**what.servers, **{name: registry.service(name, settings) for name in needed}}
    return PlanInput(tenants, stores, servers, seeds, settings.isolation, sources)


def prepare_services(
    what: PlanInput, backend: Backend, settings: Settings, progress: Progress, *, rebuild: bool = False
) -> PlanInput:
    """Each service that describes a server checks (and, once, builds) what it needs: the plan input
    with what each found.  ``rebuild`` (``up --recreate``): what a service derives per image is derived
    again."""
    env_dir = envdirs.env_dir(settings, settings.name)
    ctx = Prepare(backend.family, progress, env_dir, backend.run_as(), backend.engine(), rebuild=rebuild)
    registry.load_clients(what.servers.values())
    return replace(what, prepared={name: service.prepare(ctx) for name, service in what.servers.items()})


def fingerprint(backend: str, what: PlanInput) -> dict[str, Any]:
    """The parts of an environment that make two of them different (seed content is hashed apart): all
    of them in the plan input, not in the settings."""
    result: dict[str, Any] = {
        "tenants": [f"{t.slug}={t.tenant_id}/{t.realm}" for t in what.tenants],
        "isolation": what.isolation,
        "services": [s.name for s in what.stores],
        "seeds": seeding.content_hash(what.sources.seeds_dir, what.sources.realms_dir, limit=what.sources.limit)[:16],
        "backend": backend,
        "versions": {name: found.version for name, found in sorted(what.prepared.items())},
    }
    for service in what.stores:
        found = what.prepared.get(service.name)
        result |= found.fingerprint if found is not None else {}
    return result


def hash_of(finger: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(finger, sort_keys=True).encode()).hexdigest()[:16]


def prepare_start(settings: Settings, progress: Progress, *, rebuild: bool = False) -> Prepared:
    catalogue = load_catalogue(settings.seeds_dir / "tenants.json", limit=settings.input_limit)
    tenants = resolve_tenants(settings.tenants, catalogue, settings.realm_pattern)
    backend_name = resolve_backend_name(settings.backend, settings, progress)
    backend = create_backend(backend_name, settings)
    what = plan_input(settings, tenants, backend.family)  # bad seeds fail before anything is asked of it
    slugs, stores = [t.slug for t in tenants], {s.name: s for s in what.stores}
    snapshots = snapshot_seeds.check(settings, slugs, stores) if settings.snapshot else {}
    backend.prepare(progress)
    what = prepare_services(what, backend, settings, progress, rebuild=rebuild)
    finger = fingerprint(backend_name, what) | ({"snapshots": snapshots} if snapshots else {})
    return Prepared(settings, backend, what, finger, hash_of(finger))


def up(
    settings: Settings,
    *,
    recreate: bool = False,
    detach: bool = False,
    owner_pid: int | None = None,
    progress: Progress = _quiet,
) -> UpResult:
    """Start (or attach to) an environment.  While it starts, this process owns it; afterwards its
    owner is ``owner_pid`` (default: this process), or nobody with ``detach``.  The next ``up`` of that
    name sweeps an environment whose owner died.  ``gc`` prunes no cached image meanwhile."""
    with builders.using(settings.cache_dir):
        return _up(settings, recreate=recreate, detach=detach, owner_pid=owner_pid, progress=progress)


def _up(settings: Settings, *, recreate: bool, detach: bool, owner_pid: int | None, progress: Progress) -> UpResult:
    started = time.monotonic()
    prepared = prepare_start(settings, progress, rebuild=recreate)
    store = StateStore(settings.state_dir)
    with store.lock(settings.name):
        existing = store.load(settings.name)
        if existing is not None:
            running = backend_of(existing, settings, check=False)
            if _reuse(existing, prepared, running, recreate, progress):
                return UpResult(existing, attached=True, elapsed=time.monotonic() - started)
            teardown.teardown(existing, running, store)
        else:  # what a run killed before it wrote its state file left: labelled servers of this name
            prepared.backend.cleanup(settings.name)
        state = _new_state(prepared)
        _start(state, store, prepared, progress, owner=None if detach else (owner_pid or os.getpid()))
    return UpResult(state, attached=False, elapsed=time.monotonic() - started)


def _new_state(prepared: Prepared) -> EnvState:
    s = prepared.settings
    return EnvState(
        name=s.name,
        backend=prepared.backend.name,
        isolation=s.isolation,
        spec_hash=prepared.spec_hash,
        fingerprint=prepared.finger,
        data_dir=str(envdirs.env_dir(s, s.name)),
        data_marker=generate_secret(16),
        seeds_dir=str(s.seeds_dir),
        realms_dir=str(s.realms_dir),
        owner_pid=os.getpid(),
        owner_start=process.start_time_of(os.getpid()),
        tenants={t.slug: TenantRecord(t.slug, t.tenant_id, t.display_name, t.realm) for t in prepared.what.tenants},
        options=recorded(s, prepared.backend.name),
        engine=str(getattr(prepared.backend, "url", "")),
    )


def _start(state: EnvState, store: StateStore, prepared: Prepared, progress: Progress, owner: int | None) -> None:
    """Plan, start, record; however it ends badly, what was started is stopped and removed."""
    try:
        store.save(state)  # first: whatever is created from here on, the state file knows its environment
        progress(
            f"starting environment {state.name!r}: backend {state.backend}, isolation {state.isolation}, "
            f"tenants {', '.join(state.tenants)}"
        )
        with tasks.signals_held():  # made whole (its marker written) before a Ctrl-C is acted on
            envdirs.make_env_dir(prepared.settings, state)
        run_plan(state, store, prepared.what, prepared.backend, prepared.settings, progress)
        if prepared.settings.snapshot:  # (the settings go no further when there is none)
            _start_from_snapshots(state, prepared.settings, progress)
        state.status = "running"
        state.owner_pid = owner
        state.owner_start = process.start_time_of(owner) if owner else None
        store.save(state)
    except BaseException as exc:
        teardown.after_failure(exc, state, prepared.backend, store, progress)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted("start-up was interrupted; nothing was left running") from None
        raise


def _start_from_snapshots(state: EnvState, settings: Settings, progress: Progress) -> None:
    """``up --snapshot``: the named tenants' data from their files (checked before the start)."""
    started = time.monotonic()
    snapshotting.start_from(state, settings)
    took = time.monotonic() - started
    progress(f"  ok  {'snapshots loaded':<28} {took:6.2f}s  {', '.join(settings.snapshot)}")


def run_plan(
    state: EnvState, store: StateStore, what: PlanInput, backend: Backend, settings: Settings, progress: Progress
) -> None:
    launch = Launch(state, store)
    cancel = threading.Event()
    ctx = StartContext(
        env_name=state.name,
        spec_hash=state.spec_hash,
        env_dir=envdirs.env_dir(settings, state.name),
        settings=settings,
        cancel=cancel,
        register=launch.register,
        ports=PortAllocator(),
    )
    plan = StartPlan(what, backend, ctx, launch, progress)

    def report(name: str, elapsed: float, detail: str | None) -> None:
        progress(f"  ok  {name:<28} {elapsed:6.2f}s  {detail or ''}".rstrip())

    interrupted = threading.Event()
    with tasks.signals_cancel(cancel, interrupted):
        try:
            tasks.run_steps(plan.steps(), cancel=cancel, on_done=report, limits=plan.limits())
        except BaseException as exc:
            if interrupted.is_set():  # whatever a step raised, it was the signal that stopped it
                raise Interrupted("start-up was interrupted; nothing was left running") from None
            if isinstance(exc, DriveopsEnvError) or not isinstance(exc, Exception):
                raise
            raise _said(exc, what) from exc
    if interrupted.is_set():
        raise Interrupted("start-up was interrupted; nothing was left running")


def _said(exc: Exception, what: PlanInput) -> StartupError:
    """A server's client library's error in a step as one of ours, naming the step."""
    detail, hint = diagnose(exc, [s.explain for s in what.servers.values()])
    where = next((n for n in getattr(exc, "__notes__", ()) if n.startswith("in step ")), "during start-up")
    return StartupError(
        f"{where}: {detail}", hint=hint or "`driveops-env logs SERVICE` shows a server's log; `gc` sweeps leftovers"
    )


def _reuse(existing: EnvState, prepared: Prepared, running: Backend, recreate: bool, progress: Progress) -> bool:
    """Decide what to do with an environment of the same name: reuse it, or tear it down first.
    ``running``: the backend of the existing environment, with its own settings."""
    if existing.status != "running":
        progress(f"environment {existing.name!r} was left {existing.status} by an earlier run: sweeping it")
        return False
    if existing.owner_pid is not None and not owner_alive(existing):
        progress(f"the process that owned environment {existing.name!r} is gone: sweeping what it left")
        return False
    moved = _moved(existing, prepared.settings)
    if existing.spec_hash != prepared.spec_hash or moved:
        if recreate:
            progress(f"environment {existing.name!r} runs with a different spec: recreating it")
            return False
        differences = describe_differences(existing.fingerprint, prepared.finger) + moved
        migrated = all(d.startswith("migrate-") for d in differences)  # only a history that changed
        raise SpecMismatchError(
            f"environment {existing.name!r} is running with a different spec:\n    " + "\n    ".join(differences),
            hint=(
                f"`driveops-env migrate --name {existing.name}` applies the new migrations to it; or "
                if migrated
                else ""
            )
            + f"add --recreate to replace it, or use another --name, or `driveops-env down --name {existing.name}`",
        )
    dead = [r.key for r in existing.services.values() if not running.is_running(r)]
    if dead:
        progress(f"environment {existing.name!r}: {', '.join(dead)} not running: recreating it")
        return False
    return True


def _moved(existing: EnvState, settings: Settings) -> list[str]:
    """Where an explicit --data-dir or --cache-dir differs from the running environment's."""
    return [
        f"{key}: {existing.options.get(key)} -> {getattr(settings, key)}"
        for key in ("data_dir", "cache_dir")
        if settings.sources.get(key) in EXPLICIT
        and existing.options.get(key, str(getattr(settings, key))) != str(getattr(settings, key))
    ]


def prepare(settings: Settings, progress: Progress = _quiet) -> dict[str, str]:
    """Fetch and build what the backend and the services need (once; later calls only check)."""
    backend = create_backend(resolve_backend_name(settings.backend, settings, progress), settings)
    catalogue = load_catalogue(settings.seeds_dir / "tenants.json", limit=settings.input_limit)
    tenants = resolve_tenants(settings.tenants[:1], catalogue, settings.realm_pattern)  # what the services need
    what = plan_input(settings, tenants, backend.family)
    with builders.using(settings.cache_dir):
        backend.prepare(progress)
        prepared = prepare_services(what, backend, settings, progress).prepared
    return {name: found.version for name, found in prepared.items()}


def down(settings: Settings, name: str, *, keep_data: bool = False, progress: Progress = _quiet) -> bool:
    """Stop environment ``name``; False when there was nothing to stop (nothing is deleted then)."""
    store = StateStore(settings.state_dir)
    with tasks.signals_held() as interrupted, store.lock(name, cancelled=interrupted):
        state = store.load(name)
        if state is None:
            return False
        backend = backend_of(state, settings)
        progress(f"stopping environment {name!r} ({len(state.services)} service(s))")
        teardown.teardown(state, backend, store, remove_data=not keep_data)
        return True


__all__ = ["Prepared", "UpResult", "down", "prepare", "running_settings", "up"]
