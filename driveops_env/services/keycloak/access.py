"""A tenant's realm: the record (issuer, clients, the seeded users), what ``env`` prints of it and what
status shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from driveops_env.secret import mask
from driveops_env.services.keycloak import admin
from driveops_env.services.records import AccessRecord
from driveops_env.state import ServiceRecord

API_CLIENT = "driveops-api"
WEB_CLIENT = "driveops-web"


@dataclass
class KeycloakAccess(AccessRecord):
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

    def env(self, style: str) -> dict[str, str]:
        if style == "dotnet":
            return {
                "Keycloak__Authority": self.issuer,
                "Keycloak__Audience": self.audience,
                "Keycloak__ClientId": self.client_id,
                "Keycloak__ClientSecret": self.client_secret,
                "Keycloak__RequireHttpsMetadata": "false",
            }
        out = {
            "DRIVEOPS_KEYCLOAK_URL": self.base_url,
            "DRIVEOPS_KEYCLOAK_REALM": self.realm,
            "DRIVEOPS_KEYCLOAK_ISSUER": self.issuer,
            "DRIVEOPS_KEYCLOAK_DISCOVERY_URL": self.discovery_url,
            "DRIVEOPS_KEYCLOAK_CLIENT_ID": self.client_id,
            "DRIVEOPS_KEYCLOAK_CLIENT_SECRET": self.client_secret,
            "DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID": self.web_client_id,
        }
        if self.users:  # a seeded user, for smoke checks that attach through these variables
            user = next(iter(self.users))
            out |= {"DRIVEOPS_KEYCLOAK_USER": user, "DRIVEOPS_KEYCLOAK_PASSWORD": self.users[user]}
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str], slug: str) -> Self | None:
        if "DRIVEOPS_KEYCLOAK_URL" not in environ:
            return None
        users = {}
        if "DRIVEOPS_KEYCLOAK_USER" in environ:
            users[environ["DRIVEOPS_KEYCLOAK_USER"]] = environ.get("DRIVEOPS_KEYCLOAK_PASSWORD", "")
        realm = environ.get("DRIVEOPS_KEYCLOAK_REALM", slug)
        issuer = environ.get("DRIVEOPS_KEYCLOAK_ISSUER", "")
        public = issuer.removesuffix(f"/realms/{realm}") if issuer.endswith(f"/realms/{realm}") else ""
        return cls(
            "keycloak",
            environ["DRIVEOPS_KEYCLOAK_URL"],
            realm,
            environ.get("DRIVEOPS_KEYCLOAK_CLIENT_ID", API_CLIENT),
            environ.get("DRIVEOPS_KEYCLOAK_CLIENT_SECRET", ""),
            environ.get("DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID", WEB_CLIENT),
            users,
            "" if public == environ["DRIVEOPS_KEYCLOAK_URL"] else public,
        )

    def data(self, show_secrets: bool) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "realm": self.realm,
            "client_id": self.client_id,
            "client_secret": self.client_secret if show_secrets else mask(self.client_secret),
            "audience": self.audience,
        }

    def describe(self, show_secrets: bool) -> str:
        secret = self.client_secret if show_secrets else mask(self.client_secret)
        return f"{self.issuer} (client {self.client_id}, secret {secret})"

    def inside(self, servers: Mapping[str, ServiceRecord]) -> tuple[Self, dict[str, str]]:
        """The server by its name on the network; the issuer stays (its hostname is the URL clients use
        outside, and the token and JWKS endpoints follow the host a request used)."""
        record = servers.get(self.service)
        if record is None or not record.aliases:
            return self, {}
        base = f"http://{record.aliases[0]}:{record.container_port}"
        moved = replace(self, base_url=base, public_url=self.public_url or self.base_url)
        return moved, {"Keycloak__MetadataAddress": moved.discovery_url}

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> KeycloakEndpoint:
        record = servers.get(self.service)
        admin_user, admin_password = (record.admin_user, record.admin_password) if record else ("", "")
        return KeycloakEndpoint(**vars(self), admin_user=admin_user, admin_password=admin_password)


@dataclass
class KeycloakEndpoint(KeycloakAccess):
    """A tenant's realm: issuer, audience, base_url, realm, client_id, client_secret, users (seeded
    users and their passwords), tokens for them, an admin client."""

    admin_user: str = field(default="", repr=False)
    admin_password: str = field(default="", repr=False)

    def admin(self) -> Any:
        """python-keycloak ``KeycloakAdmin`` working on this tenant's realm."""
        return admin.admin_client(self.base_url, self.admin_user, self.admin_password, realm=self.realm)

    def openid(self) -> Any:
        """python-keycloak ``KeycloakOpenID`` of the API client (tokens, userinfo, validation)."""
        return admin.openid(self)

    def token_response(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        user = user or next(iter(self.users))
        return admin.user_token(self, user, password)

    def token(self, user: str | None = None, password: str | None = None) -> str:
        """An access token of ``user`` (default: the first seeded user)."""
        return str(self.token_response(user, password)["access_token"])

    def validate(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and expiry are checked."""
        return admin.validated_claims(self, token)
