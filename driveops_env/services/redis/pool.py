"""Ready logical databases of a tenant's seed, kept ahead for one test process's copy (a leased
logical database of the tenant's own server), so that the restore on a test's path is one ``SWAPDB``:
the copy's number keeps its name and now holds the seed, the ready one holds what the test wrote and
is emptied and filled again in a background thread, by the server itself: one script copies every key
of a pristine database (seeded once) into it (10,000 keys in a few milliseconds, no round trip per
key).  The ready and pristine databases are leased like the copy's, by the same holder, so a killed
process's are taken over as its copy's are."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from driveops_env.ready_pool import ReadyPool
from driveops_env.services.redis import admin, seeds
from driveops_env.services.redis.seeds import RedisEntry

Client = Callable[[int], Any]  # an administrator's client of a logical database
# every key of one logical database (ARGV[1]) copied into another (ARGV[2]), by the server
COPY_ALL = """
redis.call('SELECT', ARGV[1])
local cursor = '0'
repeat
  local found = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = found[1]
  for _, key in ipairs(found[2]) do
    redis.call('COPY', key, key, 'DB', ARGV[2], 'REPLACE')
  end
until cursor == '0'
return 0
"""


class SwapPool:
    """``size`` logical databases holding ``seed`` under ``prefix``, swapped into ``target``."""

    def __init__(
        self,
        client: Client,
        target: int,
        seed: Sequence[RedisEntry],
        prefix: str,
        lease: tuple[int, str, Callable[[str], bool]],
    ) -> None:
        """``lease``: how many ready databases, their holder, and how to tell a holder that is gone.  The
        databases are leased and the pristine one seeded here (once per process, as a restore without a
        pool); on a failure, whatever was leased is released."""
        self.client, self.target, self.seed, self.prefix = client, target, seed, prefix
        self.numbers: list[int] = []  # the leased ones: the pristine first
        self._free: deque[int] = deque()
        self._path: Any = None  # the test path's client (the thread has its own)
        self._copies = True  # the server copies keys (COPY): the ready databases are filled by it
        size, owner, stale = lease
        leases = self.client(admin.LEASE_DB)
        try:
            for _ in range(size + 1):
                self.numbers.append(admin.claim_database(leases, owner, stale))
            self._run(self.numbers[0], self._fill_pristine)
        except BaseException:
            self._release(owner)
            raise
        finally:
            leases.close()
        self._free.extend(self.numbers[1:])
        self._pool = ReadyPool(f"redis-{self.target}", self._make, size, lambda: None)

    def take(self) -> None:
        """``target`` swapped with a ready database (waited for if it is being filled)."""
        self._pool.take(self._swap)

    def close(self, owner: str) -> None:
        """The thread stopped, the pool's databases emptied and their leases released."""
        self._pool.close()
        if self._path is not None:
            self._path.close()
        self._release(owner)

    def _release(self, owner: str) -> None:
        leases = self.client(admin.LEASE_DB)
        try:
            for number in self.numbers:
                self._run(number, lambda data: data.flushdb())
                admin.release_database(leases, number, owner)
        finally:
            leases.close()

    def _swap(self, ready: int) -> None:
        if self._path is None:
            self._path = self.client(self.target)
        try:
            self._path.swapdb(self.target, ready)
        finally:
            self._free.append(ready)  # now holds what the test wrote (or, if the swap failed, the seed): refilled

    def _fill_pristine(self, data: Any) -> None:
        """The source of every ready database: the seed (and whether the server can copy it: COPY is
        Redis 6.2's; an older server gets the seed written into each ready database instead)."""
        data.flushdb()
        seeds.apply_redis(data, self.seed, prefix=self.prefix)
        version = tuple(int(part) for part in str(data.info("server")["redis_version"]).split(".")[:2])
        self._copies = version >= (6, 2)

    def _make(self) -> int:
        number = self._free.popleft()

        def fill(data: Any) -> None:
            data.flushdb()
            if self._copies:
                data.eval(COPY_ALL, 0, self.numbers[0], number)
            else:
                seeds.apply_redis(data, self.seed, prefix=self.prefix)

        try:
            self._run(number, fill)
        except BaseException:
            self._free.appendleft(number)  # filled again by the next one, whose error the next take raises
            raise
        return number

    def _run(self, number: int, action: Callable[[Any], object]) -> None:
        data = self.client(number)
        try:
            action(data)
        finally:
            data.close()
