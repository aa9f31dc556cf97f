"""A new realm's keys, made here rather than by Keycloak.

A realm created without key providers gets Keycloak's defaults, and Keycloak then generates two RSA
2048 keys (signature and encryption) in Java: on a freshly started, JIT-cold server on two cores that
was 1 to 2 s of the 1.4 to 2.4 s a realm took to create (measured 2026-12-02 with the tenant template:
0.4 to 0.6 s with the keys given).  OpenSSL (through ``cryptography``) makes the same keys in about
0.05 s each.  The providers given are Keycloak's own defaults, with the RSA keys imported (provider
``rsa``, certificate made by Keycloak from the key) instead of generated; a template that declares its
own key providers is left as it is.  The private keys go to Keycloak in the creation request only.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_PROVIDER = "org.keycloak.keys.KeyProvider"


def with_keys(representation: dict[str, Any]) -> dict[str, Any]:
    """``representation`` with imported RSA keys and generated HMAC/AES secrets, unless it declares key
    providers itself (then unchanged)."""
    components = representation.get("components") or {}
    if KEY_PROVIDER in components:
        return representation
    providers = [
        _rsa("rsa-imported", "SIG", "RS256"),
        _rsa("rsa-enc-imported", "ENC", "RSA-OAEP"),
        _provider("hmac-generated-hs512", "hmac-generated", algorithm=["HS512"]),
        _provider("aes-generated", "aes-generated"),
    ]
    return {**representation, "components": {**components, KEY_PROVIDER: providers}}


def _rsa(name: str, use: str, algorithm: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return _provider(name, "rsa", privateKey=[pem], keyUse=[use], algorithm=[algorithm])


def _provider(name: str, provider_id: str, **config: list[str]) -> dict[str, Any]:
    return {"name": name, "providerId": provider_id, "subComponents": {}, "config": {"priority": ["100"], **config}}
