"""Security defaults: loopback only, secrets shown only on request, private state, tenants apart."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymongo
import pymongo.errors
import pytest
import redis

from driveops_env import Environment
from driveops_env.errors import ServiceError
from tests.helpers import Sandbox, make_sandbox, userinfo_status

pytestmark = pytest.mark.integration


def _listening_sockets(pids: set[int]) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the TCP sockets these processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                addresses.append(fields[1].split(":")[0])
    return addresses


def _group_pids(leaders: set[int]) -> set[int]:
    """Every process in the process groups of the servers (postgres children, the JVM under kc.sh)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in leaders:
                    found.add(int(entry.name))
            except ProcessLookupError:
                continue
    return found


# 127.0.0.1, ::1, ::ffff:127.0.0.1 (a JVM binds 127.0.0.1 through an IPv6 socket)
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.fixture(scope="module")
def full_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Environment]]:
    with make_sandbox(tmp_path_factory.mktemp("sec"), services="keycloak,postgres,mongo,redis") as box:
        up = box.cli("up", "--tenants", "acme,beta")
        assert up.returncode == 0, up.stderr
        box.up_output = up.stdout + up.stderr  # type: ignore[attr-defined]
        env = Environment.attach(box.name, settings=box.settings())
        try:
            yield box, env
        finally:
            env.down()


def test_nothing_listens_beyond_loopback(full_env: tuple[Sandbox, Environment]) -> None:
    box, env = full_env
    if box.backend == "docker":
        for container in box.containers():
            for bindings in container.attrs["NetworkSettings"]["Ports"].values():
                assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), container.name
        return
    leaders = {r.process.pid for r in env.state.services.values() if r.process}
    addresses = _listening_sockets(_group_pids(leaders))
    assert addresses, "the servers should listen somewhere"
    assert set(addresses) <= LOOPBACK, addresses


def test_secrets_are_shown_only_on_request(full_env: tuple[Sandbox, Environment]) -> None:
    box, env = full_env
    secrets = {r.admin_password for r in env.state.services.values()}
    for tenant in env.state.tenants.values():
        secrets |= {str(s.get("password") or s.get("client_secret")) for s in tenant.stores.values()}
    assert len(secrets) > 10 and all(len(s) >= 32 for s in secrets)
    output = box.up_output  # type: ignore[attr-defined]
    for command in (["status"], ["check"], ["up", "--tenants", "acme,beta"], ["gc", "--dry-run"]):
        result = box.cli(*command)
        output += result.stdout + result.stderr
    for key in env.state.services:
        output += box.cli("logs", key).stdout
    if box.backend == "local":
        for log in Path(env.state.data_dir, "logs").glob("*.log"):
            output += log.read_text(errors="replace")
    leaked = [s[:6] + "..." for s in secrets if s in output]
    assert leaked == [], f"secrets in output or logs: {leaked}"
    shown = box.cli("status", "--show-secrets").stdout
    assert any(s in shown for s in secrets)  # they are there on request


def test_state_file_is_private(full_env: tuple[Sandbox, Environment], tmp_path: Path) -> None:
    box, _ = full_env
    path = box.state_dir / f"{box.name}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = tmp_path / "new-state-dir"  # a state directory driveops-env creates is 0700
    assert box.cli("status", "--state-dir", str(fresh)).returncode == 1  # nothing runs there
    assert box.cli("gc", "--state-dir", str(fresh), "--dry-run").returncode == 0
    assert box.cli("down", "--state-dir", str(fresh)).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_tenants_are_apart_in_every_store_and_realm(full_env: tuple[Sandbox, Environment]) -> None:
    _, env = full_env
    acme, beta = env.tenant("acme"), env.tenant("beta")
    a_pg, b_pg = acme.postgres, beta.postgres
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"host={b_pg.host} port={b_pg.port} dbname={b_pg.database} user={a_pg.user} "
            f"password={a_pg.password} connect_timeout=5"
        ).close()
    a_mongo = acme.mongo
    other: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        a_mongo.uri.replace(f":{a_mongo.port}/", f":{beta.mongo.port}/"), serverSelectionTimeoutMS=3000
    )
    with pytest.raises(pymongo.errors.OperationFailure):
        other.driveops_beta.intervention_notes.find_one()
    other.close()
    a_redis = acme.redis
    client = redis.Redis(
        host=beta.redis.host,
        port=beta.redis.port,
        username=a_redis.username,
        password=a_redis.password,
        socket_timeout=5,
    )
    with pytest.raises((redis.AuthenticationError, redis.exceptions.NoPermissionError, redis.ResponseError)):
        client.get("beta:config") if a_redis.username else client.ping()
    client.close()
    token = acme.token()
    assert userinfo_status(beta.keycloak, token) == 401
    with pytest.raises(ServiceError):
        beta.keycloak.token("admin@acme.test", acme.keycloak.users["admin@acme.test"])
