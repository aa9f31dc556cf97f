"""An environment's data directory: ``<data root>/<name>``, made fresh at ``up`` and marked with a
secret that only its state file knows, so that nothing is ever removed that driveops-env did not make
for that environment.  The data root must be this user's and not writable by others."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from driveops_env import paths
from driveops_env.errors import UsageError
from driveops_env.settings import Settings
from driveops_env.state import EnvState

MARKER = ".driveops-env"
DATA_HINT = "use a data directory of your own (--data-dir / DRIVEOPS_ENV_DATA_DIR)"


def env_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / name


def data_root(settings: Settings) -> Path:
    """The data root, checked: this user's, not a link, not writable by others (0711 as root, so the
    unprivileged server user may enter; 0700 otherwise)."""
    mode = 0o711 if os.geteuid() == 0 else 0o700
    return paths.private_dir(settings.data_dir, "the data directory", mode=mode, hint=DATA_HINT)


def make_env_dir(settings: Settings, state: EnvState) -> Path:
    """The environment's data directory, made fresh (a name already taken by anything is refused) and
    marked with the state file's secret."""
    root = data_root(settings)
    target = root / state.name
    if os.path.lexists(target):
        if not _ours(target, None):
            raise UsageError(
                f"{target} exists and was not made by driveops-env for environment {state.name!r}",
                hint=f"remove it yourself, or {DATA_HINT}",
            )
        shutil.rmtree(target)  # a leftover of a run of this name that died
    os.mkdir(target, 0o711 if os.geteuid() == 0 else 0o700)
    os.chmod(target, 0o711 if os.geteuid() == 0 else 0o700)
    fd = os.open(target / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{state.name} {state.data_marker}\n")
    return target


def _ours(target: Path, secret: str | None) -> bool:
    """A real directory of this user's with our marker (and, if given, the state file's secret)."""
    try:
        info = os.lstat(target)
        fd = os.open(target / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd) as handle:
        marker = handle.read().split()
    if not os.path.isdir(target) or os.path.islink(target) or info.st_uid != os.geteuid():
        return False
    return len(marker) == 2 and (secret is None or marker[1] == secret)


def remove_env_dir(state: EnvState) -> None:
    """Delete the data directory the state file says the environment made, if it really did."""
    target = Path(state.data_dir)
    if state.data_marker and _ours(target, state.data_marker) and target.name == state.name:
        shutil.rmtree(target, ignore_errors=True)


def remove_marked(settings: Settings, name: str) -> None:
    """Delete ``<data root>/<name>`` if driveops-env made it for an environment of that name (its
    marker says so): what a lost or corrupted state file left."""
    target = env_dir(settings, name)
    if _ours(target, None) and _marker_name(target) == name:
        shutil.rmtree(target, ignore_errors=True)


def _marker_name(target: Path) -> str:
    try:
        return (target / MARKER).read_text().split()[0]
    except (OSError, IndexError):
        return ""


def log_path(env_dir: Path, key: str) -> Path:
    """Where a local server of the environment logs: ``<env dir>/logs/<key>.log`` (0700 folder)."""
    logs = env_dir / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    return logs / f"{key}.log"
