"""A running environment as its state file describes it: found by its name and state directory alone,
with the settings, the backend and the services it was started with."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from driveops_env import process
from driveops_env.backends import Backend, create_backend
from driveops_env.errors import NotRunningError
from driveops_env.recorded import for_environment
from driveops_env.services import registry
from driveops_env.services.base import Service, Sources, Work
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore, TenantRecord


def load_running(settings: Settings, name: str) -> EnvState:
    state = StateStore(settings.state_dir).load(name)
    if state is None or state.status != "running":
        raise NotRunningError(
            f"environment {name!r} is not running", hint=f"start it with `driveops-env up --name {name}`"
        )
    return state


def running_settings(settings: Settings, state: EnvState, *, check: bool = True) -> Settings:
    """The settings a running environment works with: its state file's (``check``: an explicit option
    of this command that contradicts them is an error)."""
    given = settings if check else replace(settings, sources={})  # no explicit source: nothing to check
    return for_environment(given, state.name, state.options)


def backend_of(state: EnvState, settings: Settings, *, check: bool = True) -> Backend:
    """The backend that runs ``state``'s servers, with the environment's own settings and engine."""
    return create_backend(state.backend, running_settings(settings, state, check=check), state.engine)


def services_of(state: EnvState, settings: Settings) -> dict[str, Service[Any, Any]]:
    """Every registered service, by name: what the environment's records name."""
    return registry.every(settings)


def sources_of(state: EnvState, settings: Settings) -> Sources:
    return Sources(Path(state.seeds_dir), Path(state.realms_dir), settings.input_limit)


def work_of(state: EnvState, record: TenantRecord, seed: Any, sources: Sources, token: str | None = None) -> Work:
    """A tenant's store as its service works on it (reset, restore, copy, drop)."""
    return Work(record.as_tenant(), state.isolation, seed, dict(state.services), token=token, sources=sources)


def owner_alive(state: EnvState) -> bool:
    if state.owner_pid is None or state.owner_start is None:
        return False
    return process.is_alive(process.ProcessRef(state.owner_pid, state.owner_start))


def owner_gone(state: EnvState) -> bool:
    """Garbage: an owner that died (while starting or after).  Not garbage: an environment being
    started by a live process, one without owner (started by the CLI), one stopped with --keep-data."""
    if state.owner_pid is None:
        return state.status == "starting"  # a start-up whose process never recorded itself
    return not owner_alive(state)


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
