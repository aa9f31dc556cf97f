"""The state file of an environment: endpoints, secrets, process ids, spec hash.

One JSON file per environment, ``<state_dir>/<name>.json``, mode 0600 in a 0700 directory, written
atomically.  A lock file beside it serialises ``up``/``down`` of the same name across processes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from driveops_env import files, paths, typed_json
from driveops_env.errors import Interrupted, StateError, UnsafePathError
from driveops_env.tenants import Tenant

STATE_VERSION = 4  # 4: a backend's own fields in a part of their own (3 is read and upgraded)
STATE_LIMIT = 16 * 1024 * 1024  # bytes: a state file of a hundred tenants is well under 1 MB


class UnreadableStateError(StateError):
    """A state file too large or too deep to be read: input from someone else, refused (exit 2)."""

    exit_code = 2


@dataclass
class ProcessPart:
    """The local backend's: the server's process (its pid and start time tell it from a reused pid), the
    program it started (checked before a stop), its directory and log, how to stop it."""

    pid: int
    pid_start: int
    argv0: str
    data_dir: str
    log_path: str
    stop_signals: list[int] = field(default_factory=lambda: [15, 9])  # graceful, fast


@dataclass
class ContainerPart:
    """The docker backend's: the container, its name, its image, the environment's network."""

    id: str
    name: str
    image: str
    network: str


@dataclass
class PodPart:
    """The kubernetes backend's: the Pod, its namespace, its image."""

    name: str
    namespace: str
    image: str


@dataclass
class ServiceRecord:
    """One running server: what every backend's server has, and the part of its own backend."""

    key: str  # "<service>.<tenant>", "<service>.shared", "<service>"
    kind: str  # the service that describes it
    tenant: str | None
    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)  # never in a repr: pytest prints reprs into CI logs
    aliases: list[str] = field(default_factory=list)  # names on the environment's network (containers)
    container_port: int | None = None  # its main port there
    ports: dict[str, int] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)  # servers it keeps its data in
    extra: dict[str, str] = field(default_factory=dict)  # what its service records about it
    process: ProcessPart | None = None
    container: ContainerPart | None = None
    pod: PodPart | None = None


@dataclass
class TenantRecord:
    """A tenant of a running environment and, by service, its access to its store (the service's own
    record, as JSON: see the service's ``access`` class)."""

    slug: str
    tenant_id: str
    display_name: str
    realm: str
    stores: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def as_tenant(self) -> Tenant:
        return Tenant(self.slug, self.tenant_id, self.display_name, self.realm)


@dataclass
class EnvState:
    name: str
    backend: str
    isolation: str
    spec_hash: str
    fingerprint: dict[str, Any]
    data_dir: str
    data_marker: str = field(
        default="", repr=False
    )  # the secret in <data_dir>/.driveops-env: proof that the directory is ours
    seeds_dir: str = ""
    realms_dir: str = ""
    status: str = "starting"  # starting | running
    owner_pid: int | None = None
    owner_start: int | None = None
    created_at: float = field(default_factory=time.time)
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    tenants: dict[str, TenantRecord] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # what it was started with (options.recorded)
    engine: str = ""  # the Docker engine's address, for the docker backend
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)  # insertion order: the first tenant stays first

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EnvState:
        """Built from parsed JSON with every field's type checked (raises ``ShapeError``)."""
        return typed_json.build(cls, raw)


def parse(raw: Any) -> EnvState:
    """A state file's content (upgraded from the previous version); ``ValueError`` (a ``ShapeError``)
    names what is wrong with it."""
    if isinstance(raw, dict) and raw.get("version") == STATE_VERSION - 1:
        raw = upgraded(raw)
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        version = raw.get("version") if isinstance(raw, dict) else None
        raise ValueError(f"unknown state version {version!r} (this driveops-env writes {STATE_VERSION})")
    return EnvState.from_dict(raw)


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A version 3 state (every backend's fields side by side) as version 4 (each backend's in its part):
    an environment started before the upgrade is still found, attached to and stopped."""
    services = {}
    found = raw.get("services") or {}
    for key, old in found.items() if isinstance(found, dict) else ():
        if not isinstance(old, dict):
            return raw  # not a state this can upgrade: refused as it is
        record = {k: v for k, v in old.items() if k in _COMMON}
        if old.get("pid") is not None:
            names = ("pid", "pid_start", "argv0", "data_dir", "log_path", "stop_signals")
            record["process"] = {name: old.get(name) for name in names if old.get(name) is not None}
        elif old.get("container_id") and raw.get("backend") == "kubernetes":
            record["pod"] = {
                "name": old["container_id"],
                "namespace": old.get("network") or "",
                "image": old.get("image") or "",
            }
        elif old.get("container_id"):
            fields = ("container_id", "container_name", "image", "network")
            values = (str(old.get(f) or "") for f in fields)
            record["container"] = dict(zip(("id", "name", "image", "network"), values, strict=True))
        services[key] = record
    return raw | {"services": services, "version": STATE_VERSION}


_COMMON = (
    "key",
    "kind",
    "tenant",
    "host",
    "port",
    "admin_user",
    "admin_password",
    "aliases",
    "container_port",
    "ports",
    "depends_on",
    "extra",
)


class StateStore:
    """Reads and writes the state files of one state directory.  The directory and every file in it
    must be this user's, not links, and not writable by others: otherwise nothing is read from it."""

    HINT = "use a state directory of your own (--state-dir / DRIVEOPS_ENV_STATE_DIR), mode 0700"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _ensure_dir(self) -> None:
        paths.private_dir(self.state_dir, "the state directory", hint=self.HINT)

    def _read(self, path: Path) -> str | None:
        """The file's text, if it exists and is this user's own, unlinked, unshared file of bounded size."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(
                    f"the state file {path} is a symbolic link; it is not used", hint=self.HINT
                ) from None
            raise StateError(f"cannot read the state file {path}: {exc.strerror}") from exc
        with os.fdopen(fd, encoding="utf-8") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o022 or not stat.S_ISREG(info.st_mode):
                raise UnsafePathError(
                    f"the state file {path} is not a private file of this user (owner uid {info.st_uid}, "
                    f"mode {stat.S_IMODE(info.st_mode):04o}); it is not used",
                    hint=self.HINT,
                )
            if info.st_size > STATE_LIMIT:
                raise UnreadableStateError(
                    f"the state file {path} is {info.st_size} bytes; a state file is never over {STATE_LIMIT}",
                    hint=f"the file was changed by someone else: run `driveops-env gc`, or delete {path}",
                )
            return handle.read(STATE_LIMIT + 1)

    def load(self, name: str) -> EnvState | None:
        path = self.path(name)
        if not self.state_dir.exists():
            return None
        paths.check_private(self.state_dir, "the state directory", hint=self.HINT)
        text = self._read(path)
        if text is None:
            return None
        try:
            raw = json.loads(text)
            if files.json_depth(raw) > files.MAX_DEPTH:
                raise RecursionError
        except RecursionError:
            raise UnreadableStateError(
                f"the state file {path} nests deeper than {files.MAX_DEPTH} levels; it is not read",
                hint=f"the file was changed by someone else: run `driveops-env gc`, or delete {path}",
            ) from None
        except ValueError as exc:
            raise self._corrupted(path, name, exc) from exc
        try:
            return parse(raw)
        except ValueError as exc:
            raise self._corrupted(path, name, exc) from exc

    @staticmethod
    def _corrupted(path: Path, name: str, exc: ValueError) -> StateError:
        return StateError(
            f"the state file {path} of environment {name!r} is corrupted: {exc}",
            hint=f"run `driveops-env gc` to stop what it may still run, or delete {path}",
        )

    def save(self, state: EnvState) -> None:
        self._ensure_dir()
        path = self.path(state.name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = state.to_json().encode("utf-8")
        try:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            full = exc.errno == errno.ENOSPC
            raise StateError(
                f"cannot write the state file {path}: {exc.strerror}",
                hint=(
                    "free some disk space"
                    if full
                    else "make the state directory writable or choose another with --state-dir / DRIVEOPS_ENV_STATE_DIR"
                ),
            ) from exc

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()

    def names(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        paths.check_private(self.state_dir, "the state directory", hint=self.HINT)
        return sorted(p.stem for p in self.state_dir.glob("*.json") if not p.name.startswith("."))

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 600.0, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the lock of environment ``name`` (one ``up``/``down`` at a time per name); stop waiting
        when ``cancelled`` says so."""
        self._ensure_dir()
        lock = FileLock(str(self.state_dir / f".{name}.lock"), mode=0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                lock.acquire(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                break
            except Timeout as exc:
                if cancelled():
                    raise Interrupted(f"interrupted while waiting for the lock of environment {name!r}") from None
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"environment {name!r} is locked by another driveops-env process for over {timeout:.0f}s",
                        hint="wait for the other `up`/`down` to finish",
                    ) from exc
            except OSError as exc:
                raise StateError(f"cannot lock environment {name!r}: {exc}") from exc
        try:
            yield
        finally:
            lock.release()
