"""``driveops-env migrate``: the pending migrations of a team's history applied to a running
environment, without recreating it: every tenant's store (its data kept) and the seed it is restored
to, in parallel; then the environment's fingerprint says the new history, so the next ``up`` (or the
plugin's ``--driveops-reuse``) attaches instead of asking for ``--recreate``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driveops_env import orchestrator, timing
from driveops_env.diagnosis import diagnose
from driveops_env.errors import DriveopsEnvError, ServiceError, UsageError
from driveops_env.running import load_running, running_settings, services_of, sources_of, work_of
from driveops_env.services.base import Work
from driveops_env.services.capabilities import Migrates, seed_of
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore


@dataclass(frozen=True)
class Applied:
    """What ``migrate`` did for one tenant's store."""

    tenant: str
    store: str
    seconds: float


def pending(state: EnvState, settings: Settings) -> dict[str, str]:
    """The migrations' fingerprint entries that differ from what the running environment was migrated to."""
    services = services_of(state, running_settings(settings, state, check=False))
    now = {k: v for s in services.values() if isinstance(s, Migrates) for k, v in s.migration_key().items()}
    return {k: v for k, v in now.items() if state.fingerprint.get(k) != v}


def migrate(
    settings: Settings, name: str, *, progress: Callable[[str], None] = print
) -> tuple[EnvState, list[Applied]]:
    """Every tenant's stores that have migrations brought to the history as it is now; the state and
    what was applied ([] when nothing changed since the environment was started or last migrated)."""
    store = StateStore(settings.state_dir)
    with store.lock(name):
        state = load_running(settings, name)
        running = running_settings(settings, state)
        services = services_of(state, running)
        stores = {n: s for n, s in services.items() if isinstance(s, Migrates) and s.migration_key()}
        if not stores:
            raise UsageError(
                f"no store of environment {name!r} has a migration command",
                hint="set migrate_<service> (see `driveops-env options`), then `up --recreate`",
            )
        changed = pending(state, settings)
        if not changed:
            progress(f"environment {name!r}: the migrations did not change since it started; nothing to apply")
            return state, []
        edited = [n for n, s in stores.items() if not s.migration_grew(state.fingerprint)]
        if edited:
            raise UsageError(
                f"the migrations of {', '.join(edited)} changed since environment {name!r} started, not only "
                "grew: a tool applies no edited or removed revision to a running store",
                hint=f"`driveops-env up --name {name} --recreate` starts the tenants again on the new history",
            )
        progress(f"applying the pending migrations ({', '.join(sorted(changed))}) to environment {name!r}")
        sources = sources_of(state, running)
        jobs = {}
        for slug, record in state.tenants.items():
            for n, s in ((n, s) for n, s in stores.items() if n in record.stores):
                access = s.load(record.stores[n])
                seed = seed_of(s, record.as_tenant(), sources, access)  # what its template is made of again
                jobs[f"{slug}/{n}"] = _job(n, s, access, work_of(state, record, seed, sources))
        applied = []
        for key, took in timing.run_timed(jobs).items():
            tenant, service = key.split("/", 1)
            applied.append(Applied(tenant, service, took))
        state.fingerprint.update(changed)
        state.spec_hash = orchestrator.hash_of(state.fingerprint)
        store.save(state)
        return state, applied


def _job(store: str, service: Migrates, access: Any, work: Work) -> Callable[[], object]:
    """The store's migration; a server's error said as one naming the store and the tenant (the
    command's own failures already are)."""

    def run() -> float:
        try:
            return service.migrate(access, work)
        except DriveopsEnvError:
            raise
        except Exception as exc:  # a server's error, whatever its library
            detail, hint = diagnose(exc, [])
            raise ServiceError(
                f"migrating failed: {detail}",
                service=store,
                tenant=work.tenant.slug,
                hint=hint or "fix it and run `driveops-env migrate` again (tenants already migrated stay so)",
            ) from None

    return run
