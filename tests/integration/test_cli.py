"""The CLI as a user runs it: exit codes, output, and nothing left behind."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, Sandbox, processes_mentioning

pytestmark = pytest.mark.integration

BAD_INPUTS = [
    (["up", "--tenants", ""], "empty"),
    (["up", "--tenants", "acme,acme"], "listed twice"),
    (["up", "--tenants", "Acme"], "not a valid slug"),
    (["up", "--tenants", "acme beta"], "not a valid slug"),
    (["up", "--tenants", "acme;drop"], "not a valid slug"),
    (["up", "--tenants", "../x"], "not a valid slug"),
    (["up", "--tenants", "master"], "reserved"),
    (["up", "--tenants", "a" * 32], "limit is 31"),
    (["up", "--isolation", "weird"], "--isolation"),
    (["up", "--backend", "podman"], "--backend"),
    (["up", "--startup-timeout", "-1"], "--startup-timeout"),
    (["up", "--name", "../etc"], "--name"),
    (["up", "--no-such-flag"], "unrecognized arguments"),
    (["env", "--format", "xml"], "invalid choice"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS])
@pytest.mark.backend_independent
def test_bad_input_exits_2_and_starts_nothing(sandbox: Sandbox, args: list[str], fragment: str) -> None:
    result = sandbox.cli(*args)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert sandbox.leftovers() == []


def test_full_cycle(sandbox: Sandbox) -> None:
    up = sandbox.cli("up", "--tenants", "acme,beta")
    assert up.returncode == 0, up.stderr
    # progress per service with elapsed time, then the endpoints, secrets masked
    assert "ok  postgres.acme" in up.stderr and "ok  seed redis.beta" in up.stderr
    assert "postgresql://driveops_acme:****@127.0.0.1:" in up.stdout
    assert "How to connect" in up.stdout
    state = json.loads((sandbox.state_dir / f"{sandbox.name}.json").read_text())
    for record in state["services"].values():
        assert record["admin_password"] not in up.stdout + up.stderr
    assert (sandbox.state_dir / f"{sandbox.name}.json").stat().st_mode & 0o777 == 0o600

    again = sandbox.cli("up", "--tenants", "acme,beta")
    assert again.returncode == 0 and "already running; attached" in again.stderr
    # attaching touched no server (how fast it is belongs to bench/, not to a test)
    assert sandbox.state()["services"] == state["services"]

    differs = sandbox.cli("up", "--tenants", "acme")
    assert differs.returncode == 2
    assert "tenants: acme,beta -> acme" in differs.stderr and "--recreate" in differs.stderr

    status = sandbox.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(" ok ") == 4

    dotnet = sandbox.cli("env", "--tenant", "acme", "--format", "dotnet")
    lines = dict(line.split("=", 1) for line in dotnet.stdout.splitlines())
    assert lines["TenantId"] == "550e8400-e29b-41d4-a716-446655440001"
    assert lines["ConnectionStrings__DefaultConnection"].startswith("Host=127.0.0.1;Port=")
    assert ";Database=driveops_acme;Username=driveops_acme;Password=" in lines["ConnectionStrings__DefaultConnection"]
    assert ",password=" in lines["ConnectionStrings__Redis"]

    as_json = json.loads(sandbox.cli("env", "--tenant", "beta", "--format", "json").stdout)
    assert as_json["DRIVEOPS_TENANT"] == "beta" and as_json["PGDATABASE"] == "driveops_beta"
    assert "export PGPASSWORD=" in sandbox.cli("env", "--format", "shell").stdout
    assert sandbox.cli("env", "--tenant", "gamma").returncode == 2

    check = sandbox.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("tenant-validation") == 2

    logs = sandbox.cli("logs", "postgres", "--tenant", "acme")
    assert logs.returncode == 0 and "ready to accept connections" in logs.stdout
    assert sandbox.cli("logs", "postgres").returncode == 2  # two servers: which one?

    down = sandbox.cli("down")
    assert down.returncode == 0 and "is down" in down.stderr
    assert sandbox.leftovers() == []
    assert sandbox.cli("status").returncode == 1
    assert sandbox.cli("down").returncode == 0  # idempotent


def test_recreate_replaces_a_different_spec(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    result = sandbox.cli("up", "--tenants", "acme,beta", "--isolation", "shared", "--recreate")
    assert result.returncode == 0, result.stderr
    assert "recreating" in result.stderr
    state = json.loads((sandbox.state_dir / f"{sandbox.name}.json").read_text())
    assert set(state["services"]) == {"postgres.shared", "redis.shared"}
    assert sandbox.cli("down").returncode == 0


def test_status_reports_a_dead_server(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    sandbox.kill_server("redis.acme")
    status = sandbox.cli("status")
    assert status.returncode == 1
    assert "redis.acme" in status.stdout and "FAIL" in status.stdout
    healed = sandbox.cli("up", "--tenants", "acme")
    assert healed.returncode == 0 and "redis.acme not running: recreating" in healed.stderr
    assert sandbox.cli("status").returncode == 0
    assert sandbox.cli("down").returncode == 0


@pytest.mark.backend_independent
def test_sigint_during_up_leaves_nothing(sandbox: Sandbox) -> None:
    proc = sandbox.popen("up", "--tenants", "acme,beta,gamma,delta")
    assert proc.stderr is not None
    while True:  # wait until start-up is under way
        line = proc.stderr.readline()
        assert line, "up ended before starting"
        if line.startswith("starting environment"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nothing was left running" in err
    assert sandbox.leftovers() == []


@pytest.mark.backend_independent
def test_relative_paths_of_a_service_repository_hold_from_any_directory(sandbox: Sandbox, tmp_path: Path) -> None:
    repo = tmp_path / "service"
    shutil.copytree(REPO / "seeds", repo / "tests" / "seeds")
    (repo / "pyproject.toml").write_text(
        '[tool.driveops-env]\nseeds-dir = "tests/seeds"\nservices = ["postgres", "redis"]\n'
    )
    env = {k: v for k, v in sandbox.env().items() if k != "DRIVEOPS_ENV_SERVICES"}
    cli = [sys.executable, "-m", "driveops_env.cli"]
    up = subprocess.run(
        [*cli, "up", "--tenants", "acme"], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr
    assert sandbox.state()["seeds_dir"] == str(repo / "tests" / "seeds")  # recorded absolute
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    reset = subprocess.run(
        [*cli, "reset", "--tenant", "acme"], cwd=elsewhere, env=env, capture_output=True, text=True, check=False
    )
    assert reset.returncode == 0, reset.stderr
    assert subprocess.run([*cli, "down"], cwd=elsewhere, env=env, check=False).returncode == 0


def test_logs_follow_prints_new_lines(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme", "--services", "redis").returncode == 0
    follow = sandbox.popen("logs", "redis", "--tenant", "acme", "--follow")
    try:
        record = sandbox.state()["services"]["redis.acme"]
        import redis

        admin = redis.Redis(host=record["host"], port=record["port"], password=record["admin_password"])
        assert follow.stdout is not None
        seen = ""
        admin.bgsave()  # the server logs "Background saving started": follow must print it
        for _ in range(20):
            seen += follow.stdout.readline()
            if "saving" in seen.lower():
                break
        assert "background saving" in seen.lower(), seen
        admin.close()
    finally:
        follow.kill()
        follow.communicate()
    assert sandbox.cli("down").returncode == 0


@pytest.mark.backend_independent
def test_an_environment_is_found_by_its_name_alone(sandbox: Sandbox, tmp_path: Path) -> None:
    """`up --data-dir ./dd` (relative), then every later command without it, from another folder and
    with another data directory in the environment: they act on dd's servers; one that names another
    data directory explicitly is refused (exit 2) and changes nothing."""
    cli = [sys.executable, "-m", "driveops_env.cli"]
    up = subprocess.run(
        [*cli, "up", "--tenants", "acme", "--data-dir", "dd"],
        cwd=sandbox.data_dir,
        env=sandbox.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    dd = sandbox.data_dir / "dd"
    assert sandbox.state()["data_dir"] == str(dd / sandbox.name)
    status = sandbox.cli("status")  # DRIVEOPS_ENV_DATA_DIR says the sandbox's root: the state wins
    assert status.returncode == 0, status.stdout + status.stderr
    added = sandbox.cli("tenant", "add", "beta")
    assert added.returncode == 0, added.stderr
    if sandbox.backend == "local":  # its servers' files under dd (a container's are the engine's)
        assert sandbox.state()["services"]["postgres.beta"]["process"]["data_dir"].startswith(str(dd))
    again = sandbox.cli("tenant", "add", "beta")
    assert again.returncode == 0 and "already part of environment" in again.stderr and "added in" not in again.stderr
    wrong = sandbox.cli("down", "--data-dir", str(tmp_path / "elsewhere"))
    assert wrong.returncode == 2 and "runs with --data-dir" in wrong.stderr, wrong.stderr
    assert sandbox.cli("status").returncode == 0  # nothing was stopped
    down = sandbox.cli("down")
    assert down.returncode == 0, down.stderr
    assert not (sandbox.state_dir / f"{sandbox.name}.json").exists()
    assert processes_mentioning(str(dd)) == []
    shutil.rmtree(dd)
    assert sandbox.leftovers() == []


@pytest.mark.backend_independent
def test_token_password_on_the_command_line_is_warned_about(kc_sandbox: Sandbox) -> None:
    assert kc_sandbox.cli("up", "--tenants", "acme", "--services", "keycloak").returncode == 0
    token = kc_sandbox.cli("token", "--user", "admin@acme.test", "--password", "admin-acme-Pass1")
    assert "DRIVEOPS_TOKEN_PASSWORD" in token.stderr and "every user of this machine" in token.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "driveops_env.cli", "token", "--user", "admin@acme.test"],
        capture_output=True,
        text=True,
        check=False,
        env=kc_sandbox.env() | {"DRIVEOPS_TOKEN_PASSWORD": "admin-acme-Pass1"},
    )
    assert "warning" not in quiet.stderr
    assert kc_sandbox.cli("down").returncode == 0


@pytest.mark.backend_independent
def test_sigterm_during_down_finishes_the_stop_quietly(sandbox: Sandbox) -> None:
    """A SIGTERM at any moment of `down` waits until the servers are stopped (a stop is never cut
    short), then exits 130, without "Exception ignored" noise from a lock file."""
    import random

    for delay in [random.uniform(0.2, 1.2) for _ in range(8)]:
        assert sandbox.cli("up", "--tenants", "acme", "--services", "postgres,redis").returncode == 0
        down = sandbox.popen("down")
        time.sleep(delay)
        down.send_signal(signal.SIGTERM)
        _, err = down.communicate(timeout=120)
        assert "Exception ignored" not in err and "Traceback" not in err, err
        assert down.returncode in (0, 130, -signal.SIGTERM), err  # -15: before the CLI's handler was set
        assert sandbox.cli("down").returncode == 0  # whatever remained: gone now
        assert sandbox.leftovers() == []
