"""Keycloak: one server for the environment, a realm per tenant (``--realm-pattern``), rendered from the
realm template with the API client's secret generated per environment, proven by a validated token of a
seeded user that names the tenant.  Realms start from a snapshot where the backend can make one (a copy
of Keycloak's data, or an image, holding the tenant set's realms): then only the secrets change at
``up``.  A test process's copy shares the tenant's realm read-only; a test marked ``keycloak_reset``
gets a realm of its own (``<realm>_<token>``), made again before each such test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from driveops_env import builders, snapshot_seeds
from driveops_env.errors import UsageError
from driveops_env.masking import Masking, Replacing
from driveops_env.secret import generate_secret, mask
from driveops_env.services.base import (
    CONTAINER,
    PROCESS,
    Explanation,
    Fixture,
    Need,
    Plan,
    Preparation,
    Prepare,
    Server,
    Service,
    Sources,
    View,
    Work,
)
from driveops_env.services.keycloak import admin, dist, image, image_snapshot, realm, server, staging, users
from driveops_env.services.keycloak import snapshot as snapshots
from driveops_env.services.keycloak.access import API_CLIENT, WEB_CLIENT, KeycloakAccess
from driveops_env.services.keycloak.options import KeycloakOptions
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant


class KeycloakService(Service[KeycloakAccess, KeycloakOptions], name="keycloak", title="Keycloak"):
    reset_marker = "keycloak_reset"  # a test marked so gets a realm of its own, made afresh
    step_name = "realm {realm}"
    stages = (PROCESS, CONTAINER)  # its database (a PostgreSQL one) and the realms' snapshot, made before it starts
    commands = ("java", "kc.sh")
    clients = (
        "keycloak",
        "requests",
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._sessions: dict[str, admin.AdminSession] = {}  # a cache: the admin login realms set up here share

    def needs(self, tenant: Tenant, isolation: str, family: str) -> list[Need]:
        own = Need(self.name, self.name, None)
        if self.own.keycloak_db != "postgres":
            return [own]
        database = staging.DATABASE
        return [Need(database, database.split(".")[0], None), replace(own, after=(database,))]

    def prepare(self, ctx: Prepare) -> Preparation:
        o = self.own
        o.version.number  # noqa: B018 - a bad version is a usage error, before any download
        fingerprint = {"keycloak": f"db={o.keycloak_db} port={o.keycloak_port or 'auto'}"}
        if ctx.family != CONTAINER:
            install = dist.ensure_install(
                self.settings.cache_dir,
                version=o.keycloak_version,
                db=o.keycloak_db,
                java_home=o.java_home,
                heap_mb=o.keycloak_heap_mb,
                progress=ctx.progress,
                providers=o.keycloak_providers_dir,
            )
            found: staging.Installed | staging.Optimized = staging.Installed(install)
            version = f"{o.keycloak_version}/{o.keycloak_db}"
        else:
            found, version = staging.optimized(o, self.settings.cache_dir, ctx), o.image_keycloak
        return Preparation(version, fingerprint, o.keycloak_realms_at_once, found)

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

    def render(self, tenant: Tenant, sources: Sources, access: KeycloakAccess | None) -> realm.RealmSeed:
        secret = access.client_secret if access is not None else generate_secret()
        seed = realm.render_realm(
            sources.realms_dir, sources.seeds_dir, tenant, api_client_secret=secret, limit=sources.limit
        )
        part = snapshot_seeds.part_of(self.settings, self.name, tenant.slug)  # started from a snapshot
        if part is None:
            return seed
        representation, passwords = users.realm_with(seed.representation, part, seed.users, secret)
        return realm.RealmSeed(representation, passwords, secret)

    def stage(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> staging.Stage:
        """Its database on the environment's server (``--keycloak-db postgres``), and the tenants'
        realms in a snapshot of its data (a copy of the base data, or an image), made once per tenant set."""
        return staging.stage(self.own, self.settings.cache_dir, plan, deps)

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        o, staged = self.own, staging.staged(plan)
        if plan.family == CONTAINER:
            return server.container(
                staged.image or o.image_keycloak,
                staged.template,
                o.version,
                staged.database,
                heap_mb=o.keycloak_heap_mb,
                jvm=o.keycloak_jvm_options,
                port=o.keycloak_port,
                engine=plan.engine,
                on_login=self._adopt,
            )
        return server.process(
            staging.installed(plan),
            staged.data,
            staged.database,
            heap_mb=o.keycloak_heap_mb,
            jvm=o.keycloak_jvm_options,
            port=o.keycloak_port,
            on_login=self._adopt,
        )

    # --- per tenant ---------------------------------------------------------------------------------

    def setup(self, work: Work, record: ServiceRecord) -> KeycloakAccess:
        seed: realm.RealmSeed = work.seed
        found = KeycloakAccess(
            record.key, admin.base_url(record), work.tenant.realm, API_CLIENT, seed.secret, WEB_CLIENT, dict(seed.users)
        )
        in_snapshot = work.staged.realms if isinstance(work.staged, staging.Stage) else frozenset()
        if work.tenant.realm in in_snapshot:  # the realm is there: only this environment's secrets are new
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
            return replace(access, users=dict(work.seed.users))  # the seed's, also after a snapshot's load
        own = f"{work.tenant.realm}_{work.token}"  # "_": in no tenant's realm name
        if work.sources is None:
            raise ValueError("a copy's realm is rendered from the sources: give the work its sources")
        seed = self.render(replace(work.tenant, realm=own), work.sources, access)
        if work.memo.get("realm") == own:
            realms.delete_realm(own)
        realms.create_realm(seed.representation)
        work.memo["realm"] = own
        return replace(access, realm=own)

    def save_data(self, access: KeycloakAccess, work: Work, target: Path, masking: Masking | None) -> None:
        client = self._session(work.servers[access.service]).client(access.realm)
        with admin.refusals(f"reading the users of realm {access.realm!r}", tenant=work.tenant.slug):
            found = users.exported(client, access.users, masking)
        users.save(target, found)

    def load_data(
        self,
        access: KeycloakAccess,
        work: Work,
        source: Path,
        *,
        as_seed: bool = False,
        replacing: Replacing | None = None,
    ) -> KeycloakAccess:
        """The realm made under a staging name first (what Keycloak refuses leaves the tenant's realm),
        then in place of the tenant's: the seed's settings and clients, the file's users (``as_seed``:
        the seed was rendered from the kept file already)."""
        seed: realm.RealmSeed = work.seed
        representation, passwords = (
            (seed.representation, seed.users)
            if as_seed
            else users.realm_with(seed.representation, source, seed.users, access.client_secret, replacing)
        )
        record = work.servers[access.service]
        trial = f"{access.realm}__next"
        if admin.realm_exists(access.base_url, trial):  # a load that was killed left it
            admin.RealmAdmin(access.base_url, record.admin_user, record.admin_password).delete_realm(trial)
        admin.RealmAdmin(access.base_url, record.admin_user, record.admin_password).create_realm(
            users.trial_of(representation, trial)
        )
        realms = admin.RealmAdmin(access.base_url, record.admin_user, record.admin_password)  # a login that has it
        realms.delete_realm(trial)
        realms.delete_realm(access.realm)
        try:
            realms.create_realm(representation)
        except Exception:  # it passed as the trial: a server that failed meanwhile; the seed's realm back
            realms.create_realm(seed.representation)
            raise
        return replace(access, users=passwords)

    def copy(self, access: KeycloakAccess, work: Work) -> KeycloakAccess:
        return access  # the tenant's realm, read-only, until a marked test asks for one of its own

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

    def explain(self, error: str) -> Explanation | None:
        return admin.explain(error)

    def admin(self, record: ServiceRecord, show_secrets: bool) -> dict[str, str] | None:
        password = record.admin_password if show_secrets else mask(record.admin_password)
        return {"url": f"{admin.base_url(record)}/admin/", "user": record.admin_user, "password": password}

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
