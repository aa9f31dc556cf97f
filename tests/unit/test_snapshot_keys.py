"""A realm snapshot is never used for a different spec: its key changes with the rendered realms, the
Keycloak build and the base data, and not with the per-environment client secret."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from driveops_env.services.keycloak import snapshot as keycloak_snapshot
from driveops_env.services.keycloak.dist import KeycloakInstall
from driveops_env.services.keycloak.realm import render_realm
from driveops_env.tenants import Tenant

REPO = Path(__file__).resolve().parents[2]
ACME = Tenant("acme", "550e8400-e29b-41d4-a716-446655440001", "Acme Garage", "acme")


def _realm(secret: str, tenant: Tenant = ACME, realms: Path = REPO / "realms") -> dict[str, object]:
    return render_realm(realms, REPO / "seeds", tenant, api_client_secret=secret).representation


def test_snapshot_keys(tmp_path: Path) -> None:
    install = KeycloakInstall("26.5.6", "dev-file", tmp_path / "26.5.6-dev-file", "java", tmp_path, "pw", None)
    key = keycloak_snapshot.key(install, [_realm("one")])
    assert keycloak_snapshot.key(install, [_realm("two")]) == key  # secrets are set at up, not snapshotted
    assert keycloak_snapshot.masked(_realm("two"))["clients"][0]["secret"] == keycloak_snapshot.MASK
    renamed = replace(ACME, display_name="Acme Garage SA")
    assert keycloak_snapshot.key(install, [_realm("one", renamed)]) != key  # a changed seed
    changed = tmp_path / "realms"
    changed.mkdir()
    (changed / "tenant-realm.json").write_text(
        (REPO / "realms" / "tenant-realm.json")
        .read_text()
        .replace('"accessTokenLifespan": 300', '"accessTokenLifespan": 600')
    )
    assert keycloak_snapshot.key(install, [_realm("one", realms=changed)]) != key  # a changed template
    assert (
        keycloak_snapshot.key(replace(install, version="23.0.7", home=tmp_path / "23.0.7-dev-file"), [_realm("one")])
        != key
    )
    assert keycloak_snapshot.key(replace(install, template_password="other"), [_realm("one")]) != key  # new base data


def test_a_new_realm_gets_keys_of_its_own_unless_its_template_declares_them() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from driveops_env.services.keycloak import keys

    realm = _realm("one")
    first, second = keys.with_keys(realm), keys.with_keys(realm)
    assert "components" not in realm  # the rendered realm is left as it was
    providers = first["components"][keys.KEY_PROVIDER]
    assert [p["providerId"] for p in providers] == ["rsa", "rsa", "hmac-generated", "aes-generated"]
    assert [p["config"].get("keyUse") for p in providers[:2]] == [["SIG"], ["ENC"]]
    pems = [p["config"]["privateKey"][0] for p in providers[:2]]
    loaded = [serialization.load_pem_private_key(pem.encode(), None) for pem in pems]
    assert all(isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048 for key in loaded)
    again = [p["config"]["privateKey"][0] for p in second["components"][keys.KEY_PROVIDER][:2]]
    assert len(set(pems) | set(again)) == 4  # never shared between realms or between two calls
    own = {**realm, "components": {keys.KEY_PROVIDER: [{"name": "mine", "providerId": "rsa-generated"}]}}
    assert keys.with_keys(own) is own


def test_clients_with_a_secret_get_known_ids_unique_across_realms() -> None:
    beta = Tenant("beta", "550e8400-e29b-41d4-a716-446655440002", "Beta", "beta")
    acme, other = keycloak_snapshot.masked(_realm("one")), keycloak_snapshot.masked(_realm("one", beta))
    ids = [c.get("id") for c in acme["clients"] if "secret" in c]
    assert ids and all(ids)
    assert ids == [c.get("id") for c in keycloak_snapshot.masked(_realm("two"))["clients"] if "secret" in c]
    assert not set(ids) & {c.get("id") for c in other["clients"]}
