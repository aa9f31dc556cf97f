"""Redis: in dedicated mode each tenant has its server (its default user); on the shared server an ACL
user per tenant limited to its key prefix (what else is closed: :mod:`.admin`).  A test process's copy
is a leased logical database (dedicated) or an ACL user of its own under ``<prefix><token>:`` (shared);
restoring empties it and writes the seed again, skipped when nothing was written since."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from driveops_env import process, snapshot_seeds
from driveops_env.masking import Masking, Replacing
from driveops_env.option_types import Range, declare
from driveops_env.secret import generate_secret
from driveops_env.services.base import (
    CONTAINER,
    COPY_TOKEN,
    ContainerSpec,
    Explanation,
    Fixture,
    Need,
    Plan,
    Preparation,
    Prepare,
    ProcessSpec,
    Server,
    Service,
    Sources,
    View,
    Work,
)
from driveops_env.services.redis import admin, pool, seeds, snapshot
from driveops_env.services.redis.access import RedisAccess
from driveops_env.settings import Settings
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant, database_name

IMAGE = "redis:7"
PORT = 6379
CONFIG = "/etc/driveops-env/redis.conf"


@dataclass(frozen=True)
class RedisOptions:
    image_redis: str = declare("Image of redis for the docker backend.", lambda: IMAGE, IMAGE, metavar="IMAGE")
    redis_server: str = declare(
        "The redis-server binary.", lambda: "redis-server", "redis-server on PATH", metavar="PATH"
    )
    redis_restore_pool: int = declare(
        "Ready logical databases holding a tenant's seed each test process keeps ahead (dedicated "
        "isolation), seeded in the background, so that a test's restore is one SWAPDB (0: emptied and "
        "refilled on the test's path).",
        lambda: 1,
        "1",
        Range(0, 8, "a test process's copy, its pristine seed and these share the server's 62 logical databases"),
        metavar="N",
    )


class RedisService(Service[RedisAccess, RedisOptions], name="redis", title="Redis"):
    commands = ("redis-server",)
    clients = ("redis",)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pools: dict[str, pool.SwapPool] = {}  # a test process's copies: ready databases, by token

    def prepare(self, ctx: Prepare) -> Preparation:
        if ctx.family == CONTAINER:
            return Preparation(self.own.image_redis)
        found = admin.find_server(self.own.redis_server)
        out = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"v=(\S+)", out.stdout)
        return Preparation(match.group(1) if match else "unknown", found=found)

    def images(self) -> dict[str, str]:
        return {"image_redis": self.own.image_redis}

    def render(self, tenant: Tenant, sources: Sources, access: RedisAccess | None) -> Any:
        part = snapshot_seeds.part_of(self.settings, self.name, tenant.slug)  # started from a snapshot
        if part is not None:
            return snapshot.entries(part)
        return seeds.render_redis_entries(sources.seeds_dir, tenant, limit=sources.limit)

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        password = generate_secret()
        base = Server(need.key, self.name, need.tenant, "default", password, probe=_probe(password))
        if plan.family == CONTAINER:  # every interface inside the container; published on one address only
            text = admin.config_text(port=PORT, data_dir=None, admin_password=password, bind="0.0.0.0")  # noqa: S104
            base.container = ContainerSpec(
                self.own.image_redis,
                "image_redis",
                PORT,
                command=[CONFIG],
                files={CONFIG: text.encode()},
                data_dirs=("/data",),
            )
            return base
        binary: str = plan.prepared.found

        def config(data_dir: Path, port: int) -> dict[str, str]:
            return {"redis.conf": admin.config_text(port=port, data_dir=data_dir, admin_password=password)}

        base.process = ProcessSpec(
            argv=lambda data_dir, port, _: [binary, str(data_dir / "redis.conf")], as_local_user=True, files=config
        )
        base.retry_on = lambda log: "address already in use" in log.lower()
        return base

    def setup(self, work: Work, record: ServiceRecord) -> RedisAccess:
        prefix = f"{work.tenant.slug}:"
        found = RedisAccess(record.key, record.host, record.port, None, record.admin_password, prefix)
        with AdminClient(record) as client:
            if work.isolation == "shared":
                user = admin.AclUser(database_name(work.tenant.slug), generate_secret(), prefix)
                admin.set_acl_user(client, user)
                found = replace(found, username=user.name, password=user.password)
            seeds.apply_redis(client, work.seed, prefix=prefix)
        admin.probe(found.host, found.port, found.username, found.password)
        return found

    def restore(self, access: RedisAccess, work: Work) -> RedisAccess:
        """A copy's logical database swapped with a ready one; else skipped when nothing was written on
        the server since the last restore (its write counter), or emptied and refilled."""
        if work.token is not None and access.username is None and self.own.redis_restore_pool > 0:
            self._pool(access, work).take()
            return access
        server = work.servers[access.service]
        if work.memo.get("changes") == _changes(server):
            return access
        with AdminClient(server, access.db) as client:
            if access.username is None:  # a whole logical database: the tenant's (0) or a leased copy's
                client.flushdb()
            else:  # the tenant's keys, not its copies' (acme:gw0:...)
                admin.delete_prefixed(client, access.key_prefix, lambda key: is_copy_key(key, access.key_prefix))
            seeds.apply_redis(client, work.seed, prefix=access.key_prefix)
        work.memo["changes"] = _changes(server)
        return access

    def _pool(self, access: RedisAccess, work: Work) -> pool.SwapPool:
        token = str(work.token)
        if token not in self._pools:
            server = work.servers[access.service]
            lease = (self.own.redis_restore_pool, lease_owner(token), lease_is_stale)
            self._pools[token] = pool.SwapPool(
                partial(_admin_client, server), access.db, work.seed, access.key_prefix, lease
            )
        return self._pools[token]

    def save_data(self, access: RedisAccess, work: Work, target: Path, masking: Masking | None) -> None:
        snapshot.save(work.servers[access.service], access, target, is_copy_key)  # values unmasked: see snapshot

    def load_data(
        self,
        access: RedisAccess,
        work: Work,
        source: Path,
        *,
        as_seed: bool = False,
        replacing: Replacing | None = None,
    ) -> RedisAccess:
        snapshot.load(work.servers[access.service], access, source, is_copy_key, replacing)
        return access

    def copy(self, access: RedisAccess, work: Work) -> RedisAccess:
        server, token = work.servers[access.service], str(work.token)
        if access.username is None:
            with AdminClient(server, admin.LEASE_DB) as leases:
                return replace(access, db=admin.claim_database(leases, lease_owner(token), lease_is_stale))
        user = admin.AclUser(f"{access.username}_{token}", generate_secret(), f"{access.key_prefix}{token}:")
        with AdminClient(server) as client:
            admin.set_acl_user(client, user)
        return replace(access, username=user.name, password=user.password, key_prefix=user.key_prefix)

    def keep_copy(self, access: RedisAccess, work: Work) -> None:
        """Its ready database released; its own leased to a holder no process is (``kept <token>``:
        never taken over as stale), so it outlives this process until it is dropped."""
        found = self._pools.pop(str(work.token), None)
        if found is not None:
            found.close(lease_owner(str(work.token)))
        if access.username is None:
            holder = f"kept {work.token}"
            with AdminClient(work.servers[access.service], admin.LEASE_DB) as leases:
                admin.hand_over_lease(leases, access.db, lease_owner(str(work.token)), holder)
            work.memo["lease"] = holder

    def drop_copy(self, access: RedisAccess, work: Work) -> None:
        server = work.servers[access.service]
        found = self._pools.pop(str(work.token), None)
        if found is not None:
            found.close(lease_owner(str(work.token)))
        if access.username is None:
            owner = work.memo.get("lease") or lease_owner(str(work.token))
            with AdminClient(server, access.db) as data, AdminClient(server, admin.LEASE_DB) as leases:
                data.flushdb()
                admin.release_database(leases, access.db, owner)
            return
        self.drop_tenant(access, work)

    def drop_tenant(self, access: RedisAccess, work: Work) -> None:
        if access.username is None:
            return  # its own server: it goes with it
        with AdminClient(work.servers[access.service]) as client:
            admin.delete_prefixed(client, access.key_prefix)
            admin.delete_acl_user(client, access.username)

    def probe(self, record: ServiceRecord) -> None:
        admin.probe(record.host, record.port, None, record.admin_password)

    def checks(self) -> dict[str, Any]:
        return {"redis": _check}

    def explain(self, error: str) -> Explanation | None:
        return admin.explain(error)

    def fixtures(self) -> list[Fixture]:
        return [
            Fixture("tenant_redis", "A redis-py client with the tenant's credentials, on its own copy.", _client),
            Fixture("tenant_redis_async", "A redis.asyncio client (pytest-asyncio or anyio).", _client_async, True),
        ]


class AdminClient:
    """A client of the server as its administrator, closed on leaving."""

    def __init__(self, server: ServiceRecord, db: int = 0) -> None:
        self.client = _admin_client(server, db)

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *_: object) -> None:
        self.client.close()


def _admin_client(server: ServiceRecord, db: int = 0) -> Any:
    return admin.client(server.host, server.port, None, server.admin_password, db=db)


def _probe(password: str) -> Any:
    return lambda record: admin.probe(record.host, record.port, None, password)


def _changes(server: ServiceRecord) -> str:
    """Writes on the server since its last save (any database, any client), with that save's time."""
    with AdminClient(server) as client:
        info = client.info("persistence")
    return f"{info['rdb_changes_since_last_save']}@{info['rdb_last_save_time']}"


def is_copy_key(key: str, tenant_prefix: str) -> bool:
    """Whether a key belongs to a copy (``acme:gw0:...``), which a tenant reset must keep."""
    head, sep, _ = key[len(tenant_prefix) :].partition(":")
    return bool(sep) and COPY_TOKEN.fullmatch(head) is not None


def lease_owner(token: str) -> str:
    """Who holds a leased database: host, pid and start time, so a dead holder's lease is reused."""
    return f"{socket.gethostname()} {os.getpid()} {process.start_time_of(os.getpid())} {token}"


def lease_is_stale(holder: str) -> bool:
    host, _, rest = holder.partition(" ")
    parts = rest.split()
    if host != socket.gethostname() or len(parts) < 2 or not all(p.lstrip("-").isdigit() for p in parts[:2]):
        return False  # another machine's lease: never taken over
    return not process.is_alive(process.ProcessRef(int(parts[0]), int(parts[1])))


def _check(view: View) -> str:
    found: RedisAccess = view.access("redis")
    admin.probe(found.host, found.port, found.username, found.password)
    return "PING answered PONG"


def _client(handle: Any) -> Iterator[Any]:
    client = handle.redis.connect()
    try:
        yield client
    finally:
        client.close()


async def _client_async(handle: Any) -> AsyncIterator[Any]:
    client = handle.redis.connect_async()
    try:
        yield client
    finally:
        await client.aclose()
