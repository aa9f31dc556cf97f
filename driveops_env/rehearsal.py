"""``driveops-env migrate --rehearse``: will the pending migrations break a tenant?  Every tenant's
current data (not the seed) cloned, the pending migrations applied to the clones in parallel, a
result per tenant and store, the clones dropped, the tenants untouched.  Each store's rehearsal is
its service's (``Migrates.rehearse``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from driveops_env import migrating
from driveops_env.errors import DriveopsEnvError, UsageError
from driveops_env.running import load_running, running_settings, services_of, sources_of, work_of
from driveops_env.services.capabilities import Migrates, seed_of
from driveops_env.settings import Settings

LAST_LINES = 5


@dataclass(frozen=True)
class Outcome:
    """One tenant's store rehearsed: ok, or what failed and the command's last lines."""

    tenant: str
    store: str
    ok: bool
    seconds: float
    error: str = ""
    last_lines: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("tenant", "store", "ok", "seconds", "error", "last_lines")}


def rehearse(settings: Settings, name: str, tenants: Sequence[str] = ()) -> list[Outcome]:
    """The pending migrations rehearsed on a clone of each tenant's stores (``tenants``: all when
    empty); [] when nothing is pending."""
    state = load_running(settings, name)
    running = running_settings(settings, state)
    services = services_of(state, running)
    stores = {n: s for n, s in services.items() if isinstance(s, Migrates) and s.migration_key()}
    if not stores:
        raise UsageError(f"no store of environment {name!r} has a migration command", hint="set migrate_<service>")
    unknown = [t for t in tenants if t not in state.tenants]
    if unknown:
        raise UsageError(
            f"environment {name!r} has no tenant {', '.join(unknown)}", hint=f"it has {', '.join(state.tenants)}"
        )
    if not migrating.pending(state, settings):
        return []
    edited = [n for n, s in stores.items() if not s.migration_grew(state.fingerprint)]
    if edited:
        raise UsageError(
            f"the migrations of {', '.join(edited)} changed since environment {name!r} started, not only grew: "
            "no tool applies an edited or removed revision to a tenant's data",
            hint="rehearse a history that adds revisions to the one the environment runs",
        )
    sources = sources_of(state, running)
    jobs: dict[tuple[str, str], Callable[[], float]] = {}
    for slug in tenants or list(state.tenants):
        record = state.tenants[slug]
        for store, service in ((n, s) for n, s in stores.items() if n in record.stores):
            access = service.load(record.stores[store])
            work = work_of(state, record, seed_of(service, record.as_tenant(), sources, access), sources)
            jobs[(slug, store)] = _job(service, access, work)
    return _run(jobs)


def _job(service: Migrates, access: Any, work: Any) -> Callable[[], float]:
    return lambda: service.rehearse(access, work)


def _run(jobs: dict[tuple[str, str], Callable[[], float]]) -> list[Outcome]:
    """Every job in parallel, each one's failure kept as its outcome (the others go on)."""

    def one(key: tuple[str, str], job: Callable[[], float]) -> Outcome:
        started = time.monotonic()
        try:
            return Outcome(*key, True, job())
        except DriveopsEnvError as exc:
            tail = "\n".join((exc.log_tail or "").strip().splitlines()[-LAST_LINES:])
            return Outcome(*key, False, time.monotonic() - started, exc.message, tail)
        except Exception as exc:  # a server's error, whatever its library
            return Outcome(*key, False, time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:300])

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = [pool.submit(one, key, job) for key, job in jobs.items()]
        return [f.result() for f in futures]


def markdown(outcomes: Sequence[Outcome]) -> str:
    """A table for ``$GITHUB_STEP_SUMMARY``: failures first, each with its error and last lines."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    failed = [o for o in outcomes if not o.ok]
    head = f"**driveops-env migrate --rehearse: {len(failed)} of {len(outcomes)} failed**"
    lines = [head, "", "| tenant | store | result | time | error | last lines |", "|---|---|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: (o.ok, o.tenant, o.store)):
        result = "ok" if o.ok else "**FAILED**"
        what = f"{cell(o.error)} | {cell(o.last_lines)}"
        lines.append(f"| {cell(o.tenant)} | {cell(o.store)} | {result} | {o.seconds:.2f} s | {what} |")
    return "\n".join(lines) + "\n"


def rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    return [[o.tenant, o.store, "ok" if o.ok else "FAILED", f"{o.seconds:.2f}s", o.error] for o in outcomes]
