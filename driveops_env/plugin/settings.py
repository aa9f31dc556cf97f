"""The plugin's own options, declared like every other option, and the session's settings.

Every option of :class:`driveops_env.options.Settings` is also a pytest flag ``--driveops-<option>``
and an ini key ``driveops_<option>``; the plugin adds three of its own (:class:`PluginSettings`).
Both tables are resolved by :func:`driveops_env.options.resolve_into`: one precedence for all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driveops_env import option_types, options
from driveops_env.errors import UsageError

FLAG_PREFIX = "--driveops-"
DEST_PREFIX = "driveops_"


@dataclass(frozen=True)
class PluginSettings:
    reuse: bool = options.declare(
        "Attach to the environment `driveops-env up` started (same --driveops-name, default 'default') and "
        "leave it running; start it, and leave it running, if none runs.",
        lambda: False, "false", option_types.parse_bool, metavar="BOOL",
    )  # fmt: skip
    keep: bool = options.declare(
        "Leave the environment running after the session (to inspect it, or to reuse it).",
        lambda: False, "false", option_types.parse_bool, metavar="BOOL",
    )  # fmt: skip
    smoke: bool = options.declare(
        "Run the `driveops-env check` health checks as the session's tests, against the environment "
        "`driveops-env up` runs (same lookup as --driveops-reuse), the one --driveops-from describes, the "
        "one the DRIVEOPS_* variables of `driveops-env env` describe, or else one this session starts.",
        lambda: False, "false", option_types.parse_bool, metavar="BOOL",
    )  # fmt: skip
    from_file: Path | None = options.declare(
        "A descriptor written by `driveops-env export` (a shared staging environment): the fixtures work "
        "on per-session copies of its tenants' stores and never write its seeded data.",
        lambda: None, "none", option_types.parse_optional_path, metavar="FILE",
    )  # fmt: skip
    sources: Mapping[str, str] = field(default_factory=dict)


PLUGIN_OPTIONS = options.table(PluginSettings)
ALL_OPTIONS = (*options.OPTIONS, *PLUGIN_OPTIONS)

# driveops_env_factory(...) in a conftest.py: its options, applied before anything starts.  A conftest
# is imported before its tests are collected, so collection (all_tenants) already sees them.
FACTORY_OVERRIDES: dict[str, Any] = {}
FACTORY_BASE: list[Path] = []


FLAG_NAMES = {"from_file": "from"}  # `--driveops-from staging.json` reads better than --driveops-from-file


def flag(option: options.Option) -> str:
    return FLAG_PREFIX + FLAG_NAMES.get(option.name, option.name.replace("_", "-"))


def plugin_options_table() -> str:
    """The README's table of the plugin's own options."""
    lines = [
        "| plugin option | pytest flag | ini key | environment variable | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in PLUGIN_OPTIONS:
        flags = f"`{flag(option)}`"
        if option.metavar == "BOOL":
            flags += f", `--no-{flag(option)[2:]}`"
        lines.append(
            f"| {option.name} | {flags} | `{option.ini_key}` | `{option.env_var}` | "
            f"{option.default_doc} | {option.help} |"
        )
    return "\n".join(lines)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("driveops-env", "driveops-env: tenant environments (flags, ini keys, DRIVEOPS_ENV_*)")
    for option in ALL_OPTIONS:
        kwargs: dict[str, Any] = {"dest": DEST_PREFIX + option.name, "default": None, "help": option.help}
        if option in PLUGIN_OPTIONS and option.metavar == "BOOL":
            # a plain switch (pytest users put flags before paths), with a --no- form that undoes a
            # configured true; the ini key and DRIVEOPS_ENV_* variable keep their true/false values
            group.addoption(flag(option), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.addoption(flag(option), metavar=option.metavar, **kwargs)
        parser.addini(option.ini_key, f"{option.help} (default: {option.default_doc})", default=None)


def _inputs(config: pytest.Config, table: tuple[options.Option, ...]) -> options.Inputs:
    import os

    pyproject, pyproject_dir = options.read_pyproject(config.rootpath, keys=[o.toml_key for o in ALL_OPTIONS])
    ini = {}
    for option in table:
        value = config.getini(option.ini_key)
        if value not in (None, "", []):
            ini[option.name] = value
    return options.Inputs(
        cli={o.name: config.getoption(DEST_PREFIX + o.name) for o in table}, environ=os.environ,
        pyproject=pyproject, ini=ini, pyproject_dir=pyproject_dir,
        ini_dir=config.inipath.parent if config.inipath else config.rootpath,
    )  # fmt: skip


def resolve(config: pytest.Config) -> tuple[options.Settings, PluginSettings]:
    """The session's settings and the plugin's own, or a usage error naming the option."""
    try:
        plugin = options.resolve_into(PluginSettings, PLUGIN_OPTIONS, _inputs(config, PLUGIN_OPTIONS))
        settings = options.resolve_into(options.Settings, options.OPTIONS, _inputs(config, options.OPTIONS))
    except UsageError as exc:
        raise pytest.UsageError(f"driveops-env: {exc}") from None
    return settings, plugin


def with_factory_overrides(settings: options.Settings) -> options.Settings:
    """``settings`` with what a conftest's ``driveops_env_factory(...)`` asked for."""
    if not FACTORY_OVERRIDES:
        return settings
    try:
        return settings.with_options(FACTORY_BASE[0] if FACTORY_BASE else None, **FACTORY_OVERRIDES)
    except UsageError as exc:
        raise pytest.UsageError(f"driveops-env: driveops_env_factory: {exc}") from None


def register_factory(overrides: Mapping[str, Any], depth: int = 2) -> None:
    """Record a conftest's factory options; relative paths are anchored at that conftest's folder."""
    unknown = set(overrides) - set(options.OPTIONS_BY_NAME)
    if unknown:
        raise UsageError(f"unknown option(s) for driveops_env_factory: {', '.join(sorted(unknown))}")
    caller = sys._getframe(depth).f_globals.get("__file__")
    FACTORY_BASE[:] = [Path(caller).resolve().parent] if caller else []
    FACTORY_OVERRIDES.clear()
    FACTORY_OVERRIDES.update(overrides)
