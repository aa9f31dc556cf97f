"""pytest plugin of driveops-env (entry point ``pytest11``): tenant fixtures for service repositories."""
