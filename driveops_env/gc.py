"""``driveops-env gc``: remove every environment whose owner is gone, and whatever no state file knows.

An environment started by ``up`` (the CLI) has no owner and stays until ``down``; one started by a
Python process or a pytest session is owned by that process, and is garbage once it is gone.  Docker
resources carry the path of their state file in a label: this state directory's resources whose state
file is gone are orphans; another state directory's are swept only when their file says the owner died.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from driveops_env import builders, files, orchestrator, process
from driveops_env.backends import create_backend
from driveops_env.errors import DriveopsEnvError, StateError
from driveops_env.options import Settings
from driveops_env.state import STATE_LIMIT, EnvState, StateStore


def _owner_gone(state: EnvState) -> bool:
    """Garbage: an owner that died (while starting or after).  Not garbage: an environment being
    started by a live process, one without owner (started by the CLI), one stopped with --keep-data."""
    if state.owner_pid is None:
        return state.status == "starting"  # a start-up whose process never recorded itself
    if state.owner_start is None:
        return True
    return not process.is_alive(process.ProcessRef(state.owner_pid, state.owner_start))


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
        if state is None or not _owner_gone(state):
            continue
        removed.append(f"environment {name!r} ({state.backend}): owner gone")
        if not dry_run:
            orchestrator.down(settings, name)
    removed += _docker_orphans(settings, dry_run=dry_run)
    if not dry_run:
        removed += _builders(settings)
    for line in removed:
        progress(("would remove " if dry_run else "removed ") + line)
    return removed


def _remove_unknown(settings: Settings, name: str) -> None:
    """An environment known by name only (its state file is unreadable): its local servers (by working
    directory under the data root), its labelled containers, and its data directory if it carries
    driveops-env's marker for that name."""
    from driveops_env import teardown

    for backend in ("local", "docker"):
        try:
            create_backend(backend, settings).cleanup(name)
        except DriveopsEnvError:
            continue  # no Docker engine: nothing of ours runs there
    teardown.remove_marked(settings, name)


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
        if state is not None and state.owner_pid is not None and _owner_gone(state):
            progress(f"removing environment {name!r}: the session that owned it is gone")
            orchestrator.down(settings, name)
            removed.append(name)
    return removed


def _docker_orphans(settings: Settings, *, dry_run: bool) -> list[str]:
    from driveops_env import teardown
    from driveops_env.backends import docker_engine
    from driveops_env.backends.docker import home_label
    from driveops_env.backends.docker_engine import LABEL

    if not docker_engine.engine_answers():
        return []
    client = docker_engine.connect()
    found: dict[tuple[str, str], str] = {}
    everything = docker_engine.labelled(client, [f"{LABEL}.env"])
    for resource in [*everything["containers"], *everything["networks"]]:
        labels = resource.get("Labels") or {}
        key = (labels.get(f"{LABEL}.home", ""), labels.get(f"{LABEL}.env", ""))
        found[key] = labels.get(f"{LABEL}.state-file", "")
    removed = []
    mine = home_label(settings)
    for (home, env), state_file in sorted(found.items()):
        if not _orphan(Path(state_file), ours=home == mine):
            continue
        labels = {f"{LABEL}.env": env, f"{LABEL}.home": home}
        for line in docker_engine.sweep(client, labels, dry_run=dry_run):
            removed.append(f"{line} of environment {env!r} (no live owner; state file {state_file})")
        if home == mine and not dry_run and not Path(state_file).exists():
            teardown.remove_marked(settings, env)  # its data directory, if driveops-env made it
    return removed


def _builders(settings: Settings) -> list[str]:
    """Builders (Keycloak initialisation, realm snapshots) an interrupted run left, and realm snapshots
    and optimized Keycloak images beyond the most recently used (builders.KEEP), of this cache."""
    from driveops_env.backends import docker_engine

    removed = builders.sweep_folders(settings.cache_dir) + builders.prune_folders(settings.cache_dir)
    if docker_engine.engine_answers():
        client = docker_engine.connect()
        removed += builders.sweep_containers(client, settings.cache_dir)
        removed += builders.prune_images(client, settings.cache_dir)
    return removed


def _orphan(state_file: Path, *, ours: bool) -> bool:
    """True when the state file says its owner is dead, or (for this state directory's own resources
    only) when it is gone or unreadable.  Another state directory's file may be missing here because it
    lives on another machine (a shared engine) or is another user's: its resources are left alone."""
    try:
        raw = files.load_json(state_file, "state file", limit=STATE_LIMIT)
        state = EnvState.from_dict(raw)
    except (DriveopsEnvError, ValueError, TypeError, KeyError):
        return ours
    return _owner_gone(state)
