from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from driveops_env import options
from driveops_env.errors import UsageError
from driveops_env.option_types import Range, parse_port, table


def test_every_option_is_declared_once_by_settings_or_one_service() -> None:
    from driveops_env.services import registry
    from driveops_env.settings import Settings

    names = [o.name for o in registry.options()]
    assert len(names) == len(set(names))
    generic = {f.name for f in fields(Settings)} - {"extra", "sources"}
    own = {o.name for cls in registry.classes() if cls.options for o in table(cls.options)}
    assert set(names) == generic | own and not generic & own
    assert {"image_postgres", "keycloak_version", "redis_server"} <= own  # each service's options are its own


def test_every_numeric_option_has_an_upper_bound_that_says_why() -> None:
    from driveops_env.services import registry

    for option in registry.options():
        default = option.default()
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        assert isinstance(option.parse, Range) or option.parse is parse_port, option.name
        if isinstance(option.parse, Range):
            assert option.parse.high < 10**7 and option.parse.why, option.name
            assert option.parse.describe()[1:] in option.meaning
            with pytest.raises(UsageError, match=f"{option.flag}: .*must be from"):
                options.resolve(cli={option.name: "99999999999999999999"}, environ={}, pyproject={})
            for huge in ("1e308", "9" * 400, "9" * 5000):
                with pytest.raises(UsageError, match=option.env_var):
                    options.resolve(cli={}, environ={option.env_var: huge}, pyproject={})


def test_derived_names() -> None:
    option = options.by_name()["startup_timeout"]
    assert option.flag == "--startup-timeout"
    assert option.env_var == "DRIVEOPS_ENV_STARTUP_TIMEOUT"
    assert option.toml_key == "startup-timeout"
    assert option.ini_key == "driveops_startup_timeout"


def test_precedence_cli_env_pyproject_default() -> None:
    env = {"DRIVEOPS_ENV_ISOLATION": "shared", "DRIVEOPS_ENV_NAME": "from-env"}
    pyproject = {"isolation": "dedicated", "name": "from-toml", "tenants": ["beta", "acme"]}
    s = options.resolve(cli={"name": "from-cli"}, environ=env, pyproject=pyproject)
    assert s.name == "from-cli" and s.sources["name"] == "cli"
    assert s.isolation == "shared" and s.sources["isolation"] == "env"
    assert s.tenants == ("beta", "acme") and s.sources["tenants"] == "pyproject"
    assert s.backend == "auto" and s.sources["backend"] == "default"


def test_explicit_empty_value_is_not_unset() -> None:
    # `x or default` would silently take the default; an explicit empty tenant list is an error
    with pytest.raises(UsageError, match="DRIVEOPS_ENV_TENANTS"):
        options.resolve(environ={"DRIVEOPS_ENV_TENANTS": ""}, pyproject={})


@pytest.mark.parametrize(
    ("cli", "fragment"),
    [
        ({"isolation": "weird"}, "--isolation"),
        ({"backend": "podman"}, "--backend"),
        ({"startup_timeout": "0"}, "--startup-timeout"),
        ({"startup_timeout": "soon"}, "--startup-timeout"),
        ({"name": "Bad Name"}, "--name"),
        ({"tenants": "acme;drop"}, "--tenants"),
    ],
)
def test_bad_values_name_the_option(cli: dict[str, str], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        options.resolve(cli=cli, environ={}, pyproject={})
    assert fragment in str(info.value)


def test_pyproject_table_is_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.driveops-env]\ntenants = "beta"\nisolation = "shared"\n')
    assert options.read_pyproject(tmp_path)[0] == {"tenants": "beta", "isolation": "shared"}
    (tmp_path / "pyproject.toml").write_text('[tool.driveops-env]\ntennants = "beta"\n')
    with pytest.raises(UsageError, match="tennants"):
        options.read_pyproject(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.driveops-env\n")
    with pytest.raises(UsageError, match="TOML"):
        options.read_pyproject(tmp_path)


def test_readme_documents_every_option() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert options.markdown_table() in readme, "regenerate the table with `driveops-env options`"
    from driveops_env.plugin.settings import plugin_options_table

    assert plugin_options_table() in readme
