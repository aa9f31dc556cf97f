"""A service of a team's own for driveops-env (see README, "Your own service"): a notes server with a
namespace per tenant, plugged in through the ``driveops_env.services`` entry point."""
