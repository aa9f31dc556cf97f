"""Every option is declared once here; its CLI flag, environment variable, ``pyproject.toml`` key,
pytest ini key and documentation are derived from that one declaration.

Precedence, highest first: CLI flag (or pytest option), environment variable ``DRIVEOPS_ENV_<NAME>``,
``[tool.driveops-env]`` in the nearest ``pyproject.toml``, pytest ini key, default.  An explicitly given
empty string or zero is a value, never "unset".  Defaults are computed when options are resolved,
not at import time.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from driveops_env import paths
from driveops_env.errors import UsageError
from driveops_env.services.keycloak_dist import DEFAULT_VERSION as DEFAULT_KEYCLOAK_VERSION
from driveops_env.spec import BACKENDS, ISOLATIONS, parse_tenant_list, validate_env_name

ENV_PREFIX = "DRIVEOPS_ENV_"
TOML_TABLE = "driveops-env"


def _text(value: str) -> str:
    return value


def _path(value: str) -> Path:
    if not value:
        raise ValueError("an empty path")
    return Path(value).expanduser()


def _optional_path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be 0 (a free port) or a TCP port")
    return number


SERVICES = ("keycloak", "postgres", "mongo", "redis")
# The official images, pinned (the docker backend's defaults).
DEFAULT_IMAGES = {
    "postgres": "postgres:16",
    "mongo": "mongo:7",
    "redis": "redis:7",
    "keycloak": f"quay.io/keycloak/keycloak:{DEFAULT_KEYCLOAK_VERSION}",
}


def _services(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        raise ValueError(f"use a comma-separated subset of {', '.join(SERVICES)}")
    return tuple(n for n in SERVICES if n in names)


@dataclass(frozen=True)
class Option:
    """One setting. ``default`` is a callable so nothing is computed at import time."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    default_doc: str
    choices: tuple[str, ...] = ()
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def toml_key(self) -> str:
        return self.name.replace("_", "-")

    @property
    def ini_key(self) -> str:
        return "driveops_" + self.name

    def convert(self, raw: Any, source: str) -> Any:
        if isinstance(raw, list) and self.name == "tenants":
            raw = ",".join(str(item) for item in raw)
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if self.choices and text not in self.choices:
            raise UsageError(
                f"{self.describe(source)}: {text!r} is not one of {', '.join(self.choices)}",
                hint=f"use one of: {', '.join(self.choices)}",
            )
        try:
            return self.parse(text)
        except UsageError as exc:
            exc.message = f"{self.describe(source)}: {exc.message}"
            raise
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{self.describe(source)}: {text!r} is not valid: {exc}") from exc

    def describe(self, source: str) -> str:
        where = {
            "cli": self.flag,
            "env": self.env_var,
            "pyproject": f"[tool.{TOML_TABLE}] {self.toml_key}",
            "ini": self.ini_key,
        }.get(source, self.name)
        return f"option {where}"


OPTIONS: tuple[Option, ...] = (
    Option(
        "name",
        "Name of the environment; several can run side by side.",
        validate_env_name,
        lambda: "default",
        "default",
        metavar="NAME",
    ),
    Option(
        "tenants",
        "Comma-separated tenant slugs.",
        parse_tenant_list,
        lambda: ("acme",),
        "acme",
        metavar="SLUGS",
    ),
    Option(
        "backend",
        "Where services run: docker when an engine answers (auto), local processes, or docker.",
        _text,
        lambda: "auto",
        "auto",
        choices=BACKENDS,
    ),
    Option(
        "isolation",
        "dedicated: a server per tenant per store; shared: one server per store with a "
        "database, role and Redis ACL user per tenant.",
        _text,
        lambda: "dedicated",
        "dedicated",
        choices=ISOLATIONS,
    ),
    Option(
        "seeds_dir",
        "Directory with tenants.json, postgres/*.sql, redis/*.json, mongo/*.json, users.json.",
        _path,
        paths.default_seeds_dir,
        "the seeds/ shipped with driveops-env",
        metavar="DIR",
    ),
    Option(
        "realms_dir",
        "Directory with the Keycloak realm template(s) rendered per tenant.",
        _path,
        paths.default_realms_dir,
        "the realms/ shipped with driveops-env",
        metavar="DIR",
    ),
    Option(
        "realm_pattern",
        "Realm name of a tenant; {slug} is replaced by the tenant's slug.",
        _text,
        lambda: "{slug}",
        "{slug}",
        metavar="PATTERN",
    ),
    Option(
        "state_dir",
        "Directory of the state files (mode 0600) of running environments.",
        _path,
        paths.default_state_dir,
        "$XDG_STATE_HOME/driveops-env or ~/.local/state/driveops-env",
        metavar="DIR",
    ),
    Option(
        "data_dir",
        "Directory of the services' data directories and logs.",
        _path,
        paths.default_data_dir,
        "/dev/shm/driveops-env-<uid> (RAM), else /var/lib/driveops-env as root, else <state_dir>/data",  # noqa: S108
        metavar="DIR",
    ),
    Option(
        "cache_dir",
        "Directory of downloads and builds (PostgreSQL template cluster, Keycloak, FerretDB).",
        _path,
        paths.default_cache_dir,
        "$XDG_CACHE_HOME/driveops-env or ~/.cache/driveops-env",
        metavar="DIR",
    ),
    Option(
        "services",
        "Comma-separated services to run: a subset of keycloak, postgres, mongo, redis.",
        _services,
        lambda: SERVICES,
        ",".join(SERVICES),
        metavar="LIST",
    ),
    Option(
        "keycloak_version",
        "Keycloak server version (the org.keycloak:keycloak-quarkus-dist zip from Maven Central).",
        _text,
        lambda: DEFAULT_KEYCLOAK_VERSION,
        DEFAULT_KEYCLOAK_VERSION,
        metavar="VERSION",
    ),
    Option(
        "keycloak_db",
        "Where Keycloak keeps its data: an H2 file of its own (dev-file, fast), or a PostgreSQL server "
        "of the environment (postgres).",
        _text,
        lambda: "dev-file",
        "dev-file",
        choices=("dev-file", "postgres"),
    ),
    Option(
        "keycloak_port",
        "Keycloak's HTTP port on 127.0.0.1; 0 picks a free port.",
        _port,
        lambda: 0,
        "0",
        metavar="PORT",
    ),
    Option(
        "keycloak_heap_mb",
        "Maximum Java heap of Keycloak, in MB.",
        _positive_int,
        lambda: 512,
        "512",
        metavar="MB",
    ),
    Option(
        "java_home",
        "JDK that runs Keycloak (Java 17 or newer).",
        _optional_path,
        lambda: None,
        "$JAVA_HOME, else java on PATH",
        metavar="DIR",
    ),
    *(
        Option(
            f"image_{service}",
            f"Image of {service} for the docker backend.",
            _text,
            functools.partial(str, image),
            image,
            metavar="IMAGE",
        )
        for service, image in DEFAULT_IMAGES.items()
    ),
    Option(
        "startup_timeout",
        "Seconds a service may take to become ready.",
        _positive_float,
        lambda: 180.0,
        "180",
        metavar="SECONDS",
    ),
    Option(
        "postgres_bin",
        "Directory holding initdb and postgres.",
        _optional_path,
        lambda: None,
        "newest /usr/lib/postgresql/*/bin, else PATH",
        metavar="DIR",
    ),
    Option(
        "redis_server",
        "The redis-server binary.",
        _text,
        lambda: "redis-server",
        "redis-server on PATH",
        metavar="PATH",
    ),
    Option(
        "local_user",
        "Unprivileged user PostgreSQL runs as when driveops-env runs as root.",
        _text,
        lambda: "postgres",
        "postgres",
        metavar="USER",
    ),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved values of every option, with the source each one came from."""

    name: str
    tenants: tuple[str, ...]
    backend: str
    isolation: str
    seeds_dir: Path
    realms_dir: Path
    realm_pattern: str
    state_dir: Path
    data_dir: Path
    cache_dir: Path
    services: tuple[str, ...]
    keycloak_version: str
    keycloak_db: str
    keycloak_port: int
    keycloak_heap_mb: int
    java_home: Path | None
    image_postgres: str
    image_mongo: str
    image_redis: str
    image_keycloak: str
    startup_timeout: float
    postgres_bin: Path | None
    redis_server: str
    local_user: str
    sources: Mapping[str, str]

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        sources = dict(self.sources)
        for key, value in changes.items():
            values[key] = value
            sources[key] = "python"
        values["sources"] = sources
        return Settings(**values)


def find_pyproject(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject_table(start: Path | None = None) -> dict[str, Any]:
    """``[tool.driveops-env]`` of the nearest pyproject.toml, or an empty table."""
    path = find_pyproject(start or Path.cwd())
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="fix the TOML syntax") from exc
    table = data.get("tool", {}).get(TOML_TABLE, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.{TOML_TABLE}] must be a table")
    unknown = sorted(set(table) - {o.toml_key for o in OPTIONS})
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) in [tool.{TOML_TABLE}]: {', '.join(unknown)}",
            hint="see `driveops-env options` for the keys",
        )
    return table


def resolve(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    pyproject: Mapping[str, Any] | None = None,
    ini: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
) -> Settings:
    """Resolve every option from its sources. ``None`` in ``cli``/``ini`` means "not given"."""
    cli = cli or {}
    environ = os.environ if environ is None else environ
    pyproject = read_pyproject_table() if pyproject is None else pyproject
    ini = ini or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        if only is not None and option.name not in only:
            values[option.name] = option.default()
            sources[option.name] = "default"
            continue
        for source, raw in (
            ("cli", cli.get(option.name)),
            ("env", environ.get(option.env_var)),
            ("pyproject", pyproject.get(option.toml_key)),
            ("ini", ini.get(option.name)),
        ):
            if raw is not None:
                values[option.name] = option.convert(raw, source)
                sources[option.name] = source
                break
        else:
            values[option.name] = option.default()
            sources[option.name] = "default"
    return Settings(**values, sources=sources)


def markdown_table() -> str:
    """The options reference of the README."""
    lines = [
        "| option | CLI flag | environment variable | pyproject key | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        meaning = option.help
        if option.choices:
            meaning += " One of: " + ", ".join(f"`{c}`" for c in option.choices) + "."
        lines.append(
            f"| {option.name} | `{option.flag}` | `{option.env_var}` | `{option.toml_key}` | "
            f"{option.default_doc} | {meaning} |"
        )
    return "\n".join(lines)
