"""What only some services have, each a protocol a unit implements when it has it; the plan, the
plugin, the dashboard and the CLI ask ``isinstance(unit, Capability)`` for the one they need.

| capability | what the unit does | who asks |
|---|---|---|
| ``Seeded`` | renders a tenant's seed before anything starts; brings a store back to it | plan, reset, copies |
| ``Copied`` | gives a test process a copy of the tenant's store, and drops it | the plugin's copies |
| ``ResetOnMarker`` | a copy is restored only for tests with its marker (a realm made afresh) | the plugin |
| ``IssuesTokens`` | a token of a tenant's user, its validated claims | token, check, dashboard |
| ``Staged`` | work the plan runs as a step of its own before the server starts | the plan |
| ``KeepsBuilds`` | builds in the cache under a lock (one a killed run left is removed) | gc, up |
| ``Prunes`` | what ``gc`` prunes of what it keeps in the cache (and on an engine) | gc |
| ``HasConsole`` | an administration entry point worth printing | up, status |
| ``KeepsCopies`` | leaves a test process's copy as it is for later (a failed test's) | the plugin |
| ``Migrates`` | runs a team's migrations; applies or rehearses pending ones on a tenant | up, migrate, plugin |
| ``Snapshots`` | writes a tenant's data to a file (masked when asked); loads one in its place | snapshot |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from driveops_env.masking import Masking, Replacing
from driveops_env.services.base import Sources, Work
from driveops_env.services.servers import Need, Plan
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant


def seed_of(service: object, tenant: Tenant, sources: Sources, access: Any) -> Any:
    """The tenant's seed of a service that has one, else None."""
    return service.render(tenant, sources, access) if isinstance(service, Seeded) else None


def restored_per_test(service: object) -> bool:
    """Whether every test that uses the store starts from its seed (on its process's own copy)."""
    return isinstance(service, Seeded) and isinstance(service, Copied) and not isinstance(service, ResetOnMarker)


@runtime_checkable
class Seeded(Protocol):
    def render(self, tenant: Tenant, sources: Sources, access: Any) -> Any:
        """The tenant's seed, read and rendered before anything starts (bad input: exit 2); ``access``:
        the store's record when it exists (its secrets kept)."""
        ...

    def restore(self, access: Any, work: Work) -> Any:
        """The store (the tenant's, or a test process's copy) back to the seed; the record to use."""
        ...


@runtime_checkable
class Copied(Protocol):
    def copy(self, access: Any, work: Work) -> Any:
        """A test process's own copy (``work.token``) of the tenant's store, before its first restore."""
        ...

    def drop_copy(self, access: Any, work: Work) -> None:
        """The copy gone (the environment outlives the test process)."""
        ...


@runtime_checkable
class ResetOnMarker(Protocol):
    """A copy restored only for a test carrying the marker (others share the tenant's store read-only)."""

    reset_marker: str


@runtime_checkable
class IssuesTokens(Protocol):
    def token(self, access: Any, user: str | None, password: str | None, *, client_credentials: bool = False) -> str:
        """A token of ``user`` (default: the first seeded one), or of the API client's service account."""
        ...

    def claims(self, access: Any, token: str) -> dict[str, Any]:
        """The token's claims once validated as an API would (signature, issuer, audience, expiry)."""
        ...


@runtime_checkable
class Staged(Protocol):
    stages: tuple[str, ...]  # the backend families its servers need a stage step on

    def stage(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Any:
        """Before the server of ``need`` starts, as a step of its own: what its description needs made
        (a database on a server it depends on, a snapshot of the tenants' data); given to ``server`` as
        ``plan.staged``."""
        ...


@runtime_checkable
class KeepsBuilds(Protocol):
    def builds(self, cache: Path) -> list[Path]:
        """Folders of the cache where it makes things in ``*.partial`` folders under a lock (see
        :mod:`driveops_env.builders`): one whose maker died is removed."""
        ...


@runtime_checkable
class Prunes(Protocol):
    def collect(self, cache: Path, client: Any | None) -> list[str]:
        """What ``gc`` removes of what it keeps in the cache (and, with a container engine's ``client``,
        there): what is beyond the most recently used."""
        ...


@runtime_checkable
class HasConsole(Protocol):
    def admin(self, record: ServiceRecord, show_secrets: bool) -> dict[str, str] | None:
        """A server's administration entry point: ``url``, ``user``, ``password``."""
        ...


@runtime_checkable
class Migrates(Protocol):
    def migration_key(self) -> dict[str, str]:
        """The fingerprint entries of the store's migrations as its inputs are now ({}: none set)."""
        ...

    def migration_grew(self, recorded: Mapping[str, Any]) -> bool:
        """Whether the history only grew since the fingerprint ``recorded`` (files added: what a tool
        can apply to a running store; an edited or removed revision it cannot)."""
        ...

    def migrate(self, access: Any, work: Work) -> float:
        """The pending migrations applied to a running tenant's store and to the seed it is restored
        to (its data kept); the seconds it took."""
        ...

    def rehearse(self, access: Any, work: Work) -> float:
        """The pending migrations applied to a clone of the tenant's store as it is now, the clone
        dropped after, the store untouched; the seconds it took (a failure raised, naming the tenant)."""
        ...


@runtime_checkable
class KeepsCopies(Protocol):
    def keep_copy(self, access: Any, work: Work) -> None:
        """A test process's copy left as it is, for later (a failed test's): what the process holds
        for it (ready copies ahead) released, not the copy; what dropping it later needs noted in
        ``work.memo`` (kept with it)."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    def save_data(self, access: Any, work: Work, target: Path, masking: Masking | None) -> None:
        """The tenant's data in the store written to ``target`` (0600): nothing of the machine or of the
        environment's secrets; personal data masked with ``masking``."""
        ...

    def load_data(
        self, access: Any, work: Work, source: Path, *, as_seed: bool = False, replacing: Replacing | None = None
    ) -> Any:
        """The tenant's data replaced by ``source``'s (a part :meth:`save_data` wrote, maybe on another
        machine or for another tenant), all or nothing; the record to keep.  ``as_seed``: what the
        tenant's restores go back to from now on (``up --snapshot``; the part is kept where
        :func:`driveops_env.snapshot_seeds.part_of` finds it).  ``replacing``: the file is another
        tenant's; whole values of its identity (id, slug, name) become this tenant's."""
        ...
