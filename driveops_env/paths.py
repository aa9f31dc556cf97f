"""Default locations. Functions, not constants: the environment is read when they are called."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def default_state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "driveops-env"


def default_cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "driveops-env"


def default_data_dir() -> Path:
    """RAM-backed when /dev/shm is there: development data is throwaway, and creating files is what a
    server's start costs (copying a PostgreSQL cluster: ~0.85 s on this kind's disk, ~0.05 s in RAM).
    Otherwise a directory the PostgreSQL user can enter when we are root (/root is 0700)."""
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
