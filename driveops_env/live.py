"""Tenants added to and removed from a running environment, without restarting its shared servers or
touching the other tenants.  A failed addition removes what was added for the new tenants."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from driveops_env import builders, orchestrator, teardown
from driveops_env.errors import UsageError
from driveops_env.plan import PlanInput
from driveops_env.running import backend_of, load_running, running_settings, services_of, sources_of
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore, TenantRecord
from driveops_env.tenants import load_catalogue, parse_tenant_list, resolve_tenants

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def add_tenants(
    settings: Settings, name: str, slugs: Sequence[str], *, progress: Progress = _quiet
) -> tuple[EnvState, list[str]]:
    """Add tenants (their servers or stores, seeds, realm) to a running environment.  Returns the state
    and the tenants this call added (not those already there, perhaps added meanwhile)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = load_running(settings, name)
        new = [s for s in parse_tenant_list(list(slugs)) if s not in state.tenants]
        if not new:
            return state, []
        running = running_settings(settings, state)
        catalogue = load_catalogue(running.seeds_dir / "tenants.json", limit=running.input_limit)
        held = [t.as_tenant() for t in state.tenants.values()]
        tenants = resolve_tenants(new, catalogue, running.realm_pattern, existing=held)
        backend = backend_of(state, settings)
        with builders.using(running.cache_dir):  # no cached image pruned under the addition
            what = orchestrator.plan_input(running, tenants, backend.family)
            what = orchestrator.prepare_services(what, backend, running, progress)
            _same_spec(state, what)
            before = set(state.services)
            for tenant in tenants:
                state.tenants[tenant.slug] = TenantRecord(
                    tenant.slug, tenant.tenant_id, tenant.display_name, tenant.realm
                )
            progress(f"adding tenant(s) {', '.join(new)} to environment {name!r}")
            try:
                orchestrator.run_plan(state, store, what, backend, running, progress)
            except BaseException:
                progress("adding failed; removing what was added")
                services = services_of(state, running)
                teardown.remove_tenants(state, backend, services, sources_of(state, running), new, keep_servers=before)
                store.save(state)
                raise
        _refingerprint(state)
        store.save(state)
        return state, new


def remove_tenant(settings: Settings, name: str, slug: str, *, progress: Progress = _quiet) -> EnvState:
    """Remove one tenant (its servers, or its stores on shared ones; its realm)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = load_running(settings, name)
        if slug not in state.tenants:
            raise UsageError(
                f"tenant {slug!r} is not part of environment {name!r}", hint=f"its tenants: {', '.join(state.tenants)}"
            )
        if len(state.tenants) == 1:
            raise UsageError(
                f"{slug!r} is the last tenant of environment {name!r}", hint=f"use `driveops-env down --name {name}`"
            )
        progress(f"removing tenant {slug} from environment {name!r}")
        running = running_settings(settings, state)
        services = services_of(state, running)
        teardown.remove_tenants(
            state, backend_of(state, settings), services, sources_of(state, running), [slug], keep_servers=set()
        )
        _refingerprint(state)
        store.save(state)
        return state


def _same_spec(state: EnvState, what: PlanInput) -> None:
    """A tenant added with what a service's preparation decides now (its migrations' key, say) where
    the running tenants have another is refused: the new tenant would differ from the others."""
    now = {k: v for found in what.prepared.values() for k, v in found.fingerprint.items()}
    changed = sorted(k for k, v in now.items() if state.fingerprint.get(k) != v)
    if changed:
        raise UsageError(
            f"{', '.join(changed)} changed since environment {state.name!r} started: a tenant added now "
            "would not be like the others",
            hint="`driveops-env migrate` brings the running tenants to it first (or `up --recreate` starts them again)",
        )


def _refingerprint(state: EnvState) -> None:
    """The fingerprint of the tenant set the environment holds now: ``up`` with it attaches."""
    state.fingerprint["tenants"] = [f"{t.slug}={t.tenant_id}/{t.realm}" for t in state.tenants.values()]
    state.spec_hash = orchestrator.hash_of(state.fingerprint)
