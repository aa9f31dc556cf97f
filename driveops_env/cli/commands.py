"""The CLI's commands: each parses nothing, calls :class:`~driveops_env.environment.Environment` and
renders.  No service or backend is named here."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from driveops_env import envvars, gc, options, process, rehearsal, render
from driveops_env.cli import output, watch
from driveops_env.environment import Environment, TenantHandle
from driveops_env.errors import UsageError
from driveops_env.services import registry
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord


def settings_of(args: argparse.Namespace) -> Settings:
    cli = {o.name: getattr(args, f"opt_{o.name}", None) for o in registry.options()}
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
    env = Environment.up(settings=settings_of(args), recreate=args.recreate, detach=True, progress=output.progress)
    verb = "already running; attached" if env.attached else "up"
    output.progress(f"environment {env.name!r} {verb} in {env.elapsed:.2f}s")
    if args.json:
        data = render.endpoints_data(env.state, env.services(), show_secrets=args.show_secrets)
        print(json.dumps(data | {"attached": env.attached, "elapsed_s": round(env.elapsed, 3)}, indent=2))
        return 0
    output.table(
        render.ENDPOINT_HEADERS, render.endpoint_rows(env.state, env.services(), show_secrets=args.show_secrets)
    )
    print()
    print(render.connect_hint(env.state, env.services(), _prog()))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    started = time.monotonic()
    if Environment.stop(settings.name, settings=settings, keep_data=args.keep_data, progress=output.progress):
        kept = " (data kept)" if args.keep_data else ""
        output.progress(f"environment {settings.name!r} is down{kept} in {time.monotonic() - started:.2f}s")
    else:
        output.progress(f"environment {settings.name!r} is not running; nothing to do")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.watch:
        if args.json:
            raise UsageError("--watch and --json do not go together", hint="status --json prints one snapshot")
        return watch.watch(lambda: environment(args), args.interval)
    env = environment(args)
    if args.json:
        data = env.status_data(show_secrets=args.show_secrets)
        print(json.dumps(data, indent=2))
        return 0 if all(s["ok"] for s in data["services"]) else 1
    results = env.status()
    print(
        f"environment {env.name!r}: backend {env.backend}, isolation {env.isolation}, tenants {', '.join(env.tenants)}"
    )
    output.table(render.CHECK_HEADERS, render.checks_rows(results))
    print()
    rows = render.endpoint_rows(env.state, env.services(), show_secrets=args.show_secrets)
    output.table(render.ENDPOINT_HEADERS, rows)
    return 0 if all(r.ok for r in results) else 1


def _tenant(env: Environment, slug: str | None) -> TenantHandle:
    if not env.tenants:
        raise UsageError(f"environment {env.name!r} has no tenant")
    return env.tenant(slug or env.tenants[0])


def cmd_env(args: argparse.Namespace) -> int:
    env = environment(args)
    style = "dotnet" if args.format == "dotnet" else "plain"
    handle = env.kept_copy(args.copy) if args.copy else _tenant(env, args.tenant)
    print(envvars.render(handle.env_vars(style, network=args.network), args.format))
    return 0


def cmd_copies(args: argparse.Namespace) -> int:
    copies = environment(args).kept_copies()
    rows = [
        [c.id, c.tenant, c.test, time.strftime("%Y-%m-%d %H:%M", time.localtime(c.created)), _until(c.expires)]
        for c in copies
    ]
    output.table(("copy", "tenant", "failed test", "kept since", "until"), rows)
    if not copies:
        output.progress("no kept copy (pytest --driveops-keep-failed keeps those of failed tests)")
    return 0


def _until(moment: float) -> str:
    said = time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))
    return f"{said} (expired: gc drops it)" if moment <= time.time() else said


def _find_server(services: dict[str, ServiceRecord], name: str, tenant: str | None) -> ServiceRecord:
    if name in services:
        return services[name]
    matches = [r for r in services.values() if r.kind == name and (tenant is None or r.tenant in (tenant, None))]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(sorted(services))
    if not matches:
        where = f" for tenant {tenant!r}" if tenant else ""
        raise UsageError(f"no server {name!r}{where}", hint=f"servers: {choices}")
    raise UsageError(f"several {name} servers; say which with --tenant", hint=f"servers: {choices}")


def cmd_logs(args: argparse.Namespace) -> int:
    env = environment(args)
    if args.bundle:
        members = env.bundle(Path(args.bundle))
        output.progress(f"wrote {args.bundle}: {len(members)} file(s), secrets redacted")
        return 0
    if not args.service:
        raise UsageError("say which server's log", hint=f"one of: {', '.join(env.state.services)}; or --bundle FILE")
    if args.service == "migrate":
        sys.stdout.write(_migration_logs(env, _tenant(env, args.tenant).slug, args.lines))
        return 0
    record = _find_server(env.state.services, args.service, args.tenant)
    sys.stdout.write(env.logs(record.key, args.lines))
    sys.stdout.flush()
    if args.follow:
        for text in env.follow(record.key):
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


def _migration_logs(env: Environment, tenant: str, lines: int | None) -> str:
    """Each store's migration output for ``tenant`` (its last ``lines``), each under its name."""
    found = sorted((Path(env.state.data_dir) / "logs").glob(f"migrate.*.{tenant}.log"))
    if not found:
        raise UsageError(f"no migration ran for tenant {tenant!r}", hint="set a store's migrate option (see `options`)")
    texts = [path.read_text(errors="replace") if lines is None else process.tail(path, lines) for path in found]
    return "".join(f"==> {path.name} <==\n{text}" for path, text in zip(found, texts, strict=True))


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
    tenant = _tenant(environment(args), args.tenant)
    if args.password:
        output.progress(
            "warning: --password shows the password to every user of this machine (ps, /proc/<pid>/cmdline); "
            "set DRIVEOPS_TOKEN_PASSWORD instead"
        )
    password = args.password or os.environ.get("DRIVEOPS_TOKEN_PASSWORD")
    token = tenant.token(args.user, password, client_credentials=args.client_credentials)
    print(json.dumps(tenant.claims(token), indent=2, sort_keys=True) if args.decode else token)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    env = environment(args)
    tenant = env.tenant(args.tenant)
    stores = [s.strip() for s in args.only.split(",")] if args.only else tenant.stores
    for store, seconds in tenant.reset(stores).items():
        output.progress(f"  ok  reset {store:<10} {seconds:6.2f}s")
    output.progress(f"tenant {args.tenant!r} is back to its seeded state")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    env = environment(args)
    if args.rehearse:
        return _rehearse(env, args)
    if args.tenant or args.format != "text":
        raise UsageError("--tenant and --format go with --rehearse", hint="migrate applies to every tenant")
    started = time.monotonic()
    applied = env.migrate(progress=output.progress)
    for done in applied:
        output.progress(f"  ok  {done.tenant:<12} {done.store:<10} {done.seconds:6.2f}s")
    if applied:
        output.progress(f"migrated {len(applied)} store(s) in {time.monotonic() - started:.2f}s")
    return 0


def _rehearse(env: Environment, args: argparse.Namespace) -> int:
    tenants = [t.strip() for t in (args.tenant or "").split(",") if t.strip()]
    outcomes = env.rehearse(tenants)
    if not outcomes:
        output.progress(f"environment {env.name!r}: no migration is pending; nothing to rehearse")
    if args.format == "json":
        print(json.dumps([o.as_dict() for o in outcomes], indent=2))
    elif args.format == "markdown":
        print(rehearsal.markdown(outcomes), end="")
    elif outcomes:
        output.table(("tenant", "store", "result", "time", "error"), rehearsal.rows(outcomes))
        for o in (o for o in outcomes if o.last_lines):
            output.progress(f"{o.tenant} {o.store}, last lines:\n{o.last_lines}")
    return 1 if any(not o.ok for o in outcomes) else 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    env = environment(args)
    if args.action == "save":
        if not args.tenant or not args.output or args.as_new or args.force:
            raise UsageError(
                "snapshot save needs --tenant and --output (not --as or --force)",
                hint="snapshot save --tenant acme -o acme.snap",
            )
        done = env.snapshot_save(args.tenant, Path(args.output), mask=args.mask)
        verb = "saved (masked)" if args.mask else "saved"
    else:
        if not args.file or args.output or args.mask or (args.as_new and args.tenant):
            raise UsageError(
                "snapshot load takes a FILE; not --output, --mask, or --tenant with --as",
                hint="snapshot load beta.snap [--as gamma]",
            )
        done = env.snapshot_load(Path(args.file), args.tenant, force=args.force, as_new=args.as_new)
        verb = f"loaded into {args.as_new or args.tenant or done.manifest.tenant}"
    for store, seconds in done.seconds.items():
        size = done.manifest.parts[store].size if store in done.manifest.parts else 0
        output.progress(f"  ok  {store:<10} {size / 1e6:8.2f} MB {seconds:6.2f}s")
    output.progress(f"tenant {done.manifest.tenant}'s snapshot: {verb}, {len(done.seconds)} store(s)")
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    env = environment(args)
    started = time.monotonic()
    if args.action == "remove":
        for slug in args.slugs:
            env.remove_tenant(slug, progress=output.progress)
        output.progress(f"tenant(s) {', '.join(args.slugs)} removed in {time.monotonic() - started:.2f}s")
        return 0
    added = env.add_tenants(args.slugs, progress=output.progress)
    there = [slug for slug in args.slugs if slug not in added]
    if there:
        output.progress(f"tenant(s) {', '.join(there)} already part of environment {env.name!r}; nothing to do")
    if added:
        output.progress(f"tenant(s) {', '.join(added)} added in {time.monotonic() - started:.2f}s")
        rows = render.endpoint_rows(env.state, env.services(), show_secrets=False)
        output.table(render.ENDPOINT_HEADERS, [r for r in rows if r[0] in added])
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    text = environment(args).export(Path(args.output) if args.output else None)
    if args.output:
        output.progress(f"wrote {args.output} (mode 0600: it holds the environment's credentials)")
    else:
        print(text, end="")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    removed = gc.collect(settings_of(args), dry_run=args.dry_run, progress=output.progress)
    if not removed:
        output.progress("nothing to remove")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    started = time.monotonic()
    versions = Environment.prepare(settings_of(args), progress=output.progress)
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    output.progress(f"prepared ({listed}) in {time.monotonic() - started:.1f}s")
    return 0


def cmd_options(args: argparse.Namespace) -> int:
    print(options.markdown_table())
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from driveops_env.dashboard.serve import serve

    read_only = bool(args.from_file)
    return serve(
        lambda: environment(args), port=args.port, interval=args.interval, read_only=read_only, open_page=args.open
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "logs": cmd_logs,
    "check": cmd_check,
    "token": cmd_token,
    "reset": cmd_reset,
    "tenant": cmd_tenant,
    "migrate": cmd_migrate,
    "snapshot": cmd_snapshot,
    "copies": cmd_copies,
    "export": cmd_export,
    "dashboard": cmd_dashboard,
    "gc": cmd_gc,
    "prepare": cmd_prepare,
    "options": cmd_options,
}
