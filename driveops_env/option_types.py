"""How an option is declared (:func:`declare`, :class:`Option`, :func:`table`) and parsed: text in,
typed value out; a ``ValueError`` says why a value is refused.

An option is a field of a settings dataclass (the generic :class:`driveops_env.settings.Settings`, a
service's own options class, the pytest plugin's); its CLI flag, environment variable, pyproject key,
pytest ini key, choices and documentation are derived from the field.
"""

from __future__ import annotations

import math
import os
import shlex
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from driveops_env.errors import UsageError

ENV_PREFIX = "DRIVEOPS_ENV_"
TOML_TABLE = "driveops-env"
_DECL = "driveops-option"


@dataclass(frozen=True)
class _Decl:
    help: str
    default: Callable[[], Any]
    default_doc: str
    parse: Callable[[str], Any]
    metavar: str
    list_valued: bool


def declare(
    help: str,
    default: Callable[[], Any],
    default_doc: str,
    parse: Callable[[str], Any] | None = None,
    *,
    metavar: str = "VALUE",
    list_valued: bool = False,
) -> Any:
    """A field of a settings dataclass that is an option.  ``default`` is called at resolve time."""
    return field(metadata={_DECL: _Decl(help, default, default_doc, parse or parse_text, metavar, list_valued)})


def unset(help: str, default_doc: str, metavar: str) -> Any:
    """A text option whose default is decided where it is used ('' here; ``default_doc`` says what)."""
    return declare(help, lambda: "", default_doc, metavar=metavar)


def switch(help: str) -> Any:
    """A boolean option, off unless set (``--flag``/``--no-flag``, true/false in files and variables)."""
    return declare(help, lambda: False, "false", parse_bool, metavar="BOOL")


@dataclass(frozen=True)
class Option:
    """One setting, derived from its field: names in every source, choices, parser, documentation."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    default_doc: str
    choices: tuple[str, ...] = ()
    metavar: str = "VALUE"
    list_valued: bool = False

    @property
    def meaning(self) -> str:
        """The help with the accepted values: the choices, or the range and why it is bounded."""
        if self.choices:
            return self.help + " One of: " + ", ".join(f"`{c}`" for c in self.choices) + "."
        if isinstance(self.parse, Range):
            bound = self.parse.describe()
            return f"{self.help} {bound[:1].upper()}{bound[1:]}."
        return self.help

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def toml_key(self) -> str:
        return self.name.replace("_", "-")

    @property
    def ini_key(self) -> str:
        return "driveops_" + self.name

    def convert(self, raw: Any, source: str, base: Path | None = None) -> Any:
        """The typed value of ``raw`` (text, or a TOML value); relative paths are joined to ``base``."""
        if isinstance(raw, list | tuple) and self.parse is parse_argv:  # a command as an argv list
            raw = shlex.join(str(item) for item in raw)
        if isinstance(raw, list | tuple):
            if not self.list_valued:
                raise UsageError(f"{self.describe(source)}: a list is not valid here", hint="give one value")
            raw = ",".join(str(item) for item in raw)
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if self.choices and text not in self.choices:
            raise UsageError(
                f"{self.describe(source)}: {text!r} is not one of {', '.join(self.choices)}",
                hint=f"use one of: {', '.join(self.choices)}",
            )
        try:
            value = self.parse(text)
        except UsageError as exc:
            exc.message = f"{self.describe(source)}: {exc.message}"
            raise
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{self.describe(source)}: {text!r} is not valid: {exc}") from exc
        if isinstance(value, Path):
            return _anchored(value, base)
        if isinstance(value, tuple) and value and all(isinstance(item, Path) for item in value):
            return tuple(_anchored(item, base) for item in value)
        return value

    def text(self, value: Any) -> str:
        """``value`` as the command line would give it, so that :meth:`convert` reads it back: a
        command as a shell would write it, a list comma-separated."""
        if value is None:
            return ""
        if isinstance(value, tuple | list):
            return shlex.join(map(str, value)) if self.parse is parse_argv else ",".join(map(str, value))
        return str(value)

    def describe(self, source: str) -> str:
        where = {
            "cli": self.flag,
            "env": self.env_var,
            "pyproject": f"[tool.{TOML_TABLE}] {self.toml_key}",
            "ini": self.ini_key,
        }.get(source, self.name)
        return f"option {where}"


def table(cls: type) -> tuple[Option, ...]:
    """The options of a settings dataclass, in field order; choices come from ``Literal`` types."""
    hints = typing.get_type_hints(cls)
    result = []
    for f in fields(cls):
        decl = f.metadata.get(_DECL)
        if decl is None:
            continue
        hint = hints[f.name]
        choices = tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()
        result.append(
            Option(
                f.name,
                decl.help,
                decl.parse,
                decl.default,
                decl.default_doc,
                choices,
                decl.metavar,
                decl.list_valued,
            )
        )
    return tuple(result)


def _anchored(path: Path, base: Path | None) -> Path:
    """A relative path joined to the folder of the file that gave it (the current directory else)."""
    return path if path.is_absolute() else Path(os.path.abspath((base or Path.cwd()) / path))


def parse_text(value: str) -> str:
    return value


def parse_path(value: str) -> Path:
    if not value:
        raise ValueError("an empty path")
    return Path(value).expanduser()


def parse_optional_path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class Range:
    """A number's parser: from ``low`` to ``high`` (``low`` itself excluded when ``above``), whole unless
    ``fraction``; every number a user can give has an upper bound, and ``why`` says why it is there."""

    low: float
    high: float
    why: str
    fraction: bool = False
    above: bool = False

    def __call__(self, value: str) -> Any:
        number: float = float(value) if self.fraction else int(value)  # a whole one compares exactly, however long
        too_low = number <= self.low if self.above else number < self.low
        if (self.fraction and not math.isfinite(number)) or too_low or number > self.high:
            raise ValueError(f"must be {self.describe()}")
        return number

    def describe(self) -> str:
        low = f"more than {_number(self.low)}" if self.above else _number(self.low)
        return f"from {low} to {_number(self.high)} ({self.why})"


# the bound of the restore pools of stores whose ready copies are whole databases
READY_COPIES = Range(
    0, 8, "each is a whole copy of the tenant's seed per test process, kept in the data root: RAM by default"
)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def parse_port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be 0 (a free port) or a TCP port")
    return number


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use true or false")


def parse_argv(value: str) -> tuple[str, ...]:
    """A command as a shell would split it (never run through one; a TOML list is taken as it is);
    '' is no command."""
    return tuple(shlex.split(value))


def parse_paths(value: str) -> tuple[Path, ...]:
    """Comma-separated paths (a TOML array in pyproject.toml); '' is none."""
    return tuple(Path(part.strip()).expanduser() for part in value.split(",") if part.strip())


def parse_names(value: str) -> tuple[str, ...]:
    """A comma-separated list of names, each once (which names exist is checked where they are known)."""
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names:
        raise ValueError("name at least one")
    return names


def parse_list(value: str) -> tuple[str, ...]:
    """Comma-separated entries (a TOML array in pyproject.toml); '' is none."""
    return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
