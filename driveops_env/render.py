"""Text output of the CLI: tables of endpoints, statuses and checks. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driveops_env.health import CheckResult
from driveops_env.secret import mask
from driveops_env.state import EnvState, ServiceRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _hide(text: str, secret: str, show: bool) -> str:
    return text if show or not secret else text.replace(secret, mask(secret))


ENDPOINT_HEADERS = ("tenant", "service", "endpoint", "server")


def endpoints(state: EnvState, *, show_secrets: bool) -> str:
    return table(ENDPOINT_HEADERS, endpoint_rows(state, show_secrets=show_secrets))


def endpoint_rows(state: EnvState, *, show_secrets: bool) -> list[list[str]]:
    rows: list[list[str]] = []
    for tenant in state.tenants.values():
        if tenant.postgres:
            pg = tenant.postgres
            rows.append([tenant.slug, "postgres", _hide(pg.dsn, pg.password, show_secrets), pg.service])
        if tenant.redis:
            r = tenant.redis
            rows.append(
                [
                    tenant.slug,
                    "redis",
                    _hide(r.url, r.password, show_secrets) + f" (keys {r.key_prefix}*)",
                    r.service,
                ]
            )
        if tenant.mongo:
            m = tenant.mongo
            rows.append([tenant.slug, "mongo", _hide(m.uri, m.password, show_secrets), m.service])
        if tenant.keycloak:
            kc = tenant.keycloak
            secret = kc.client_secret if show_secrets else mask(kc.client_secret)
            rows.append([tenant.slug, "keycloak", f"{kc.issuer} (client {kc.client_id}, secret {secret})", kc.service])
    admin = state.services.get("keycloak")
    if admin is not None:
        password = admin.admin_password if show_secrets else mask(admin.admin_password)
        rows.append(
            [
                "-",
                "keycloak",
                f"{admin_base_url(admin)}/admin/ (user {admin.admin_user}, password {password})",
                admin.key,
            ]
        )
    return rows


def endpoints_data(state: EnvState, *, show_secrets: bool) -> dict[str, Any]:
    """What ``endpoints`` shows, as data (``status --json``, ``up --json``): per tenant its endpoints
    and credentials, and the Keycloak administrator; secrets masked unless ``show_secrets``."""

    def hide(value: str) -> str:
        return value if show_secrets else mask(value)

    tenants: dict[str, Any] = {}
    for tenant in state.tenants.values():
        entry: dict[str, Any] = {"tenant_id": tenant.tenant_id, "name": tenant.display_name}
        if tenant.postgres:
            pg = tenant.postgres
            entry["postgres"] = {"dsn": _hide(pg.dsn, pg.password, show_secrets), "host": pg.host,
                                 "port": pg.port, "database": pg.database, "user": pg.user,
                                 "password": hide(pg.password)}  # fmt: skip
        if tenant.redis:
            r = tenant.redis
            entry["redis"] = {"url": _hide(r.url, r.password, show_secrets), "key_prefix": r.key_prefix}
        if tenant.mongo:
            m = tenant.mongo
            entry["mongo"] = {"uri": _hide(m.uri, m.password, show_secrets), "database": m.database}
        if tenant.keycloak:
            kc = tenant.keycloak
            entry["keycloak"] = {
                "issuer": kc.issuer, "realm": kc.realm, "client_id": kc.client_id,
                "client_secret": hide(kc.client_secret), "audience": kc.audience,
            }  # fmt: skip
        tenants[tenant.slug] = entry
    data: dict[str, Any] = {"name": state.name, "backend": state.backend, "isolation": state.isolation,
                            "tenants": tenants}  # fmt: skip
    admin = state.services.get("keycloak")
    if admin is not None:
        data["keycloak_admin"] = {"url": f"{admin_base_url(admin)}/admin/", "user": admin.admin_user,
                                  "password": hide(admin.admin_password)}  # fmt: skip
    return data


def admin_base_url(record: ServiceRecord) -> str:
    return f"http://{record.host}:{record.port}"


def connect_hint(state: EnvState, prog: str = "driveops-env") -> str:
    first = next(iter(state.tenants), "acme")
    return "\n".join(
        [
            "How to connect:",
            f'  eval "$({prog} env --name {state.name} --tenant {first} --format shell)"   '
            "# PG*, DRIVEOPS_* variables with secrets",
            '  psql "$DRIVEOPS_POSTGRES_DSN"; redis-cli -u "$DRIVEOPS_REDIS_URL"',
            f"  {prog} env --name {state.name} --tenant {first} --format dotnet   # the API's configuration keys",
            f"  {prog} token --name {state.name} --tenant {first}   # a seeded user's access token",
            f"  {prog} status --name {state.name}; {prog} down --name {state.name}",
        ]
    )


def checks_rows(results: Sequence[CheckResult]) -> list[list[str]]:
    return [[r.tenant or "-", r.name, "ok" if r.ok else "FAIL", f"{r.elapsed * 1000:.0f}ms", r.detail] for r in results]


def checks_markdown(results: Sequence[CheckResult]) -> str:
    """One row per tenant and check, failures first, with what to do: for ``$GITHUB_STEP_SUMMARY``
    and merge-request notes."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    failed = [r for r in results if not r.ok]
    head = (
        f"**driveops-env check: {len(failed)} of {len(results)} failed**"
        if failed
        else (f"**driveops-env check: all {len(results)} passed**")
    )
    lines = [head, "", "| tenant | check | result | detail | what to do |", "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.ok, r.tenant or "", r.name)):
        result = "ok" if r.ok else "**FAIL**"
        lines.append(
            f"| {cell(r.tenant or '-')} | {cell(r.name)} | {result} | {cell(r.detail)} | {cell(r.hint or '')} |"
        )
    return "\n".join(lines) + "\n"


CHECK_HEADERS = ("tenant", "check", "result", "time", "detail")


def checks(results: Sequence[CheckResult]) -> str:
    return table(CHECK_HEADERS, checks_rows(results))
