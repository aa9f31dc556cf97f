"""The resolved options of one command or session: the generic ones as typed fields, each service's
own (declared in its unit) in ``extra``.  Pure: nothing here reads a source; see :mod:`.options`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from driveops_env import files, masking, paths
from driveops_env.option_types import (
    Range,
    declare,
    parse_bool,
    parse_list,
    parse_names,
    parse_path,
    parse_paths,
    unset,
)
from driveops_env.tenants import parse_tenant_list, validate_env_name, validate_realm_pattern

T = TypeVar("T")

BackendName = Literal["auto", "local", "docker", "kubernetes"]
Isolation = Literal["dedicated", "shared"]


@dataclass(frozen=True)
class Settings:
    """Resolved values of every option, with the source each one came from."""

    name: str = declare(
        "Name of the environment; several can run side by side.",
        lambda: "default",
        "default",
        validate_env_name,
        metavar="NAME",
    )
    tenants: tuple[str, ...] = declare(
        "Comma-separated tenant slugs (a TOML array in pyproject.toml).",
        lambda: ("acme",),
        "acme",
        parse_tenant_list,
        metavar="SLUGS",
        list_valued=True,
    )
    backend: BackendName = declare(
        "Where services run: docker when an engine answers and has (or can pull) the images, else local "
        "(auto); local processes; docker; or kubernetes (a cluster of your kubeconfig; never chosen by auto).",
        lambda: "auto",
        "auto",
    )
    isolation: Isolation = declare(
        "dedicated: a server per tenant per store; shared: one server per store with a database, role "
        "and user per tenant.",
        lambda: "dedicated",
        "dedicated",
    )
    services: tuple[str, ...] = declare(
        "Comma-separated services to run (a TOML array in pyproject.toml): a subset of the registered "
        "ones (the built-in ones, and more through the driveops_env.services entry point; an unknown name "
        "is refused naming them).",
        lambda: (),
        "the built-in services",
        parse_names,
        metavar="LIST",
        list_valued=True,
    )
    seeds_dir: Path = declare(
        "Directory with tenants.json and each service's seed files (a folder or file named after the "
        "service: see its section of the README).",
        paths.default_seeds_dir,
        "the seeds/ shipped with driveops-env",
        parse_path,
        metavar="DIR",
    )
    realms_dir: Path = declare(
        "Directory with the realm template(s) rendered per tenant.",
        paths.default_realms_dir,
        "the realms/ shipped with driveops-env",
        parse_path,
        metavar="DIR",
    )
    realm_pattern: str = declare(
        "Realm name of a tenant; {slug} (required) is replaced by the tenant's slug; letters, digits, '.' "
        "and '-' around it.",
        lambda: "{slug}",
        "{slug}",
        validate_realm_pattern,
        metavar="PATTERN",
    )
    state_dir: Path = declare(
        "Directory of the state files (mode 0600) of running environments; must be yours and not writable by others.",
        paths.default_state_dir,
        "$XDG_STATE_HOME/driveops-env or ~/.local/state/driveops-env",
        parse_path,
        metavar="DIR",
    )
    data_dir: Path = declare(
        "Directory of the services' data directories and logs; must be yours and not writable by others.",
        paths.default_data_dir,
        "/dev/shm/driveops-env-<uid> (RAM), else /var/lib/driveops-env as root, else <state_dir>/data",  # noqa: S108
        parse_path,
        metavar="DIR",
    )
    cache_dir: Path = declare(
        "Directory of downloads and builds (server distributions, template data, derived images' secrets).",
        paths.default_cache_dir,
        "$XDG_CACHE_HOME/driveops-env or ~/.cache/driveops-env",
        parse_path,
        metavar="DIR",
    )
    publish_address: str = unset(
        "Address the docker backend publishes ports on and clients use: 127.0.0.1 for a local engine, "
        "the engine's host for a remote one (DOCKER_HOST). 0.0.0.0 only if you ask for it.",
        "127.0.0.1, or the remote engine's address",
        "ADDRESS",
    )
    kube_context: str = unset(
        "The kubernetes backend's cluster: a context of the kubeconfig (KUBECONFIG or ~/.kube/config).",
        "the kubeconfig's current context",
        "CONTEXT",
    )
    kube_namespace: str = unset(
        "The kubernetes backend's namespace for the environment; one you name (a namespace handed out to "
        "you) must exist and is never deleted, only emptied of what driveops-env made in it.",
        "driveops-<name>, made and removed by driveops-env",
        "NAMESPACE",
    )
    kube_address: str = unset(
        "Address clients reach the kubernetes backend's NodePort Services at.",
        "the first ready node's InternalIP",
        "ADDRESS",
    )
    kube_cpu_request: str = declare(
        "CPU each server's container requests on the kubernetes backend (Kubernetes quantity).",
        lambda: "50m",
        "50m",
        metavar="CPU",
    )
    kube_memory_mb: int = declare(
        "Memory limit of a server's container on the kubernetes backend when its service names none "
        "(an identity server's is its heap plus 512); the request is a quarter of the limit.",
        lambda: 512,
        "512",
        Range(1, 262144, "256 GiB: a larger limit is more than a node gives one server"),
        metavar="MB",
    )
    migrate_dir: Path = declare(
        "Folder a store's migration command (migrate_<service>) runs in.",
        paths.project_dir,
        "the folder of the nearest pyproject.toml, else the current directory",
        parse_path,
        metavar="DIR",
    )
    migrate_inputs: tuple[Path, ...] = declare(
        "Files and folders whose content, with the command, decides whether the migrations changed "
        "(comma-separated; a TOML array in pyproject.toml, relative to it): a change starts the "
        "environment again at the next up, none runs no migration twice.",
        lambda: (),
        "none: only the command is compared",
        parse_paths,
        metavar="PATHS",
        list_valued=True,
    )
    migrate_per_tenant: bool = declare(
        "Run the migration command for every tenant (in parallel) instead of once per change of "
        "migrate_inputs, its state then loaded into every tenant: for migrations that read the tenant's "
        "values (DRIVEOPS_TENANT_ID).",
        lambda: False,
        "false",
        parse_bool,
        metavar="BOOL",
    )
    snapshot: tuple[str, ...] = declare(
        "Tenants started from a snapshot file (snapshot save) instead of their seed: TENANT=FILE, comma-"
        "separated; what a reset or a test's restore goes back to. Each file is checked before anything "
        "starts: its tenant, its migrations and its stores must be this environment's.",
        lambda: (),
        "none",
        parse_list,
        metavar="TENANT=FILE",
        list_valued=True,
    )
    mask: tuple[str, ...] = declare(
        "Column and field names whose values snapshot save --mask replaces deterministically (case-"
        "insensitive, comma-separated; a TOML array in pyproject.toml): an e-mail-like name keeps an "
        "address at example.invalid, a phone-like one digits, any other masked-<hash>.",
        lambda: masking.DEFAULT_NAMES,
        ",".join(masking.DEFAULT_NAMES),
        parse_names,
        metavar="NAMES",
        list_valued=True,
    )
    keep_failed_hours: float = declare(
        "Hours the copies a failed test used stay, with pytest --driveops-keep-failed, before gc drops them.",
        lambda: 24.0,
        "24",
        Range(0, 8760, "a year: a copy kept longer is not a failed test's evidence any more", fraction=True),
        metavar="HOURS",
    )
    startup_timeout: float = declare(
        "Seconds a service may take to become ready.",
        lambda: 180.0,
        "180",
        Range(0, 3600, "an hour: a server that is not ready by then is stuck", fraction=True, above=True),
        metavar="SECONDS",
    )
    parallel_starts: int = declare(
        "Servers started at once: on 2 cores, forty at once time out; a service may limit its own steps "
        "further (an identity server creates realms one after another anyway).",
        lambda: 12,
        "12",
        Range(1, 64, "more servers at once only contend for the same cores"),
        metavar="N",
    )
    input_limit_mb: int = declare(
        "Largest input file read, in MB: seeds, templates, the tenant catalogue, descriptors. A larger one, "
        "or one that is not a regular file (a FIFO, a link to a device), is refused (exit 2).",
        lambda: files.DEFAULT_LIMIT_MB,
        str(files.DEFAULT_LIMIT_MB),
        Range(1, 4096, "an input is read into memory whole"),
        metavar="MB",
    )
    local_user: str = unset(
        "Unprivileged user the local backend's servers run as when driveops-env runs as root (a database "
        "server may refuse to run as root); '' is the account the services name (Debian's database "
        "server package makes it).",
        "the services' account",
        "USER",
    )
    extra: Mapping[str, Any] = field(default_factory=dict)  # the services' own options, by name
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def input_limit(self) -> int:
        """``input_limit_mb`` in bytes."""
        return files.limit_bytes(self.input_limit_mb)

    def value(self, name: str) -> Any:
        """Any option's value by name: a field, or a service's option."""
        if name in FIELDS:
            return getattr(self, name)
        return self.extra[name]

    def of(self, options: type[T]) -> T:
        """A service's options (a dataclass of ``declare``d fields) with their values in these settings."""
        make: Any = options  # a dataclass: its fields are its parameters
        return cast(T, make(**{f.name: self.value(f.name) for f in dataclasses.fields(make)}))

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (already typed values), recorded as given from Python."""
        own = {k: v for k, v in changes.items() if k in FIELDS}
        extra = {k: v for k, v in changes.items() if k not in FIELDS}
        return dataclasses.replace(
            self, **own, extra={**self.extra, **extra}, sources={**self.sources, **dict.fromkeys(changes, "python")}
        )


FIELDS = frozenset(f.name for f in dataclasses.fields(Settings)) - {"extra", "sources"}
