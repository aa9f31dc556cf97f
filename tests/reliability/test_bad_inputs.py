"""Bad input, table-driven: each case exits 2, names the input, and leaves nothing running."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from driveops_env.option_types import Range
from driveops_env.services import registry
from tests.helpers import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.local_only]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: str  # what the message must name
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> content, in a fresh directory
    links: dict[str, str] = field(default_factory=dict)  # relative path -> where the link points
    fifos: tuple[str, ...] = ()  # relative paths of FIFOs nobody writes to


DEEP = "[" * 100_000  # a RecursionError in json.loads
DEEPISH = "[" * 500 + "]" * 500  # parses, but nests deeper than any seed or realm does
GAMMA_DERIVED = str(uuid.uuid5(uuid.UUID("6f1b2c1e-8d4a-5f3e-9b7c-0d2e4f6a8b10"), "gamma"))
ACME = "550e8400-e29b-41d4-a716-446655440001"
GOOD_REALM = '{"realm": "{{ realm }}", "enabled": true, "roles": {"realm": [{"name": "admin"}]}}'
GOOD_USERS = '{"users": []}'

CASES = [
    # tenant names
    Case("empty-tenants", ("up", "--tenants", ""), "empty"),
    Case("only-commas", ("up", "--tenants", ",,"), "empty"),
    Case("duplicate", ("up", "--tenants", "acme,beta,acme"), "'acme'"),
    Case("uppercase", ("up", "--tenants", "ACME"), "'ACME'"),
    Case("space", ("up", "--tenants", "ac me"), "'ac me'"),
    Case("semicolon", ("up", "--tenants", "acme;drop"), "'acme;drop'"),
    Case("path", ("up", "--tenants", "../x"), "'../x'"),
    Case("slash", ("up", "--tenants", "a/b"), "'a/b'"),
    Case("master", ("up", "--tenants", "master"), "'master'"),
    Case("too-long", ("up", "--tenants", "a" * 32), "a" * 32),
    Case("one-char", ("up", "--tenants", "a"), "'a'"),
    Case("leading-digit", ("up", "--tenants", "9lives"), "'9lives'"),
    Case("underscore", ("up", "--tenants", "my_garage"), "'my_garage'"),
    Case("unicode", ("up", "--tenants", "garagé"), "'garagé'"),
    Case("quote", ("up", "--tenants", "acme'"), "acme'"),
    # options
    Case("isolation", ("up", "--isolation", "partial"), "--isolation"),
    Case("backend", ("up", "--backend", "podman"), "--backend"),
    Case("no-cluster", ("up", "--backend", "kubernetes"), "KUBECONFIG", env={"KUBECONFIG": "/nonexistent/kubeconfig"}),
    Case("timeout-zero", ("up", "--startup-timeout", "0"), "--startup-timeout"),
    Case("timeout-text", ("up", "--startup-timeout", "soon"), "--startup-timeout"),
    Case("services", ("up", "--services", "postgres,elastic"), "--services"),
    Case("services-empty", ("up", "--services", ""), "--services"),
    Case("keycloak-db", ("up", "--keycloak-db", "oracle"), "--keycloak-db"),
    Case("keycloak-port", ("up", "--keycloak-port", "70000"), "--keycloak-port"),
    Case("heap", ("up", "--keycloak-heap-mb", "-5"), "--keycloak-heap-mb"),
    Case("name", ("up", "--name", "My Env"), "--name"),
    Case("realm-pattern", ("up", "--realm-pattern", "{tenant}"), "realm pattern"),
    Case("realm-pattern-master", ("up", "--realm-pattern", "master", "--tenants", "acme"), "'master'"),
    Case("unknown-flag", ("up", "--tennants", "acme"), "--tennants"),
    Case("env-format", ("env", "--format", "yaml"), "yaml"),
    Case("seeds-dir-missing", ("up", "--seeds-dir", "/nonexistent/seeds"), "/nonexistent/seeds"),
    # environment variables
    Case("env-isolation", ("up",), "DRIVEOPS_ENV_ISOLATION", env={"DRIVEOPS_ENV_ISOLATION": "nope"}),
    Case("env-tenants", ("up",), "DRIVEOPS_ENV_TENANTS", env={"DRIVEOPS_ENV_TENANTS": "Acme"}),
    Case("env-timeout", ("up",), "DRIVEOPS_ENV_STARTUP_TIMEOUT", env={"DRIVEOPS_ENV_STARTUP_TIMEOUT": "-1"}),
    Case("env-services", ("up",), "DRIVEOPS_ENV_SERVICES", env={"DRIVEOPS_ENV_SERVICES": "mysql"}),
    # configuration (pyproject.toml in the working directory)
    Case("toml-key", ("up",), "tennants", files={"pyproject.toml": '[tool.driveops-env]\ntennants = "acme"\n'}),
    Case("toml-value", ("up",), "isolation", files={"pyproject.toml": '[tool.driveops-env]\nisolation = "x"\n'}),
    Case("toml-syntax", ("up",), "pyproject.toml", files={"pyproject.toml": "[tool.driveops-env\n"}),
    Case(
        "toml-tenants",
        ("up",),
        "listed twice",
        files={"pyproject.toml": '[tool.driveops-env]\ntenants = ["acme", "acme"]\n'},
    ),
    # realm templates
    Case(
        "realm-json",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "tenant-realm.json",
        files={"R/tenant-realm.json": '{"realm": '},
    ),
    Case(
        "realm-placeholder",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "{{secret}}",
        files={"R/tenant-realm.json": '{"realm": "{{ realm }}", "x": "{{ secret }}"}'},
    ),
    Case(
        "realm-name",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "tenant-realm.json",
        files={"R/tenant-realm.json": '{"realm": "fixed"}'},
    ),
    Case(
        "realm-missing",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "tenant-realm.json",
        files={"R/other.json": "{}"},
    ),
    Case(
        "users-role",
        ("up", "--services", "keycloak", "--realms-dir", "R", "--seeds-dir", "S"),
        "'boss'",
        files={
            "R/tenant-realm.json": GOOD_REALM,
            "S/users.json": '{"users": [{"username": "u", "role": "boss", "password": "p", '
            '"firstName": "f", "lastName": "l"}]}',
        },
    ),
    Case(
        "users-fields",
        ("up", "--services", "keycloak", "--realms-dir", "R", "--seeds-dir", "S"),
        "lacks",
        files={"R/tenant-realm.json": GOOD_REALM, "S/users.json": '{"users": [{"username": "u"}]}'},
    ),
    # seed files
    Case(
        "sql-placeholder",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "001.sql line 2",
        files={"S/postgres/001.sql": "SELECT 1;\nSELECT {{ nope }};\n"},
    ),
    Case(
        "sql-error",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "001.sql line 3",
        files={"S/postgres/001.sql": "SELECT 1;\n\nSELEC 2;\n"},
    ),
    Case(
        "sql-meta",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "meta-commands",
        files={"S/postgres/001.sql": "\\i other.sql\n"},
    ),
    Case(
        "redis-json",
        ("up", "--services", "redis", "--seeds-dir", "S"),
        "r.json",
        files={"S/redis/r.json": "{"},
    ),
    Case(
        "redis-type",
        ("up", "--services", "redis", "--seeds-dir", "S"),
        "'k'",
        files={"S/redis/r.json": '{"k": {"type": "stream", "value": 1}}'},
    ),
    Case(
        "mongo-option",
        ("up", "--services", "mongo", "--seeds-dir", "S"),
        "c.json",
        files={"S/mongo/c.json": '{"indexes": [{"keys": {"a": 1}, "sparse": true}], "documents": []}'},
    ),
    Case(
        "catalogue",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "tenants.json",
        files={"S/tenants.json": '{"tenants": [{"slug": "acme", "tenant_id": "nope", "name": "A"}]}'},
    ),
    Case(
        "catalogue-name-for-dotenv",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "'Garage #1 Lyon'",
        files={
            "S/tenants.json": json.dumps({"tenants": [{"slug": "acme", "tenant_id": ACME, "name": "Garage #1 Lyon"}]})
        },
    ),
    # a catalogue id equal to the id another tenant would be derived
    Case(
        "catalogue-derived-id",
        ("up", "--services", "postgres", "--seeds-dir", "S", "--tenants", "acme,gamma"),
        "'acme' and 'gamma' would share the tenant_id",
        files={"S/tenants.json": json.dumps({"tenants": [{"slug": "acme", "tenant_id": GAMMA_DERIVED, "name": "A"}]})},
    ),
    # realm patterns: {slug} required, replaced literally
    Case("realm-pattern-no-slug", ("up", "--realm-pattern", "fixed", "--tenants", "acme,beta"), "has no {slug}"),
    Case("realm-pattern-format", ("up", "--realm-pattern", "{slug.__class__}"), "has no {slug}"),
    Case("realm-pattern-attribute", ("up", "--realm-pattern", "{slug}{slug.__class__}"), "is not valid"),
    # files that never end, or never answer: refused, never read
    Case(
        "sql-dev-zero",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "001.sql",
        links={"S/postgres/001.sql": "/dev/zero"},
    ),
    Case(
        "catalogue-dev-zero",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "tenants.json",
        links={"S/tenants.json": "/dev/zero"},
    ),
    Case(
        "realm-dev-zero",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "tenant-realm.json",
        links={"R/tenant-realm.json": "/dev/zero"},
    ),
    Case("redis-fifo", ("up", "--services", "redis", "--seeds-dir", "S"), "r.json", fifos=("S/redis/r.json",)),
    Case("mongo-fifo", ("up", "--services", "mongo", "--seeds-dir", "S"), "c.json", fifos=("S/mongo/c.json",)),
    Case("users-fifo", ("up", "--services", "keycloak", "--seeds-dir", "S"), "users.json", fifos=("S/users.json",)),
    Case(
        "sql-too-big",
        ("up", "--services", "postgres", "--seeds-dir", "S", "--input-limit-mb", "1"),
        "big.sql",
        files={"S/postgres/big.sql": "-- " + "x" * (1024 * 1024 + 1) + "\n"},
    ),
    # JSON nested without end
    Case(
        "catalogue-deep",
        ("up", "--services", "postgres", "--seeds-dir", "S"),
        "tenants.json",
        files={"S/tenants.json": DEEP},
    ),
    Case("redis-deep", ("up", "--services", "redis", "--seeds-dir", "S"), "r.json", files={"S/redis/r.json": DEEP}),
    Case(
        "mongo-deepish", ("up", "--services", "mongo", "--seeds-dir", "S"), "c.json", files={"S/mongo/c.json": DEEPISH}
    ),
    Case(
        "realm-deep",
        ("up", "--services", "keycloak", "--realms-dir", "R"),
        "tenant-realm.json",
        files={"R/tenant-realm.json": DEEP},
    ),
    Case("descriptor-deep", ("status", "--from", "D.json"), "D.json", files={"D.json": DEEP}),
    Case("descriptor-fifo", ("check", "--from", "D.json"), "D.json", fifos=("D.json",)),
    # numbers without a bound: every numeric option (generated below), the commands' own
    Case("pool-env", ("up",), "DRIVEOPS_ENV_MONGO_RESTORE_POOL", env={"DRIVEOPS_ENV_MONGO_RESTORE_POOL": "546"}),
    Case("dashboard-interval-huge", ("dashboard", "--interval", "1e308"), "--interval"),
    Case("dashboard-interval-tiny", ("dashboard", "--interval", "1e-9"), "--interval"),
    Case("watch-interval", ("status", "--watch", "--interval", "nan"), "--interval"),
    Case("logs-lines", ("logs", "redis", "--lines", "-3"), "--lines"),
    *(
        Case(f"bound-{option.name}", ("up", option.flag, "99999999999999999999"), option.flag)
        for option in registry.options()
        if isinstance(option.parse, Range)
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(sandbox: Sandbox, tmp_path: Path, case: Case) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    for relative, content in case.files.items():
        target = workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for relative, pointee in case.links.items():
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / relative).symlink_to(pointee)
    for relative in case.fifos:
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(workdir / relative)
    args = [str(workdir / a) if a in ("R", "S", "D.json") else a for a in case.args]
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "driveops_env.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=sandbox.env() | case.env,
        cwd=workdir,
        check=False,
    )
    assert result.returncode == 2, f"{case.id}: exit {result.returncode}\n{result.stderr}"
    assert case.names in result.stderr, f"{case.id}: {result.stderr}"
    assert sandbox.leftovers() == []


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 55
