"""The pytest plugin's parts (the entry point is :mod:`driveops_env.pytest_plugin`).

- :mod:`.settings`: the plugin's own options and the session's resolved settings;
- :mod:`.session`: the session's environment: its name, start or attach, finish;
- :mod:`.copies`: this test process's copies of the tenants' stores, restored before each test;
- :mod:`.smoke`: ``--driveops-smoke``, the health checks as test items.
"""
