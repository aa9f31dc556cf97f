"""Keycloak: one server for the environment, a realm per tenant (``--realm-pattern``), rendered from the
realm template with the API client's secret generated per environment, proven by a validated token of a
seeded user that names the tenant.  Realms start from a snapshot where the backend can make one (a copy
of Keycloak's data, or an image, holding the tenant set's realms): then only the secrets change at
``up``.  A test process's copy shares the tenant's realm read-only; a test marked ``keycloak_reset``
gets a realm of its own (``<realm>_<token>``), made again before each such test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from driveops_env import builders
from driveops_env.errors import UsageError
from driveops_env.option_types import Range, declare, parse_optional_path, parse_port
from driveops_env.secret import generate_secret, mask
from driveops_env.services.base import CONTAINER, Fixture, Need, Plan, Prepare, Server, Service, Sources, View, Work
from driveops_env.services.keycloak import access as access_
from driveops_env.services.keycloak import admin, dist, image, image_snapshot, realm, server
from driveops_env.services.keycloak import snapshot as snapshots
from driveops_env.services.keycloak.access import API_CLIENT, WEB_CLIENT, KeycloakAccess
from driveops_env.services.keycloak.endpoint import KeycloakEndpoint
from driveops_env.services.keycloak.versions import DEFAULT_VERSION, KeycloakVersion
from driveops_env.services.postgres import admin as pg_admin
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant

IMAGE = f"quay.io/keycloak/keycloak:{DEFAULT_VERSION}"
DATABASE = "postgres.keycloak"  # the PostgreSQL server of ``--keycloak-db postgres``
KeycloakDb = Literal["dev-file", "postgres"]
C1 = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class KeycloakOptions:
    keycloak_version: str = declare(
        "Keycloak server version (the org.keycloak:keycloak-quarkus-dist zip from Maven Central); 23.0.x to 26.x.",
        lambda: DEFAULT_VERSION,
        DEFAULT_VERSION,
        metavar="VERSION",
    )
    keycloak_db: KeycloakDb = declare(
        "Where Keycloak keeps its data: an H2 file of its own (dev-file, fast), or a PostgreSQL server "
        "of the environment (postgres).",
        lambda: "dev-file",
        "dev-file",
    )
    keycloak_port: int = declare(
        "Keycloak's HTTP port on the publish address; 0 picks a free one (another if it is taken meanwhile).",
        lambda: 0,
        "0",
        parse_port,
        metavar="PORT",
    )
    keycloak_heap_mb: int = declare(
        "Maximum Java heap of Keycloak, in MB.",
        lambda: 512,
        "512",
        Range(64, 65536, "64 GiB: more than a development machine gives one server"),
        metavar="MB",
    )
    keycloak_jvm_options: str = declare(
        "Extra JVM options of Keycloak (JAVA_OPTS_APPEND). The default, the C1 compiler only, brings Keycloak to "
        "its first token about a second sooner on 2 cores (bench/keycloak.py); '' gives the JVM's own defaults.",
        lambda: C1,
        C1,
        metavar="OPTIONS",
    )
    keycloak_providers_dir: Path | None = declare(
        "Directory of Keycloak extensions (*.jar) and themes (themes/<name>/...) built into the server; "
        "the build is cached by their content.",
        lambda: None,
        "none",
        parse_optional_path,
        metavar="DIR",
    )
    keycloak_realms_at_once: int = declare(
        "Realms set up at once (Keycloak creates them one after another anyway).",
        lambda: 3,
        "3",
        Range(1, 32, "Keycloak creates realms one after another: more at once only wait"),
        metavar="N",
    )
    java_home: Path | None = declare(
        "JDK that runs Keycloak (Java 17 or newer).",
        lambda: None,
        "$JAVA_HOME, else java on PATH",
        parse_optional_path,
        metavar="DIR",
    )
    image_keycloak: str = declare("Image of keycloak for the docker backend.", lambda: IMAGE, IMAGE, metavar="IMAGE")

    @property
    def version(self) -> KeycloakVersion:
        return KeycloakVersion(self.keycloak_version)


class KeycloakService(Service[KeycloakAccess, KeycloakOptions], name="keycloak", title="Keycloak", formats=access_):
    restored_per_test = False
    issues_tokens = True
    reset_marker = "keycloak_reset"
    commands = ("java", "kc.sh")
    clients = (
        "keycloak",
        "requests",
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._install: dist.KeycloakInstall | None = None
        self._optimized: tuple[str, str] | None = None  # the derived image, its template admin's password
        self._in_snapshot: set[str] = set()  # realms Keycloak starts with: only their secrets are set
        self._sessions: dict[str, admin.AdminSession] = {}  # the admin login the realms set up here share

    def needs(self, tenant: Tenant, isolation: str, family: str) -> list[Need]:
        own = Need(self.name, self.name, None)
        if self.own.keycloak_db != "postgres":
            return [own]
        return [Need(DATABASE, "postgres", None), replace(own, after=(DATABASE,))]

    def prepare(self, ctx: Prepare) -> str:
        o = self.own
        o.version.number  # noqa: B018 - a bad version is a usage error, before any download
        if ctx.family != CONTAINER:
            self._install = dist.ensure_install(
                self.settings.cache_dir,
                version=o.keycloak_version,
                db=o.keycloak_db,
                java_home=o.java_home,
                heap_mb=o.keycloak_heap_mb,
                progress=ctx.progress,
                providers=o.keycloak_providers_dir,
            )
            return f"{o.keycloak_version}/{o.keycloak_db}"
        if o.keycloak_db == "dev-file" and ctx.engine is not None and ctx.engine.client() is not None:
            self._optimized = image.optimized(
                ctx.engine.client(),
                o.image_keycloak,
                self.settings.cache_dir,
                ctx.progress,
                o.version,
                o.keycloak_providers_dir,
                ctx.engine.addresses(),
            )
        return o.image_keycloak

    def images(self) -> dict[str, str]:
        return {"image_keycloak": self.own.image_keycloak}

    def builds(self, cache: Path) -> list[Path]:
        """The initialised data and the realm snapshots are made in ``*.partial`` folders."""
        root = cache / "keycloak"
        return [root, *sorted(root.glob("*.snapshots"))]

    def collect(self, cache: Path, client: Any | None) -> list[str]:
        """Realm snapshots beyond the most recently used (folders; and images on an engine), and the
        optimized images likewise."""
        removed = builders.prune_folders(sorted((cache / "keycloak").glob("*.snapshots")))
        if client is not None:
            kinds = [(image_snapshot.REPOSITORY, ".{}.lock"), (image.REPOSITORY, "keycloak-optimized-{}.json")]
            removed += builders.prune_images(client, cache, kinds)
        return removed

    def fingerprint(self) -> dict[str, str]:
        return {"keycloak": f"db={self.own.keycloak_db} port={self.own.keycloak_port or 'auto'}"}

    def step_limit(self) -> int | None:
        return self.own.keycloak_realms_at_once

    def step(self, tenant: Tenant) -> str:
        return f"realm {tenant.realm}"

    def render(self, tenant: Tenant, sources: Sources, access: KeycloakAccess | None) -> realm.RealmSeed:
        secret = access.client_secret if access is not None else generate_secret()
        return realm.render_realm(
            sources.realms_dir, sources.seeds_dir, tenant, api_client_secret=secret, limit=sources.limit
        )

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        o = self.own
        database = self._database(deps, plan.family)
        realms = [seed.representation for seed in plan.seeds.values()]
        if plan.family == CONTAINER:
            name, template = self._image(plan, realms)
            return server.container(
                name,
                template,
                o.version,
                database,
                heap_mb=o.keycloak_heap_mb,
                jvm=o.keycloak_jvm_options,
                port=o.keycloak_port,
                engine=plan.engine,
                on_login=self._adopt,
            )
        install = self._install
        assert install is not None, "prepare() first"
        data = install.base_data
        if data is not None and install.template_password is not None and realms:
            data = snapshots.ensure(install, realms, o.keycloak_heap_mb, plan.progress, o.keycloak_jvm_options)
            self._in_snapshot = {str(r.get("realm")) for r in realms}
        return server.process(
            install,
            data,
            database,
            heap_mb=o.keycloak_heap_mb,
            jvm=o.keycloak_jvm_options,
            port=o.keycloak_port,
            on_login=self._adopt,
        )

    def _image(self, plan: Plan, realms: list[dict[str, Any]]) -> tuple[str, str | None]:
        """The optimized image, with the tenants' realms where there are (made once per tenant set)."""
        if self._optimized is None or plan.engine is None:
            return self.own.image_keycloak, None
        optimized, template = self._optimized
        if not realms:
            return optimized, template
        client, addresses = plan.engine.client(), plan.engine.addresses()
        tag = image_snapshot.ensure(
            client,
            optimized,
            template,
            realms,
            self.own.version,
            addresses,
            self.settings.cache_dir / "docker",
            plan.progress,
        )
        self._in_snapshot = {str(r.get("realm")) for r in realms}
        return tag, template

    def _database(self, deps: Mapping[str, ServiceRecord], family: str) -> dict[str, str]:
        """With ``--keycloak-db postgres``: Keycloak's own database and role on that server, and how it
        reaches them (a container by the server's name on the network)."""
        if self.own.keycloak_db != "postgres":
            return {}
        pg = deps[DATABASE]
        database = admin.Database("keycloak", "keycloak", generate_secret())
        pg_admin.create_tenant_database(
            pg_admin.admin_conninfo(pg), role=database.user, password=database.password, database=database.name
        )
        if family == CONTAINER:
            return {"KC_DB": "postgres"} | dist.database_env(database, f"{pg.aliases[0]}:{pg.container_port}")
        return dist.database_env(database, f"{pg.host}:{pg.port}")

    # --- per tenant ---------------------------------------------------------------------------------

    def setup(self, work: Work, record: ServiceRecord) -> KeycloakAccess:
        seed: realm.RealmSeed = work.seed
        found = KeycloakAccess(
            record.key, admin.base_url(record), work.tenant.realm, API_CLIENT, seed.secret, WEB_CLIENT, dict(seed.users)
        )
        if work.tenant.realm in self._in_snapshot:  # the realm is there: only this environment's secrets are new
            secrets = snapshots.secrets_of(seed.representation) | {found.client_id: found.client_secret}
            snapshots.set_client_secrets(self._session(record), seed.representation, secrets)
        else:
            admin.RealmAdmin(found.base_url, record.admin_user, record.admin_password).create_realm(seed.representation)
        if seed.users:  # tenant-level readiness: a seeded user's token validates and names the tenant
            user = next(iter(seed.users))
            admin.verify_tenant_token(found, user, tenant_id=work.tenant.tenant_id, slug=work.tenant.slug)
        return found

    def _session(self, record: ServiceRecord) -> admin.AdminSession:
        fresh = admin.AdminSession(admin.base_url(record), record.admin_user, record.admin_password)
        return self._sessions.setdefault(_session_key(record), fresh)  # atomic: realms are set up in threads

    def _adopt(self, record: ServiceRecord, token: dict[str, Any]) -> None:
        """The start's admin login is the realms' set-up's (a login fewer on the JIT-cold server)."""
        session = admin.AdminSession(admin.base_url(record), record.admin_user, record.admin_password, token)
        self._sessions[_session_key(record)] = session

    def restore(self, access: KeycloakAccess, work: Work) -> KeycloakAccess:
        """The tenant's realm deleted and made again (same client secret); a copy's own realm likewise,
        so that other processes never see theirs vanish."""
        record = work.servers[access.service]
        realms = admin.RealmAdmin(access.base_url, record.admin_user, record.admin_password)
        if work.token is None:
            realms.delete_realm(access.realm)
            realms.create_realm(work.seed.representation)
            return access
        own = f"{work.tenant.realm}_{work.token}"  # "_": in no tenant's realm name
        assert work.sources is not None, "a copy's realm is rendered from the sources"
        seed = self.render(replace(work.tenant, realm=own), work.sources, access)
        if work.memo.get("realm") == own:
            realms.delete_realm(own)
        realms.create_realm(seed.representation)
        work.memo["realm"] = own
        return replace(access, realm=own)

    def drop_copy(self, access: KeycloakAccess, work: Work) -> None:
        if access.realm != work.tenant.realm:  # a realm of its own was made
            self.drop_tenant(access, work)

    def drop_tenant(self, access: KeycloakAccess, work: Work) -> None:
        record = work.servers.get(access.service)
        if record is not None:
            admin.RealmAdmin(access.base_url, record.admin_user, record.admin_password).delete_realm(access.realm)

    # --- reading ------------------------------------------------------------------------------------

    def probe(self, record: ServiceRecord) -> None:
        admin.probe_ready(record)

    def checks(self) -> dict[str, Any]:
        return {"keycloak": _check}

    def inside(
        self, access: KeycloakAccess, servers: Mapping[str, ServiceRecord]
    ) -> tuple[KeycloakAccess, dict[str, str]]:
        """The server by its name on the network; the issuer stays (its hostname is the URL clients use
        outside, and the token and JWKS endpoints follow the host a request used)."""
        record = servers.get(access.service)
        if record is None or not record.aliases:
            return access, {}
        base = f"http://{record.aliases[0]}:{record.container_port}"
        moved = replace(access, base_url=base, public_url=access.public_url or access.base_url)
        return moved, {"Keycloak__MetadataAddress": moved.discovery_url}

    def describe(self, access: KeycloakAccess, show_secrets: bool) -> str:
        secret = access.client_secret if show_secrets else mask(access.client_secret)
        return f"{access.issuer} (client {access.client_id}, secret {secret})"

    def admin(self, record: ServiceRecord, show_secrets: bool) -> dict[str, str] | None:
        password = record.admin_password if show_secrets else mask(record.admin_password)
        return {"url": f"{admin.base_url(record)}/admin/", "user": record.admin_user, "password": password}

    def endpoint(self, access: KeycloakAccess, servers: Mapping[str, ServiceRecord]) -> KeycloakEndpoint:
        record = servers.get(access.service)
        return KeycloakEndpoint.of(access, record.admin_user if record else "", record.admin_password if record else "")

    def fixtures(self) -> list[Fixture]:
        return [
            Fixture("tenant_keycloak", "python-keycloak KeycloakAdmin on the tenant's realm.", _realm_admin),
            Fixture("tenant_token", 'tenant_token("admin@acme.test") -> an access token of a seeded user.', _tokens),
        ]

    def token(
        self, access: KeycloakAccess, user: str | None, password: str | None, *, client_credentials: bool = False
    ) -> str:
        if client_credentials:
            return str(admin.service_token(access)["access_token"])
        if user is None and not access.users:
            raise UsageError(f"realm {access.realm!r} has no seeded user", hint="name a user and a password")
        return str(admin.user_token(access, user or next(iter(access.users)), password)["access_token"])

    def claims(self, access: KeycloakAccess, token: str) -> dict[str, Any]:
        return admin.validated_claims(access, token)


def _session_key(record: ServiceRecord) -> str:
    """A server's admin session's key: a healed server (another URL or password) gets another."""
    return f"{admin.base_url(record)} {record.admin_user} {record.admin_password}"


def _check(view: View) -> str:
    found: KeycloakAccess = view.access("keycloak")
    if not admin.realm_exists(found.base_url, found.realm):
        raise RuntimeError(f"realm {found.realm!r} does not exist")
    token = view.token_claims()
    user = token[0] if token else "no seeded user"
    return f"realm {found.realm} present, token obtained for {user}"


def _realm_admin(handle: Any) -> Iterator[Any]:
    yield handle.keycloak.admin()


def _tokens(handle: Any) -> Iterator[Any]:
    yield handle.token
