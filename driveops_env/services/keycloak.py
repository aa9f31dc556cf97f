"""Keycloak: admin access, realms per tenant, tokens and their claims.  Backend-independent: it only
talks HTTP to a running server (python-keycloak for the admin API, plain requests for tokens)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from driveops_env.errors import ServiceError
from driveops_env.state import KeycloakAccess

API_CLIENT = "driveops-api"
WEB_CLIENT = "driveops-web"
TIMEOUT = 30


def _post_form(url: str, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import requests

    response = requests.post(url, data=data, timeout=TIMEOUT)
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:200]}
    return response.status_code, body


def admin_token(base_url: str, username: str, password: str) -> str:
    status, body = _post_form(
        f"{base_url}/realms/master/protocol/openid-connect/token",
        {"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password},
    )
    if status != 200:
        raise ServiceError(
            f"Keycloak refused the admin login of {username!r}: {body.get('error_description') or body}",
            service="keycloak",
        )
    return str(body["access_token"])


def admin_client(base_url: str, username: str, password: str, realm: str = "master") -> Any:
    """python-keycloak's ``KeycloakAdmin`` working on ``realm`` with a master-realm admin login."""
    from keycloak import KeycloakAdmin

    return KeycloakAdmin(
        server_url=base_url, username=username, password=password, realm_name=realm,
        user_realm_name="master", timeout=TIMEOUT,
    )  # fmt: skip


def _admin_request(method: str, url: str, token: str, body: Any = None) -> Any:
    import requests

    response = requests.request(
        method, url, json=body, timeout=TIMEOUT, headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code >= 300:
        raise ServiceError(
            f"Keycloak answered {response.status_code} to {method} {url}: {response.text[:300]}",
            service="keycloak",
        )
    return response.json() if response.content else None


def set_admin_password(base_url: str, username: str, old_password: str, new_password: str) -> None:
    """Replace the template admin's password (the same on every environment made from the cached
    base data) by the environment's generated one."""
    token = admin_token(base_url, username, old_password)
    users = _admin_request(
        "GET", f"{base_url}/admin/realms/master/users?username={username}&exact=true", token
    )
    if not users:
        raise ServiceError(
            f"the admin user {username!r} does not exist in the master realm", service="keycloak"
        )
    _admin_request(
        "PUT",
        f"{base_url}/admin/realms/master/users/{users[0]['id']}/reset-password",
        token,
        {"type": "password", "value": new_password, "temporary": False},
    )


def create_realm(base_url: str, token: str, realm: dict[str, Any]) -> None:
    _admin_request("POST", f"{base_url}/admin/realms", token, realm)


def delete_realm(base_url: str, token: str, realm: str) -> None:
    _admin_request("DELETE", f"{base_url}/admin/realms/{realm}", token)


def realm_exists(base_url: str, realm: str) -> bool:
    import requests

    response = requests.get(f"{base_url}/realms/{realm}/.well-known/openid-configuration", timeout=TIMEOUT)
    return response.status_code == 200


def user_token(access: KeycloakAccess, username: str, password: str | None = None) -> dict[str, Any]:
    """A token response for a user of the tenant's realm (password grant on the API client)."""
    if password is None:
        password = access.users.get(username)
        if password is None:
            raise ServiceError(
                f"no password known for user {username!r} of realm {access.realm!r}",
                service="keycloak",
                hint=f"seeded users: {', '.join(sorted(access.users))}; or pass the password",
            )
    status, body = _post_form(
        f"{access.issuer}/protocol/openid-connect/token",
        {
            "grant_type": "password",
            "client_id": access.client_id,
            "client_secret": access.client_secret,
            "username": username,
            "password": password,
            "scope": "openid",
        },
    )
    if status != 200:
        raise ServiceError(
            f"Keycloak refused a token to user {username!r} in realm {access.realm!r}: "
            f"{body.get('error', '')} {body.get('error_description', '')}".rstrip(),
            service="keycloak",
            hint="check the user name and password (`driveops-env token --help`)",
        )
    return body


def claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, *without* verifying it (for display and tests; verify with the realm's keys)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError) as exc:
        raise ServiceError(f"not a JWT: {exc}", service="keycloak") from exc
    return decoded


def userinfo_status(access: KeycloakAccess, token: str) -> int:
    import requests

    response = requests.get(
        f"{access.issuer}/protocol/openid-connect/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    return response.status_code


@dataclass(frozen=True)
class Database:
    """Keycloak's PostgreSQL database, when ``--keycloak-db postgres``."""

    server: str  # the service key of the PostgreSQL server
    name: str
    user: str
    password: str


def create_tenant_realm(
    access: KeycloakAccess, admin_user: str, admin_password: str, realm: dict[str, Any]
) -> None:
    token = admin_token(access.base_url, admin_user, admin_password)
    create_realm(access.base_url, token, realm)


def verify_tenant_token(
    access: KeycloakAccess, username: str, *, tenant_id: str, slug: str
) -> dict[str, Any]:
    """Tenant-level readiness: ``username`` obtains a token whose claims name the tenant."""
    token = user_token(access, username)["access_token"]
    found = claims(token)
    if found.get("tenant_id") != tenant_id or found.get("tenant") != slug:
        raise ServiceError(
            f"the token of {username!r} carries tenant_id={found.get('tenant_id')!r}, "
            f"tenant={found.get('tenant')!r}; "
            f"expected {tenant_id!r}, {slug!r}",
            service="keycloak",
            tenant=slug,
            hint="the realm template needs the tenant_id and tenant claim mappers on the API client",
        )
    return found
