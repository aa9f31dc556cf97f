"""A tenant's realm: the record (issuer, clients, the seeded users), and what ``env`` prints of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driveops_env.secret import mask

API_CLIENT = "driveops-api"
WEB_CLIENT = "driveops-web"


@dataclass
class KeycloakAccess:
    service: str  # the server's key
    base_url: str
    realm: str
    client_id: str
    client_secret: str = field(repr=False)
    web_client_id: str = WEB_CLIENT
    users: dict[str, str] = field(default_factory=dict, repr=False)  # username -> password
    # the server's URL in its issuers when clients reach it at another (``base_url``, a container's on
    # the environment's network): tokens name the URL clients outside use; empty: ``base_url``
    public_url: str = ""

    @property
    def issuer(self) -> str:
        return f"{self.public_url or self.base_url}/realms/{self.realm}"

    @property
    def discovery_url(self) -> str:
        """The realm's OpenID configuration where these clients reach it (its token and JWKS endpoints
        follow the host a request used: the server's backchannel is dynamic)."""
        return f"{self.base_url}/realms/{self.realm}/.well-known/openid-configuration"

    @property
    def audience(self) -> str:
        """The ``aud`` of the realm's access tokens: the API client (an audience mapper puts it there)."""
        return self.client_id


def env(access: KeycloakAccess, style: str) -> dict[str, str]:
    if style == "dotnet":
        return {
            "Keycloak__Authority": access.issuer,
            "Keycloak__Audience": access.audience,
            "Keycloak__ClientId": access.client_id,
            "Keycloak__ClientSecret": access.client_secret,
            "Keycloak__RequireHttpsMetadata": "false",
        }
    out = {
        "DRIVEOPS_KEYCLOAK_URL": access.base_url,
        "DRIVEOPS_KEYCLOAK_REALM": access.realm,
        "DRIVEOPS_KEYCLOAK_ISSUER": access.issuer,
        "DRIVEOPS_KEYCLOAK_DISCOVERY_URL": access.discovery_url,
        "DRIVEOPS_KEYCLOAK_CLIENT_ID": access.client_id,
        "DRIVEOPS_KEYCLOAK_CLIENT_SECRET": access.client_secret,
        "DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID": access.web_client_id,
    }
    if access.users:  # a seeded user, for smoke checks that attach through these variables
        user = next(iter(access.users))
        out |= {"DRIVEOPS_KEYCLOAK_USER": user, "DRIVEOPS_KEYCLOAK_PASSWORD": access.users[user]}
    return out


def from_env(environ: Mapping[str, str], slug: str) -> KeycloakAccess | None:
    if "DRIVEOPS_KEYCLOAK_URL" not in environ:
        return None
    users = {}
    if "DRIVEOPS_KEYCLOAK_USER" in environ:
        users[environ["DRIVEOPS_KEYCLOAK_USER"]] = environ.get("DRIVEOPS_KEYCLOAK_PASSWORD", "")
    realm = environ.get("DRIVEOPS_KEYCLOAK_REALM", slug)
    issuer = environ.get("DRIVEOPS_KEYCLOAK_ISSUER", "")
    public = issuer.removesuffix(f"/realms/{realm}") if issuer.endswith(f"/realms/{realm}") else ""
    return KeycloakAccess(
        "keycloak",
        environ["DRIVEOPS_KEYCLOAK_URL"],
        realm,
        environ.get("DRIVEOPS_KEYCLOAK_CLIENT_ID", API_CLIENT),
        environ.get("DRIVEOPS_KEYCLOAK_CLIENT_SECRET", ""),
        environ.get("DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID", WEB_CLIENT),
        users,
        "" if public == environ["DRIVEOPS_KEYCLOAK_URL"] else public,
    )


def data(access: KeycloakAccess, show_secrets: bool) -> dict[str, Any]:
    return {
        "issuer": access.issuer,
        "realm": access.realm,
        "client_id": access.client_id,
        "client_secret": access.client_secret if show_secrets else mask(access.client_secret),
        "audience": access.audience,
    }
