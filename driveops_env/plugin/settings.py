"""The plugin's own options, declared like every other option, and the session's settings.

Every option (the generic ones and each service's own) is also a pytest flag ``--driveops-<option>``
and an ini key ``driveops_<option>``; the plugin adds four of its own (:class:`PluginSettings`).
Both tables are resolved by :mod:`driveops_env.options`: one precedence for all.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driveops_env import option_types, options
from driveops_env.errors import UsageError
from driveops_env.option_types import Option, table
from driveops_env.services import registry
from driveops_env.settings import Settings

FLAG_PREFIX = "--driveops-"
DEST_PREFIX = "driveops_"


@dataclass(frozen=True)
class PluginSettings:
    reuse: bool = option_types.switch(
        "Attach to the environment `driveops-env up` started (same --driveops-name, default 'default') and "
        "leave it running; start it, and leave it running, if none runs.",
    )
    keep: bool = option_types.switch(
        "Leave the environment running after the session (to inspect it, or to reuse it).",
    )
    keep_failed: bool = option_types.switch(
        "Keep the copies a failed test used (every store and its realm) instead of restoring them: the "
        "failure's report says how to reach them, `driveops-env copies` lists them, gc drops them after "
        "keep_failed_hours; an environment the session started stays up for them.",
    )
    smoke: bool = option_types.switch(
        "Run the `driveops-env check` health checks as the session's tests, against the environment "
        "`driveops-env up` runs (same lookup as --driveops-reuse), the one --driveops-from describes, the "
        "one the DRIVEOPS_* variables of `driveops-env env` describe, or else one this session starts.",
    )
    from_file: Path | None = option_types.declare(
        "A descriptor written by `driveops-env export` (a shared staging environment): the fixtures work "
        "on per-session copies of its tenants' stores and never write its seeded data.",
        lambda: None,
        "none",
        option_types.parse_optional_path,
        metavar="FILE",
    )
    sources: Mapping[str, str] = field(default_factory=dict)


def plugin_options() -> tuple[Option, ...]:
    return table(PluginSettings)


def all_options() -> tuple[Option, ...]:
    return (*registry.options(), *plugin_options())


FLAG_NAMES = {"from_file": "from"}  # `--driveops-from staging.json` reads better than --driveops-from-file


def flag(option: Option) -> str:
    return FLAG_PREFIX + FLAG_NAMES.get(option.name, option.name.replace("_", "-"))


def plugin_options_table() -> str:
    """The README's table of the plugin's own options."""
    lines = [
        "| plugin option | pytest flag | ini key | environment variable | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in plugin_options():
        flags = f"`{flag(option)}`"
        if option.metavar == "BOOL":
            flags += f", `--no-{flag(option)[2:]}`"
        lines.append(
            f"| {option.name} | {flags} | `{option.ini_key}` | `{option.env_var}` | "
            f"{option.default_doc} | {option.meaning} |"
        )
    return "\n".join(lines)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("driveops-env", "driveops-env: tenant environments (flags, ini keys, DRIVEOPS_ENV_*)")
    own = plugin_options()
    for option in all_options():
        kwargs: dict[str, Any] = {"dest": DEST_PREFIX + option.name, "default": None, "help": option.meaning}
        if option in own and option.metavar == "BOOL":
            # a plain switch (pytest users put flags before paths), with a --no- form that undoes a
            # configured true; the ini key and DRIVEOPS_ENV_* variable keep their true/false values
            group.addoption(flag(option), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.addoption(flag(option), metavar=option.metavar, **kwargs)
        parser.addini(option.ini_key, f"{option.meaning} (default: {option.default_doc})", default=None)


def _inputs(config: pytest.Config, table_: tuple[Option, ...]) -> options.Inputs:
    import os

    keys = [o.toml_key for o in all_options()]
    pyproject, pyproject_dir = options.read_pyproject(config.rootpath, keys=keys)
    ini = {}
    for option in table_:
        value = config.getini(option.ini_key)
        if value not in (None, "", []):
            ini[option.name] = value
    return options.Inputs(
        cli={o.name: config.getoption(DEST_PREFIX + o.name) for o in table_},
        environ=os.environ,
        pyproject=pyproject,
        ini=ini,
        pyproject_dir=pyproject_dir,
        ini_dir=config.inipath.parent if config.inipath else config.rootpath,
    )


def resolve(config: pytest.Config) -> tuple[Settings, PluginSettings]:
    """The session's settings and the plugin's own, or a usage error naming the option."""
    try:
        plugin = options.resolve_into(PluginSettings, plugin_options(), _inputs(config, plugin_options()))
        settings = options.settings_from(_inputs(config, registry.options()))
    except UsageError as exc:
        raise pytest.UsageError(f"driveops-env: {exc}") from None
    return settings, plugin


@dataclass(frozen=True)
class Factory:
    """What a conftest's ``driveops_env_factory(...)`` asked for, and the folder its relative paths are
    anchored to: carried by the fixture it returns, found by the session through the fixture."""

    overrides: Mapping[str, Any]
    base: Path | None = None

    def apply(self, settings: Settings) -> Settings:
        try:
            return options.with_options(settings, self.base, **self.overrides)
        except UsageError as exc:
            raise pytest.UsageError(f"driveops-env: driveops_env_factory: {exc}") from None

    def check(self) -> None:
        unknown = set(self.overrides) - {o.name for o in registry.options()}
        if unknown:
            raise UsageError(f"unknown option(s) for driveops_env_factory: {', '.join(sorted(unknown))}")
