"""Text output of the CLI: tables of endpoints, statuses and checks. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driveops_env.health import CheckResult
from driveops_env.services.base import Service
from driveops_env.services.capabilities import HasConsole, IssuesTokens
from driveops_env.state import EnvState, ServiceRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


ENDPOINT_HEADERS = ("tenant", "service", "endpoint", "server")


def endpoints(state: EnvState, services: Mapping[str, Service[Any, Any]], *, show_secrets: bool) -> str:
    return table(ENDPOINT_HEADERS, endpoint_rows(state, services, show_secrets=show_secrets))


def endpoint_rows(state: EnvState, services: Mapping[str, Service[Any, Any]], *, show_secrets: bool) -> list[list[str]]:
    """One row per tenant and store, then the servers' administration entry points (a console)."""
    rows: list[list[str]] = []
    for tenant in state.tenants.values():
        for name, service in services.items():  # the registry's order
            raw = tenant.stores.get(name)
            if raw is not None:
                access = service.load(raw)
                rows.append([tenant.slug, name, access.describe(show_secrets), str(raw.get("service", ""))])
    for record in state.services.values():
        entry = _console(services, record, show_secrets)
        if entry is not None:
            rows.append(
                ["-", record.kind, f"{entry['url']} (user {entry['user']}, password {entry['password']})", record.key]
            )
    return rows


def endpoints_data(state: EnvState, services: Mapping[str, Service[Any, Any]], *, show_secrets: bool) -> dict[str, Any]:
    """What ``endpoints`` shows, as data (``status --json``, ``up --json``): per tenant its endpoints
    and credentials, and the servers' administration entry points (``<service>_admin``); secrets
    masked unless ``show_secrets``."""
    tenants: dict[str, Any] = {}
    for tenant in state.tenants.values():
        entry: dict[str, Any] = {"tenant_id": tenant.tenant_id, "name": tenant.display_name}
        for name, service in services.items():
            if name in tenant.stores:
                access = service.load(tenant.stores[name])
                shown = {
                    "endpoint": access.describe(show_secrets),
                    "endpoint_masked": access.describe(False),
                    "server": tenant.stores[name].get("service"),
                }
                entry[name] = access.data(show_secrets) | shown
        tenants[tenant.slug] = entry
    data: dict[str, Any] = {
        "name": state.name,
        "backend": state.backend,
        "isolation": state.isolation,
        "tenants": tenants,
    }
    for record in state.services.values():
        admin = _console(services, record, show_secrets)
        if admin is not None:
            data[f"{record.kind}_admin"] = admin
    return data


def _console(services: Mapping[str, Service[Any, Any]], record: ServiceRecord, show: bool) -> dict[str, str] | None:
    """A server's administration entry point, where its service has one."""
    service = services.get(record.kind)
    return service.admin(record, show) if isinstance(service, HasConsole) else None


def connect_hint(state: EnvState, services: Mapping[str, Service[Any, Any]], prog: str = "driveops-env") -> str:
    """How to connect: the variables, each service's client fed them (its record's hint), tokens where a
    service issues them."""
    first = next(iter(state.tenants), "")
    stores = state.tenants[first].stores if first else {}
    present = [s for name, s in services.items() if name in stores]
    clients = [s.access_type.client_hint for s in present if s.access_type.client_hint]
    where = f"--name {state.name} --tenant {first}"
    lines = [
        "How to connect:",
        f'  eval "$({prog} env {where} --format shell)"   # the variables, with secrets',
        *([f"  {'; '.join(clients)}"] if clients else []),
        f"  {prog} env {where} --format dotnet   # the API's configuration keys",
    ]
    if any(isinstance(s, IssuesTokens) for s in present):
        lines.append(f"  {prog} token {where}   # a seeded user's access token")
    return "\n".join([*lines, f"  {prog} status --name {state.name}; {prog} down --name {state.name}"])


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
