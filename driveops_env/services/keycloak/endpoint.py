"""What ``TenantHandle.keycloak`` gives: the realm's values, tokens for its users, an admin client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driveops_env.services.keycloak import admin
from driveops_env.services.keycloak.access import KeycloakAccess


@dataclass
class KeycloakEndpoint(KeycloakAccess):
    """A tenant's realm: issuer, audience, base_url, realm, client_id, client_secret, users (seeded
    users and their passwords), tokens for them, an admin client."""

    admin_user: str = field(default="", repr=False)
    admin_password: str = field(default="", repr=False)

    @classmethod
    def of(cls, access: KeycloakAccess, admin_user: str, admin_password: str) -> KeycloakEndpoint:
        return cls(**vars(access), admin_user=admin_user, admin_password=admin_password)

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
