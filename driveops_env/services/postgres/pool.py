"""Ready clones of a tenant's seed, kept ahead for one test process's copy, so that the restore on a
test's path is a hand-over: two renames in one transaction (about 2 ms), while the clone that replaces
the one handed over and the drop of the used database run in a background thread.

The names stay: the copy keeps its database name (``acme_gw0``), a ready clone is ``acme_gw0__r<n>``,
a used one waiting for its drop ``acme_gw0__u<n>``.  Everything under ``acme_gw0__`` belongs to the
process holding the copy's token, so a new pool first drops what a killed process of that token left.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from driveops_env.ready_pool import ReadyPool
from driveops_env.services.postgres import admin

if TYPE_CHECKING:
    import psycopg

RENAME_TRIES = 3  # a client may connect between the termination of its session and the rename


class ClonePool:
    """``size`` ready clones of ``template`` for the database ``target``, owned by ``owner``."""

    def __init__(self, admin_info: str, *, template: str, target: str, owner: str, size: int) -> None:
        self.admin_info = admin_info
        self.template = template
        self.target = target
        self.owner = owner
        self._made = itertools.count()  # numbers of ready clones (the thread's)
        self._used = itertools.count()  # numbers of used databases (the test path's)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None  # the test path's; the thread has its own
        self._pool = ReadyPool(target, self._clone, size, self._sweep)

    def take(self) -> None:
        """``target`` replaced by the oldest ready clone (its error, such as a full disk, is raised
        here); a new clone is queued and the used one dropped, in the background."""
        used = f"{self.target}__u{next(self._used)}"
        self._pool.take(lambda ready: self._hand_over(ready, used))
        self._pool.later(lambda: admin.drop_database(self.admin_info, used))

    def close(self) -> None:
        """Stops the thread (a clone under way finishes) and drops every database of the pool."""
        self._pool.close()
        if self._conn is not None:
            self._conn.close()

    def _hand_over(self, ready: str, used: str) -> None:
        from psycopg import errors

        conn = self._connection()
        for attempt in range(RENAME_TRIES):
            conn.execute(
                "SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.target,),
            )
            try:
                self._rename(conn, ready, used)
            except errors.ObjectInUse:
                if attempt == RENAME_TRIES - 1:
                    raise
            else:
                return

    def _rename(self, conn: psycopg.Connection[tuple[object, ...]], ready: str, used: str) -> None:
        """In one transaction: ``target`` (if there is one yet) to ``used``, ``ready`` to ``target``."""
        from psycopg import sql

        rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
        with conn.transaction():
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.target,)).fetchone():
                conn.execute(rename.format(sql.Identifier(self.target), sql.Identifier(used)))
            conn.execute(rename.format(sql.Identifier(ready), sql.Identifier(self.target)))

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.admin_info, autocommit=True)
        return self._conn

    def _clone(self) -> str:
        name = f"{self.target}__r{next(self._made)}"
        admin.create_clone(self.admin_info, template=self.template, name=name, owner=self.owner)
        return name

    def _sweep(self) -> None:
        for name in admin.databases_with_prefix(self.admin_info, f"{self.target}__"):
            admin.drop_database(self.admin_info, name)
