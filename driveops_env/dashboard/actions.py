"""The dashboard's actions, each the library call the CLI makes: ``reset`` (a tenant, or one store of
it), ``token`` (a seeded user's, with its validated claims), ``check``, ``add`` and ``remove`` (a
tenant).  A descriptor's environment is read-only for resets and tenants."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import MappingProxyType
from typing import Any

from driveops_env.environment import Environment
from driveops_env.errors import UsageError
from driveops_env.tenants import validate_slug

CHANGING = frozenset({"reset", "add", "remove"})
FIELDS = ("tenant", "store", "user")  # what an action's body may say, each a string (its size: guard.py)
EXAMPLE = 'send a JSON object such as {"tenant": "acme", "store": "<a store of the tenant>"}'


def parse_body(raw: bytes) -> dict[str, str]:
    """An action's body: empty, or a JSON object whose keys are :data:`FIELDS` and values strings."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"the body is not JSON ({str(exc)[:80]})", hint=EXAMPLE) from None
    if not isinstance(body, dict):
        raise UsageError(f"the body is a JSON {type(body).__name__}, not an object", hint=EXAMPLE)
    unknown = sorted(key for key in body if key not in FIELDS)
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(map(repr, unknown))}", hint=f"use {', '.join(FIELDS)}")
    wrong = sorted(key for key, value in body.items() if not isinstance(value, str))
    if wrong:
        raise UsageError(f"field(s) {', '.join(map(repr, wrong))} must be strings", hint=EXAMPLE)
    return body


def run(env: Environment, name: str, body: dict[str, str], *, read_only: bool) -> dict[str, Any]:
    if name not in ACTIONS:
        raise UsageError(f"no action {name!r}", hint=f"one of: {', '.join(ACTIONS)}")
    if read_only and name in CHANGING:
        raise UsageError(
            f"{name}: a descriptor's environment is read-only here (resets and tenants)",
            hint="run the dashboard on the machine that runs the environment",
        )
    return ACTIONS[name](env, body)


def _slug(env: Environment, body: dict[str, str]) -> str:
    slug = body.get("tenant") or (env.tenants[0] if env.tenants else "")
    return validate_slug(slug)


def _reset(env: Environment, body: dict[str, str]) -> dict[str, Any]:
    store = body.get("store")
    seconds = env.tenant(_slug(env, body)).reset([store] if store else None)
    return {"reset": seconds}


def _token(env: Environment, body: dict[str, str]) -> dict[str, Any]:
    tenant = env.tenant(_slug(env, body))
    token = tenant.token(body.get("user") or None)
    return {"token": token, "claims": tenant.claims(token)}


def _check(env: Environment, body: dict[str, str]) -> dict[str, Any]:
    return {"checks": [asdict(r) for r in env.check()]}


def _add(env: Environment, body: dict[str, str]) -> dict[str, Any]:
    return {"added": env.add_tenants([_slug(env, body)])}


def _remove(env: Environment, body: dict[str, str]) -> dict[str, Any]:
    slug = _slug(env, body)
    env.remove_tenant(slug)
    return {"removed": slug}


ACTIONS = MappingProxyType({"reset": _reset, "token": _token, "check": _check, "add": _add, "remove": _remove})
