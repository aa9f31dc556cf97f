"""Ready databases of a tenant's seed, kept ahead for one test process's copy, so that the restore on a
test's path is a hand-over: the copy's access names the ready database from then on (its name changes:
``acme_gw0__r<n>``, the fixtures and the handle's values say which), while the next one is seeded and
the used one dropped in a background thread.

Everything under ``acme_gw0__`` belongs to the process holding the copy's token, so a new pool first
drops what a killed process of that token left.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from driveops_env.ready_pool import ReadyPool
from driveops_env.services.mongo import admin, ferretdb
from driveops_env.services.mongo.access import MongoAccess
from driveops_env.services.mongo.seeds import MongoCollection


class DatabasePool:
    """``size`` databases holding ``seed`` for the copy ``base`` (the tenant's user reaches them)."""

    def __init__(
        self,
        base: MongoAccess,
        server_admin: MongoAccess,
        seed: Sequence[MongoCollection],
        reader: ferretdb.Reader | None,  # tells what a database holds, where that is cheap (FerretDB)
        size: int,
        tenant: str,
    ) -> None:
        self.base, self.server_admin, self.seed, self.reader = base, server_admin, seed, reader
        self._made = itertools.count()
        self._kept: str | None = None  # the database in use, left as it is when the pool closes
        self._pool = ReadyPool(self.base.database, lambda: self._make(tenant), size, self._sweep)

    def take(self, used: str) -> tuple[str, str | None]:
        """The name of a database holding the seed (and what it holds); ``used`` is dropped later."""
        ready = self._pool.take(lambda made: made)
        self._pool.later(lambda: self._drop(used))
        return ready

    def close(self, keep: str | None = None) -> None:
        """The thread stopped, the pool's databases and the copy's first one dropped (as the server's
        administrator: a mongod's readWrite role drops no database); ``keep``: but that one (a failed
        test's, kept)."""
        self._kept = keep
        self._pool.close()
        if self.reader is not None:
            self.reader.close()
        if self.base.database != keep:
            self._drop(self.base.database)

    def _make(self, tenant: str) -> tuple[str, str | None]:
        name = f"{self.base.database}__r{next(self._made)}"
        self._drop(name)  # what a killed holder of the token left under this name, if the sweep failed
        admin.grant_database(self.server_admin, self.base, name)
        admin.seed(replace(self.base, database=name), self.seed, tenant=tenant)
        return name, self.reader.fingerprint(name) if self.reader is not None else None

    def _drop(self, name: str) -> None:
        conn = admin.client(self.server_admin)
        try:
            conn.drop_database(name)
        finally:
            conn.close()
        admin.grant_database(self.server_admin, self.base, name, "revokeRolesFromUser")

    def _sweep(self) -> None:
        conn = admin.client(self.server_admin)
        try:
            prefix = f"{self.base.database}__"
            names = [n for n in conn.list_database_names() if n.startswith(prefix) and n != self._kept]
        finally:
            conn.close()
        for name in names:
            self._drop(name)
