"""Pure logic behind the issues' rough edges: inputs, renderings, classifications."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from driveops_env import diagnosis, envvars, options, process, readiness, typed_json
from driveops_env.errors import StartupError, TemplateError, UsageError
from driveops_env.services import registry
from driveops_env.services.keycloak.versions import KeycloakVersion
from driveops_env.services.postgres.sql import render_sql_files, split_sql, sql_literal
from driveops_env.services.redis.access import RedisAccess
from driveops_env.state import EnvState, TenantRecord
from driveops_env.tenants import Tenant, load_catalogue

REPO = Path(__file__).resolve().parents[2]


def test_debootstrap_mirror_comes_from_the_apt_sources(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("# nothing here\ndeb-src file:/srv/apt/src bookworm main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: file:/srv/apt/main/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: file:/srv/apt/security\nSuites: bookworm-security\n"
    )
    (apt / "sources.list.d" / "extra.list").write_text("deb [arch=amd64] file:/srv/apt/other trixie main\n")

    def mirror(suite: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / "debian-mirror"), suite],
            capture_output=True,
            text=True,
            env={"DEBIAN_MIRROR_APT_DIR": str(apt)},
            check=False,
        )

    assert mirror("bookworm").stdout.strip() == "file:/srv/apt/main"
    assert mirror("bookworm-security").stdout.strip() == "file:/srv/apt/security"
    assert mirror("trixie").stdout.strip() == "file:/srv/apt/other"
    missing = mirror("sid")
    assert missing.returncode == 1 and "DEBIAN_MIRROR" in missing.stderr


def test_no_mirror_address_is_written_into_the_scripts() -> None:
    for script in ("build-images", "provision", "debian-mirror"):
        assert "://" not in (REPO / "scripts" / script).read_text()  # every address comes from apt's sources


def test_list_options_take_toml_arrays_and_relative_paths_anchor_where_written(tmp_path: Path) -> None:
    project = tmp_path / "service"
    s = options.resolve(
        pyproject={"services": ["redis", "postgres"], "tenants": ["beta"], "seeds-dir": "tests/seeds"},
        pyproject_dir=project,
        environ={"DRIVEOPS_ENV_CACHE_DIR": "cache"},
        cli={"state_dir": "st"},
    )
    assert s.services == ("postgres", "redis") and s.tenants == ("beta",)
    assert s.seeds_dir == project / "tests" / "seeds"  # the pyproject's folder
    assert s.cache_dir == Path.cwd() / "cache" and s.state_dir == Path.cwd() / "st"  # the current directory
    with pytest.raises(UsageError, match="a list is not valid"):
        options.resolve(pyproject={"backend": ["local"]}, environ={})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1"])
def test_startup_timeout_must_be_finite_and_positive(value: str) -> None:
    with pytest.raises(UsageError, match="startup-timeout"):
        options.resolve(cli={"startup_timeout": value}, environ={}, pyproject={})


def test_python_keywords_are_options() -> None:
    s = options.with_options(options.resolve(environ={}, pyproject={}), tenants=["acme", "beta"], backend="local")
    assert s.tenants == ("acme", "beta") and s.backend == "local" and s.sources["tenants"] == "python"
    with pytest.raises(UsageError, match="unknown option"):
        options.with_options(s, tennants="acme")


def test_a_sql_literal_stays_on_one_line_even_in_a_comment() -> None:
    hostile = "Evil\nCREATE TABLE injected_by_display_name (x int); --"
    rendered = f"-- welcome {sql_literal(hostile)}\nSELECT 1;"
    statements = split_sql(rendered)
    assert [s.text for s in statements] == ["SELECT 1"]  # the comment swallowed the whole name
    assert sql_literal("O'Brien") == "'O''Brien'"


def test_seed_placeholders_in_comments_are_inert(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "001.sql").write_text("-- for {{ tenant_name }}\nSELECT {{ tenant_slug }};\n")
    tenant = Tenant("acme", "550e8400-e29b-41d4-a716-446655440001", "A\nDROP TABLE x;", "acme")
    (seed,) = render_sql_files(tmp_path, tenant)
    assert [s.text for s in seed.statements] == ["SELECT 'acme'"]


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"slug": "acme", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": "A\nB"}], "control"),
        ([{"slug": "acme", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": None}], "strings"),
        ([{"slug": "acme", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": "A"}] * 2, "twice"),
        (
            [
                {"slug": "acme", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": "A"},
                {"slug": "beta", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": "B"},
            ],
            "share the id",
        ),
        (
            [{"slug": "acme", "tenant_id": "f1e7f6a0-9c1b-5d0e-8b3a-000000000000", "name": "A"}],
            None,
        ),
    ],
)
def test_catalogue_is_validated(tmp_path: Path, rows: list[dict[str, object]], fragment: str | None) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": rows}))
    if fragment is None:
        assert set(load_catalogue(path)) == {"acme"}
        return
    with pytest.raises(TemplateError, match=fragment):
        load_catalogue(path)


def test_a_catalogue_id_equal_to_another_slugs_derived_id_is_refused(tmp_path: Path) -> None:
    from driveops_env.tenants import derive_tenant_id

    rows = [
        {"slug": "acme", "tenant_id": derive_tenant_id("beta"), "name": "A"},
        {"slug": "beta", "tenant_id": "550e8400-e29b-41d4-a716-446655440002", "name": "B"},
    ]
    (tmp_path / "tenants.json").write_text(json.dumps({"tenants": rows}))
    with pytest.raises(TemplateError, match="would be derived"):
        load_catalogue(tmp_path / "tenants.json")


def test_a_log_excerpt_drops_jvm_archive_noise_and_keeps_the_error() -> None:
    noise = [
        f"[0.0{i}s][warning][cds] shared class paths mismatch (hint: enable -Xlog:class+path=info)" for i in range(20)
    ]
    log = "\n".join(
        [
            "Updating the configuration",
            *noise,
            "ERROR: Build time option: '--cache' not usable with pre-built image and --optimized",
            "For more details run the same command passing the '--verbose' option",
        ]
    )
    text = process.excerpt(log, lines=6)
    assert "--cache' not usable" in text and "[cds]" not in text


def test_failures_are_diagnosed_in_words() -> None:
    ferret = RuntimeError("[msg_saslstart.go:83] InternalError: password authentication failed for user x (code 1)")
    services = registry.every(options.resolve(environ={}, pyproject={}))
    detail, hint = diagnosis.diagnose(ferret, [s.explain for s in services.values()])  # its service says what it is
    assert detail.startswith("authentication failed") and hint is not None
    detail, hint = diagnosis.diagnose(ConnectionRefusedError("[Errno 111] Connection refused"))
    assert detail.startswith("no answer") and "status" in (hint or "")


def test_waits_end_at_once_on_a_permanent_refusal() -> None:
    calls: list[int] = []

    def probe() -> None:
        calls.append(1)
        raise RuntimeError('FATAL:  password authentication failed for user "postgres"')

    explain = registry.service("postgres", options.resolve(environ={}, pyproject={})).explain

    def refused(exc: BaseException) -> bool:
        said = explain(str(exc))
        return said is not None and said.permanent

    with pytest.raises(StartupError, match="refused"):
        readiness.wait_until(probe, timeout=600, service="postgres", permanent=refused)
    assert len(calls) == 1

    def starting() -> None:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionRefusedError("Connection refused")

    readiness.wait_until(starting, timeout=600, service="postgres", interval=0.001, permanent=refused)
    assert len(calls) == 4  # transient refusals are waited out


def test_redis_urls_name_the_user() -> None:
    dedicated = RedisAccess("redis.acme", "127.0.0.1", 6379, None, "pw", "acme:")
    assert dedicated.url == "redis://default:pw@127.0.0.1:6379/0"
    copy = RedisAccess("redis.acme", "127.0.0.1", 6379, None, "pw", "acme:", db=3)
    dotnet = envvars.variables(
        "x", _tenant_with(copy), registry.every(options.resolve(environ={}, pyproject={})), "dotnet"
    )
    assert copy.url.endswith("/3") and "defaultDatabase=3" in dotnet["ConnectionStrings__Redis"]


def _tenant_with(access: RedisAccess) -> TenantRecord:
    from dataclasses import asdict

    return TenantRecord(
        "acme", "550e8400-e29b-41d4-a716-446655440001", "Acme", "acme", stores={"redis": asdict(access)}
    )


def _docker_env_file(text: str) -> dict[str, str]:
    """docker run --env-file: KEY=VALUE a line, the value kept as is (no quote removal)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


NAMES = [
    'Acme "Garage" $(id) `id` \\n ${HOME}',
    "O'Brien & Sons, 50%#1 = fine",
    "Garage #1 Lyon",
    '"Quoted" Garage',
    "'Single' Garage",
    " Leading space",
    "Trailing space ",
    "Trailing nbsp\u00a0",
    "Em space\u2003#2",
    "#1 Garage",
    "Garage=#2",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_display_name_reads_back_identically_from_the_dotenv_format_or_is_refused(tmp_path: Path, name: str) -> None:
    import dotenv

    def read_back(text: str) -> dict[str, str | None]:
        return dict(dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False))

    carried = read_back(f"X={name}") == {"X": name}  # python-dotenv, the consumer that reads lines differently
    catalogue = tmp_path / "tenants.json"
    entry = {"slug": "acme", "tenant_id": "550e8400-e29b-41d4-a716-446655440001", "name": name}
    catalogue.write_text(json.dumps({"tenants": [entry]}))
    if not carried:
        with pytest.raises(TemplateError, match="dotenv") as refused:
            load_catalogue(catalogue)
        assert repr(name) in refused.value.message
        with pytest.raises(UsageError, match="cannot carry unchanged"):
            envvars.render({"DRIVEOPS_TENANT_NAME": name}, "dotenv")
        return
    text = envvars.render({"DRIVEOPS_TENANT_NAME": load_catalogue(catalogue)["acme"].display_name}, "dotenv")
    assert read_back(text) == _docker_env_file(text) == {"DRIVEOPS_TENANT_NAME": name}


def test_dotenv_is_read_literally_by_docker_and_github_and_refuses_line_breaks() -> None:
    values = {"DRIVEOPS_TENANT_NAME": 'Acme "Garage" $(id) `id`', "DRIVEOPS_MONGO_URI": "mongodb://u:p@h:1/db?a=b"}
    text = envvars.render(values, "dotenv")
    assert _docker_env_file(text) == values  # GitHub's $GITHUB_ENV reads KEY=VALUE lines the same way
    with pytest.raises(UsageError, match="line break"):
        envvars.render({"X": "a\nb"}, "dotenv")


def test_shell_format_is_inert_when_sourced(tmp_path: Path) -> None:
    values = {"DRIVEOPS_TENANT_NAME": "x $(touch pwned) `touch pwned2` ' \" \\"}
    script = tmp_path / "env.sh"
    script.write_text(envvars.render(values, "shell") + "\n")
    out = subprocess.run(
        ["sh", "-c", f'set -a; . {script}; printf %s "$DRIVEOPS_TENANT_NAME"'],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert out.stdout == values["DRIVEOPS_TENANT_NAME"]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_keycloak_versions_say_what_each_needs() -> None:
    old, new = KeycloakVersion("23.0.7"), KeycloakVersion("26.5.6")
    assert not old.has_management_port and new.has_management_port
    assert old.bootstrap_admin_env("a", "p") == {"KEYCLOAK_ADMIN": "a", "KEYCLOAK_ADMIN_PASSWORD": "p"}
    assert set(new.bootstrap_admin_env("a", "p")) == {"KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"}
    assert "--cache=local" not in old.listen_args("127.0.0.1", 1, None)  # refused by start --optimized
    assert (
        old.health_url("h", 1, 2) == "http://h:1/health/ready"
        and new.health_url("h", 1, 2) == "http://h:2/health/ready"
    )
    with pytest.raises(UsageError, match="older than"):
        KeycloakVersion("22.0.5").number  # noqa: B018
    with pytest.raises(UsageError, match="not a version"):
        KeycloakVersion("latest").number  # noqa: B018


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("services", "pid"), "expected"),
        (("data_dir",), "expected str"),
    ],
)
def test_a_state_file_of_the_wrong_shape_is_refused(change: tuple[str, ...], fragment: str) -> None:
    raw: dict[str, object] = {
        "name": "x",
        "backend": "local",
        "isolation": "dedicated",
        "spec_hash": "h",
        "fingerprint": {},
        "data_dir": "/tmp/x",
        "services": {
            "p": {
                "key": "p",
                "kind": "postgres",
                "tenant": None,
                "host": "h",
                "port": 1,
                "admin_user": "u",
                "admin_password": "p",
                "process": {"pid": 3, "pid_start": 1, "argv0": "a", "data_dir": "/tmp/x/p", "log_path": "/tmp/x/l"},
            }
        },
    }
    if change == ("services", "pid"):
        raw["services"]["p"]["process"]["pid"] = "1; rm -rf /"  # type: ignore[index]
    else:
        raw["data_dir"] = 42
    with pytest.raises(typed_json.ShapeError, match=fragment):
        EnvState.from_dict(raw)
