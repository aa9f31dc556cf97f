"""What ``gc`` removes from a Docker engine: environments whose owner is gone (found by label, whether
or not a state file knows them), and builders an interrupted run left; the cache's old derived images
are pruned apart (:func:`prune`).  Resources of another state directory (another user's, another
machine's on a shared engine) are removed only when their state file is readable here and names a dead
owner."""

from __future__ import annotations

from pathlib import Path

from driveops_env import builders, envdirs, files
from driveops_env.backends import docker_engine
from driveops_env.backends.docker_engine import LABEL
from driveops_env.errors import DriveopsEnvError
from driveops_env.running import owner_gone
from driveops_env.services import registry
from driveops_env.services.capabilities import Prunes
from driveops_env.settings import Settings
from driveops_env.state import STATE_LIMIT, parse


def collect(settings: Settings, home: str, *, dry_run: bool) -> list[str]:
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
    for (owner, env), state_file in sorted(found.items()):
        if not _orphan(Path(state_file), ours=owner == home):
            continue
        labels = {f"{LABEL}.env": env, f"{LABEL}.home": owner}
        for line in docker_engine.sweep(client, labels, dry_run=dry_run):
            removed.append(f"{line} of environment {env!r} (no live owner; state file {state_file})")
        if owner == home and not dry_run and not Path(state_file).exists():
            envdirs.remove_marked(settings, env)  # its data directory, if driveops-env made it
    if not dry_run:
        removed += builders.sweep_containers(client, settings.cache_dir)
    return removed


def prune(settings: Settings) -> list[str]:
    """The cache's images on the engine beyond the most recently used of each kind."""
    if not docker_engine.engine_answers():
        return []
    client = docker_engine.connect()
    services = registry.every(settings).values()
    return [line for s in services if isinstance(s, Prunes) for line in s.collect(settings.cache_dir, client)]


def _orphan(state_file: Path, *, ours: bool) -> bool:
    """True when the state file says its owner is dead, or (for this state directory's own resources
    only) when it is gone or unreadable.  Another state directory's file may be missing here because it
    lives on another machine (a shared engine) or is another user's: its resources are left alone."""
    try:
        raw = files.load_json(state_file, "state file", limit=STATE_LIMIT)
        state = parse(raw)  # a previous version's file too
    except (DriveopsEnvError, ValueError, TypeError, KeyError):
        return ours
    return owner_gone(state)
