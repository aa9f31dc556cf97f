"""Runs a CI recipe's own commands as a script on this machine, the way its CI system would: steps in
order with GitHub's ``if: always()/failure()`` (GitLab's ``script``, then ``after_script`` with
``CI_JOB_STATUS``).  What the CI system itself provides (checkout, setup-python/go, the cache, the
artifact upload, ``apt-get`` of packages this machine has) is this machine's; ``pip install
driveops-env`` installs this checkout (it is not published anywhere this machine reaches)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)
    failed: str | None = None
    output: str = ""


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _adapt(command: str) -> str:
    """The recipe's command as this machine runs it (see the module's docstring)."""
    lines = []
    for line in command.splitlines():
        if re.search(r"\bapt-get\b", line):
            continue  # the packages are there (scripts/provision installed them)
        line = line.replace("pip install driveops-env", f"pip install -q {REPO}")
        lines.append(line)
    return "\n".join(lines)


def _expand(text: str, context: Mapping[str, str]) -> str:
    """GitHub's ``${{ secrets.X }}`` / ``${{ env.X }}`` expressions."""
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: context.get(m.group(1), ""), text)


def _shell(command: str, cwd: Path, env: Mapping[str, str], outcome: Outcome) -> bool:
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", command],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    outcome.output += f"$ {command}\n{result.stdout}{result.stderr}"
    return result.returncode == 0


def run_github_job(job: Mapping[str, Any], cwd: Path, env: Mapping[str, str], secrets: Mapping[str, str]) -> Outcome:
    outcome = Outcome()
    job_env = {k: str(v) for k, v in (job.get("env") or {}).items()}
    context = {f"secrets.{k}": v for k, v in secrets.items()} | {f"env.{k}": v for k, v in job_env.items()}
    for step in job["steps"]:
        condition = str(step.get("if", "success()"))
        wanted = {"always()": True, "failure()": outcome.failed is not None}.get(condition, outcome.failed is None)
        if "run" not in step or not wanted:
            continue
        step_env = {k: _expand(str(v), context) for k, v in (step.get("env") or {}).items()}
        outcome.ran.append(step.get("name", step["run"][:40]))
        if not _shell(_adapt(step["run"]), cwd, {**env, **job_env, **step_env}, outcome) and outcome.failed is None:
            outcome.failed = step.get("name", step["run"][:40])
    return outcome


def run_gitlab_job(
    job: Mapping[str, Any],
    variables: Mapping[str, str],
    cwd: Path,
    env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> Outcome:
    """``overrides``: variables this machine sets instead of the recipe's (its cache and data roots)."""
    outcome = Outcome()
    recipe = {k: os.path.expandvars(str(v).replace("$CI_PROJECT_DIR", str(cwd))) for k, v in variables.items()}
    base = {**env, **recipe, **(overrides or {})}
    script = "\n".join(_adapt(c) for c in [*job.get("before_script", []), *job["script"]])
    outcome.ran.append("script")
    if not _shell(script, cwd, base, outcome):
        outcome.failed = "script"
    status = "failed" if outcome.failed else "success"
    after = "\n".join(_adapt(c) for c in job.get("after_script", []))
    outcome.ran.append("after_script")
    _shell(after, cwd, {**base, "CI_JOB_STATUS": status}, outcome)
    return outcome
