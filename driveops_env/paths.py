"""Default locations. Functions, not constants: the environment is read when they are called."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from driveops_env.errors import UnsafePathError, UsageError

_PACKAGE_DIR = Path(__file__).resolve().parent


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def project_dir() -> Path:
    """The folder of the nearest pyproject.toml at or above the current directory, else the current one."""
    here = Path.cwd()
    return next((folder for folder in (here, *here.parents) if (folder / "pyproject.toml").is_file()), here)


def default_state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "driveops-env"


def default_cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "driveops-env"


def default_data_dir() -> Path:
    """RAM-backed when /dev/shm is there: development data is throwaway, and creating files is what a
    server's start costs (copying a database cluster: ~0.85 s on this kind's disk, ~0.05 s in RAM).
    Otherwise a directory the servers' user can enter when we are root (/root is 0700)."""
    shm = Path("/dev/shm")  # noqa: S108 - the local backend refuses a root it does not own
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"driveops-env-{os.geteuid()}"
    if os.geteuid() == 0:
        return Path("/var/lib/driveops-env")
    return default_state_dir() / "data"


def _shipped(name: str) -> Path:
    """``seeds``/``realms``: inside the wheel (``_data``) or at the top of a source checkout."""
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / name


def default_seeds_dir() -> Path:
    return _shipped("seeds")


def default_realms_dir() -> Path:
    return _shipped("realms")


def private_dir(path: Path, what: str, *, mode: int = 0o700, hint: str) -> Path:
    """``path`` as a directory only this user can change: created with ``mode`` if missing, else
    refused (exit 2) when it is a symbolic link, not a directory, owned by someone else, or writable by
    other users.  The mode of a directory this call did not create is never changed."""
    created = False
    try:
        path.mkdir(mode=mode, parents=True)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"cannot create {what} {path}: {exc.strerror}", hint=hint) from exc
    if created:
        os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    return check_private(path, what, hint=hint)


def check_private(path: Path, what: str, *, hint: str) -> Path:
    """Refuse (exit 2) a path that is a link, someone else's, or writable by other users."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise UsageError(f"cannot use {what} {path}: {exc.strerror}", hint=hint) from exc
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"{what} {path} is a symbolic link; it is not used", hint=hint)
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {path} is not a directory", hint=hint)
    if info.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{what} {path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}); it is not used",
            hint=hint,
        )
    if info.st_mode & 0o022:
        raise UnsafePathError(
            f"{what} {path} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}); it is not used",
            hint=hint,
        )
    return path


def usable_dir(path: Path, what: str, *, hint: str) -> Path:
    """``path`` as a directory this user can write (created if missing), else a usage error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use {what} {path}: {exc.strerror}", hint=hint) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot use {what} {path}: not writable by this user", hint=hint)
    return path


def is_within(path: Path | str, root: Path) -> bool:
    """Whether ``path`` (links resolved) lies inside ``root`` (links resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


def blocking_dir(path: Path, user: str) -> Path | None:
    """The first folder on the way to ``path`` (``path`` included) that ``user`` may not enter, or None:
    servers run as that user (as root: ``--local-user``) must reach their data directory."""
    import grp
    import pwd

    account = pwd.getpwnam(user)
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        info = os.stat(current)
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return current
    return None


def own_dir(path: Path, mode: int, user: str | None) -> Path:
    """``path`` made (or kept) a directory of mode ``mode``, owned by ``user`` (when given: we are root
    and a server runs as that user)."""
    import pwd

    path.mkdir(mode=mode, exist_ok=True)
    os.chmod(path, mode)
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)
    return path
