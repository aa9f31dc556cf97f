"""Every option is declared once, as a typed field of :class:`Settings`; its CLI flag, environment
variable, ``pyproject.toml`` key, pytest ini key, choices and documentation are derived from it.

Precedence, highest first: CLI flag (or pytest option, or a Python keyword), environment variable
``DRIVEOPS_ENV_<NAME>``, ``[tool.driveops-env]`` in the nearest ``pyproject.toml``, pytest ini key,
default.  An explicitly given empty string or zero is a value, never "unset".  Defaults are computed
when options are resolved, not at import time.  A relative path is anchored where it was written: a
``pyproject.toml``'s folder for its keys, the ini file's folder for ini keys, the current directory
for flags and environment variables.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from driveops_env import files, paths
from driveops_env.errors import UsageError
from driveops_env.option_types import (
    SERVICES,
    parse_optional_path,
    parse_path,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_services,
    parse_text,
)
from driveops_env.services.keycloak_versions import DEFAULT_VERSION as DEFAULT_KEYCLOAK_VERSION
from driveops_env.spec import parse_tenant_list, validate_env_name, validate_realm_pattern

ENV_PREFIX = "DRIVEOPS_ENV_"
TOML_TABLE = "driveops-env"
SOURCES = ("cli", "env", "pyproject", "ini")
# keys of [tool.driveops-env] that the pytest plugin reads (driveops_env.plugin.settings)
PLUGIN_TOML_KEYS = ("reuse", "keep", "smoke", "from-file")
# The official images, pinned (the docker backend's defaults).
DEFAULT_IMAGES = {
    "postgres": "postgres:16",
    "mongo": "mongo:7",
    "redis": "redis:7",
    "keycloak": f"quay.io/keycloak/keycloak:{DEFAULT_KEYCLOAK_VERSION}",
}


# --- declaring an option ---------------------------------------------------------------------------

_DECL = "driveops-option"


@dataclass(frozen=True)
class _Decl:
    help: str
    default: Callable[[], Any]
    default_doc: str
    parse: Callable[[str], Any]
    metavar: str
    list_valued: bool


def declare(
    help: str,
    default: Callable[[], Any],
    default_doc: str,
    parse: Callable[[str], Any] = parse_text,
    *,
    metavar: str = "VALUE",
    list_valued: bool = False,
) -> Any:
    """A field of a settings dataclass that is an option.  ``default`` is called at resolve time."""
    return field(metadata={_DECL: _Decl(help, default, default_doc, parse, metavar, list_valued)})


@dataclass(frozen=True)
class Option:
    """One setting, derived from its field: names in every source, choices, parser, documentation."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    default_doc: str
    choices: tuple[str, ...] = ()
    metavar: str = "VALUE"
    list_valued: bool = False
    is_path: bool = False

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

    def convert(self, raw: Any, source: str, base: Path | None = None) -> Any:
        """The typed value of ``raw`` (text, or a TOML value); relative paths are joined to ``base``."""
        if isinstance(raw, list | tuple):
            if not self.list_valued:
                raise UsageError(f"{self.describe(source)}: a list is not valid here", hint="give one value")
            raw = ",".join(str(item) for item in raw)
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if self.choices and text not in self.choices:
            raise UsageError(
                f"{self.describe(source)}: {text!r} is not one of {', '.join(self.choices)}",
                hint=f"use one of: {', '.join(self.choices)}",
            )
        try:
            value = self.parse(text)
        except UsageError as exc:
            exc.message = f"{self.describe(source)}: {exc.message}"
            raise
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{self.describe(source)}: {text!r} is not valid: {exc}") from exc
        if isinstance(value, Path) and not value.is_absolute():
            value = Path(os.path.abspath((base or Path.cwd()) / value))
        return value

    def describe(self, source: str) -> str:
        where = {
            "cli": self.flag,
            "env": self.env_var,
            "pyproject": f"[tool.{TOML_TABLE}] {self.toml_key}",
            "ini": self.ini_key,
        }.get(source, self.name)
        return f"option {where}"


def table(cls: type) -> tuple[Option, ...]:
    """The options of a settings dataclass, in field order; choices come from ``Literal`` types."""
    hints = typing.get_type_hints(cls)
    result = []
    for f in fields(cls):
        decl = f.metadata.get(_DECL)
        if decl is None:
            continue
        hint = hints[f.name]
        choices = tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()
        is_path = Path in (hint, *typing.get_args(hint))
        result.append(
            Option(f.name, decl.help, decl.parse, decl.default, decl.default_doc, choices, decl.metavar,
                   decl.list_valued, is_path)
        )  # fmt: skip
    return tuple(result)


# --- the settings ----------------------------------------------------------------------------------

Backend = Literal["auto", "local", "docker"]
Isolation = Literal["dedicated", "shared"]
KeycloakDb = Literal["dev-file", "postgres"]


def _image(service: str) -> Any:
    image = DEFAULT_IMAGES[service]
    return declare(f"Image of {service} for the docker backend.", lambda: image, image, metavar="IMAGE")


@dataclass(frozen=True)
class Settings:
    """Resolved values of every option, with the source each one came from."""

    name: str = declare(
        "Name of the environment; several can run side by side.", lambda: "default", "default",
        validate_env_name, metavar="NAME",
    )  # fmt: skip
    tenants: tuple[str, ...] = declare(
        "Comma-separated tenant slugs (a TOML array in pyproject.toml).", lambda: ("acme",), "acme",
        parse_tenant_list, metavar="SLUGS", list_valued=True,
    )  # fmt: skip
    backend: Backend = declare(
        "Where services run: docker when an engine answers and has (or can pull) the images, else local "
        "(auto); local processes; or docker.",
        lambda: "auto", "auto",
    )  # fmt: skip
    isolation: Isolation = declare(
        "dedicated: a server per tenant per store; shared: one server per store with a database, role "
        "and Redis ACL user per tenant.",
        lambda: "dedicated", "dedicated",
    )  # fmt: skip
    seeds_dir: Path = declare(
        "Directory with tenants.json, postgres/*.sql, redis/*.json, mongo/*.json, users.json.",
        paths.default_seeds_dir, "the seeds/ shipped with driveops-env", parse_path, metavar="DIR",
    )  # fmt: skip
    realms_dir: Path = declare(
        "Directory with the Keycloak realm template(s) rendered per tenant.",
        paths.default_realms_dir, "the realms/ shipped with driveops-env", parse_path, metavar="DIR",
    )  # fmt: skip
    realm_pattern: str = declare(
        "Realm name of a tenant; {slug} (required) is replaced by the tenant's slug; letters, digits, '.' "
        "and '-' around it.",
        lambda: "{slug}", "{slug}", validate_realm_pattern, metavar="PATTERN",
    )  # fmt: skip
    state_dir: Path = declare(
        "Directory of the state files (mode 0600) of running environments; must be yours and not "
        "writable by others.",
        paths.default_state_dir, "$XDG_STATE_HOME/driveops-env or ~/.local/state/driveops-env", parse_path,
        metavar="DIR",
    )  # fmt: skip
    data_dir: Path = declare(
        "Directory of the services' data directories and logs; must be yours and not writable by others.",
        paths.default_data_dir,
        "/dev/shm/driveops-env-<uid> (RAM), else /var/lib/driveops-env as root, else <state_dir>/data",  # noqa: S108
        parse_path, metavar="DIR",
    )  # fmt: skip
    cache_dir: Path = declare(
        "Directory of downloads and builds (PostgreSQL template cluster, Keycloak, FerretDB).",
        paths.default_cache_dir, "$XDG_CACHE_HOME/driveops-env or ~/.cache/driveops-env", parse_path,
        metavar="DIR",
    )  # fmt: skip
    services: tuple[str, ...] = declare(
        "Comma-separated services to run (a TOML array in pyproject.toml): a subset of keycloak, "
        "postgres, mongo, redis.",
        lambda: SERVICES, ",".join(SERVICES), parse_services, metavar="LIST", list_valued=True,
    )  # fmt: skip
    keycloak_version: str = declare(
        "Keycloak server version (the org.keycloak:keycloak-quarkus-dist zip from Maven Central); "
        "23.0.x to 26.x.",
        lambda: DEFAULT_KEYCLOAK_VERSION, DEFAULT_KEYCLOAK_VERSION, metavar="VERSION",
    )  # fmt: skip
    keycloak_db: KeycloakDb = declare(
        "Where Keycloak keeps its data: an H2 file of its own (dev-file, fast), or a PostgreSQL server "
        "of the environment (postgres).",
        lambda: "dev-file", "dev-file",
    )  # fmt: skip
    keycloak_port: int = declare(
        "Keycloak's HTTP port on the publish address; 0 picks a free one (another if it is taken meanwhile).",
        lambda: 0, "0", parse_port,
        metavar="PORT",
    )  # fmt: skip
    keycloak_heap_mb: int = declare(
        "Maximum Java heap of Keycloak, in MB.", lambda: 512, "512", parse_positive_int, metavar="MB"
    )
    keycloak_jvm_options: str = declare(
        "Extra JVM options of Keycloak (JAVA_OPTS_APPEND). The default, the C1 compiler only, brings Keycloak to its "
        "first token about a second sooner on 2 cores (bench/keycloak.py); '' gives the JVM's own defaults.",
        lambda: "-XX:TieredStopAtLevel=1", "-XX:TieredStopAtLevel=1", metavar="OPTIONS",
    )  # fmt: skip
    keycloak_providers_dir: Path | None = declare(
        "Directory of Keycloak extensions (*.jar) and themes (themes/<name>/...) built into the server; "
        "the build is cached by their content.",
        lambda: None, "none", parse_optional_path, metavar="DIR",
    )  # fmt: skip
    java_home: Path | None = declare(
        "JDK that runs Keycloak (Java 17 or newer).", lambda: None, "$JAVA_HOME, else java on PATH",
        parse_optional_path, metavar="DIR",
    )  # fmt: skip
    image_postgres: str = _image("postgres")
    image_mongo: str = _image("mongo")
    image_redis: str = _image("redis")
    image_keycloak: str = _image("keycloak")
    publish_address: str = declare(
        "Address the docker backend publishes ports on and clients use: 127.0.0.1 for a local engine, "
        "the engine's host for a remote one (DOCKER_HOST). 0.0.0.0 only if you ask for it.",
        lambda: "", "127.0.0.1, or the remote engine's address", metavar="ADDRESS",
    )  # fmt: skip
    startup_timeout: float = declare(
        "Seconds a service may take to become ready.", lambda: 180.0, "180", parse_positive_float,
        metavar="SECONDS",
    )  # fmt: skip
    input_limit_mb: int = declare(
        "Largest input file read, in MB: seeds, templates, the tenant catalogue, descriptors. A larger one, "
        "or one that is not a regular file (a FIFO, a link to a device), is refused (exit 2).",
        lambda: files.DEFAULT_LIMIT_MB, str(files.DEFAULT_LIMIT_MB), parse_positive_int, metavar="MB",
    )  # fmt: skip
    postgres_bin: Path | None = declare(
        "Directory holding initdb and postgres.", lambda: None, "newest /usr/lib/postgresql/*/bin, else PATH",
        parse_optional_path, metavar="DIR",
    )  # fmt: skip
    redis_server: str = declare(
        "The redis-server binary.", lambda: "redis-server", "redis-server on PATH", metavar="PATH"
    )
    local_user: str = declare(
        "Unprivileged user PostgreSQL runs as when driveops-env runs as root.", lambda: "postgres",
        "postgres", metavar="USER",
    )  # fmt: skip
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def input_limit(self) -> int:
        """``input_limit_mb`` in bytes."""
        return files.limit_bytes(self.input_limit_mb)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (already typed values), recorded as given from Python."""
        return dataclasses.replace(self, **changes, sources={**self.sources, **dict.fromkeys(changes, "python")})

    def with_options(self, base: Path | None = None, **raw: Any) -> Settings:
        """A copy with options given as text or lists (what the CLI would take), checked and typed."""
        unknown = sorted(set(raw) - set(OPTIONS_BY_NAME))
        if unknown:
            raise UsageError(f"unknown option(s): {', '.join(unknown)}", hint="see `driveops-env options`")
        typed = {k: OPTIONS_BY_NAME[k].convert(v, "python", base) for k, v in raw.items()}
        return self.replace(**typed)


OPTIONS: tuple[Option, ...] = table(Settings)
OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
S = TypeVar("S")


# --- sources ---------------------------------------------------------------------------------------


def find_pyproject(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject(start: Path | None = None, keys: Sequence[str] | None = None) -> tuple[dict[str, Any], Path]:
    """``[tool.driveops-env]`` of the nearest pyproject.toml (or an empty table) and the folder its
    relative paths are anchored to."""
    start = start or Path.cwd()
    path = find_pyproject(start)
    if path is None:
        return {}, start
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="fix the TOML syntax") from exc
    tool = data.get("tool", {})
    table_ = tool.get(TOML_TABLE, {}) if isinstance(tool, dict) else {}
    if not isinstance(table_, dict):
        raise UsageError(f"{path}: [tool.{TOML_TABLE}] must be a table")
    known = set(keys) if keys is not None else {o.toml_key for o in OPTIONS} | set(PLUGIN_TOML_KEYS)
    unknown = sorted(set(table_) - known)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) in [tool.{TOML_TABLE}]: {', '.join(unknown)}",
            hint="see `driveops-env options` for the keys",
        )
    return table_, path.parent


def read_pyproject_table(start: Path | None = None) -> dict[str, Any]:
    """``[tool.driveops-env]`` of the nearest pyproject.toml, or an empty table."""
    return read_pyproject(start)[0]


@dataclass(frozen=True)
class Inputs:
    """Raw values by source, and where each source's relative paths are anchored."""

    cli: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    pyproject: Mapping[str, Any] = field(default_factory=dict)
    ini: Mapping[str, Any] = field(default_factory=dict)
    pyproject_dir: Path | None = None
    ini_dir: Path | None = None

    def candidates(self, option: Option) -> list[tuple[str, Any, Path | None]]:
        return [
            ("cli", self.cli.get(option.name), None),
            ("env", self.environ.get(option.env_var), None),
            ("pyproject", self.pyproject.get(option.toml_key), self.pyproject_dir),
            ("ini", self.ini.get(option.name), self.ini_dir),
        ]


def resolve_into(cls: Callable[..., S], options_: Sequence[Option], inputs: Inputs) -> S:
    """Build ``cls`` from the first source that gives each option (None means "not given")."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in options_:
        for source, raw, base in inputs.candidates(option):
            if raw is not None:
                values[option.name] = option.convert(raw, source, base)
                sources[option.name] = source
                break
        else:
            values[option.name] = option.default()
            sources[option.name] = "default"
    return cls(**values, sources=sources)


def resolve(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    pyproject: Mapping[str, Any] | None = None,
    ini: Mapping[str, Any] | None = None,
    *,
    pyproject_dir: Path | None = None,
    ini_dir: Path | None = None,
) -> Settings:
    """Resolve every option from its sources.  ``pyproject=None`` reads the nearest pyproject.toml."""
    if pyproject is None:
        pyproject, pyproject_dir = read_pyproject()
    inputs = Inputs(
        cli=cli or {}, environ=os.environ if environ is None else environ, pyproject=pyproject,
        ini=ini or {}, pyproject_dir=pyproject_dir, ini_dir=ini_dir,
    )  # fmt: skip
    return resolve_into(Settings, OPTIONS, inputs)


def markdown_table(options_: Sequence[Option] = OPTIONS) -> str:
    """The options reference of the README."""
    lines = [
        "| option | CLI flag | environment variable | pyproject key | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in options_:
        meaning = option.help
        if option.choices:
            meaning += " One of: " + ", ".join(f"`{c}`" for c in option.choices) + "."
        lines.append(
            f"| {option.name} | `{option.flag}` | `{option.env_var}` | `{option.toml_key}` | "
            f"{option.default_doc} | {meaning} |"
        )
    return "\n".join(lines)
