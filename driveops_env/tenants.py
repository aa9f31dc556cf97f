"""Tenants: a slug, a stable GUID, a display name and a realm name; the catalogue they come from;
their validation.  Pure: no process is started and nothing is written."""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveops_env import dotenv_lines, files
from driveops_env.errors import TemplateError, UsageError

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,30}")
ENV_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
RESERVED_SLUGS = frozenset({"master"})
SLUG_PLACEHOLDER = "{slug}"
# a realm name: no "_", which separates a tenant's realm from a test process's copy of it (acme_gw0)
REALM_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
# Namespace of the uuid5 ids given to tenants that are not in the catalogue. Never change it:
# ids derived from it are stored in databases and tokens.
TENANT_NAMESPACE = uuid.UUID("6f1b2c1e-8d4a-5f3e-9b7c-0d2e4f6a8b10")


@dataclass(frozen=True)
class Tenant:
    """One tenant of the platform: a slug, a stable GUID, a display name and its realm."""

    slug: str
    tenant_id: str
    display_name: str
    realm: str


@dataclass(frozen=True)
class CatalogueEntry:
    slug: str
    tenant_id: str
    display_name: str


def database_name(slug: str) -> str:
    """A tenant's name in its stores: its database (and role) in each store."""
    return f"driveops_{slug}"


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is a valid tenant slug, else raise :class:`UsageError`."""
    if slug in RESERVED_SLUGS:
        raise UsageError(
            f"tenant name {slug!r} is reserved (the identity server's own realm)",
            hint="choose another tenant name",
        )
    if len(slug) > 31:
        raise UsageError(
            f"tenant name {slug!r} is {len(slug)} characters long; the limit is 31",
            hint="use a shorter slug",
        )
    if not SLUG_PATTERN.fullmatch(slug):
        raise UsageError(
            f"tenant name {slug!r} is not a valid slug",
            hint="use 2-31 characters: a lowercase letter, then lowercase letters, digits or '-'",
        )
    return slug


def validate_env_name(name: str) -> str:
    if not ENV_NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"environment name {name!r} is not valid",
            hint="use 1-40 characters: lowercase letters, digits, '-' or '_'; start with a letter or digit",
        )
    return name


def parse_tenant_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``acme,beta`` (or a list) into validated slugs; empty lists and duplicates are errors."""
    items = value.split(",") if isinstance(value, str) else list(value)
    slugs = [item.strip() for item in items]
    if not slugs or all(not s for s in slugs):
        raise UsageError("the tenant list is empty", hint="pass at least one tenant, e.g. --tenants acme")
    seen: set[str] = set()
    for slug in slugs:
        if not slug:
            raise UsageError(f"the tenant list {value!r} has an empty entry", hint="remove the stray comma")
        validate_slug(slug)
        if slug in seen:
            raise UsageError(f"tenant {slug!r} is listed twice", hint="list each tenant once")
        seen.add(slug)
    return tuple(slugs)


def load_catalogue(path: Path, *, limit: int | None = None) -> dict[str, CatalogueEntry]:
    """Read the tenant catalogue (``seeds/tenants.json``): slug, tenant id and display name."""
    if not os.path.lexists(path):
        return {}
    raw = files.load_json(path, "tenant catalogue", limit=limit)
    entries: dict[str, CatalogueEntry] = {}
    rows = raw.get("tenants") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        raise TemplateError(f"{path}: expected an object with a 'tenants' list", hint="fix the file")
    for row in rows:
        entry = _catalogue_entry(path, row)
        if entry.slug in entries:
            raise TemplateError(f"{path}: tenant {entry.slug!r} is listed twice", hint="list each tenant once")
        entries[entry.slug] = entry
    _check_ids(path, entries)
    return entries


def _catalogue_entry(path: Path, row: Any) -> CatalogueEntry:
    try:
        if not isinstance(row, dict):
            raise TypeError("an entry must be an object")
        slug = validate_slug(row["slug"]) if isinstance(row["slug"], str) else None
        name = row["name"]
        if slug is None or not isinstance(name, str) or not isinstance(row["tenant_id"], str):
            raise TypeError("slug, tenant_id and name must be strings")
        tenant_id = str(uuid.UUID(row["tenant_id"]))
        if not name.strip() or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
            raise ValueError("the name must be non-empty text without control characters or line breaks")
        if (said := dotenv_lines.problem(name)) is not None:
            raise ValueError(
                f"the name {name!r} has {said}, so `driveops-env env` (dotenv: docker --env-file, "
                "$GITHUB_ENV, python-dotenv) could not hand it over unchanged"
            )
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise TemplateError(
            f"{path}: bad catalogue entry {row!r:.200}: {exc}",
            hint="each entry needs a valid slug, a GUID tenant_id and a one-line name, without quotes at its "
            "start, white space at its ends or ' #'",
        ) from exc
    return CatalogueEntry(slug, tenant_id, name)


def _check_ids(path: Path, entries: Mapping[str, CatalogueEntry]) -> None:
    """No tenant id shared by two slugs, nor equal to the id another slug would be given."""
    owner: dict[str, str] = {}
    for entry in entries.values():
        if entry.tenant_id in owner:
            raise TemplateError(
                f"{path}: tenants {owner[entry.tenant_id]!r} and {entry.slug!r} share the id {entry.tenant_id}",
                hint="give every tenant its own GUID",
            )
        owner[entry.tenant_id] = entry.slug
    for entry in entries.values():
        derived = owner.get(derive_tenant_id(entry.slug))
        if derived is not None and derived != entry.slug:
            raise TemplateError(
                f"{path}: tenant {derived!r} has the id a tenant {entry.slug!r} would be derived",
                hint="give every tenant its own GUID",
            )


def derive_tenant_id(slug: str) -> str:
    """Deterministic id of a tenant that is not in the catalogue."""
    return str(uuid.uuid5(TENANT_NAMESPACE, slug))


def resolve_tenants(
    slugs: Iterable[str],
    catalogue: Mapping[str, CatalogueEntry],
    realm_pattern: str = "{slug}",
    existing: Iterable[Tenant] = (),
) -> tuple[Tenant, ...]:
    """Tenants of ``slugs``: ids from the catalogue, else derived; no two (with ``existing``, the
    tenants of a running environment) may share an id or a realm."""
    validate_realm_pattern(realm_pattern)
    tenants = []
    for slug in slugs:
        entry = catalogue.get(slug)
        tenant_id = entry.tenant_id if entry else derive_tenant_id(slug)
        name = entry.display_name if entry else slug.replace("-", " ").title()
        tenants.append(Tenant(slug=slug, tenant_id=tenant_id, display_name=name, realm=realm_name(realm_pattern, slug)))
    _check_distinct([*existing, *tenants])
    return tuple(tenants)


def validate_realm_pattern(pattern: str) -> str:
    """A realm pattern holds ``{slug}`` (else every tenant would get the same realm) and gives a valid
    realm name; the placeholder is replaced literally (nothing else in braces is evaluated)."""
    if SLUG_PLACEHOLDER not in pattern:
        raise UsageError(
            f"realm pattern {pattern!r} has no {SLUG_PLACEHOLDER}: every tenant would get the same realm",
            hint="use a pattern with the placeholder {slug}, e.g. 'tenant-{slug}'",
        )
    realm_name(pattern, "acme")
    return pattern


def realm_name(pattern: str, slug: str) -> str:
    realm = pattern.replace(SLUG_PLACEHOLDER, slug)
    if realm in RESERVED_SLUGS or not REALM_PATTERN.fullmatch(realm):
        raise UsageError(
            f"realm name {realm!r} (from pattern {pattern!r}) is not valid",
            hint="realm names: letters, digits, '.', '-', up to 64 characters; the pattern holds {slug} once or more",
        )
    return realm


def _check_distinct(tenants: Sequence[Tenant]) -> None:
    for attribute in ("tenant_id", "realm"):
        owner: dict[str, str] = {}
        for tenant in tenants:
            value = getattr(tenant, attribute)
            if value in owner and owner[value] != tenant.slug:
                raise UsageError(
                    f"tenants {owner[value]!r} and {tenant.slug!r} would share the {attribute} {value}",
                    hint="give each tenant its own GUID in the catalogue (tenants.json)"
                    if attribute == "tenant_id"
                    else "use a realm pattern that holds {slug}",
                )
            owner[value] = tenant.slug


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints of an environment."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v).split("=")[0] for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    return str(value)
