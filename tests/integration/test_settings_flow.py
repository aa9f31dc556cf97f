"""How far the settings of `up` travel: every call of the library that receives them (a Settings object,
or an object holding one as ``settings``), traced in order on a real `up`. The flow may come back into
orchestrator.py at most four times (issue 31: it came back ten times, through 18 modules)."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest

from driveops_env import Environment
from driveops_env.settings import Settings
from tests.helpers import Sandbox

pytestmark = pytest.mark.integration
SKIPPED = ("settings.py", "options.py", "option_types.py")  # where settings are made, not used


def _receiver(frame: FrameType) -> str | None:
    """The module (relative to the package) of a library call that receives the settings, else None."""
    code = frame.f_code
    if "driveops_env" not in code.co_filename or code.co_filename.endswith(SKIPPED):
        return None
    for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        value = frame.f_locals.get(name)
        held = getattr(value, "settings", None) if name == "self" else value
        if isinstance(held, Settings):
            return code.co_filename.split("driveops_env/")[-1]
    return None


def test_the_settings_of_up_come_back_to_the_orchestrator_at_most_four_times(sandbox: Sandbox) -> None:
    modules: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        module = _receiver(frame) if event == "call" else None
        if module and (not modules or modules[-1] != module):
            modules.append(module)

    settings = sandbox.settings(tenants="acme", services="redis")
    sys.setprofile(profile)
    try:
        env = Environment.up(settings=settings)
    finally:
        sys.setprofile(None)
    env.down()
    returns = modules[1:].count("orchestrator.py")  # consecutive calls in one module are one entry
    assert f"backends/{sandbox.backend}.py" in modules and "services/registry.py" in modules  # the trace saw the flow
    assert 1 <= returns <= 4, " -> ".join(modules)
