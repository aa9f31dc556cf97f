"""The Keycloak server distribution on this machine: fetched, built and initialised once, in the cache.

    <cache>/keycloak/keycloak-quarkus-dist-<v>.zip   from Maven Central (``mvn dependency:copy``)
    <cache>/keycloak/<v>-<db>/                        unpacked, then ``kc.sh build`` (health on, local cache)
    <cache>/keycloak/<v>-dev-file.base<r>/            (dev-file) a data directory whose master realm exists,
                                                      with a template admin, plus a class-data-sharing archive
                                                      (``<r>``: :data:`BASE_RECIPE`)

Each environment runs the shared build with its own data directory (``-Dkc.db-url-path`` and the
transaction log directory point into the environment), so nothing of an environment is written to
the cache.  Starting from the initialised base skips Keycloak's first-start schema creation and
master realm set-up; the template admin's password is replaced by a generated one right after start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from driveops_env import process, readiness, toolchains
from driveops_env.errors import MissingDependencyError, StartupError, UsageError
from driveops_env.ports import PortAllocator
from driveops_env.secret import generate_secret
from driveops_env.services.keycloak.admin import Database
from driveops_env.services.keycloak.versions import KeycloakVersion

ARTIFACT = "org.keycloak:keycloak-quarkus-dist:{version}:zip"
TEMPLATE_ADMIN = "driveops-admin"
# the base data's recipe, in its folder's name: 2, its admin's tokens full and its hashing cheap
# (:func:`.admin.set_admin_password`)
BASE_RECIPE = "2"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KeycloakInstall:
    version: str
    db: str
    home: Path  # the built distribution
    java: str
    base_data: Path | None  # dev-file: a data directory with the master realm initialised
    template_password: str | None
    cds_archive: Path | None

    @property
    def versions(self) -> KeycloakVersion:
        return KeycloakVersion(self.version)

    def server_argv(
        self, data_dir: Path, http_port: int, management_port: int | None, public_url: str | None = None
    ) -> list[str]:
        """``start --optimized`` on 127.0.0.1 with the environment's own data: build-time options
        (database kind, health, ``--cache=local``: one node, no JGroups listening on every interface)
        are the build's."""
        return [
            str(self.home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            *(self.versions.h2_args(str(data_dir)) if self.db == "dev-file" else []),
            f"-Dquarkus.transaction-manager.object-store.directory={data_dir / 'data' / 'transaction-logs'}",
            "--http-enabled=true",
            *self.versions.hostname_args(public_url),
            *self.versions.listen_args("127.0.0.1", http_port, management_port),
        ]

    def server_env(self, heap_mb: int, extra_jvm: str = "") -> dict[str, str]:
        # the class-data archive's own notes (thousands of lines when it is written; a mismatch only
        # costs speed) stay out of the log, where they would hide the real error
        append = f"-Xlog:cds*=off {extra_jvm}"
        if self.cds_archive is not None and self.cds_archive.exists():
            append = f"-XX:SharedArchiveFile={self.cds_archive} -Xshare:auto {append}"
        return {
            "JAVA": self.java,
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap_mb}m",
            "JAVA_OPTS_APPEND": append.strip(),
        }


def database_env(database: Database, host_port: str) -> dict[str, str]:
    """Keycloak's connection to its PostgreSQL database (``--keycloak-db postgres``)."""
    return {
        "KC_DB_URL": f"jdbc:postgresql://{host_port}/{database.name}",
        "KC_DB_USERNAME": database.user,
        "KC_DB_PASSWORD": database.password,
    }


def find_java(java_home: Path | None) -> str:
    return toolchains.find_java(java_home, "keycloak", hint="; Keycloak 26.6+ also runs on 25")


def _zip_path(cache: Path, version: str) -> Path:
    return cache / "keycloak" / f"keycloak-quarkus-dist-{version}.zip"


def fetch(cache: Path, version: str, progress: Progress) -> Path:
    """The distribution zip, from Maven Central through ``mvn`` (the only reachable source here)."""
    target = _zip_path(cache, version)
    if target.exists():
        return target
    mvn = toolchains.find_mvn()
    if mvn is None:
        raise MissingDependencyError(
            f"Keycloak {version} is not in the cache ({target}) and mvn is not installed to fetch it",
            service="keycloak",
            hint="run scripts/provision, or install maven, or put the zip there yourself",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"fetching Keycloak {version} from Maven Central (about 160 MB, once)")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT.format(version=version)}",
            f"-DoutputDirectory={target.parent}",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=target.parent,
    )
    if result.returncode != 0 or not target.exists():
        raise MissingDependencyError(
            f"mvn could not fetch {ARTIFACT.format(version=version)}",
            service="keycloak",
            hint="check that Maven Central is reachable and the version exists (--keycloak-version)",
            log_tail=(result.stdout + result.stderr)[-2000:],
        )
    return target


def _unpack(archive: Path, target: Path) -> None:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            parts = Path(info.filename).parts[1:]  # drop the top directory keycloak-<v>/
            if not parts:
                continue
            destination = staging.joinpath(*parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, open(destination, "wb") as sink:
                shutil.copyfileobj(source, sink)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                destination.chmod(mode)
    staging.rename(target)


def providers_digest(providers: Path | None) -> str:
    """Content hash of an extensions/themes directory ('' without one): the build is cached by it."""
    if providers is None:
        return ""
    if not providers.is_dir():
        raise UsageError(
            f"the Keycloak providers directory {providers} does not exist",
            hint="fix --keycloak-providers-dir",
        )
    from driveops_env.seeding import content_hash

    return content_hash(providers)[:12]


def _add_providers(home: Path, providers: Path) -> None:
    """``*.jar`` into ``providers/``, ``themes/<name>/`` into ``themes/``: what ``kc.sh build`` picks up."""
    for jar in sorted(providers.glob("*.jar")):
        shutil.copy2(jar, home / "providers" / jar.name)
    if (providers / "themes").is_dir():
        shutil.copytree(providers / "themes", home / "themes", dirs_exist_ok=True)


def build(cache: Path, version: str, db: str, java: str, progress: Progress, providers: Path | None = None) -> Path:
    """Unpacked and ``kc.sh build``-ed once per version, database kind and extensions' content."""
    digest = providers_digest(providers)
    home = cache / "keycloak" / f"{version}-{db}{'-' + digest if digest else ''}"
    marker = home / ".driveops-built"
    if marker.exists():
        return home
    archive = fetch(cache, version, progress)
    with FileLock(str(home.parent / f".{home.name}.lock")):
        if marker.exists():
            return home
        shutil.rmtree(home, ignore_errors=True)
        progress(f"unpacking and building Keycloak {version} for {db} (once, about 20 s)")
        _unpack(archive, home)
        if providers is not None:
            _add_providers(home, providers)
        result = subprocess.run(
            [str(home / "bin" / "kc.sh"), "build", f"--db={db}", "--health-enabled=true", "--cache=local"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "JAVA": java},
        )
        if result.returncode != 0:
            raise StartupError(
                f"kc.sh build failed with exit code {result.returncode}",
                service="keycloak",
                log_tail=process.excerpt(result.stdout + result.stderr),
                hint="check the Java version (--java-home; Keycloak needs Java 17+) and the providers",
            )
        marker.write_text(f"{version} {db} {digest}\n")
    return home


def fresh_staging(target: Path) -> Path:
    """The empty ``<target>.partial`` folder a build step fills before renaming it to ``target``."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


@contextlib.contextmanager
def staged_server(install: KeycloakInstall, staging: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """A Keycloak on a build step's own data directory, ready, until the block ends: its base URL."""
    ports = PortAllocator()
    http = ports.allocate()
    management = ports.allocate() if install.versions.has_management_port else None
    ref = process.spawn(install.server_argv(staging, http, management), log_path=log, env=env, cwd=staging)
    try:
        readiness.wait_until(
            lambda: readiness.http_ok(install.versions.health_url("127.0.0.1", http, management)),
            timeout=300,
            service="keycloak",
            alive=lambda: process.is_alive(ref),
            logs=lambda: process.log_excerpt(log),
        )
        yield f"http://127.0.0.1:{http}"
    finally:
        process.terminate(ref, sig=signal.SIGTERM, timeout=60)


def _initialise_base(home: Path, version: str, java: str, base: Path, heap_mb: int, progress: Progress) -> None:
    """Start the build once on an empty data directory: Keycloak creates its schema and the master
    realm with a template admin; the JVM writes a class-data-sharing archive when it exits."""
    staging = fresh_staging(base)
    password = generate_secret()
    install = KeycloakInstall(version, "dev-file", home, java, None, None, None)
    env = install.server_env(heap_mb, f"-XX:ArchiveClassesAtExit={staging / 'classes.jsa'}")
    env |= install.versions.bootstrap_admin_env(TEMPLATE_ADMIN, password)
    progress("initialising Keycloak's base data (schema, master realm; once, about 30 s)")
    with staged_server(install, staging, env, staging / "init.log") as url:
        # exercise the admin login path once, so its classes land in the archive
        from driveops_env.services.keycloak import admin as keycloak

        keycloak.wait_for_admin(url, TEMPLATE_ADMIN, password)
        keycloak.set_admin_password(url, TEMPLATE_ADMIN, password, password, template=True)  # each up logs in
    (staging / "template-admin.json").write_text(json.dumps({"username": TEMPLATE_ADMIN, "password": password}))
    (staging / "template-admin.json").chmod(0o600)
    for leftover in ("transaction-logs",):
        shutil.rmtree(staging / "data" / leftover, ignore_errors=True)
    staging.rename(base)


def ensure_install(
    cache: Path,
    *,
    version: str,
    db: str,
    java_home: Path | None,
    heap_mb: int,
    progress: Progress,
    providers: Path | None = None,
) -> KeycloakInstall:
    KeycloakVersion(version).number  # noqa: B018 - a bad version is a usage error, before any download
    java = find_java(java_home)
    home = build(cache, version, db, java, progress, providers)
    if db != "dev-file":
        return KeycloakInstall(version, db, home, java, None, None, None)
    base = home.with_name(f"{home.name}.base{BASE_RECIPE}")
    if not (base / "template-admin.json").exists():
        with FileLock(str(base.parent / f".{base.name}.lock")):
            if not (base / "template-admin.json").exists():
                started = time.monotonic()
                _initialise_base(home, version, java, base, heap_mb, progress)
                progress(f"Keycloak base data ready in {time.monotonic() - started:.1f}s")
    template = json.loads((base / "template-admin.json").read_text())
    archive = base / "classes.jsa"
    return KeycloakInstall(
        version, db, home, java, base, str(template["password"]), archive if archive.exists() else None
    )


def copy_h2(source: Path, data_dir: Path) -> None:
    """An environment's own copy of an initialised H2 database (the base data, or a realm snapshot's)."""
    target = data_dir / "data" / "h2"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "data" / "h2", target)
