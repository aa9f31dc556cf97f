"""A service in a container on the environment's network (as a DriveOps API would run): it reaches its
tenant's stores by stable names with the values `env --network` prints (read by `docker run
--env-file` as they are), and a token it fetches there carries the issuer the host side uses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from driveops_env.services.keycloak.admin import claims
from tests.helpers import make_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.docker]

FETCH_TOKEN = r"""
body="grant_type=password&client_id=$DRIVEOPS_KEYCLOAK_CLIENT_ID&client_secret=$DRIVEOPS_KEYCLOAK_CLIENT_SECRET&scope=openid"
body="$body&username=$(printf %s "$DRIVEOPS_KEYCLOAK_USER" | sed 's/@/%40/')&password=$DRIVEOPS_KEYCLOAK_PASSWORD"
exec 3<>/dev/tcp/keycloak/8080
head='POST /realms/%s/protocol/openid-connect/token HTTP/1.1\r\nHost: keycloak:8080\r\n'
head="$head"'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n'
printf "$head%s" "$DRIVEOPS_KEYCLOAK_REALM" "${#body}" "$body" >&3
cat <&3 | tail -1
"""


def test_a_container_on_the_network_uses_names_and_the_same_issuer(tmp_path: Path) -> None:
    if os.environ.get("DRIVEOPS_TEST_BACKEND") != "docker":
        pytest.fail("run with DRIVEOPS_TEST_BACKEND=docker (the docker pass of scripts/test does)")
    with make_sandbox(tmp_path, services="keycloak,postgres,redis", backend="docker") as box:
        assert box.cli("up", "--tenants", "acme").returncode == 0
        try:
            inside = box.cli("env", "--tenant", "acme", "--network", "--format", "dotenv").stdout
            env_file = tmp_path / "acme.env"
            env_file.write_text(inside + "\n")
            host_side = dict(
                line.split("=", 1)
                for line in box.cli("env", "--tenant", "acme", "--format", "dotnet").stdout.splitlines()
            )
            in_net = dict(line.split("=", 1) for line in inside.splitlines())
            assert in_net["PGHOST"] == "postgres-acme" and in_net["PGPORT"] == "5432"
            network = box.state()["services"]["postgres.acme"]["network"]
            image = os.environ.get("DRIVEOPS_ENV_IMAGE_POSTGRES", "postgres:16")
            run = [
                "docker",
                "run",
                "--rm",
                "--network",
                network,
                "--env-file",
                str(env_file),
                "--entrypoint",
                "bash",
                image,
                "-c",
            ]
            query = subprocess.run(
                [*run, 'psql "$DRIVEOPS_POSTGRES_DSN" -tAc "SELECT slug FROM tenants"'],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert query.stdout.strip() == "acme", query.stderr
            fetched = subprocess.run([*run, FETCH_TOKEN], capture_output=True, text=True, check=False, timeout=120)
            token = json.loads(fetched.stdout)["access_token"]
            assert claims(token)["iss"] == host_side["Keycloak__Authority"]  # the same issuer on both sides
            host_token = box.cli("token", "--tenant", "acme").stdout.strip()
            assert claims(host_token)["iss"] == claims(token)["iss"]
        finally:
            box.cli("down")
