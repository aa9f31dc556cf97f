"""This test process's copies of the tenants' stores: made on first use, restored before each test
that uses a store an earlier test dirtied, dropped at the end when the environment outlives us."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

from driveops_env import kept
from driveops_env.errors import UsageError
from driveops_env.kept import KeptCopy
from driveops_env.plugin.session import SessionEnvironment
from driveops_env.restore import TenantCopy
from driveops_env.services.base import COPY_TOKEN, Service
from driveops_env.services.capabilities import restored_per_test


def stores_of(fixturenames: list[str], services: Mapping[str, Service[Any, Any]]) -> tuple[str, ...]:
    """The stores a test's fixtures reach, which its test must find at their seed: a service's fixture
    reaches its store; ``tenant`` (the whole handle) every store restored per test."""
    stores: list[str] = []
    for name, service in services.items():
        if not restored_per_test(service):
            continue
        own = {fixture.name for fixture in service.fixtures()} | {"tenant"}
        if own & set(fixturenames):
            stores.append(name)
    return tuple(stores)


@dataclass
class TenantCopies:
    session: SessionEnvironment
    copies: dict[str, TenantCopy] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    restore_times: dict[str, list[float]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # a new copy's name after one was kept
    used: set[str] = field(default_factory=set)  # the tenants whose copies the current test uses

    def copy(self, slug: str) -> TenantCopy:
        env = self.session.environment()
        if slug not in env.tenants:
            env.add_tenants([slug], progress=self.session.progress)
        if slug not in self.copies:
            token = self.tokens.get(slug) or self.session.copy_token()
            copy = TenantCopy(env.state, slug, token, env.settings)
            try:
                copy.make()
            except Exception as exc:
                self.fail_with_servers(slug, f"making this process's copy failed: {exc}")
            self.copies[slug] = copy
        return self.copies[slug]

    def prepare_test(self, slug: str, stores: tuple[str, ...], fresh: tuple[str, ...]) -> TenantCopy:
        """Undo what earlier tests wrote in the stores this test uses; ``fresh``: stores the test asked
        to get made again whatever happened before (a service's reset marker)."""
        copy = self.copy(slug)
        self.used.add(slug)
        stale = tuple(s for s in stores if (slug, s) in self.dirty) + fresh
        if stale:
            try:
                timings = copy.restore(stale)
            except Exception as exc:  # a server of the tenant may be gone: say which
                self.fail_with_servers(slug, f"restoring {', '.join(stale)} failed: {exc}")
            for store, seconds in timings.items():
                self.restore_times.setdefault(store, []).append(seconds)
        self.dirty.update((slug, s) for s in stores)
        return copy

    def keep(self, test: str) -> list[KeptCopy]:
        """The copies the current test used, kept for later (it failed): recorded in the environment's
        directory, no longer this process's; its next test of a tenant gets a new copy."""
        env = self.session.environment()
        if not env.state.data_dir:
            raise UsageError("a descriptor's environment (another machine's) keeps no copy here", hint="")
        found = []
        for slug in sorted(self.used):
            copy = self.copies.get(slug)
            if copy is None:
                continue
            kept_copy = copy.keep(test, env.settings.keep_failed_hours)
            kept.save(kept.folder_of(env.state), kept_copy)
            del self.copies[slug]  # once kept: a copy that could not be stays this process's, dropped at the end
            found.append(kept_copy)
            worker = COPY_TOKEN.fullmatch(copy.token)
            self.tokens[slug] = f"{worker.group(1) if worker else 'main'}_{secrets.token_hex(3)}"
            self.dirty = {(s, store) for s, store in self.dirty if s != slug}
        return found

    def next_test(self) -> None:
        self.used.clear()

    def fail_with_servers(self, slug: str, what: str) -> NoReturn:
        """Fail the test naming the tenant, the servers that are down and how to heal them."""
        env = self.session.environment()
        down = [r.name for r in env.status() if not r.ok and (r.tenant in (slug, None))]
        name = env.name
        message = f"driveops-env: tenant {slug!r} of environment {name!r}: {what}"
        if down:
            message += (
                f"\n  server(s) down: {', '.join(down)}"
                f"\n  inspect: driveops-env logs {down[0].split('.')[0]} --name {name} --tenant {slug}"
                f"\n  heal: driveops-env up --name {name} (recreates an environment with a dead server)"
            )
        pytest.fail(message, pytrace=False)

    def drop(self) -> None:
        """Remove the copies when the environment outlives this process (shared, kept or reused)."""
        plugin = self.session.plugin
        keeps_running = not self.session.exclusive() or plugin.keep or plugin.keep_failed  # may stay for kept ones
        if not keeps_running:
            return
        for slug, copy in self.copies.items():
            try:
                copy.drop()
            except Exception as exc:  # one unreachable server must not keep the others' copies (or the release)
                warnings.warn(f"driveops-env: dropping the copy of tenant {slug!r} failed: {exc}", stacklevel=1)

    def summary(self) -> str | None:
        if not self.restore_times:
            return None
        parts = []
        for store, values in sorted(self.restore_times.items()):
            ordered = sorted(values)
            p50 = ordered[len(ordered) // 2]
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            parts.append(f"{store} p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms (n={len(values)})")
        return "driveops-env per-test restore: " + "; ".join(parts)
