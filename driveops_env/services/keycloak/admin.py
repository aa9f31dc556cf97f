"""Keycloak: admin access, realms per tenant, tokens and their validation.  Backend-independent: it
only talks HTTP to a running server, through python-keycloak (``KeycloakAdmin`` for the admin API,
``KeycloakOpenID`` for tokens and their signature, issuer and audience checks)."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from driveops_env.errors import ServiceError
from driveops_env.services.servers import Explanation
from driveops_env.state import ServiceRecord

TIMEOUT = 30
T = TypeVar("T")


class Realm(Protocol):
    """A tenant's realm as the functions below need it (the access record is one)."""

    base_url: str
    realm: str
    client_id: str
    client_secret: str
    users: dict[str, str]

    @property
    def issuer(self) -> str: ...

    @property
    def audience(self) -> str: ...


def explain(error: str) -> Explanation | None:
    """What Keycloak's refusals mean, as python-keycloak says them (not final while it starts: an
    administrator Keycloak 23 makes after it says it is ready is refused until then)."""
    if "invalid_grant" in error or "Invalid user credentials" in error:
        return Explanation(
            "authentication failed: Keycloak refused the user or its password",
            "the credentials are not the environment's: re-read them with `driveops-env env`",
        )
    return None


def not_answering(what: str, exc: BaseException, tenant: str | None = None) -> ServiceError:
    """The error of a Keycloak that did not answer (a connection refused or timed out) while doing ``what``."""
    return ServiceError(
        f"Keycloak does not answer ({what}: {' '.join(str(exc).split())[:160]})",
        service="keycloak",
        tenant=tenant,
        hint="`driveops-env status` shows whether it runs; `driveops-env up` heals the environment",
    )


@contextmanager
def refusals(what: str, *, tenant: str | None = None, hint: str | None = None) -> Iterator[None]:
    """python-keycloak's errors as a :class:`ServiceError` that says what was refused, or that the
    server did not answer at all (then the hint is what to do about that, not ``hint``)."""
    from keycloak.exceptions import KeycloakConnectionError, KeycloakError

    try:
        yield
    except KeycloakConnectionError as exc:
        raise not_answering(what, exc, tenant) from None
    except KeycloakError as exc:
        body = exc.error_message
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        try:
            parsed = json.loads(text)
            parts = [parsed.get("error"), parsed.get("error_description") or parsed.get("errorMessage")]
            text = ": ".join(str(p) for p in parts if p) or text
        except (ValueError, AttributeError):
            pass
        code = f"{exc.response_code}: " if exc.response_code else ""
        raise ServiceError(f"{what}: {code}{text[:300]}", service="keycloak", tenant=tenant, hint=hint) from None


def base_url(record: ServiceRecord) -> str:
    """Where clients reach a Keycloak server (its issuers are ``<base_url>/realms/<realm>``)."""
    return f"http://{record.host}:{record.port}"


def probe_ready(record: ServiceRecord) -> None:
    """Readiness: HTTP 200 from ``/health/ready``, on the management port where the version has one
    (25+), else on the main port; and then from the main port itself (the management port can say
    ready while the main one is still binding, or failing to: its port taken)."""
    from driveops_env import readiness

    port = record.ports.get("management", record.port)
    readiness.http_ok(f"http://{record.host}:{port}/health/ready")
    if port != record.port:
        with suppress(urllib.error.HTTPError):  # any answer is Keycloak's: a port held by another program never answers
            readiness.http_ok(f"http://{record.host}:{record.port}/realms/master")


def admin_client(
    base_url: str, username: str, password: str, realm: str = "master", token: dict[str, Any] | None = None
) -> Any:
    """python-keycloak's ``KeycloakAdmin`` working on ``realm`` with a master-realm admin login (or
    ``token``, one such login's, refreshed or made again when it expires)."""
    from keycloak import KeycloakAdmin

    return KeycloakAdmin(
        server_url=base_url,
        username=username,
        password=password,
        realm_name=realm,
        user_realm_name="master",
        timeout=TIMEOUT,
        token=token,
    )


class AdminSession:
    """One admin login shared by the realms set up at once (each login is a token request and a session
    of the master realm: a third of a realm's set-up on a JIT-cold server, measured 2026-12-02)."""

    def __init__(self, base_url: str, username: str, password: str, token: dict[str, Any] | None = None) -> None:
        self.base_url, self.username, self._password = base_url, username, password
        self._lock = threading.Lock()
        self._token = token  # one made already (the password's replacement logged in), else the first caller's

    def client(self, realm: str) -> Any:
        """A ``KeycloakAdmin`` of ``realm`` on the shared login (made by the first caller)."""
        with self._lock:
            if self._token is None:
                first = admin_client(self.base_url, self.username, self._password)
                with refusals(f"Keycloak refused the admin login of {self.username!r}"):
                    first.connection.get_token()
                self._token = first.connection.token
        return admin_client(self.base_url, self.username, self._password, realm, token=self._token)


class RealmAdmin:
    """The master realm's administrator: creates and deletes tenant realms."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self._admin = admin_client(base_url, username, password)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        with refusals(what):
            return action()

    def create_realm(self, representation: dict[str, Any]) -> None:
        """Create the realm, with keys made here unless it declares its own (:mod:`.keys`)."""
        from driveops_env.services.keycloak import keys

        name = representation.get("realm")
        complete = keys.with_keys(representation)
        self._call(f"creating realm {name!r}", lambda: self._admin.create_realm(complete))

    def delete_realm(self, name: str) -> None:
        self._call(f"deleting realm {name!r}", lambda: self._admin.delete_realm(name))


def wait_for_admin(base_url: str, username: str, password: str, timeout: float = 60) -> None:
    """Until the bootstrap admin can log in: before 25, Keycloak creates it just after it reports
    ready, so the first attempts may be refused."""
    from driveops_env import readiness

    readiness.wait_until(lambda: check_admin_login(base_url, username, password), timeout=timeout, service="keycloak")


def check_admin_login(base_url: str, username: str, password: str) -> None:
    """Log in to the master realm once (raises :class:`ServiceError` if refused)."""
    from keycloak import KeycloakOpenID

    client = KeycloakOpenID(server_url=base_url, realm_name="master", client_id="admin-cli", timeout=TIMEOUT)
    with refusals(f"Keycloak refused the admin login of {username!r}"):
        client.token(username, password)


# the master realm's hashing of the environment's admin password (and of the template admin's, in the
# base data and the optimized image): one PBKDF2-SHA256 iteration.  Iterations slow down guessing a weak
# password; this one is 32 generated characters, new per environment.  Keycloak 24+ hashes with Argon2
# by default (7 MB of memory per check: about 0.22 s of each admin login, even at one iteration), and
# every realm's set-up, test's realm restore and tenant add logs in (measured 2026-12-02: an admin
# token 245 ms with Argon2, 25 ms with this).
ADMIN_HASHING = "hashAlgorithm(pbkdf2-sha256) and hashIterations(1)"


def set_admin_password(
    base_url: str, username: str, old_password: str, new_password: str, *, template: bool = False
) -> dict[str, Any]:
    """Replace the template admin's password (the same on every environment made from the cached
    base data) by the environment's generated one.  With ``template`` (when the base data and the
    optimized image are made) the master realm first gets :data:`ADMIN_HASHING` and full admin tokens,
    which their copies keep: each ``up`` then neither updates the realm (0.6 s of a JIT-cold server's,
    measured 2026-12-02) nor looks the admin's id up (a full token names it).  Returns the login it
    made: a new password ends no session, so the realms' set-up goes on with it."""
    admin = admin_client(base_url, username, old_password)
    with refusals(f"replacing the password of Keycloak's admin {username!r}"):
        admin.connection.get_token()
        token: dict[str, Any] = admin.connection.token
        if template:
            admin.update_realm("master", {"passwordPolicy": ADMIN_HASHING})
            _full_tokens(admin, "admin-cli")
        user_id = claims(token["access_token"]).get("sub") or admin.get_user_id(username)  # no lookup: the login's
        if user_id is None:
            raise ServiceError(f"the admin user {username!r} does not exist in the master realm", service="keycloak")
        admin.set_user_password(user_id, new_password, temporary=False)
    return token


def _full_tokens(admin: Any, client_id: str) -> None:
    """The client's access tokens carry ``sub`` (24+ make the admin console's lightweight)."""
    internal = admin.get_client_id(client_id)
    attributes = dict(admin.get_client(internal).get("attributes") or {})
    if attributes.get(LIGHTWEIGHT, "false") != "false":
        admin.update_client(internal, {"attributes": attributes | {LIGHTWEIGHT: "false"}})


LIGHTWEIGHT = "client.use.lightweight.access.token.enabled"


def realm_exists(base_url: str, realm: str) -> bool:
    """Whether Keycloak knows the realm (404: it does not); a Keycloak that does not answer is an
    error that says so, not a missing realm."""
    from keycloak import KeycloakOpenID
    from keycloak.exceptions import KeycloakConnectionError, KeycloakError

    try:
        KeycloakOpenID(server_url=base_url, realm_name=realm, client_id="account", timeout=TIMEOUT).well_known()
    except KeycloakConnectionError as exc:
        raise not_answering(f"realm {realm!r} at {base_url}", exc) from None
    except KeycloakError as exc:
        if exc.response_code == 404:
            return False
        raise
    return True


def openid(access: Realm) -> Any:
    """python-keycloak's ``KeycloakOpenID`` for the tenant's API client."""
    from keycloak import KeycloakOpenID

    return KeycloakOpenID(
        server_url=access.base_url,
        realm_name=access.realm,
        client_id=access.client_id,
        client_secret_key=access.client_secret,
        timeout=TIMEOUT,
    )


def user_token(access: Realm, username: str, password: str | None = None) -> dict[str, Any]:
    """A token response for a user of the tenant's realm (password grant on the API client)."""
    if password is None:
        password = access.users.get(username)
        if password is None:
            raise ServiceError(
                f"no password known for user {username!r} of realm {access.realm!r}",
                service="keycloak",
                hint=f"seeded users: {', '.join(sorted(access.users))}; or pass the password",
            )
    with refusals(
        f"Keycloak refused a token to user {username!r} in realm {access.realm!r}",
        hint="check the user name and password (`driveops-env token --help`)",
    ):
        response: dict[str, Any] = openid(access).token(username, password, scope="openid")
    return response


def service_token(access: Realm) -> dict[str, Any]:
    """A token of the API client's service account (client credentials grant)."""
    with refusals(f"Keycloak refused a client-credentials token in realm {access.realm!r}"):
        response: dict[str, Any] = openid(access).token(grant_type="client_credentials")
    return response


def validated_claims(access: Realm, token: str) -> dict[str, Any]:
    """The claims of ``token`` once validated the way an API's JWT bearer handler does: signature by
    the realm's keys (JWKS), issuer, audience (the API client) and expiry."""
    check = {"iss": access.issuer, "aud": access.audience, "exp": None}
    with refusals(f"the token does not validate against realm {access.realm!r}"):
        try:
            claims_: dict[str, Any] = openid(access).decode_token(token, validate=True, check_claims=check)
        except Exception as exc:  # jwcrypto's validation errors
            from keycloak.exceptions import KeycloakInvalidTokenError

            raise KeycloakInvalidTokenError(error_message=str(exc)) from exc
    return claims_


def claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, *without* verifying it (for display; see :func:`validated_claims`)."""
    from jwcrypto import jws

    parsed = jws.JWS()
    try:
        parsed.deserialize(token)
        decoded: dict[str, Any] = json.loads(parsed.objects["payload"])
    except (jws.InvalidJWSObject, KeyError, ValueError) as exc:
        raise ServiceError(f"not a JWT: {exc}", service="keycloak") from exc
    return decoded


@dataclass(frozen=True)
class Database:
    """Keycloak's PostgreSQL database, when ``--keycloak-db postgres``."""

    name: str
    user: str
    password: str


def verify_tenant_token(access: Realm, username: str, *, tenant_id: str, slug: str) -> dict[str, Any]:
    """Tenant-level readiness: ``username`` obtains a token that validates (signature, issuer,
    audience) and whose claims name the tenant."""
    token = user_token(access, username)["access_token"]
    found = validated_claims(access, token)
    if found.get("tenant_id") != tenant_id or found.get("tenant") != slug:
        raise ServiceError(
            f"the token of {username!r} carries tenant_id={found.get('tenant_id')!r}, "
            f"tenant={found.get('tenant')!r}; expected {tenant_id!r}, {slug!r}",
            service="keycloak",
            tenant=slug,
            hint="the realm template needs the tenant_id and tenant claim mappers on the API client",
        )
    return found
