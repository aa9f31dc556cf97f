"""``driveops-env gc``: remove every environment whose owner is gone, and whatever no state file knows.

An environment started by ``up`` (the CLI) has no owner and stays until ``down``; one started by a
Python process or a pytest session is owned by that process, and is garbage once it is gone.  Each
backend of the table then collects what only it can find (a container engine's labelled resources,
the builders an interrupted run left, old snapshots): see its ``collect``.
"""

from __future__ import annotations

from collections.abc import Callable

from driveops_env import builders, envdirs, kept, orchestrator
from driveops_env.backends import CHOOSABLE, backend_class
from driveops_env.errors import DriveopsEnvError, StateError
from driveops_env.running import owner_gone, running_settings
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore


def collect(settings: Settings, *, dry_run: bool = False, progress: Callable[[str], None] = print) -> list[str]:
    removed: list[str] = []
    store = StateStore(settings.state_dir)
    for name in store.names():
        try:
            state = store.load(name)
        except StateError:
            removed.append(f"environment {name!r}: corrupted state file")
            if not dry_run:
                _remove_unknown(settings, name)
                store.delete(name)
            continue
        if state is None:
            continue
        if not owner_gone(state):
            removed += _expired_copies(settings, state, dry_run=dry_run, progress=progress)
            continue
        removed.append(f"environment {name!r} ({state.backend}): owner gone")
        if not dry_run:
            orchestrator.down(settings, name)
    for backend in CHOOSABLE:
        try:
            removed += backend_class(backend).collect(settings, dry_run=dry_run)
        except DriveopsEnvError as exc:  # one backend's failure does not keep the others' garbage
            progress(f"could not collect what the {backend} backend left: {exc.message}")
    if not dry_run:
        removed += _prune(settings, progress)
    for line in removed:
        progress(("would remove " if dry_run else "removed ") + line)
    return removed


def _prune(settings: Settings, progress: Callable[[str], None]) -> list[str]:
    """The cache's images and snapshots beyond the most recently used, once no ``up`` uses the cache."""

    def every_backend() -> list[str]:
        found: list[str] = []
        for backend in CHOOSABLE:
            try:
                found += backend_class(backend).prune(settings)
            except DriveopsEnvError as exc:
                progress(f"could not prune what the {backend} backend keeps: {exc.message}")
        return found

    pruned = builders.unless_used(settings.cache_dir, every_backend)
    if pruned is None:
        progress(f"kept the cache's images and snapshots: an `up` used the cache for over {builders.PRUNE_WAIT:.0f} s")
    return pruned or []


def _expired_copies(
    settings: Settings, state: EnvState, *, dry_run: bool, progress: Callable[[str], None]
) -> list[str]:
    """A running environment's kept copies (``--driveops-keep-failed``) past their time, dropped; the
    environment itself when a session kept it only for them and none is left."""
    folder = kept.folder_of(state)
    removed = [f"kept copy {c.id} of environment {state.name!r} (expired)" for c in kept.expired(folder)]
    if dry_run or not removed:
        return removed
    running = running_settings(settings, state, check=False)
    for copy in kept.expired(folder):
        try:
            kept.drop(state, running, folder, copy)
        except Exception as exc:  # a server that is down: said, and the rest of gc goes on
            removed.remove(f"kept copy {copy.id} of environment {state.name!r} (expired)")
            progress(f"could not drop kept copy {copy.id} of environment {state.name!r}: {exc}")
    if kept.only_for_copies(folder) and not kept.records(folder):
        removed.append(f"environment {state.name!r} ({state.backend}): kept for copies that expired")
        orchestrator.down(settings, state.name)
    return removed


def _remove_unknown(settings: Settings, name: str) -> None:
    """An environment known by name only (its state file is unreadable): its servers, wherever a backend
    finds them (local processes by working directory, labelled containers), and its data directory if
    it carries driveops-env's marker for that name."""
    for backend in CHOOSABLE:
        try:
            backend_class(backend)(settings).cleanup(name)
        except DriveopsEnvError:
            continue  # nothing of ours runs there (no Docker engine, say)
    envdirs.remove_marked(settings, name)


def sweep_dead(settings: Settings, *, prefix: str, progress: Callable[[str], None]) -> list[str]:
    """Down every environment of this state directory whose name starts with ``prefix`` and whose
    owner is gone (what killed pytest sessions of one checkout left), and nothing else."""
    store = StateStore(settings.state_dir)
    removed = []
    for name in store.names():
        if not name.startswith(prefix):
            continue
        try:
            state = store.load(name)
        except StateError:
            continue
        if state is not None and state.owner_pid is not None and owner_gone(state):
            progress(f"removing environment {name!r}: the session that owned it is gone")
            orchestrator.down(settings, name)
            removed.append(name)
    return removed
