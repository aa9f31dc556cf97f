"""driveops_env: local DriveOps environments (one identity server with a realm per tenant, and per
tenant its own stores).

Importing the package starts nothing and reads nothing from the environment.
"""

from driveops_env.environment import Environment, TenantHandle
from driveops_env.errors import DriveopsEnvError
from driveops_env.options import resolve
from driveops_env.settings import Settings
from driveops_env.tenants import Tenant

__all__ = ["DriveopsEnvError", "Environment", "Settings", "Tenant", "TenantHandle", "resolve"]
__version__ = "0.1.0"
