"""A service in a container on the environment's network (as a DriveOps API would run): with the values
`env --network` prints, in each format as its consumer reads it (`docker run --env-file` for dotenv, a
sourced file for shell, a JSON reader), it reaches its tenant's stores by stable names, and fetches
Keycloak's discovery document, JWKS and a token there; the issuer is the one the host side uses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest

from driveops_env import envvars
from driveops_env.services.keycloak.admin import claims
from tests.helpers import Sandbox, make_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# what a client library does with the printed values: discovery, its JWKS, a password grant at its
# token endpoint (Perl's core HTTP::Tiny and JSON::PP: the postgres image has them)
OIDC_CLIENT = r"""
use strict; use HTTP::Tiny; use JSON::PP;
my %v = @ARGV ? %{decode_json(do { local $/; open(my $f, '<', $ARGV[0]) or die "$!"; <$f> })} : %ENV;
my $http = HTTP::Tiny->new(timeout => 60);
sub fetch { my $r = $http->get($_[0]);
  die "$_[0]: $r->{status} $r->{content}\n" unless $r->{success}; decode_json($r->{content}) }
my $conf = fetch($v{DRIVEOPS_KEYCLOAK_DISCOVERY_URL});
my $jwks = fetch($conf->{jwks_uri});
my $r = $http->post_form($conf->{token_endpoint}, {grant_type => 'password', scope => 'openid',
  client_id => $v{DRIVEOPS_KEYCLOAK_CLIENT_ID}, client_secret => $v{DRIVEOPS_KEYCLOAK_CLIENT_SECRET},
  username => $v{DRIVEOPS_KEYCLOAK_USER}, password => $v{DRIVEOPS_KEYCLOAK_PASSWORD}});
die "token: $r->{status} $r->{content}\n" unless $r->{success};
print encode_json({issuer => $conf->{issuer}, token_endpoint => $conf->{token_endpoint},
  kids => [map { $_->{kid} } @{$jwks->{keys}}], token => decode_json($r->{content})->{access_token}});
"""


def _run(network: str, mounts: list[str], *command: str) -> subprocess.CompletedProcess[str]:
    image = os.environ.get("DRIVEOPS_ENV_IMAGE_POSTGRES", "postgres:16")
    argv = ["docker", "run", "--rm", "--network", network, *mounts, "--entrypoint", command[0], image, *command[1:]]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def _in_container(box: Sandbox, tmp_path: Path, network: str, fmt: str) -> dict[str, Any]:
    """What the OIDC client printed, run with ``env --network --format fmt`` as that format's consumer
    reads it."""
    printed = box.cli("env", "--tenant", "acme", "--network", "--format", fmt)
    assert printed.returncode == 0, printed.stderr
    (tmp_path / f"acme.{fmt}").write_text(printed.stdout + "\n")
    mount = ["-v", f"{tmp_path}:/values:ro"]
    if fmt == "dotenv":
        ran = _run(network, ["--env-file", str(tmp_path / "acme.dotenv")], "perl", "-e", OIDC_CLIENT)
    elif fmt == "shell":
        ran = _run(network, mount, "bash", "-c", '. /values/acme.shell && exec perl -e "$0"', OIDC_CLIENT)
    else:
        ran = _run(network, mount, "perl", "-e", OIDC_CLIENT, "/values/acme.json")
    assert ran.returncode == 0, f"{fmt}: {ran.stderr}"
    found: dict[str, Any] = json.loads(ran.stdout)
    return found


def test_a_container_on_the_network_uses_names_and_the_same_issuer(tmp_path: Path) -> None:
    if os.environ.get("DRIVEOPS_TEST_BACKEND") != "docker":
        pytest.fail("run with DRIVEOPS_TEST_BACKEND=docker (the docker pass of scripts/test does)")
    with make_sandbox(tmp_path, services="keycloak,postgres,redis", backend="docker") as box:
        assert box.cli("up", "--tenants", "acme").returncode == 0
        try:
            host_side = json.loads(box.cli("env", "--tenant", "acme", "--format", "json").stdout)
            inside = json.loads(box.cli("env", "--tenant", "acme", "--network", "--format", "json").stdout)
            assert inside["PGHOST"] == "postgres-acme" and inside["PGPORT"] == "5432"
            assert inside["DRIVEOPS_KEYCLOAK_URL"] == "http://keycloak:8080"
            assert inside["DRIVEOPS_KEYCLOAK_DISCOVERY_URL"].startswith(inside["DRIVEOPS_KEYCLOAK_URL"] + "/realms/")
            assert inside["DRIVEOPS_KEYCLOAK_ISSUER"] == host_side["DRIVEOPS_KEYCLOAK_ISSUER"]
            network = box.state()["services"]["postgres.acme"]["container"]["network"]
            (tmp_path / "acme.env").write_text(box.cli("env", "--tenant", "acme", "--network").stdout + "\n")
            query = _run(
                network,
                ["--env-file", str(tmp_path / "acme.env")],
                "bash",
                "-c",
                'psql "$DRIVEOPS_POSTGRES_DSN" -tAc "SELECT slug FROM tenants"',
            )
            assert query.stdout.strip() == "acme", query.stderr
            host_token = box.cli("token", "--tenant", "acme").stdout.strip()
            for fmt in ("dotenv", "shell", "json"):
                found = _in_container(box, tmp_path, network, fmt)
                assert found["issuer"] == host_side["DRIVEOPS_KEYCLOAK_ISSUER"]  # the host's issuer
                assert found["token_endpoint"].startswith("http://keycloak:8080/")  # reached by name
                assert claims(found["token"])["iss"] == claims(host_token)["iss"] == found["issuer"]
                assert claims(found["token"])["tenant_id"] == host_side["DRIVEOPS_TENANT_ID"]
                assert jwt.get_unverified_header(found["token"])["kid"] in found["kids"]  # its JWKS, in the network
        finally:
            box.cli("down")


def test_docker_env_file_reads_every_accepted_display_name_as_it_is(tmp_path: Path) -> None:
    names = ['Acme "Garage" $(id) `id` \\n ${HOME}', "O'Brien & Sons, 50%#1 = fine", "#1 Garage", "Garage=#2 é"]
    values = {f"DRIVEOPS_TENANT_NAME_{number}": name for number, name in enumerate(names)}
    (tmp_path / "names.env").write_text(envvars.render(values, "dotenv") + "\n")
    ran = _run("none", ["--env-file", str(tmp_path / "names.env")], "printenv", "-0")
    assert ran.returncode == 0, ran.stderr
    seen = dict(item.split("=", 1) for item in ran.stdout.split("\0") if item.startswith("DRIVEOPS_"))
    assert seen == values
