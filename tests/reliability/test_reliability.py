"""Reliability: repeated cycles, killed servers and owners, taken ports, broken state, races."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from driveops_env import Environment
from tests.helpers import Sandbox, processes_mentioning, wait_for

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _sandbox_listens(port: int, sandbox: Sandbox) -> bool:
    """Whether a process of this sandbox (working in its data directory) listens on ``port``: a port
    freed by ``down`` may meanwhile be given to another test's server, and a connection to a free
    port of the ephemeral range may meet itself or a server that stops before ``ss`` looks. A
    listener nobody can be named for counts as ours only while it keeps answering for 1.5 s."""
    for _ in range(3):
        if not _listening(port):
            return False
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
        for pid in re.findall(r"pid=(\d+)", out):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/cwd").startswith(str(sandbox.data_dir)):
                    return True
        if out.strip():
            return False  # another process's listener
        time.sleep(0.5)
    return True


def test_twenty_up_down_cycles_leak_nothing(sandbox: Sandbox) -> None:
    """Twenty cycles of local processes (pids, ports, shared memory); five of containers (each cycle
    there is a few seconds of the engine's, and a leftover container shows after one)."""
    segments = set(Path("/dev/shm").glob("PostgreSQL.*"))
    ports: set[int] = set()
    for _ in range(20 if sandbox.backend == "local" else 5):
        up = sandbox.cli("up", "--tenants", "acme,beta")
        assert up.returncode == 0, up.stderr
        ports |= {s["port"] for s in sandbox.state()["services"].values()}
        down = sandbox.cli("down")
        assert down.returncode == 0, down.stderr
        assert sandbox.leftovers() == []
    assert not [p for p in ports if _sandbox_listens(p, sandbox)], "a port of a stopped server still answers"
    assert set(Path("/dev/shm").glob("PostgreSQL.*")) <= segments, "shared memory segments left behind"


def test_a_killed_server_is_reported_and_up_heals_it(
    sandbox: Sandbox, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    sandbox.kill_server("postgres.beta")
    status = sandbox.cli("status")
    assert status.returncode == 1
    line = next(line for line in status.stdout.splitlines() if "postgres.beta" in line)
    assert "beta" in line and "FAIL" in line

    # the fixtures name the tenant and the server, and how to heal
    for key, value in sandbox.env().items():
        if key.startswith("DRIVEOPS_ENV_"):
            monkeypatch.setenv(key, value)
    pytester.makepyfile(
        test_dead="""
        import pytest

        @pytest.mark.tenant("beta")
        def test_uses_beta(tenant_pg):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--driveops-reuse", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*tenant 'beta'*", "*server(s) down: postgres.beta*", "*heal: driveops-env up*"])

    healed = sandbox.cli("up", "--tenants", "acme,beta")
    assert healed.returncode == 0 and "postgres.beta not running: recreating" in healed.stderr
    assert sandbox.cli("status").returncode == 0
    assert sandbox.cli("down").returncode == 0


def test_ports_taken_beforehand_do_not_stop_up(sandbox: Sandbox) -> None:
    taken = []
    for port in (5432, 6379, 8080, 9000, 27017, 15432):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            taken.append(sock)
        except OSError:  # already taken by someone else: as good for this test
            sock.close()
    try:
        result = sandbox.cli("up", "--tenants", "acme,beta")
        assert result.returncode == 0, result.stderr
        used = {s["port"] for s in sandbox.state()["services"].values()}
        assert used.isdisjoint({5432, 6379, 8080, 9000, 27017, 15432})
        assert sandbox.cli("check").returncode == 0
    finally:
        for sock in taken:
            sock.close()
        sandbox.cli("down")


@pytest.mark.backend_independent
def test_unwritable_state_directory_is_a_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = sandbox.cli("up", "--tenants", "acme", "--state-dir", str(blocker / "state"))
    assert result.returncode == 2, result.stderr  # bad input: nothing was started
    assert "cannot create the state directory" in result.stderr and "--state-dir" in result.stderr
    assert sandbox.leftovers() == []


@pytest.mark.backend_independent
def test_full_state_directory_is_a_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        pytest.fail(f"this test needs root to mount a small tmpfs: {mount.stderr.decode()}")
    full.chmod(0o700)  # a tmpfs root is 1777: a state directory others can write is refused
    try:
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k", "count=100"], capture_output=True, check=False
        )
        result = sandbox.cli("up", "--tenants", "acme", "--state-dir", str(full))
        assert result.returncode == 1, result.stderr
        assert "cannot write the state file" in result.stderr and "free some disk space" in result.stderr
        assert sandbox.leftovers() == []
    finally:
        subprocess.run(["umount", str(full)], check=False)


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
@pytest.mark.backend_independent
def test_corrupted_state_file_error_and_recovery(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    path = sandbox.state_dir / f"{sandbox.name}.json"
    path.write_text("{ not json")
    status = sandbox.cli("status")
    assert status.returncode == 1
    assert "corrupted" in status.stderr and "driveops-env gc" in status.stderr
    up = sandbox.cli("up", "--tenants", "acme")
    assert up.returncode == 1 and "corrupted" in up.stderr
    gc = sandbox.cli("gc")
    assert gc.returncode == 0 and "corrupted state file" in gc.stderr
    assert sandbox.leftovers() == []  # gc stopped the servers the lost state knew about
    assert sandbox.cli("up", "--tenants", "acme").returncode == 0
    assert sandbox.cli("down").returncode == 0


def test_two_environments_side_by_side(sandbox: Sandbox) -> None:
    first = Environment.up(settings=sandbox.settings(tenants="acme", name=sandbox.name + "-one"))
    second = Environment.up(settings=sandbox.settings(tenants="acme", name=sandbox.name + "-two"))
    try:
        assert first.tenant("acme").postgres.port != second.tenant("acme").postgres.port
        with first.tenant("acme").connect_postgres(autocommit=True) as conn:
            conn.execute("UPDATE tenants SET name = 'changed in one'")
        with second.tenant("acme").connect_postgres() as conn:
            assert conn.execute("SELECT name FROM tenants").fetchone() == ("Acme Garage",)
        first.down()
        assert all(r.ok for r in second.status())
    finally:
        second.down()
    assert sandbox.leftovers() == []


@pytest.mark.backend_independent
def test_two_ups_of_the_same_name_at_once(sandbox: Sandbox) -> None:
    procs = [sandbox.popen("up", "--tenants", "acme,beta") for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0], results
    errs = [err for _, err in results]
    assert sum("already running; attached" in e for e in errs) == 1  # one started it, one attached
    state = sandbox.state()
    assert len(state["services"]) == 4
    assert sandbox.cli("status").returncode == 0
    assert sandbox.cli("down").returncode == 0
    assert sandbox.leftovers() == []


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_a_python_owner_killed_mid_up_is_swept(sandbox: Sandbox) -> None:
    script = (
        "import os, signal, threading\n"
        "from driveops_env import Environment, options\n"
        "threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()\n"
        f"s = options.resolve(cli={{'name': '{sandbox.name}', 'tenants': 'acme,beta'}})\n"
        "Environment.up(settings=s)\n"
        "threading.Event().wait(30)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=sandbox.env(), check=False, timeout=120)
    # whether it died before or after writing the state file, the next up removes what it left
    result = sandbox.cli("up", "--tenants", "acme")
    assert result.returncode == 0, result.stderr
    assert len(sandbox.state()["services"]) == 2
    assert sandbox.cli("down").returncode == 0
    assert sandbox.leftovers() == []


@pytest.mark.local_only  # the servers' disk is this machine's (a container's is the engine's)
def test_a_reset_on_a_full_disk_says_so_and_changes_nothing(sandbox: Sandbox) -> None:
    disk = Path(tempfile.mkdtemp(prefix="driveops-disk-", dir="/var/tmp"))
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400m,mode=0711", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        pytest.fail(f"this test needs root to mount a small tmpfs: {mount.stderr.decode()}")
    try:
        up = sandbox.cli("up", "--tenants", "acme", "--services", "postgres,mongo,redis", "--data-dir", str(disk))
        assert up.returncode == 0, up.stderr
        env = Environment.attach(sandbox.name, settings=sandbox.settings(data_dir=str(disk)))
        with env.tenant("acme").postgres.connect() as conn:
            conn.execute("UPDATE tenants SET name = 'written after up'")
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1M", "count=1000"], capture_output=True, check=False
        )
        for only in ("postgres", "mongo", "postgres,mongo,redis"):
            reset = sandbox.cli("reset", "--tenant", "acme", "--only", only)
            assert reset.returncode == 1, reset.stderr
            assert "no space left on device" in reset.stderr and str(disk) in reset.stderr
            assert "seed file" not in reset.stderr
        with env.tenant("acme").postgres.connect() as conn:  # the previous data, untouched
            assert conn.execute("SELECT name FROM tenants").fetchone() == ("written after up",)
        (disk / "filler").unlink()
        reset = sandbox.cli("reset", "--tenant", "acme")
        assert reset.returncode == 0, reset.stderr
        with env.tenant("acme").postgres.connect() as conn:
            assert conn.execute("SELECT name FROM tenants").fetchone() == ("Acme Garage",)
        assert sandbox.cli("check").returncode == 0
        assert sandbox.cli("down").returncode == 0
        assert processes_mentioning(str(disk)) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        disk.rmdir()
    assert sandbox.leftovers() == []


@pytest.mark.local_only  # the docker backend's builder: tests/integration/test_docker.py
@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_a_killed_up_leaves_no_snapshot_builder(tmp_path: Path) -> None:
    """kill -9 while a new tenant set's realm snapshot is being made: the Keycloak making it and its
    half-made folder are removed by the next `gc` (and `up`); gc keeps the newest snapshots only."""
    from tests.helpers import make_sandbox

    slug = "k" + uuid.uuid4().hex[:8]
    with make_sandbox(tmp_path, services="keycloak") as box:
        proc = box.popen("up", "--tenants", slug)
        assert proc.stderr is not None
        said = ""
        while "making a Keycloak snapshot" not in said and proc.poll() is None:
            said += proc.stderr.readline()
        cache = Path(box.settings().cache_dir)

        def building() -> list[Path]:
            return [p for p in (cache / "keycloak").glob("*.snapshots/*.partial") if processes_mentioning(str(p))]

        partial = wait_for(building, what="a snapshot builder")
        proc.kill()  # the builder's Keycloak runs on its half-made folder
        proc.communicate()
        assert processes_mentioning(str(partial[0])), "the builder should outlive the killed up"
        collected = box.cli("gc")
        assert collected.returncode == 0, collected.stderr
        # removed by this gc, or just before it by another test's `up` (the same rule: it sweeps the
        # builders of this cache whose maker died; CI's workers share one cache)
        assert processes_mentioning(str(partial[0])) == [] and not partial[0].exists(), collected.stderr
        snapshots = [p for p in partial[0].parent.iterdir() if p.is_dir() and "." not in p.name]
        assert len(snapshots) <= 3  # gc keeps the three used last
