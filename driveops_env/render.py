"""Text output of the CLI: tables of endpoints, statuses and checks. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from driveops_env.health import CheckResult
from driveops_env.secret import mask
from driveops_env.state import EnvState


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _hide(text: str, secret: str, show: bool) -> str:
    return text if show or not secret else text.replace(secret, mask(secret))


def endpoints(state: EnvState, *, show_secrets: bool) -> str:
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
            rows.append(
                [tenant.slug, "keycloak", f"{kc.issuer} (client {kc.client_id}, secret {secret})", kc.service]
            )
    admin = state.services.get("keycloak")
    if admin is not None:
        password = admin.admin_password if show_secrets else mask(admin.admin_password)
        rows.append(
            [
                "-",
                "keycloak",
                f"http://{admin.host}:{admin.port}/admin/ (user {admin.admin_user}, password {password})",
                admin.key,
            ]
        )
    return table(["tenant", "service", "endpoint", "server"], rows)


def connect_hint(state: EnvState, prog: str = "driveops-env") -> str:
    first = next(iter(state.tenants), "acme")
    return "\n".join(
        [
            "How to connect:",
            f'  eval "$({prog} env --name {state.name} --tenant {first} --format shell)"   '
            "# PG*, DRIVEOPS_* variables with secrets",
            '  psql "$DRIVEOPS_POSTGRES_DSN"; redis-cli -u "$DRIVEOPS_REDIS_URL"',
            f"  {prog} env --name {state.name} --tenant {first} --format dotnet"
            "   # the API's configuration keys",
            f"  {prog} token --name {state.name} --tenant {first}   # a seeded user's access token",
            f"  {prog} status --name {state.name}; {prog} down --name {state.name}",
        ]
    )


def checks(results: Sequence[CheckResult]) -> str:
    rows = [
        [r.tenant or "-", r.name, "ok" if r.ok else "FAIL", f"{r.elapsed * 1000:.0f}ms", r.detail]
        for r in results
    ]
    return table(["tenant", "check", "result", "time", "detail"], rows)
