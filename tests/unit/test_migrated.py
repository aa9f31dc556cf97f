"""The migrated states the cache keeps: which earlier state a grown history starts from, and what gc
removes (pure file logic; the states themselves are tested against real servers)."""

from __future__ import annotations

import os
from pathlib import Path

from driveops_env import migrated

COMMAND = "alembic upgrade head"


def _kept(folder: Path, key: str, files: dict[str, str], *, cwd: str = "/", used: float = 0.0) -> migrated.Kept:
    kept = migrated.Kept(folder, key, ".pgdump")
    folder.mkdir(parents=True, exist_ok=True)
    kept.state.write_bytes(b"state")
    kept.save(migrated.manifest_of(COMMAND, Path(cwd), files))
    os.utime(kept.state, (used, used))
    return kept


def test_a_history_that_only_grew_starts_from_the_most_recent_earlier_state(tmp_path: Path) -> None:
    _kept(tmp_path, "a", {"v/1.py": "11"}, used=100)
    _kept(tmp_path, "b", {"v/1.py": "11", "v/2.py": "22"}, used=200)
    _kept(tmp_path, "edited", {"v/1.py": "99"}, used=300)  # a revision edited: not a prefix
    _kept(tmp_path, "elsewhere", {"v/1.py": "11"}, cwd="/tmp", used=400)  # another repository
    now = migrated.manifest_of(COMMAND, Path("/"), {"v/1.py": "11", "v/2.py": "22", "v/3.py": "33"})
    base = migrated.grown_from(migrated.Kept(tmp_path, "c", ".pgdump"), now)
    assert base is not None and base.key == "b"


def test_a_history_with_a_removed_or_changed_file_or_command_starts_from_scratch(tmp_path: Path) -> None:
    _kept(tmp_path, "a", {"v/1.py": "11", "v/2.py": "22"})
    target = migrated.Kept(tmp_path, "c", ".pgdump")
    removed = migrated.manifest_of(COMMAND, Path("/"), {"v/1.py": "11", "v/3.py": "33"})
    assert migrated.grown_from(target, removed) is None
    other = migrated.manifest_of("goose up", Path("/"), {"v/1.py": "11", "v/2.py": "22", "v/3.py": "33"})
    assert migrated.grown_from(target, other) is None
    same = migrated.manifest_of(COMMAND, Path("/"), {"v/1.py": "11", "v/2.py": "22"})
    assert migrated.grown_from(target, same) is None  # nothing added: not a grown history


def test_a_state_without_its_manifest_is_not_ready(tmp_path: Path) -> None:
    kept = _kept(tmp_path, "a", {})
    kept.manifest.unlink()  # a run killed while saving
    assert not kept.ready()
    assert (
        migrated.grown_from(
            migrated.Kept(tmp_path, "b", ".pgdump"), migrated.manifest_of(COMMAND, Path("/"), {"x": "1"})
        )
        is None
    )


def test_gc_keeps_the_three_most_recent_states_of_each_repository(tmp_path: Path) -> None:
    for n in range(5):
        _kept(tmp_path, f"r{n}", {}, used=100 + n)
    _kept(tmp_path, "o0", {}, cwd="/tmp", used=1)
    removed = migrated.prune(tmp_path, ".pgdump")
    assert sorted(removed) == [f"migrated state {tmp_path / 'r0.pgdump'}", f"migrated state {tmp_path / 'r1.pgdump'}"]
    assert sorted(p.name for p in tmp_path.glob("*.pgdump")) == ["o0.pgdump", "r2.pgdump", "r3.pgdump", "r4.pgdump"]
    assert not (tmp_path / "r0.json").exists()
    assert migrated.prune(tmp_path / "missing", ".pgdump") == []


def test_gc_leaves_a_state_being_built(tmp_path: Path) -> None:
    from filelock import FileLock

    from driveops_env import builders

    for n in range(4):
        _kept(tmp_path, f"r{n}", {}, used=100 + n)
    with FileLock(str(builders.lock_of(tmp_path / "r0.pgdump"))):
        assert migrated.prune(tmp_path, ".pgdump") == []
    assert migrated.prune(tmp_path, ".pgdump") == [f"migrated state {tmp_path / 'r0.pgdump'}"]


def test_gc_removes_every_state_of_a_repository_that_is_gone(tmp_path: Path) -> None:
    _kept(tmp_path / "states", "gone", {}, cwd=str(tmp_path / "removed-repository"))
    _kept(tmp_path / "states", "here", {}, cwd=str(tmp_path))
    assert migrated.prune(tmp_path / "states", ".pgdump") == [f"migrated state {tmp_path / 'states' / 'gone.pgdump'}"]


def test_a_state_of_another_scope_is_never_the_start(tmp_path: Path) -> None:
    kept = migrated.Kept(tmp_path, "a", ".pgdump")
    tmp_path.mkdir(exist_ok=True)
    kept.state.write_bytes(b"state")
    kept.save(migrated.manifest_of(COMMAND, Path("/"), {"v/1.py": "11"}, "pg16"))
    grown = {"v/1.py": "11", "v/2.py": "22"}
    target = migrated.Kept(tmp_path, "b", ".pgdump")
    assert migrated.grown_from(target, migrated.manifest_of(COMMAND, Path("/"), grown, "pg15")) is None
    assert migrated.grown_from(target, migrated.manifest_of(COMMAND, Path("/"), grown, "pg16")) == kept


def test_a_build_that_failed_in_this_run_is_not_run_again_by_the_other_tenants(tmp_path: Path) -> None:
    import pytest

    from driveops_env.errors import StartupError

    kept = migrated.Kept(tmp_path, "k", ".pgdump")
    with pytest.raises(RuntimeError), kept.building(5, service="postgres", tenant="acme"):
        raise RuntimeError("the migration failed")
    refused = pytest.raises(StartupError, match="failed for tenant acme in this run")
    with refused, kept.building(5, service="postgres", tenant="beta"):
        pass
    kept.failed.write_text("1:1 acme")  # another run's failure: this run tries again
    with kept.building(5, service="postgres", tenant="beta"):
        pass
    assert not kept.failed.exists()
