"""Generated secrets: long random alphanumerics, safe in URLs and connection strings unquoted."""

from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits


def generate_secret(length: int = 32) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def mask(secret: str) -> str:
    return "****" if secret else ""


def hide(text: str, secret: str, show: bool) -> str:
    """``text`` with ``secret`` masked, unless ``show``."""
    return text if show or not secret else text.replace(secret, mask(secret))
