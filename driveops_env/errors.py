"""Every error the library raises derives from :class:`DriveopsEnvError`.

A message says what failed, where (service, tenant, file) and what to do next.  The CLI maps
``exit_code`` to the process exit status: 2 for bad input (nothing was started), 1 otherwise.
"""

from __future__ import annotations


class DriveopsEnvError(Exception):
    """Base class of every error of driveops_env."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        tenant: str | None = None,
        hint: str | None = None,
        log_tail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.tenant = tenant
        self.hint = hint
        self.log_tail = log_tail

    def where(self) -> str:
        parts = []
        if self.service:
            parts.append(f"service {self.service}")
        if self.tenant:
            parts.append(f"tenant {self.tenant}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = f"{self.message} ({where})" if where else self.message
        if self.hint:
            text += f"\n  what to do: {self.hint}"
        if self.log_tail:
            indented = "\n".join("    " + line for line in self.log_tail.rstrip().splitlines())
            text += f"\n  last log lines:\n{indented}"
        return text


class UsageError(DriveopsEnvError):
    """Bad input: tenant names, options, configuration. Raised before anything starts."""

    exit_code = 2


class UnsafePathError(UsageError):
    """A state or data directory (or file) another user could change: a link, someone else's, or
    writable by others.  Nothing in it is trusted."""


class TemplateError(UsageError):
    """A realm template or seed file cannot be read or rendered."""


class SeedError(UsageError):
    """Seed data was rejected by a service (for example an SQL error in a seed file)."""


class SpecMismatchError(UsageError):
    """An environment of that name runs with a different spec."""


class MissingDependencyError(UsageError):
    """A binary, distribution or engine the chosen backend needs is not there."""


class StartupError(DriveopsEnvError):
    """A service did not start or did not become ready."""


class ReadinessTimeoutError(StartupError):
    """A service did not become ready within the start-up timeout."""


class NotRunningError(DriveopsEnvError):
    """No environment of that name is running."""


class StateError(DriveopsEnvError):
    """The state file of an environment cannot be read or written."""


class ServiceError(DriveopsEnvError):
    """A running service answered with an error (for example a refused token request)."""


class Interrupted(DriveopsEnvError):
    """Start-up was interrupted (Ctrl-C or SIGTERM); what had started was stopped."""

    exit_code = 130
