"""Build dataclasses from parsed JSON, checking every value against its field's type.

A state file or descriptor is input like any other: a string where a pid belongs, or a number where a
path belongs, is refused with the field's path (``services.<server>.pid``) instead of surfacing as
a traceback later, far from the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ShapeError(ValueError):
    """The JSON does not have the shape of the dataclass."""


def build(cls: type[T], raw: Any, where: str = "") -> T:
    """``cls`` built from ``raw`` (a dict), every field checked; unknown keys are refused."""
    if not isinstance(raw, dict):
        raise ShapeError(f"{where or 'the top level'}: expected an object, found {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ShapeError(f"{where or 'the top level'}: unknown field(s) {', '.join(unknown)}")
    values = {key: _value(hints[key], value, f"{where}.{key}".lstrip(".")) for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ShapeError(f"{where or 'the top level'}: {exc}") from None


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _value(option, value, where)
            except ShapeError as exc:
                errors.append(str(exc))
        raise ShapeError(errors[-1] if errors else f"{where}: unexpected value")
    if hint is type(None):
        if value is not None:
            raise ShapeError(f"{where}: expected null, found {type(value).__name__}")
        return None
    if dataclasses.is_dataclass(hint):
        return build(typing.cast(type, hint), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ShapeError(f"{where}: expected a list, found {type(value).__name__}")
        return [_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where}: expected an object, found {type(value).__name__}")
        return {str(k): _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ShapeError(f"{where}: expected a number, found a boolean")
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ShapeError(f"{where}: expected {getattr(hint, '__name__', hint)}, found {type(value).__name__} {value!r:.40}")
