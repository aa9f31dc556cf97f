"""A migration's option values and its key: pure logic (the runs are in tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driveops_env import migrate, options
from driveops_env.errors import UsageError
from driveops_env.recorded import for_environment, recorded


def test_a_command_is_an_argv_list_in_pyproject_and_split_as_a_shell_would_elsewhere(tmp_path: Path) -> None:
    project = tmp_path / "service"
    written = ["alembic", "-x", "note=a, b", "upgrade", "head"]  # a comma and a space inside one argument
    s = options.resolve(
        pyproject={"migrate-postgres": written, "migrate-inputs": ["migrations", "alembic.ini"]},
        pyproject_dir=project,
        environ={},
    )
    assert s.value("migrate_postgres") == tuple(written)
    assert s.migrate_inputs == (project / "migrations", project / "alembic.ini")  # where they were written
    flag = options.resolve(cli={"migrate_postgres": "alembic -x 'note=a, b' upgrade head"}, environ={}, pyproject={})
    assert flag.value("migrate_postgres") == tuple(written)
    assert options.resolve(environ={}, pyproject={}).value("migrate_postgres") == ()
    later = for_environment(options.resolve(environ={}, pyproject={}), "default", recorded(s, "local"))
    assert later.value("migrate_postgres") == tuple(written)  # what `tenant add` runs, from the state file
    assert later.migrate_inputs == s.migrate_inputs


def test_the_key_follows_the_history_and_the_command_not_the_byte_code(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text("create")
    first = migrate.Migration(("alembic", "upgrade", "head"), tmp_path, (tmp_path / "migrations",), 60)
    key = migrate.key(first)
    (versions / "__pycache__").mkdir()
    (versions / "__pycache__" / "0001.cpython-311.pyc").write_bytes(b"\x00")
    (versions / "0001.pyc").write_bytes(b"\x00")
    assert migrate.key(first) == key
    assert migrate.key(first.__class__(("alembic", "upgrade", "0001"), tmp_path, first.inputs, 60)) != key
    (versions / "0002.py").write_text("alter")
    grown = migrate.key(first)
    assert grown != key
    (versions / "0002.py").write_text("alter again")
    edited = migrate.key(first)
    assert edited not in (key, grown)
    (versions / "0002.py").rename(versions / "0003.py")  # the same bytes under another name
    assert migrate.key(first) not in (key, grown, edited)


def test_nothing_inherited_points_the_command_at_another_database() -> None:
    inherited = {
        "PATH": "/usr/bin",
        "PGSERVICE": "production",
        "PGHOSTADDR": "198.18.0.1",
        "DATABASE_URL": "postgresql://app@198.18.0.1/app",
        "DRIVEOPS_POSTGRES_DSN": "postgresql://acme@127.0.0.1/acme",  # an `eval` of another tenant's values
        "DRIVEOPS_ENV_NAME": "other",
    }
    ours = {"PGHOST": "127.0.0.1", "DATABASE_URL": "postgresql://beta@127.0.0.1/beta", "DRIVEOPS_TENANT": "beta"}
    assert migrate.environment(ours, inherited) == {"PATH": "/usr/bin", **ours}


def test_an_input_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    migration = migrate.Migration(("true",), tmp_path, (tmp_path / "pipe",), 60)
    with pytest.raises(UsageError, match="not a regular file"):
        migrate.key(migration)
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(UsageError, match="limit"):
        migrate.key(migrate.Migration(("true",), tmp_path, (tmp_path / "big",), 60, limit=1024))
