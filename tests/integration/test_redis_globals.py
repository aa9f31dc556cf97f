"""Shared mode: what Redis keeps for the whole server (functions, the script cache, channel and key
counts) is closed to a tenant's user, so no tenant manages, runs or counts another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from driveops_env import Environment
from driveops_env.services.redis import admin as redis_service
from tests.helpers import Sandbox

pytestmark = pytest.mark.integration

BETA_LIBRARY = "#!lua name=betalib\nredis.register_function('betafn', function() return 'beta' end)"
ACME_LIBRARY = "#!lua name=acmelib\nredis.register_function('betafn2', function() return 'acme' end)"


def _refusals(acme: Any) -> dict[str, Callable[[], object]]:
    def call(*args: str) -> Callable[[], object]:
        return lambda: acme.execute_command(*args)

    return {
        "FUNCTION LIST": call("FUNCTION", "LIST"),
        "FUNCTION DELETE": call("FUNCTION", "DELETE", "betalib"),
        "FUNCTION FLUSH": call("FUNCTION", "FLUSH"),
        "FUNCTION LOAD": call("FUNCTION", "LOAD", ACME_LIBRARY),
        "FUNCTION KILL": call("FUNCTION", "KILL"),
        "FUNCTION DUMP": call("FUNCTION", "DUMP"),
        "FCALL": call("FCALL", "betafn", "0"),
        "FCALL_RO": call("FCALL_RO", "betafn", "0"),
        "SCRIPT FLUSH": call("SCRIPT", "FLUSH"),
        "SCRIPT KILL": call("SCRIPT", "KILL"),
        "DBSIZE": call("DBSIZE"),
        "PUBSUB CHANNELS": call("PUBSUB", "CHANNELS"),
        "PUBSUB NUMSUB": call("PUBSUB", "NUMSUB", "beta:events"),
        "PUBSUB NUMPAT": call("PUBSUB", "NUMPAT"),
        "PUBSUB SHARDCHANNELS": call("PUBSUB", "SHARDCHANNELS"),
        "MEMORY STATS": call("MEMORY", "STATS"),
        "KEYS": call("KEYS", "*"),
        "INFO": call("INFO", "keyspace"),
        "SCAN": call("SCAN", "0"),
        "SELECT": call("SELECT", "1"),
    }


def test_a_tenant_cannot_reach_another_through_redis_globals(sandbox: Sandbox) -> None:
    settings = sandbox.settings(tenants="acme,beta", isolation="shared", services="redis")
    with Environment.up(settings=settings) as env:
        server = env.state.services["redis.shared"]
        admin = redis_service.client(server.host, server.port, None, server.admin_password)
        admin.execute_command("FUNCTION", "LOAD", BETA_LIBRARY)  # beta's service registered a function
        beta_listener = env.tenant("beta").connect_redis().pubsub()
        beta_listener.subscribe("beta:events")
        beta_listener.get_message(timeout=1)
        acme = env.tenant("acme").connect_redis()
        allowed = []
        for name, refused in _refusals(acme).items():
            try:
                refused()
            except redis.exceptions.NoPermissionError:
                continue
            allowed.append(name)
        assert allowed == [], f"a tenant's user may run {allowed}"
        # beta's function is still there, and still beta's
        assert admin.execute_command("FCALL", "betafn", "0") == "beta"
        assert admin.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "acmelib") == []
        # what stays allowed: scripts on the tenant's own keys (their keys are checked), the script cache
        assert acme.eval("return redis.call('SET', KEYS[1], 'x')", 1, "acme:k") == "OK"
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)noperm|permission|can't access"):
            acme.eval("return redis.call('GET', KEYS[1])", 1, "beta:config")
        sha = acme.script_load("return 1")
        assert acme.evalsha(sha, 0) == 1
        assert acme.publish("acme:events", "hello") == 0
        beta_listener.close()
        acme.close()
        admin.close()
    assert sandbox.leftovers() == []
