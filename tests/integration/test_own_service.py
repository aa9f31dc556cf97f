"""A service of a team's own, plugged in through the ``driveops_env.services`` entry point without any
change to ``driveops_env/`` (``tests/example_service``: a notes server with a namespace per tenant):
env values, a check, a fixture with per-test restore, ``tenant add``, isolation, on both backends."""

from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from driveops_example_notes.service import build_image, call

from tests.helpers import Sandbox, docker_client, run

pytestmark = pytest.mark.integration

NOTES_TESTS = """
def test_a_writes(tenant, tenant_notes):
    assert tenant_notes.notes()["welcome"] == "Hello Acme Garage"
    tenant_notes.put("scratch", "written by a test")
    assert "scratch" in tenant_notes.notes()

def test_b_sees_the_seed_again(tenant_notes):
    assert "scratch" not in tenant_notes.notes()
"""


@pytest.fixture
def notes_box(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    box.services = "notes,postgres"
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", box.services)
    if box.backend == "docker":  # its image: made once on the engine, from the stand-ins' Debian base
        monkeypatch.setenv("DRIVEOPS_ENV_IMAGE_NOTES", build_image(docker_client()))
    return box


def test_a_plugged_in_service_gets_env_check_fixture_restore_and_tenant_add(
    pytester: pytest.Pytester, notes_box: Sandbox
) -> None:
    box = notes_box
    up = box.cli("up", "--tenants", "acme,beta")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "ok  seed notes.acme" in up.stderr and "/ns/driveops_acme" in up.stdout
    acme = json.loads(box.cli("env", "--tenant", "acme", "--format", "json").stdout)
    beta = json.loads(box.cli("env", "--tenant", "beta", "--format", "json").stdout)
    notes = f"{acme['DRIVEOPS_NOTES_URL']}/ns/{acme['DRIVEOPS_NOTES_NAMESPACE']}/notes"
    assert call(notes, acme["DRIVEOPS_NOTES_TOKEN"])["tenant_id"] == acme["DRIVEOPS_TENANT_ID"]
    with pytest.raises(urllib.error.HTTPError, match="403"):  # beta's token does not reach acme's notes
        call(notes, beta["DRIVEOPS_NOTES_TOKEN"])
    check = box.cli("check", "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert {(r["tenant"], r["name"]) for r in json.loads(check.stdout)} >= {("acme", "notes"), ("beta", "notes")}
    pytester.makepyfile(test_notes=NOTES_TESTS)
    result = run(pytester, "--driveops-reuse", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    added = box.cli("tenant", "add", "gamma")
    assert added.returncode == 0, added.stderr
    gamma = json.loads(box.cli("env", "--tenant", "gamma", "--format", "json").stdout)
    assert gamma["DRIVEOPS_NOTES_NAMESPACE"] == "driveops_gamma"
    assert box.cli("reset", "--tenant", "acme", "--only", "notes").returncode == 0
    assert box.cli("down").returncode == 0
    assert box.leftovers() == []


def test_the_plugged_in_service_lives_outside_the_package() -> None:
    import driveops_example_notes

    package = Path(__file__).resolve().parents[2] / "driveops_env"
    assert not Path(driveops_example_notes.__file__).resolve().is_relative_to(package)
    named = [
        p for p in package.rglob("*.py") if re.search(r"[\"']notes[\"']|example_notes|NotesService", p.read_text())
    ]
    assert named == []  # nothing in driveops_env names it
    found: Any = __import__("driveops_env.services.registry", fromlist=["names"])
    assert "notes" in found.names() and "notes" not in found.default_names()


NETWORK_TESTS = """
import json

from testcontainers.core.container import DockerContainer

FETCH = (
    "import json, os, urllib.request as u; "
    "r = u.Request(os.environ['DRIVEOPS_NOTES_URL'] + '/ns/' + os.environ['DRIVEOPS_NOTES_NAMESPACE'] + '/notes', "
    "headers={'Authorization': 'Bearer ' + os.environ['DRIVEOPS_NOTES_TOKEN']}); "
    "print(json.dumps(json.load(u.urlopen(r, timeout=30))))"
)


def test_my_api_in_a_container_reaches_the_tenants_store_by_name(tenant, driveops_network):
    values = tenant.env_vars(network=True)
    assert values["DRIVEOPS_NOTES_URL"].startswith("http://notes-acme:")  # the store's name on the network
    api = DockerContainer(IMAGE).with_network(driveops_network).with_network_aliases("my-api")
    for key, value in values.items():
        api.with_env(key, value)
    api.with_command(["python3", "-c", FETCH])
    api.start()
    try:
        assert api.get_wrapped_container().wait(timeout=60)["StatusCode"] == 0
        out, err = api.get_logs()
        assert json.loads(out)["welcome"] == "Hello Acme Garage", err
    finally:
        api.stop()
"""


@pytest.mark.docker
def test_a_service_repositorys_own_container_joins_the_network_through_testcontainers(
    pytester: pytest.Pytester, notes_box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    if notes_box.backend != "docker":
        pytest.fail("run with DRIVEOPS_TEST_BACKEND=docker (the docker pass of scripts/test does)")
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")  # no reaper image here (the README says so)
    pytester.makepyfile(test_api=f"IMAGE = {build_image(docker_client())!r}\n" + NETWORK_TESTS)
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    networks = docker_client().networks.list(filters={"label": f"org.driveops-env.home={notes_box.home_label()}"})
    assert networks == []  # the session's down removed the environment's network; joining made none
    assert notes_box.leftovers() == []
