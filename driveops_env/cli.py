"""``driveops-env``: parse, call the library, render.  Exit codes: 0 ok, 1 failure, 2 bad input,
130 interrupted."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from driveops_env import envvars, health, options, orchestrator, render, reset
from driveops_env.backends import create_backend
from driveops_env.errors import DriveopsEnvError, UsageError
from driveops_env.services import keycloak
from driveops_env.state import EnvState, ServiceRecord, TenantRecord

# Options that locate an environment: every command takes them.
LOCATORS = ("name", "state_dir", "data_dir", "cache_dir")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"driveops-env: error: {message}\n")


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group("environment options (also DRIVEOPS_ENV_* and [tool.driveops-env])")
    for option in options.OPTIONS:
        if option.name in names:
            group.add_argument(
                option.flag,
                dest=f"opt_{option.name}",
                metavar=option.metavar,
                default=None,
                help=f"{option.help} [env {option.env_var}; default: {option.default_doc}]",
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="driveops-env", description="Local DriveOps environments: one Keycloak, per-tenant stores."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    all_names = [o.name for o in options.OPTIONS]

    p = sub.add_parser("up", help="start (or attach to) an environment, seed it, print how to connect")
    _add_options(p, all_names)
    p.add_argument("--recreate", action="store_true", help="replace a running environment whose spec differs")
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")

    p = sub.add_parser("down", help="stop an environment and remove its data")
    _add_options(p, LOCATORS)
    p.add_argument("--keep-data", action="store_true", help="keep data directories and logs for inspection")

    p = sub.add_parser("status", help="live health of every server; exit 1 if anything is down")
    _add_options(p, LOCATORS)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")

    p = sub.add_parser("env", help="a tenant's connection settings as environment variables (with secrets)")
    _add_options(p, LOCATORS)
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument(
        "--format", choices=envvars.FORMATS, default="dotenv", help="output format (default dotenv)"
    )

    p = sub.add_parser("logs", help="print a server's log")
    _add_options(p, LOCATORS)
    p.add_argument("service", help="postgres, redis, ... or a server key such as postgres.acme")
    p.add_argument("--tenant", help="tenant slug, when each tenant has its own server")
    p.add_argument("--lines", type=int, default=None, help="only the last N lines")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")

    p = sub.add_parser("check", help="the production guide's health checks per tenant; exit 1 if one fails")
    _add_options(p, LOCATORS)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("token", help="an access token of a tenant's user, alone on stdout")
    _add_options(p, LOCATORS)
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument("--user", help="user name (default: the first seeded user, e.g. admin@acme.test)")
    p.add_argument("--password", help="password (default: the seeded one); prefer DRIVEOPS_TOKEN_PASSWORD")
    p.add_argument("--decode", action="store_true", help="print the token's claims as JSON instead")

    p = sub.add_parser("reset", help="bring a tenant back to its seeded state (data, keys, realm)")
    _add_options(p, LOCATORS)
    p.add_argument("--tenant", required=True, help="tenant slug")
    p.add_argument("--only", help="comma-separated stores to reset (default: all): postgres, redis, keycloak")

    p = sub.add_parser(
        "prepare", help="fetch and build what `up` needs (Keycloak, template cluster), start nothing"
    )
    _add_options(p, [o.name for o in options.OPTIONS if o.name != "tenants"])

    p = sub.add_parser("gc", help="remove every environment whose owner is gone (and orphaned containers)")
    _add_options(p, LOCATORS)
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    p = sub.add_parser("options", help="print the options reference (Markdown)")
    return parser


def _settings(args: argparse.Namespace) -> options.Settings:
    cli = {o.name: getattr(args, f"opt_{o.name}", None) for o in options.OPTIONS}
    return options.resolve(cli=cli)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings(args)
    result = orchestrator.up(settings, recreate=args.recreate, detach=True, progress=_progress)
    state = result.state
    verb = "already running; attached" if result.attached else "up"
    _progress(f"environment {state.name!r} {verb} in {result.elapsed:.2f}s")
    print(render.endpoints(state, show_secrets=args.show_secrets))
    print()
    print(render.connect_hint(state, _prog()))
    return 0


def _prog() -> str:
    """How the user can call this CLI again: its name when it is on PATH, else its full path."""
    found = shutil.which("driveops-env")
    if found and Path(found).resolve() == Path(sys.argv[0]).resolve():
        return "driveops-env"
    return sys.argv[0] if sys.argv[0].endswith("driveops-env") else "driveops-env"


def cmd_down(args: argparse.Namespace) -> int:
    settings = _settings(args)
    started = time.monotonic()
    if orchestrator.down(settings, settings.name, keep_data=args.keep_data, progress=_progress):
        kept = " (data kept)" if args.keep_data else ""
        _progress(f"environment {settings.name!r} is down{kept} in {time.monotonic() - started:.2f}s")
    else:
        _progress(f"environment {settings.name!r} is not running; nothing to do")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    results = health.service_status(state, create_backend(state.backend, settings))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(
            f"environment {state.name!r}: backend {state.backend}, isolation {state.isolation}, "
            f"tenants {', '.join(state.tenants)}"
        )
        print(render.checks(results))
        print()
        print(render.endpoints(state, show_secrets=args.show_secrets))
    return 0 if all(r.ok for r in results) else 1


def cmd_env(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    slug = args.tenant or next(iter(state.tenants))
    tenant = state.tenants.get(slug)
    if tenant is None:
        raise UsageError(
            f"tenant {slug!r} is not part of environment {state.name!r}",
            hint=f"its tenants are: {', '.join(state.tenants)}",
        )
    variables = envvars.dotnet(tenant) if args.format == "dotnet" else envvars.plain(state.name, tenant)
    print(envvars.render(variables, args.format))
    return 0


def _find_service(services: dict[str, ServiceRecord], name: str, tenant: str | None) -> ServiceRecord:
    if name in services:
        return services[name]
    matches = [
        r for r in services.values() if r.kind == name and (tenant is None or r.tenant in (tenant, None))
    ]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(sorted(services))
    if not matches:
        raise UsageError(
            f"no server {name!r}" + (f" for tenant {tenant!r}" if tenant else ""), hint=f"servers: {choices}"
        )
    raise UsageError(f"several {name} servers; say which with --tenant", hint=f"servers: {choices}")


def cmd_logs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    record = _find_service(state.services, args.service, args.tenant)
    backend = create_backend(state.backend, settings)
    sys.stdout.write(backend.logs(record, args.lines))
    sys.stdout.flush()
    if args.follow and record.log_path:
        with open(record.log_path, errors="replace") as handle:
            handle.seek(0, 2)
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    results = health.tenant_checks(state)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(render.checks(results))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"check {r.name} failed for tenant {r.tenant}: {r.detail}", file=sys.stderr)
    return 1 if failed else 0


def _tenant(state: EnvState, slug: str | None) -> TenantRecord:
    slug = slug or next(iter(state.tenants))
    tenant = state.tenants.get(slug)
    if tenant is None:
        raise UsageError(
            f"tenant {slug!r} is not part of environment {state.name!r}",
            hint=f"its tenants are: {', '.join(state.tenants)}",
        )
    return tenant


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    tenant = _tenant(state, args.tenant)
    if tenant.keycloak is None:
        raise UsageError(
            f"environment {state.name!r} runs no Keycloak", hint="start it with keycloak in --services"
        )
    user = args.user or next(iter(tenant.keycloak.users), None)
    if user is None:
        raise UsageError("the realm has no seeded user; pass --user and --password")
    password = args.password or os.environ.get("DRIVEOPS_TOKEN_PASSWORD")
    token = str(keycloak.user_token(tenant.keycloak, user, password)["access_token"])
    print(json.dumps(keycloak.claims(token), indent=2, sort_keys=True) if args.decode else token)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = orchestrator.load_running(settings, settings.name)
    stores = tuple(s.strip() for s in args.only.split(",")) if args.only else reset.STORES
    unknown = [s for s in stores if s not in reset.STORES]
    if unknown:
        raise UsageError(f"unknown store(s) {', '.join(unknown)}", hint=f"use {', '.join(reset.STORES)}")
    timings = reset.reset_tenant(state, _tenant(state, args.tenant).slug, stores)
    for store, seconds in timings.items():
        _progress(f"  ok  reset {store:<10} {seconds:6.2f}s")
    _progress(f"tenant {args.tenant!r} is back to its seeded state")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from driveops_env import gc

    removed = gc.collect(_settings(args), dry_run=args.dry_run, progress=_progress)
    if not removed:
        _progress("nothing to remove")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    settings = _settings(args)
    started = time.monotonic()
    versions = orchestrator.prepare(settings, progress=_progress)
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    _progress(f"prepared ({listed}) in {time.monotonic() - started:.1f}s")
    return 0


def cmd_options(args: argparse.Namespace) -> int:
    print(options.markdown_table())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "logs": cmd_logs,
    "check": cmd_check,
    "token": cmd_token,
    "reset": cmd_reset,
    "gc": cmd_gc,
    "prepare": cmd_prepare,
    "options": cmd_options,
}


def _interrupt(signum: int, frame: FrameType | None) -> Any:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except DriveopsEnvError as exc:
        print(f"driveops-env: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("driveops-env: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
