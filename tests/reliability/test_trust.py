"""Trust boundaries, tried as an attacker and as a clumsy user would (as root, as CI runs it, with a
second, unprivileged user the test makes and removes): state and data directories others can change,
state files that lie, names that together overflow a socket path, and errors instead of tracebacks."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.local_only]


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.fail("these tests run as root (as CI does): they need a second user to play the attacker")
    name = f"dvx{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def _refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_a_state_directory_another_user_can_change_is_refused(
    sandbox: Sandbox, tmp_path: Path, other_user: pwd.struct_passwd
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    _refused(sandbox.cli("up", "--tenants", "acme", "--state-dir", str(theirs)), "owned by uid")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    _refused(sandbox.cli("status", "--state-dir", str(shared)), "writable by other users")
    link = tmp_path / "link"
    link.symlink_to(sandbox.state_dir)
    _refused(sandbox.cli("status", "--state-dir", str(link)), "symbolic link")
    assert sandbox.leftovers() == []


def test_a_state_file_that_is_a_link_or_someone_elses_is_refused(
    sandbox: Sandbox, other_user: pwd.struct_passwd
) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    state = sandbox.state_dir / f"{sandbox.name}.json"
    real = sandbox.state_dir.parent / "real.json"
    real.write_bytes(state.read_bytes())
    real.chmod(0o600)
    os.rename(state, sandbox.state_dir.parent / "moved.json")
    state.symlink_to(real)
    _refused(sandbox.cli("status"), "symbolic link")
    state.unlink()
    os.rename(sandbox.state_dir.parent / "moved.json", state)
    os.chown(state, other_user.pw_uid, other_user.pw_gid)
    _refused(sandbox.cli("logs", "postgres"), "not a private file")
    os.chown(state, 0, 0)
    assert sandbox.cli("down").returncode == 0
    assert sandbox.leftovers() == []


def test_what_a_state_file_says_is_checked_before_it_is_acted_on(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    victim = subprocess.Popen(["sleep", "600"], start_new_session=True)  # an unrelated process of ours
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    path = sandbox.state_dir / f"{sandbox.name}.json"
    real = json.loads(path.read_text())
    forged = json.loads(path.read_text())
    stat = Path(f"/proc/{victim.pid}/stat").read_text()
    start = int(stat[stat.rindex(")") + 2 :].split()[19])
    redis_key = next(k for k in forged["services"] if k.startswith("redis"))
    forged["services"][redis_key]["process"] |= {"pid": victim.pid, "pid_start": start, "log_path": "/etc/shadow"}
    forged["data_dir"] = str(precious)
    path.write_text(json.dumps(forged))
    try:
        logs = sandbox.cli("logs", redis_key)
        _refused(logs, "not a log of this data directory")
        assert "root:" not in logs.stdout
        down = sandbox.cli("down")
        assert victim.poll() is None, "down killed a process that is not the environment's server"
        assert (precious / "keep.txt").read_text() == "mine", "down deleted a directory it did not make"
        assert down.returncode in (0, 1), down.stderr
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    # what the lie hid is still cleaned by the real record
    path.write_text(json.dumps(real))
    path.chmod(0o600)
    sandbox.cli("down")
    assert sandbox.leftovers() == []


@pytest.mark.parametrize("services", ["redis", "keycloak,redis", "postgres,redis"])
def test_the_data_root_is_checked_for_every_service_set(sandbox: Sandbox, tmp_path: Path, services: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "root-link"
    link.symlink_to(target)
    result = sandbox.cli("up", "--tenants", "acme", "--services", services, "--data-dir", str(link))
    _refused(result, "symbolic link")
    assert list(target.iterdir()) == []
    assert sandbox.leftovers() == []


def test_a_link_planted_at_the_environments_directory_is_not_followed(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    target.chmod(0o755)
    (sandbox.data_dir / sandbox.name).symlink_to(target)
    result = sandbox.cli("up", "--tenants", "acme")
    _refused(result, "was not made by driveops-env")
    assert list(target.iterdir()) == [] and target.stat().st_mode & 0o777 == 0o755
    (sandbox.data_dir / sandbox.name).unlink()
    assert sandbox.leftovers() == []


def test_a_shared_data_root_is_refused_and_left_as_it_was(sandbox: Sandbox, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / sandbox.name).mkdir()
    result = sandbox.cli("up", "--tenants", "acme", "--data-dir", str(shared))
    _refused(result, "writable by other users")
    assert shared.stat().st_mode & 0o7777 == 0o1777 and (shared / sandbox.name).is_dir()
    down = sandbox.cli("down", "--name", "nothing-runs-here", "--data-dir", str(shared))
    assert down.returncode == 0 and (shared / sandbox.name).is_dir()
    (sandbox.data_dir / "not-ours").mkdir()
    assert sandbox.cli("down", "--name", "not-ours").returncode == 0
    assert (sandbox.data_dir / "not-ours").is_dir()  # no state file says it made it: kept
    (sandbox.data_dir / "not-ours").rmdir()
    assert sandbox.leftovers() == []


def test_the_longest_name_with_the_longest_slug_starts(sandbox: Sandbox) -> None:
    name, slug = "n" * 40, "s" + "x" * 30
    up = sandbox.cli("up", "--name", name, "--tenants", slug)
    assert up.returncode == 0, up.stderr
    assert sandbox.cli("down", "--name", name).returncode == 0
    assert sandbox.leftovers() == []


def test_dead_servers_and_closed_pipes_give_errors_not_tracebacks(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    piped = subprocess.run(
        ["bash", "-c", f"{sandbox.cli_command()} status | head -1"],
        capture_output=True,
        text=True,
        env=sandbox.env(),
        check=False,
    )
    assert "Traceback" not in piped.stderr and piped.stdout.startswith("environment")
    sandbox.kill_server("postgres.acme")
    reset = sandbox.cli("reset", "--tenant", "acme", "--only", "postgres")
    assert reset.returncode == 1 and "Traceback" not in reset.stderr
    assert "resetting postgres failed" in reset.stderr and "tenant acme" in reset.stderr
    assert "what to do" in reset.stderr
    sandbox.cli("down")
    assert sandbox.leftovers() == []


def test_unusable_directories_and_a_dead_keycloak_are_errors_not_tracebacks(
    kc_sandbox: Sandbox, tmp_path: Path
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for flag in ("--data-dir", "--cache-dir"):
        result = kc_sandbox.cli("up", "--tenants", "acme", flag, str(a_file))
        assert result.returncode == 2, (flag, result.stderr)
        assert "Traceback" not in result.stderr and str(a_file) in result.stderr
    assert kc_sandbox.cli("up", "--tenants", "acme").returncode == 0
    kc_sandbox.kill_server("keycloak")
    token = kc_sandbox.cli("token", "--tenant", "acme")
    assert token.returncode == 1 and "Traceback" not in token.stderr
    assert "service keycloak" in token.stderr
    reset = kc_sandbox.cli("reset", "--tenant", "acme", "--only", "keycloak")
    assert reset.returncode == 1 and "resetting keycloak failed" in reset.stderr and "Traceback" not in reset.stderr
    check = kc_sandbox.cli("check")  # says Keycloak does not answer, not that the realm is missing
    assert check.returncode == 1 and "Keycloak does not answer" in check.stderr, check.stderr
    assert "does not exist" not in check.stderr and "reset --tenant" not in check.stderr
    kc_sandbox.cli("down")
    assert kc_sandbox.leftovers() == []


def test_a_pid_another_process_now_has_is_never_signalled() -> None:
    """A recorded pid whose process is gone may name another process, and its group: neither the
    signal nor the sweep of the group's leftovers reaches it."""
    from driveops_env import process

    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # leads a group named by its pid
    try:
        start = process.start_time_of(other.pid)
        assert start is not None
        recorded = process.ProcessRef(other.pid, start - 1)  # what a state file of a dead server says
        process.terminate(recorded, sig=signal.SIGKILL, timeout=0.1)
        process._kill_leftovers(recorded)  # the group sweep, called on its own too
        with pytest.raises(subprocess.TimeoutExpired):  # still running half a second later
            other.wait(timeout=0.5)
    finally:
        other.kill()
        other.wait()


def test_files_written_for_the_user_never_follow_a_planted_link(
    sandbox: Sandbox, tmp_path: Path, other_user: pwd.struct_passwd
) -> None:
    """Another user plants ``b.tgz -> <root's file>`` in a sticky world-writable folder: root's bundle and
    export refuse the name and leave the victim as it was; a fresh name there, and an existing file in
    a folder of root's own, are written (0600)."""
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o644)
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    for name, command in (("b.tgz", ["logs", "--bundle"]), ("d.json", ["export", "-o"])):
        planted = sticky / name
        planted.symlink_to(victim)
        os.lchown(planted, other_user.pw_uid, other_user.pw_gid)
        _refused(sandbox.cli(*command, str(planted)), "it exists already")
        assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o644
        fresh = sticky / f"fresh-{name}"
        assert sandbox.cli(*command, str(fresh)).returncode == 0
        assert fresh.stat().st_mode & 0o777 == 0o600 and not fresh.is_symlink()
        own = tmp_path / f"own-{name}"
        own.write_text("old")
        assert sandbox.cli(*command, str(own)).returncode == 0  # replaced in a folder of root's own
        assert own.read_bytes() != b"old" and own.stat().st_mode & 0o777 == 0o600
    assert sandbox.cli("down").returncode == 0
    assert sandbox.leftovers() == []


def test_a_state_file_nested_without_end_is_refused_not_a_traceback(sandbox: Sandbox) -> None:
    sandbox.state_dir.mkdir(exist_ok=True, mode=0o700)
    path = sandbox.state_dir / f"{sandbox.name}.json"
    for text in ("[" * 100_000, "[" * 500 + "]" * 500):
        path.write_text(text)
        path.chmod(0o600)
        for command in (["status"], ["down"], ["up", "--tenants", "acme"]):
            _refused(sandbox.cli(*command), "nests deeper than")
    gc = sandbox.cli("gc")  # a state file no one can read is garbage
    assert gc.returncode == 0 and not path.exists(), gc.stderr
    assert sandbox.leftovers() == []


def test_a_data_root_the_server_user_cannot_enter_is_refused_before_anything_starts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("runs as root (as CI does): PostgreSQL then runs as the local user")
    closed = Path(f"/var/tmp/driveops-closed-{uuid.uuid4().hex[:6]}")
    closed.mkdir(mode=0o700)
    try:
        root = closed / "data"
        result = sandbox.cli("up", "--tenants", "acme", "--data-dir", str(root))
        _refused(result, f"{closed} does not let it in")
        assert "chmod o+x" in result.stderr
        assert sandbox.leftovers() == [] and list(closed.iterdir()) in ([], [root])
    finally:
        subprocess.run(["rm", "-rf", str(closed)], check=False)
