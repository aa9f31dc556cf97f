"""Parsers of option values: text in, typed value out; a ``ValueError`` says why a value is refused."""

from __future__ import annotations

import math
from pathlib import Path

SERVICES = ("keycloak", "postgres", "mongo", "redis")


def parse_text(value: str) -> str:
    return value


def parse_path(value: str) -> Path:
    if not value:
        raise ValueError("an empty path")
    return Path(value).expanduser()


def parse_optional_path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def parse_positive_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a finite number greater than 0")
    return number


def parse_positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


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


def parse_services(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        raise ValueError(f"use a comma-separated subset of {', '.join(SERVICES)}")
    return tuple(n for n in SERVICES if n in names)
