"""The CLI's commands: each parses nothing, calls the library (mostly through :class:`Environment`)
and renders."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from driveops_env import bundle, descriptor, envvars, options, orchestrator, render, reset
from driveops_env.cli import output
from driveops_env.environment import Environment
from driveops_env.errors import UsageError
from driveops_env.services import keycloak
from driveops_env.state import ServiceRecord, TenantRecord


def settings_of(args: argparse.Namespace) -> options.Settings:
    cli = {o.name: getattr(args, f"opt_{o.name}", None) for o in options.OPTIONS}
    return options.resolve(cli=cli)


def environment(args: argparse.Namespace) -> Environment:
    """The environment a command works on: a descriptor's (``--from``), else the running one."""
    settings = settings_of(args)
    from_file = getattr(args, "from_file", None)
    if from_file:
        return Environment.from_descriptor(from_file, settings=settings)
    return Environment.attach(settings.name, settings=settings)


def _prog() -> str:
    """How the user can call this CLI again: its name when it is on PATH, else its full path."""
    found = shutil.which("driveops-env")
    if found and Path(found).resolve() == Path(sys.argv[0]).resolve():
        return "driveops-env"
    return sys.argv[0] if sys.argv[0].endswith("driveops-env") else "driveops-env"


def cmd_up(args: argparse.Namespace) -> int:
    result = orchestrator.up(settings_of(args), recreate=args.recreate, detach=True, progress=output.progress)
    state = result.state
    verb = "already running; attached" if result.attached else "up"
    output.progress(f"environment {state.name!r} {verb} in {result.elapsed:.2f}s")
    if args.json:
        data = render.endpoints_data(state, show_secrets=args.show_secrets)
        print(json.dumps(data | {"attached": result.attached, "elapsed_s": round(result.elapsed, 3)}, indent=2))
        return 0
    output.table(render.ENDPOINT_HEADERS, render.endpoint_rows(state, show_secrets=args.show_secrets))
    print()
    print(render.connect_hint(state, _prog()))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    started = time.monotonic()
    if orchestrator.down(settings, settings.name, keep_data=args.keep_data, progress=output.progress):
        kept = " (data kept)" if args.keep_data else ""
        output.progress(f"environment {settings.name!r} is down{kept} in {time.monotonic() - started:.2f}s")
    else:
        output.progress(f"environment {settings.name!r} is not running; nothing to do")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    env = environment(args)
    results = env.status()
    if args.json:
        data = render.endpoints_data(env.state, show_secrets=args.show_secrets)
        print(json.dumps(data | {"services": [asdict(r) for r in results]}, indent=2))
    else:
        print(
            f"environment {env.name!r}: backend {env.backend}, isolation {env.isolation}, "
            f"tenants {', '.join(env.tenants)}"
        )
        output.table(render.CHECK_HEADERS, render.checks_rows(results))
        print()
        output.table(render.ENDPOINT_HEADERS, render.endpoint_rows(env.state, show_secrets=args.show_secrets))
    return 0 if all(r.ok for r in results) else 1


def _tenant(env: Environment, slug: str | None) -> TenantRecord:
    return env.tenant(slug or env.tenants[0]).record


def cmd_env(args: argparse.Namespace) -> int:
    env = environment(args)
    tenant = _tenant(env, args.tenant)
    metadata = None
    if args.network:
        tenant, metadata = in_network(env, tenant)
    variables = envvars.dotnet(tenant, metadata) if args.format == "dotnet" else envvars.plain(env.name, tenant)
    print(envvars.render(variables, args.format))
    return 0


def in_network(env: Environment, tenant: TenantRecord) -> tuple[TenantRecord, str | None]:
    """The tenant's values as a container on the environment's network sees them: servers by their
    names on the network; Keycloak's issuer unchanged (its hostname is the host-side URL), its
    discovery document by name."""
    services = env.state.services
    if env.backend != "docker":
        raise UsageError(
            "--network needs an environment of the docker backend",
            hint="it has no network of its own otherwise",
        )

    def inside(access: object) -> object:
        record: ServiceRecord = services[access.service]  # type: ignore[attr-defined]
        return replace(access, host=record.aliases[0], port=record.container_port)  # type: ignore[type-var]

    moved = replace(tenant)
    for store in ("postgres", "redis", "mongo"):
        if getattr(tenant, store) is not None:
            setattr(moved, store, inside(getattr(tenant, store)))
    metadata = None
    if tenant.keycloak is not None and "keycloak" in services:
        server = services["keycloak"]
        metadata = (
            f"http://{server.aliases[0]}:{server.container_port}/realms/{tenant.realm}/.well-known/openid-configuration"
        )
    return moved, metadata


def _find_service(services: dict[str, ServiceRecord], name: str, tenant: str | None) -> ServiceRecord:
    if name in services:
        return services[name]
    matches = [r for r in services.values() if r.kind == name and (tenant is None or r.tenant in (tenant, None))]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(sorted(services))
    if not matches:
        raise UsageError(
            f"no server {name!r}" + (f" for tenant {tenant!r}" if tenant else ""), hint=f"servers: {choices}"
        )
    raise UsageError(f"several {name} servers; say which with --tenant", hint=f"servers: {choices}")


def cmd_logs(args: argparse.Namespace) -> int:
    env = environment(args)
    backend = env.runner()
    if args.bundle:
        members = bundle.write(Path(args.bundle), env.state, backend, env.status(), env.check())
        output.progress(f"wrote {args.bundle}: {len(members)} file(s), secrets redacted")
        return 0
    if not args.service:
        raise UsageError("say which server's log", hint=f"one of: {', '.join(env.state.services)}; or --bundle FILE")
    record = _find_service(env.state.services, args.service, args.tenant)
    sys.stdout.write(backend.logs(record, args.lines))
    sys.stdout.flush()
    if args.follow:
        for text in backend.follow(record):
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    results = environment(args).check()
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps([asdict(r) for r in results], indent=2))
    elif fmt == "markdown":
        print(render.checks_markdown(results), end="")
    else:
        output.table(render.CHECK_HEADERS, render.checks_rows(results))
    for r in results:
        if not r.ok:
            hint = f" ({r.hint})" if r.hint else ""
            print(f"check {r.name} failed for tenant {r.tenant}: {r.detail}{hint}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


def cmd_token(args: argparse.Namespace) -> int:
    env = environment(args)
    tenant = _tenant(env, args.tenant)
    if tenant.keycloak is None:
        raise UsageError(f"environment {env.name!r} runs no Keycloak", hint="start it with keycloak in --services")
    if args.client_credentials:
        token = str(keycloak.service_token(tenant.keycloak)["access_token"])
    else:
        user = args.user or next(iter(tenant.keycloak.users), None)
        if user is None:
            raise UsageError("the realm has no seeded user; pass --user and --password")
        if args.password:
            output.progress(
                "warning: --password shows the password to every user of this machine (ps, /proc/<pid>/cmdline); "
                "set DRIVEOPS_TOKEN_PASSWORD instead"
            )
        password = args.password or os.environ.get("DRIVEOPS_TOKEN_PASSWORD")
        token = str(keycloak.user_token(tenant.keycloak, user, password)["access_token"])
    if args.decode:
        print(json.dumps(keycloak.validated_claims(tenant.keycloak, token), indent=2, sort_keys=True))
    else:
        print(token)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    env = environment(args)
    stores = tuple(s.strip() for s in args.only.split(",")) if args.only else reset.STORES
    unknown = [s for s in stores if s not in reset.STORES]
    if unknown:
        raise UsageError(f"unknown store(s) {', '.join(unknown)}", hint=f"use {', '.join(reset.STORES)}")
    timings = env.tenant(args.tenant).reset(stores)
    for store, seconds in timings.items():
        output.progress(f"  ok  reset {store:<10} {seconds:6.2f}s")
    output.progress(f"tenant {args.tenant!r} is back to its seeded state")
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    started = time.monotonic()
    if args.action == "add":
        state, added = orchestrator.add_tenants(settings, settings.name, args.slugs, progress=output.progress)
        there = [slug for slug in args.slugs if slug not in added]
        if there:
            output.progress(
                f"tenant(s) {', '.join(there)} already part of environment {settings.name!r}; nothing to do"
            )
        if added:
            output.progress(f"tenant(s) {', '.join(added)} added in {time.monotonic() - started:.2f}s")
        rows = [r for r in render.endpoint_rows(state, show_secrets=False) if r[0] in added]
        if rows:
            output.table(render.ENDPOINT_HEADERS, rows)
        return 0
    for slug in args.slugs:
        orchestrator.remove_tenant(settings, settings.name, slug, progress=output.progress)
    output.progress(f"tenant(s) {', '.join(args.slugs)} removed in {time.monotonic() - started:.2f}s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    env = environment(args)
    text = descriptor.write(env.state, Path(args.output) if args.output else None)
    if args.output:
        output.progress(f"wrote {args.output} (mode 0600: it holds the environment's credentials)")
    else:
        print(text, end="")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from driveops_env import gc

    removed = gc.collect(settings_of(args), dry_run=args.dry_run, progress=output.progress)
    if not removed:
        output.progress("nothing to remove")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    started = time.monotonic()
    versions = orchestrator.prepare(settings_of(args), progress=output.progress)
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    output.progress(f"prepared ({listed}) in {time.monotonic() - started:.1f}s")
    return 0


def cmd_options(args: argparse.Namespace) -> int:
    print(options.markdown_table())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env, "logs": cmd_logs, "check": cmd_check,
    "token": cmd_token, "reset": cmd_reset, "tenant": cmd_tenant, "export": cmd_export, "gc": cmd_gc,
    "prepare": cmd_prepare, "options": cmd_options,
}  # fmt: skip
