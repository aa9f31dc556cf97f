"""The options an environment runs with, recorded in its state file at ``up``: every later command
finds the environment by its name and state directory alone, and takes everything else from there."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from driveops_env.errors import UsageError
from driveops_env.services import registry
from driveops_env.settings import FIELDS, Settings

# what finds an environment (its name and state directory) and what its state lists itself (tenants);
# every other option is recorded in the state file at ``up`` and comes from there afterwards
LOCATORS = ("name", "state_dir", "tenants")
EXPLICIT = ("cli", "python")  # sources a user typed for this very command
# where an environment is, and what names its tenants' realms: given explicitly for a running one, these
# must agree with its state (the other options simply come from the state)
CHECKED = ("data_dir", "cache_dir", "backend", "realm_pattern")


def recorded(settings: Settings, backend: str) -> dict[str, str]:
    """The options an environment runs with, for its state file (``backend``: the one ``auto`` chose)."""
    values = {o.name: o.text(settings.value(o.name)) for o in registry.options() if o.name not in LOCATORS}
    return values | {"backend": backend}


def for_environment(settings: Settings, name: str, state_options: Mapping[str, str]) -> Settings:
    """``settings`` with the options environment ``name`` was started with (its state file's): an
    environment is found by its name and state directory alone.  A CHECKED option given explicitly
    for this command that contradicts them is an error (exit 2); any other, or one from the
    environment or a pyproject.toml, gives way to the state."""
    typed: dict[str, Any] = {}
    table = {option.name: option for option in registry.options()}
    for key, text in state_options.items():
        option = table.get(key)
        if option is None or key in LOCATORS:
            continue
        value = option.convert(text, "state")
        given = getattr(settings, key) if key in FIELDS else settings.extra.get(key)
        explicit = key in CHECKED and settings.sources.get(key) in EXPLICIT
        if explicit and given != value and not (key == "backend" and given == "auto"):
            raise UsageError(
                f"environment {name!r} runs with {option.flag} {text!r}; this command says {option.text(given)!r}",
                hint=f"leave {option.flag} out (the environment's own value is used), or `down` the environment "
                "and `up` it again with the new value",
            )
        typed[key] = value
    changed = settings.replace(**typed)
    return dataclasses.replace(changed, sources={**settings.sources, **dict.fromkeys(typed, "state")})
