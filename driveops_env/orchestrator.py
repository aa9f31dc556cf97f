"""Bringing an environment up and down, and adding or removing tenants on a running one.

``up`` is a short sequence of stages: *prepare* (validate and render everything, check the backend;
nothing runs yet) -> under the environment's lock, *decide reuse* (attach, refuse, or sweep what a
dead run left) -> *plan* -> *start* (the plan's steps, in parallel) -> *record* (state file).  Any
failure or Ctrl-C stops what was started, removes its data and the state file, and re-raises.
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

from driveops_env import process, seeding, teardown
from driveops_env.backends import Backend, StartContext, create_backend, resolve_backend_name
from driveops_env.errors import (
    DriveopsEnvError,
    Interrupted,
    NotRunningError,
    SpecMismatchError,
    StartupError,
    UsageError,
)
from driveops_env.options import Settings
from driveops_env.plan import LIMITS, Launch, PlanInput, StartPlan
from driveops_env.ports import PortAllocator
from driveops_env.recorded import EXPLICIT, for_environment, recorded
from driveops_env.secret import generate_secret
from driveops_env.spec import (
    EnvSpec,
    Tenant,
    describe_differences,
    load_catalogue,
    parse_tenant_list,
    resolve_tenants,
)
from driveops_env.state import EnvState, StateStore, TenantRecord
from driveops_env.tasks import run_steps

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def build_spec(settings: Settings) -> EnvSpec:
    """The spec described by resolved options (pure apart from reading the tenant catalogue)."""
    catalogue = load_catalogue(settings.seeds_dir / "tenants.json", limit=settings.input_limit)
    tenants = resolve_tenants(settings.tenants, catalogue, settings.realm_pattern)
    return EnvSpec(
        name=settings.name, tenants=tenants, backend=settings.backend, isolation=settings.isolation,
        seeds_dir=settings.seeds_dir, realms_dir=settings.realms_dir,
    )  # fmt: skip


def fingerprint(spec: EnvSpec, settings: Settings) -> dict[str, Any]:
    result = spec.fingerprint()
    result["services"] = list(settings.services)
    if "keycloak" in settings.services:
        result["keycloak"] = f"db={settings.keycloak_db} port={settings.keycloak_port or 'auto'}"
    result["seeds"] = seeding.content_hash(spec.seeds_dir, spec.realms_dir, limit=settings.input_limit)[:16]
    return result


def hash_of(finger: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(finger, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class UpResult:
    state: EnvState
    attached: bool
    elapsed: float


@dataclass(frozen=True)
class Prepared:
    """Everything ``up`` decided before taking the lock: nothing runs yet."""

    spec: EnvSpec
    backend: Backend
    plan_input: PlanInput
    finger: dict[str, Any]
    spec_hash: str
    settings: Settings


def render(tenants: Sequence[Tenant], settings: Settings, spec: EnvSpec) -> PlanInput:
    """Seeds and realms rendered per tenant with generated client secrets (errors: exit 2)."""
    with_keycloak = "keycloak" in settings.services
    secrets = {t.slug: generate_secret() for t in tenants}
    seeds = {
        t.slug: seeding.render_tenant_seeds(
            spec.seeds_dir,
            spec.realms_dir,
            t,
            api_client_secret=secrets[t.slug] if with_keycloak else None,
            limit=settings.input_limit,
        )
        for t in tenants
    }
    return PlanInput(tenants, seeds, secrets, settings.services, spec.isolation, settings.keycloak_db)


def prepare_start(settings: Settings, spec: EnvSpec | None, progress: Progress) -> Prepared:
    spec = spec or build_spec(settings)
    plan_input = render(spec.tenants, settings, spec)  # bad seeds fail before the engine is asked
    backend_name = resolve_backend_name(spec.backend, settings, progress)
    backend = create_backend(backend_name, settings)
    versions = backend.prepare(progress)
    spec = replace(spec, backend=backend_name, versions=versions)  # type: ignore[arg-type]
    finger = fingerprint(spec, settings)
    return Prepared(spec, backend, plan_input, finger, hash_of(finger), settings)


def up(
    settings: Settings,
    *,
    spec: EnvSpec | None = None,
    recreate: bool = False,
    detach: bool = False,
    owner_pid: int | None = None,
    progress: Progress = _quiet,
) -> UpResult:
    """Start (or attach to) an environment.  While it starts, this process owns it; afterwards its
    owner is ``owner_pid`` (default: this process), or nobody with ``detach``.  The next ``up`` of that
    name sweeps an environment whose owner died."""
    started = time.monotonic()
    prepared = prepare_start(settings, spec, progress)
    store = StateStore(settings.state_dir)
    with store.lock(prepared.spec.name):
        existing = store.load(prepared.spec.name)
        running = backend_of(existing, settings, check=False) if existing is not None else None
        if existing is not None and running is not None and _reuse(existing, prepared, running, recreate, progress):
            return UpResult(existing, attached=True, elapsed=time.monotonic() - started)
        if existing is not None:
            teardown.teardown(existing, running or prepared.backend, store, settings)
        else:  # what a run killed before it wrote its state file left: labelled servers of this name
            prepared.backend.cleanup(prepared.spec.name)
        prepared = _with_realm_snapshot(prepared, settings, progress)  # only when it starts
        state = _new_state(prepared, settings)
        _start(state, store, prepared, settings, progress, owner=None if detach else (owner_pid or os.getpid()))
    return UpResult(state, attached=False, elapsed=time.monotonic() - started)


def _with_realm_snapshot(prepared: Prepared, settings: Settings, progress: Progress) -> Prepared:
    """Keycloak starts with the tenants' realms in its data when the backend can (made once per
    tenant set): asked only when an environment starts, never when ``up`` attaches."""
    plan_input = prepared.plan_input
    realms = [s.realm.representation for s in plan_input.seeds.values() if s.realm is not None]
    if "keycloak" in settings.services and prepared.backend.realm_snapshot(realms, progress):
        return replace(prepared, plan_input=replace(plan_input, realms_in_snapshot=True))
    return prepared


def _new_state(prepared: Prepared, settings: Settings) -> EnvState:
    spec = prepared.spec
    return EnvState(
        name=spec.name, backend=prepared.backend.name, isolation=spec.isolation, spec_hash=prepared.spec_hash,
        fingerprint=prepared.finger, data_dir=str(teardown.env_dir(settings, spec.name)),
        data_marker=generate_secret(16), seeds_dir=str(spec.seeds_dir), realms_dir=str(spec.realms_dir),
        owner_pid=os.getpid(), owner_start=process.start_time_of(os.getpid()),
        tenants={t.slug: TenantRecord(t.slug, t.tenant_id, t.display_name, t.realm) for t in spec.tenants},
        options=recorded(settings, prepared.backend.name), engine=getattr(prepared.backend, "engine", ""),
    )  # fmt: skip


def _start(
    state: EnvState,
    store: StateStore,
    prepared: Prepared,
    settings: Settings,
    progress: Progress,
    owner: int | None,
) -> None:
    """Plan, start, record; however it ends badly, what was started is stopped and removed."""
    try:
        store.save(state)  # first: whatever is created from here on, the state file knows its environment
        tenants = ", ".join(state.tenants)
        progress(
            f"starting environment {state.name!r}: backend {state.backend}, isolation {state.isolation}, "
            f"tenants {tenants}"
        )
        with teardown.signals_held():  # made whole (its marker written) before a Ctrl-C is acted on
            teardown.make_env_dir(settings, state)
        _run_plan(state, store, prepared.plan_input, prepared.backend, settings, progress)
        state.status = "running"
        state.owner_pid = owner
        state.owner_start = process.start_time_of(owner) if owner else None
        store.save(state)
    except BaseException as exc:
        teardown.after_failure(exc, state, prepared.backend, store, settings, progress)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted("start-up was interrupted; nothing was left running") from None
        raise


def _run_plan(
    state: EnvState,
    store: StateStore,
    what: PlanInput,
    backend: Backend,
    settings: Settings,
    progress: Progress,
) -> None:
    launch = Launch(state, store)
    cancel = threading.Event()
    ctx = StartContext(
        env_name=state.name, spec_hash=state.spec_hash, env_dir=teardown.env_dir(settings, state.name),
        settings=settings, cancel=cancel, register=launch.register, ports=PortAllocator(),
    )  # fmt: skip
    steps = StartPlan(what, backend, ctx, launch).steps()

    def report(name: str, elapsed: float, detail: str | None) -> None:
        progress(f"  ok  {name:<28} {elapsed:6.2f}s  {detail or ''}".rstrip())

    interrupted = threading.Event()
    with teardown.signals_cancel(cancel, interrupted):
        try:
            run_steps(steps, cancel=cancel, on_done=report, limits=LIMITS)
        except BaseException as exc:
            if interrupted.is_set():  # whatever a step raised, it was the signal that stopped it
                raise Interrupted("start-up was interrupted; nothing was left running") from None
            if isinstance(exc, DriveopsEnvError) or not isinstance(exc, Exception):
                raise
            raise _said(exc) from exc
    if interrupted.is_set():
        raise Interrupted("start-up was interrupted; nothing was left running")


def _said(exc: Exception) -> StartupError:
    """A server library's error in a step (psycopg, redis, docker...) as one of ours, naming the step."""
    from driveops_env.health import diagnose

    detail, hint = diagnose(exc)
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
        raise SpecMismatchError(
            f"environment {existing.name!r} is running with a different spec:\n    " + "\n    ".join(differences),
            hint=f"add --recreate to replace it, or use another --name, or `driveops-env down --name {existing.name}`",
        )
    dead = [r.key for r in existing.services.values() if not running.is_running(r)]
    if dead:
        progress(f"environment {existing.name!r}: {', '.join(dead)} not running: recreating it")
        return False
    return True


def _moved(existing: EnvState, settings: Settings) -> list[str]:
    """Where an explicit --data-dir or --cache-dir differs from the running environment's."""
    try:
        running_settings(settings, existing)
    except UsageError:
        return [
            f"{key}: {existing.options.get(key)} -> {getattr(settings, key)}"
            for key in ("data_dir", "cache_dir")
            if settings.sources.get(key) in EXPLICIT and existing.options.get(key) != str(getattr(settings, key))
        ]
    return []


def owner_alive(state: EnvState) -> bool:
    if state.owner_pid is None or state.owner_start is None:
        return False
    return process.is_alive(process.ProcessRef(state.owner_pid, state.owner_start))


def release(settings: Settings, name: str, owner_pid: int | None = None) -> None:
    """Hand a running environment to another owner, or to nobody (it then stays until ``down``)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = store.load(name)
        if state is None:
            return
        state.owner_pid = owner_pid
        state.owner_start = process.start_time_of(owner_pid) if owner_pid else None
        store.save(state)


def prepare(settings: Settings, progress: Progress = _quiet) -> dict[str, str]:
    """Fetch and build what the backend needs (once; later calls only check). Starts nothing."""
    backend = create_backend(resolve_backend_name(settings.backend, settings, progress), settings)
    return backend.prepare(progress)


def down(settings: Settings, name: str, *, keep_data: bool = False, progress: Progress = _quiet) -> bool:
    """Stop environment ``name``; False when there was nothing to stop (nothing is deleted then)."""
    store = StateStore(settings.state_dir)
    with teardown.signals_held() as interrupted, store.lock(name, cancelled=interrupted):
        state = store.load(name)
        if state is None:
            return False
        backend = backend_of(state, settings)
        progress(f"stopping environment {name!r} ({len(state.services)} service(s))")
        teardown.teardown(state, backend, store, settings, remove_data=not keep_data)
        return True


def running_settings(settings: Settings, state: EnvState, *, check: bool = True) -> Settings:
    """The settings a running environment works with: its state file's (``check``: an explicit option
    of this command that contradicts them is an error)."""
    options = dict(state.options)
    if "services" not in options and _services_of(state):  # a state file written before options were
        options["services"] = ",".join(_services_of(state))
    given = settings if check else replace(settings, sources={})  # no explicit source: nothing to check
    return for_environment(given, state.name, options)


def backend_of(state: EnvState, settings: Settings, *, check: bool = True) -> Backend:
    """The backend that runs ``state``'s servers, with the environment's own settings and engine."""
    return create_backend(state.backend, running_settings(settings, state, check=check), state.engine)


def load_running(settings: Settings, name: str) -> EnvState:
    state = StateStore(settings.state_dir).load(name)
    if state is None or state.status != "running":
        raise NotRunningError(
            f"environment {name!r} is not running", hint=f"start it with `driveops-env up --name {name}`"
        )
    return state


# --- tenants on a running environment -------------------------------------------------------------------


def add_tenants(
    settings: Settings, name: str, slugs: Sequence[str], *, progress: Progress | None = None
) -> tuple[EnvState, list[str]]:
    """Add tenants (stores, seeds, realm) to a running environment; Keycloak and the other tenants are
    not touched.  A failure removes what was added for them and leaves the rest running.  Returns the
    state and the tenants this call added (not those already there, perhaps added meanwhile)."""
    progress = progress or _quiet
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = load_running(settings, name)
        new = [s for s in parse_tenant_list(list(slugs)) if s not in state.tenants]
        if not new:
            return state, []
        running = running_settings(settings, state)
        spec = _running_spec(state, running)
        catalogue = load_catalogue(spec.seeds_dir / "tenants.json", limit=running.input_limit)
        held = [t.as_tenant() for t in state.tenants.values()]
        tenants = resolve_tenants(new, catalogue, running.realm_pattern, existing=held)
        backend = create_backend(state.backend, running, state.engine)
        what = render(tenants, running, spec)
        backend.prepare(progress)
        before = set(state.services)
        for tenant in tenants:
            state.tenants[tenant.slug] = TenantRecord(tenant.slug, tenant.tenant_id, tenant.display_name, tenant.realm)
        progress(f"adding tenant(s) {', '.join(new)} to environment {name!r}")
        try:
            _run_plan(state, store, what, backend, running, progress)
        except BaseException:
            progress("adding failed; removing what was added")
            teardown.remove_tenants(state, backend, new, keep_servers=before)
            store.save(state)
            raise
        _refingerprint(state)
        store.save(state)
        return state, new


def remove_tenant(settings: Settings, name: str, slug: str, *, progress: Progress | None = None) -> EnvState:
    """Remove one tenant (its servers, or its database, users and keys on shared ones; its realm)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = load_running(settings, name)
        if slug not in state.tenants:
            raise UsageError(
                f"tenant {slug!r} is not part of environment {name!r}",
                hint=f"its tenants: {', '.join(state.tenants)}",
            )
        if len(state.tenants) == 1:
            raise UsageError(
                f"{slug!r} is the last tenant of environment {name!r}",
                hint=f"use `driveops-env down --name {name}`",
            )
        (progress or _quiet)(f"removing tenant {slug} from environment {name!r}")
        teardown.remove_tenants(state, backend_of(state, settings), [slug], keep_servers=set())
        _refingerprint(state)
        store.save(state)
        return state


def _services_of(state: EnvState) -> tuple[str, ...]:
    listed = state.fingerprint.get("services")
    return tuple(listed) if isinstance(listed, list) else ()


def _running_spec(state: EnvState, settings: Settings) -> EnvSpec:
    from pathlib import Path

    return EnvSpec(
        name=state.name, tenants=(), backend=state.backend,  # type: ignore[arg-type]
        isolation=state.isolation,  # type: ignore[arg-type]
        seeds_dir=Path(state.seeds_dir), realms_dir=Path(state.realms_dir),
    )  # fmt: skip


def _refingerprint(state: EnvState) -> None:
    """The fingerprint of the tenant set the environment holds now: ``up`` with it attaches."""
    state.fingerprint["tenants"] = [f"{t.slug}={t.tenant_id}/{t.realm}" for t in state.tenants.values()]
    state.spec_hash = hash_of(state.fingerprint)
