"""One module per service: connection strings, readiness probes, tenant set-up, server files."""
