"""Helpers the tests share that are no fixtures (those live in conftest.py)."""

from __future__ import annotations

from typing import Any


def userinfo_status(access: Any, token: str) -> int:
    """The status the realm's userinfo endpoint answers a token with (200, or 401 for another realm's)."""
    from keycloak.exceptions import KeycloakError

    from driveops_env.services.keycloak import admin

    try:
        admin.openid(access).userinfo(token)
    except KeycloakError as exc:
        return int(exc.response_code or 500)
    return 200
