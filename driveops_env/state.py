"""The state file of an environment: endpoints, secrets, process ids, spec hash.

One JSON file per environment, ``<state_dir>/<name>.json``, mode 0600 in a 0700 directory, written
atomically.  A lock file beside it serialises ``up``/``down`` of the same name across processes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from driveops_env.errors import StateError

STATE_VERSION = 1


@dataclass
class ServiceRecord:
    """One running server: a process (local) or a container (docker)."""

    key: str  # "postgres.acme", "redis.shared", "keycloak"
    kind: str  # postgres | redis | mongo | keycloak
    tenant: str | None
    host: str
    port: int
    admin_user: str
    admin_password: str
    log_path: str | None = None
    data_dir: str | None = None
    pid: int | None = None
    pid_start: int | None = None
    container_id: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class PostgresAccess:
    service: str
    host: str
    port: int
    database: str
    user: str
    password: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password} connect_timeout=5"
        )


@dataclass
class RedisAccess:
    service: str
    host: str
    port: int
    username: str | None
    password: str
    key_prefix: str

    @property
    def url(self) -> str:
        return f"redis://{self.username or ''}:{self.password}@{self.host}:{self.port}/0"


@dataclass
class MongoAccess:
    service: str
    host: str
    port: int
    database: str
    user: str
    password: str
    auth_mechanism: str | None = None
    auth_source: str | None = None

    @property
    def uri(self) -> str:
        query = "&".join(
            f"{key}={value}"
            for key, value in (("authMechanism", self.auth_mechanism), ("authSource", self.auth_source))
            if value
        )
        base = f"mongodb://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"
        return f"{base}?{query}" if query else base


@dataclass
class KeycloakAccess:
    service: str
    base_url: str
    realm: str
    client_id: str
    client_secret: str
    web_client_id: str
    users: dict[str, str] = field(default_factory=dict)  # username -> password

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"


@dataclass
class TenantRecord:
    slug: str
    tenant_id: str
    display_name: str
    realm: str
    postgres: PostgresAccess | None = None
    redis: RedisAccess | None = None
    mongo: MongoAccess | None = None
    keycloak: KeycloakAccess | None = None


@dataclass
class EnvState:
    name: str
    backend: str
    isolation: str
    spec_hash: str
    fingerprint: dict[str, Any]
    data_dir: str
    seeds_dir: str = ""
    realms_dir: str = ""
    status: str = "starting"  # starting | running
    owner_pid: int | None = None
    owner_start: int | None = None
    created_at: float = field(default_factory=time.time)
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    tenants: dict[str, TenantRecord] = field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EnvState:
        services = {k: ServiceRecord(**v) for k, v in raw.pop("services", {}).items()}
        tenants = {}
        for slug, t in raw.pop("tenants", {}).items():
            tenants[slug] = TenantRecord(
                slug=t["slug"],
                tenant_id=t["tenant_id"],
                display_name=t["display_name"],
                realm=t["realm"],
                postgres=PostgresAccess(**t["postgres"]) if t.get("postgres") else None,
                redis=RedisAccess(**t["redis"]) if t.get("redis") else None,
                mongo=MongoAccess(**t["mongo"]) if t.get("mongo") else None,
                keycloak=KeycloakAccess(**t["keycloak"]) if t.get("keycloak") else None,
            )
        return cls(**raw, services=services, tenants=tenants)


class StateStore:
    """Reads and writes the state files of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _ensure_dir(self) -> None:
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory {self.state_dir}: {exc.strerror}",
                hint="choose a writable directory with --state-dir or DRIVEOPS_ENV_STATE_DIR",
            ) from exc

    def load(self, name: str) -> EnvState | None:
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the state file {path}: {exc.strerror}") from exc
        try:
            raw = json.loads(text)
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"unknown state version {raw.get('version')!r}")
            return EnvState.from_dict(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(
                f"the state file {path} of environment {name!r} is corrupted: {exc}",
                hint=f"run `driveops-env gc` to stop what it may still run, or delete {path}",
            ) from exc

    def save(self, state: EnvState) -> None:
        self._ensure_dir()
        path = self.path(state.name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = state.to_json().encode("utf-8")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
            finally:
                os.close(fd)
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
                    else "make the state directory writable or choose "
                    "another with --state-dir / DRIVEOPS_ENV_STATE_DIR"
                ),
            ) from exc

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()

    def names(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        return sorted(p.stem for p in self.state_dir.glob("*.json") if not p.name.startswith("."))

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold the lock of environment ``name`` (one ``up``/``down`` at a time per name)."""
        self._ensure_dir()
        lock = FileLock(str(self.state_dir / f".{name}.lock"), mode=0o600)
        try:
            lock.acquire(timeout=timeout)
        except Timeout as exc:
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
