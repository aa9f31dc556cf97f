"""Resolving options from their sources.  Each option is declared once (a field of
:class:`~driveops_env.settings.Settings`, or of a service's own options class); its CLI flag,
environment variable, ``pyproject.toml`` key, pytest ini key, choices and documentation are derived
from it (:mod:`.option_types`).

Precedence, highest first: CLI flag (or pytest option, or a Python keyword), environment variable
``DRIVEOPS_ENV_<NAME>``, ``[tool.driveops-env]`` in the nearest ``pyproject.toml``, pytest ini key,
default.  An explicitly given empty string or zero is a value, never "unset".  Defaults are computed
when options are resolved, not at import time.  A relative path is anchored where it was written: a
``pyproject.toml``'s folder for its keys, the ini file's folder for ini keys, the current directory
for flags and environment variables.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from driveops_env.errors import UsageError
from driveops_env.option_types import TOML_TABLE, Option
from driveops_env.services import registry
from driveops_env.settings import FIELDS, Settings

S = TypeVar("S")
# keys of [tool.driveops-env] that the pytest plugin reads (driveops_env.plugin.settings)
PLUGIN_TOML_KEYS = ("reuse", "keep", "smoke", "from-file")


def by_name() -> dict[str, Option]:
    return {option.name: option for option in registry.options()}


def find_pyproject(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject(start: Path | None = None, keys: Sequence[str] | None = None) -> tuple[dict[str, Any], Path]:
    """``[tool.driveops-env]`` of the nearest pyproject.toml (or an empty table) and the folder its
    relative paths are anchored to."""
    start = start or Path.cwd()
    path = find_pyproject(start)
    if path is None:
        return {}, start
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="fix the TOML syntax") from exc
    tool = data.get("tool", {})
    found = tool.get(TOML_TABLE, {}) if isinstance(tool, dict) else {}
    if not isinstance(found, dict):
        raise UsageError(f"{path}: [tool.{TOML_TABLE}] must be a table")
    known = set(keys) if keys is not None else {o.toml_key for o in registry.options()} | set(PLUGIN_TOML_KEYS)
    unknown = sorted(set(found) - known)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) in [tool.{TOML_TABLE}]: {', '.join(unknown)}",
            hint="see `driveops-env options` for the keys",
        )
    return found, path.parent


@dataclass(frozen=True)
class Inputs:
    """Raw values by source, and where each source's relative paths are anchored."""

    cli: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    pyproject: Mapping[str, Any] = field(default_factory=dict)
    ini: Mapping[str, Any] = field(default_factory=dict)
    pyproject_dir: Path | None = None
    ini_dir: Path | None = None

    def candidates(self, option: Option) -> list[tuple[str, Any, Path | None]]:
        return [
            ("cli", self.cli.get(option.name), None),
            ("env", self.environ.get(option.env_var), None),
            ("pyproject", self.pyproject.get(option.toml_key), self.pyproject_dir),
            ("ini", self.ini.get(option.name), self.ini_dir),
        ]


def resolve_values(options: Sequence[Option], inputs: Inputs) -> tuple[dict[str, Any], dict[str, str]]:
    """Each option's value from the first source that gives it (None means "not given"), and that source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in options:
        for source, raw, base in inputs.candidates(option):
            if raw is not None:
                values[option.name] = option.convert(raw, source, base)
                sources[option.name] = source
                break
        else:
            values[option.name] = option.default()
            sources[option.name] = "default"
    return values, sources


def resolve_into(cls: Callable[..., S], options: Sequence[Option], inputs: Inputs) -> S:
    """Build a settings dataclass of its own options (the pytest plugin's)."""
    values, sources = resolve_values(options, inputs)
    return cls(**values, sources=sources)


def settings_from(inputs: Inputs) -> Settings:
    """The generic settings and every service's options, the services checked against the registry."""
    values, sources = resolve_values(registry.options(), inputs)
    own = {k: v for k, v in values.items() if k in FIELDS}
    settings = Settings(**own, extra={k: v for k, v in values.items() if k not in FIELDS}, sources=sources)
    return with_services(settings, sources.get("services", "default"))


def with_services(settings: Settings, source: str) -> Settings:
    """``services`` checked against the registry; not given, the built-in ones."""
    if not settings.services:
        return dataclasses.replace(settings, services=registry.default_names())
    known = registry.names()
    unknown = [name for name in settings.services if name not in known]
    if unknown:
        option = by_name()["services"]
        raise UsageError(
            f"{option.describe(source)}: {', '.join(map(repr, unknown))} is not a service",
            hint=f"use a comma-separated subset of {', '.join(known)}",
        )
    return dataclasses.replace(settings, services=tuple(n for n in known if n in settings.services))


def resolve(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    pyproject: Mapping[str, Any] | None = None,
    ini: Mapping[str, Any] | None = None,
    *,
    pyproject_dir: Path | None = None,
    ini_dir: Path | None = None,
) -> Settings:
    """Resolve every option from its sources.  ``pyproject=None`` reads the nearest pyproject.toml."""
    if pyproject is None:
        pyproject, pyproject_dir = read_pyproject()
    inputs = Inputs(
        cli=cli or {},
        environ=os.environ if environ is None else environ,
        pyproject=pyproject,
        ini=ini or {},
        pyproject_dir=pyproject_dir,
        ini_dir=ini_dir,
    )
    return settings_from(inputs)


def with_options(settings: Settings, base: Path | None = None, **raw: Any) -> Settings:
    """A copy with options given as text or lists (what the CLI would take), checked and typed."""
    table = by_name()
    unknown = sorted(set(raw) - set(table))
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(unknown)}", hint="see `driveops-env options`")
    changed = settings.replace(**{k: table[k].convert(v, "python", base) for k, v in raw.items()})
    return with_services(changed, "python") if "services" in raw else changed


def markdown_table(options: Sequence[Option] | None = None) -> str:
    """The options reference of the README: driveops-env's own (a plugged-in service documents its own)."""
    lines = [
        "| option | CLI flag | environment variable | pyproject key | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in options if options is not None else registry.options(plugged=False):
        lines.append(
            f"| {option.name} | `{option.flag}` | `{option.env_var}` | `{option.toml_key}` | "
            f"{option.default_doc} | {option.meaning} |"
        )
    return "\n".join(lines)
