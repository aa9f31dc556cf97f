from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from driveops_env.errors import TemplateError, UsageError
from driveops_env.tenants import (
    CatalogueEntry,
    database_name,
    derive_tenant_id,
    describe_differences,
    load_catalogue,
    parse_tenant_list,
    resolve_tenants,
    validate_env_name,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        (" , ", "empty"),
        ("acme,acme", "listed twice"),
        ("acme,", "empty entry"),
        ("Acme", "not a valid slug"),
        ("ac me", "not a valid slug"),
        ("acme;drop", "not a valid slug"),
        ("../x", "not a valid slug"),
        ("master", "reserved"),
        ("a" * 32, "32 characters long"),
        ("a", "not a valid slug"),
        ("1acme", "not a valid slug"),
        ("acme_x", "not a valid slug"),
    ],
)
def test_bad_tenant_lists_are_usage_errors(value: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_tenant_list(value)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_good_tenant_list_keeps_order() -> None:
    assert parse_tenant_list("beta, acme,my-garage2") == ("beta", "acme", "my-garage2")
    assert parse_tenant_list(["acme"]) == ("acme",)
    assert parse_tenant_list("a" * 31) == ("a" * 31,)


def test_catalogue_gives_fixed_ids_and_names() -> None:
    catalogue = load_catalogue(REPO / "seeds" / "tenants.json")
    tenants = resolve_tenants(["acme", "beta", "gamma"], catalogue)
    acme, beta, gamma = tenants
    assert acme.tenant_id == "550e8400-e29b-41d4-a716-446655440001"
    assert acme.display_name == "Acme Garage"
    assert beta.display_name == "Beta Motors"
    assert beta.tenant_id == "550e8400-e29b-41d4-a716-446655440002"
    # not in the catalogue: a deterministic uuid5
    assert gamma.tenant_id == derive_tenant_id("gamma") == resolve_tenants(["gamma"], {})[0].tenant_id
    assert uuid.UUID(gamma.tenant_id).version == 5
    assert gamma.tenant_id != derive_tenant_id("gammb")
    assert database_name(acme.slug) == "driveops_acme"
    assert acme.realm == "acme"


def test_realm_pattern() -> None:
    (acme,) = resolve_tenants(["acme"], {}, "tenant-{slug}")
    assert acme.realm == "tenant-acme"
    with pytest.raises(UsageError, match="realm pattern"):
        resolve_tenants(["acme"], {}, "{nope}")
    # without {slug} every tenant would get the same realm: refused at once, even for one tenant
    with pytest.raises(UsageError, match=r"has no \{slug\}"):
        resolve_tenants(["acme", "beta"], {}, "fixed")
    # the placeholder is replaced literally: nothing else in braces is evaluated
    with pytest.raises(UsageError, match="realm pattern"):
        resolve_tenants(["acme"], {}, "{slug.__class__}")
    with pytest.raises(UsageError, match="not valid"):
        resolve_tenants(["acme"], {}, "{slug}-{slug.__class__}")
    (twice,) = resolve_tenants(["acme"], {}, "{slug}.{slug}")
    assert twice.realm == "acme.acme"


def test_no_two_tenants_share_an_id_even_a_derived_one() -> None:
    catalogue = {"acme": CatalogueEntry("acme", derive_tenant_id("gamma"), "Acme")}
    with pytest.raises(UsageError, match="'acme' and 'gamma' would share the tenant_id"):
        resolve_tenants(["acme", "gamma"], catalogue)
    (gamma,) = resolve_tenants(["gamma"], {})  # alone it is fine; beside acme (a running tenant) it is not
    with pytest.raises(UsageError, match="would share the tenant_id"):
        resolve_tenants(["gamma"], {}, existing=resolve_tenants(["acme"], catalogue))
    assert gamma.tenant_id == derive_tenant_id("gamma")


def test_broken_catalogue_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text('{"tenants": [{"slug": "acme", "tenant_id": "not-a-guid", "name": "x"}]}')
    with pytest.raises(TemplateError, match=str(path)):
        load_catalogue(path)
    path.write_text("{broken")
    with pytest.raises(TemplateError, match=r"tenants\.json"):
        load_catalogue(path)
    assert load_catalogue(tmp_path / "missing.json") == {}


def test_env_names() -> None:
    assert validate_env_name("default") == "default"
    for bad in ("", "Bad", "a/b", "x" * 41, "-x"):
        with pytest.raises(UsageError):
            validate_env_name(bad)


def test_differences_are_readable() -> None:
    old = {"tenants": ["acme=1/acme", "beta=2/beta"], "isolation": "dedicated"}
    new = {"tenants": ["acme=1/acme"], "isolation": "shared"}
    assert describe_differences(old, new) == ["isolation: dedicated -> shared", "tenants: acme,beta -> acme"]


def test_catalogue_file_is_valid_json_with_acme() -> None:
    raw = json.loads((REPO / "seeds" / "tenants.json").read_text())
    assert {
        "slug": "acme",
        "tenant_id": "550e8400-e29b-41d4-a716-446655440001",
        "name": "Acme Garage",
    } in raw["tenants"]
