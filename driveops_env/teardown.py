"""Stopping what an environment started: its servers, its data directory, its state file; what a failed
or interrupted start left; and the servers and stores of tenants removed from a running environment.
Nothing is removed that the environment did not create (see :mod:`.envdirs`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from driveops_env import envdirs, tasks
from driveops_env.backends import Backend
from driveops_env.errors import DriveopsEnvError, Interrupted
from driveops_env.services.base import Service, Sources
from driveops_env.state import EnvState, ServiceRecord, StateStore


def teardown(state: EnvState, backend: Backend, store: StateStore, *, remove_data: bool = True) -> None:
    records = list(state.services.values())
    errors: list[str] = []

    def stop(record: ServiceRecord) -> None:
        try:
            backend.stop(record, fast=remove_data)
        except (OSError, DriveopsEnvError) as exc:
            errors.append(f"{record.key}: {exc}")

    if records:
        with ThreadPoolExecutor(max_workers=min(8, len(records))) as pool:
            list(pool.map(stop, records))
    try:  # whatever carries the environment's labels but never reached the state file
        backend.cleanup(state.name)
    except (OSError, DriveopsEnvError) as exc:
        errors.append(f"cleanup: {exc}")
    if remove_data:
        envdirs.remove_env_dir(state)
        store.delete(state.name)
    else:
        state.status = "stopped"
        state.services = {}
        store.save(state)
    if errors:
        raise DriveopsEnvError("some services could not be stopped:\n  " + "\n  ".join(errors))


def after_failure(
    exc: BaseException, state: EnvState, backend: Backend, store: StateStore, progress: Callable[[str], None]
) -> None:
    """A start failed or was interrupted: stop and remove everything it made, then say so."""
    interrupted = isinstance(exc, KeyboardInterrupt | Interrupted)
    progress("interrupted; stopping what was started" if interrupted else "start-up failed; stopping what was started")
    tasks.with_sigint_ignored(lambda: teardown(state, backend, store))


def remove_tenants(
    state: EnvState,
    backend: Backend,
    services: Mapping[str, Service[Any, Any]],
    sources: Sources,
    slugs: list[str],
    *,
    keep_servers: set[str],
) -> None:
    """Remove tenants from a running environment: each store goes from the servers that stay (their
    service's ``drop_tenant``: a database and role, a user and its keys, a realm), then the servers of
    their own are stopped and their files removed.  Best effort: a server may be gone already."""
    from driveops_env.running import work_of

    for slug in slugs:
        record = state.tenants.pop(slug, None)
        if record is not None:
            for name, raw in record.stores.items():
                service = services[name]
                with contextlib.suppress(Exception):
                    service.drop_tenant(service.load(raw), work_of(state, record, None, sources))
        own = [r for r in state.services.values() if r.tenant == slug and r.key not in keep_servers]
        for server in own:
            with contextlib.suppress(OSError, DriveopsEnvError):
                backend.remove(server)
            del state.services[server.key]
