"""Shared mode: what Redis keeps for the whole server (functions, scripts, the script cache, client
tracking, channel and key counts) is closed to a tenant's user, so no tenant manages, runs, counts,
sees or stops another's.  Every command the server knows is walked (``COMMAND DOCS``): a new one a
tenant may run is either checked against the tenant's key and channel patterns or reviewed here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from driveops_env import Environment
from driveops_env.services.redis import admin as redis_service
from tests.helpers import Sandbox

pytestmark = pytest.mark.integration  # both passes: the docker one runs the configured image's Redis

BETA_LIBRARY = "#!lua name=betalib\nredis.register_function('betafn', function() return 'beta' end)"
ACME_LIBRARY = "#!lua name=acmelib\nredis.register_function('betafn2', function() return 'acme' end)"

# Commands a tenant's user may run that name no key and no channel, each read for what it could tell
# of another tenant or do to the server: none tells either.
REVIEWED_KEYLESS = {
    # the connection's own state
    "auth": "authenticates this connection",
    "hello": "this connection's protocol",
    "reset": "this connection's state",
    "quit": "closes this connection",
    "ping": "answers PONG",
    "echo": "answers its argument",
    "multi": "this connection's transaction",
    "exec": "this connection's transaction",
    "discard": "this connection's transaction",
    "unwatch": "this connection's watched keys",
    "asking": "a cluster redirection flag of this connection",
    "readonly": "a cluster flag of this connection",
    "readwrite": "a cluster flag of this connection",
    "client|caching": "this connection's tracking (tracking itself is closed)",
    "client|getname": "this connection's name",
    "client|getredir": "this connection's tracking redirection",
    "client|id": "this connection's id",
    "client|info": "this connection only",
    "client|reply": "this connection's replies",
    "client|setname": "this connection's name",
    "client|trackinginfo": "this connection's tracking (closed)",
    "client|no-touch": "whether this connection's reads update the keys' access times",
    "client|setinfo": "this connection's library name and version",
    "unsubscribe": "this connection's subscriptions",
    "punsubscribe": "this connection's subscriptions",
    "acl|whoami": "this connection's user",
    # the server's static description, the same for every tenant
    "acl|cat": "the command categories",
    "acl|genpass": "random bytes",
    "command|count": "the server's commands",
    "command|docs": "the server's commands",
    "command|getkeys": "parses the arguments given",
    "command|getkeysandflags": "parses the arguments given",
    "command|info": "the server's commands",
    "command|list": "the server's commands",
    "lolwut": "the server's version as art",
    "time": "the clock",
    "wait": "replicas' acknowledgements of this connection's writes",
    "waitaof": "the append-only file's acknowledgements of this connection's writes",
    **{f"{name}|help": "the command's help text" for name in ("acl", "client", "command", "config", "latency")},
    **{f"{name}|help": "the command's help text" for name in ("memory", "module", "object", "pubsub", "slowlog")},
    **{f"{name}|help": "the command's help text" for name in ("xgroup", "xinfo")},
}


CHANNELS = ("publish", "subscribe", "psubscribe")  # their arguments are channels, checked like keys
UNSUBSCRIBING = ("sunsubscribe",)  # leaves the connection's own shard channels


def _commands(admin: Any) -> Iterator[tuple[str, int, bool]]:
    """Every command and subcommand ``COMMAND DOCS`` lists, with its arity and whether it names keys
    (``COMMAND INFO``'s key specifications; channel commands are checked by name below)."""
    admin.response_callbacks.pop("COMMAND", None)  # the replies as the server gives them
    info = {entry[0]: entry for entry in admin.execute_command("COMMAND", "INFO")}
    docs = _as_map(admin.execute_command("COMMAND", "DOCS"))
    for name, doc in docs.items():
        subcommands = _as_map(_as_map(doc).get("subcommands") or {})
        entry = info[name]
        by_name = {sub[0]: sub for sub in entry[9]}
        for full in subcommands or [name]:
            spec = by_name.get(full, entry)
            yield full, spec[1], bool(spec[8])


def _as_map(reply: Any) -> dict[str, Any]:
    """A map reply (RESP3, or a flat list of keys and values in RESP2) as a dict."""
    return dict(reply) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))


def _dry_run(admin: Any, user: str, command: str, arguments: list[str]) -> bool:
    """Whether ``user`` may run ``command`` with ``arguments`` (ACL DRYRUN checks the command, and the
    keys and channels the server finds in the arguments)."""
    return bool(admin.execute_command("ACL", "DRYRUN", user, *command.split("|"), *arguments) == "OK")


def _probes(command: str, arity: int, name: str) -> Iterator[list[str]]:
    """Argument lists naming ``name`` where a command's keys go: first, after a count, after a
    destination, after a timeout and a count, after STREAMS; cut or filled up to the arity."""
    wanted = max(abs(arity) - len(command.split("|")), 0)
    shapes = (
        [name] * max(wanted, 1),
        ["1", name, name],
        [name, "1", name],
        ["0", "1", name],
        ["STREAMS", name, "0"],
        ["GROUP", "g", "c", "STREAMS", name, "0"],
    )
    for shape in shapes:
        arguments = shape[:wanted] if arity > 0 else shape + [name] * (wanted - len(shape))
        if len(arguments) == wanted or (arity < 0 and len(arguments) > wanted):
            yield arguments


def _as_tenant_probe(acme: Any, command: str, arguments: list[str]) -> str | None:
    """What went wrong when the tenant's user ran ``command`` on another tenant's key name that the
    server's ACL let through: nothing (None) when the server refused the arguments themselves."""
    try:
        reply = acme.execute_command(*command.split("|"), *arguments)
    except redis.exceptions.TimeoutError:
        return "it blocked"
    except redis.exceptions.ResponseError as exc:
        return str(exc) if str(exc).startswith("WRONGTYPE") else None  # WRONGTYPE: the key exists
    return f"it ran: {reply!r}"


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
        "EVAL": call("EVAL", "while true do end", "0"),
        "EVAL_RO": call("EVAL_RO", "return 1", "0"),
        "SCRIPT LOAD": call("SCRIPT", "LOAD", "return 1"),
        "SCRIPT FLUSH": call("SCRIPT", "FLUSH"),
        "SCRIPT KILL": call("SCRIPT", "KILL"),
        "CLIENT TRACKING": call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "beta:"),
        "CLUSTER GETKEYSINSLOT": call("CLUSTER", "GETKEYSINSLOT", "0", "10"),
        "DBSIZE": call("DBSIZE"),
        "PUBSUB CHANNELS": call("PUBSUB", "CHANNELS"),
        "PUBSUB NUMSUB": call("PUBSUB", "NUMSUB", "beta:events"),
        "PUBSUB NUMPAT": call("PUBSUB", "NUMPAT"),
        "PUBSUB SHARDCHANNELS": call("PUBSUB", "SHARDCHANNELS"),
        "MEMORY STATS": call("MEMORY", "STATS"),
        "PFMERGE": call("PFMERGE", "beta:config"),
        "PSUBSCRIBE": call("PSUBSCRIBE", "__keyspace@0__:beta:*"),
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
        # what stays allowed: the tenant's own keys and channels, transactions on them
        assert acme.set("acme:k", "x") is True
        with pytest.raises(redis.exceptions.NoPermissionError):
            acme.get("beta:config")
        assert acme.publish("acme:events", "hello") == 0
        beta_listener.close()
        acme.close()
        admin.close()
    assert sandbox.leftovers() == []


def test_every_redis_command_a_tenant_may_run_is_checked_against_its_keys_or_reviewed(sandbox: Sandbox) -> None:
    settings = sandbox.settings(tenants="acme,beta", isolation="shared", services="redis")
    with Environment.up(settings=settings) as env:
        server = env.state.services["redis.shared"]
        admin = redis_service.client(server.host, server.port, None, server.admin_password)
        user = env.tenant("acme").redis.username
        assert user is not None
        acme = env.tenant("acme").redis.connect(socket_timeout=2)
        admin.set("beta:customer:4711", "x")  # a key of beta's that acme must neither see nor touch
        before = sorted(admin.scan_iter(match="beta:*"))
        walked, unreviewed, unchecked, leaks = 0, [], [], []
        for command, arity, names_keys in _commands(admin):
            walked += 1
            if not _dry_run(admin, user, command, next(_probes(command, arity, "acme:x"))):
                continue  # closed to the tenant
            if command in UNSUBSCRIBING:
                continue
            if not names_keys and command not in CHANNELS:
                if command not in REVIEWED_KEYLESS:
                    unreviewed.append(command)
                continue
            refused = False
            for arguments in _probes(command, arity, "beta:customer:4711"):
                if not _dry_run(admin, user, command, arguments):
                    refused = True
                elif (wrong := _as_tenant_probe(acme, command, arguments)) is not None:
                    leaks.append(f"{command} {' '.join(arguments)}: {wrong}")
            if not refused:
                unchecked.append(command)  # no argument list made the server check a key or channel
        assert walked > 200, f"COMMAND DOCS listed {walked} commands"
        assert leaks == [], f"another tenant's key reached: {leaks}"
        assert unchecked == [], f"{unchecked}: no probe named a key the ACL checks; add one"
        assert unreviewed == [], f"{unreviewed}: a tenant may run them; review what they tell or do, then list them"
        assert sorted(admin.scan_iter(match="beta:*")) == before and admin.get("beta:customer:4711") == "x"
        acme.close()
        admin.close()


def test_one_tenant_cannot_stop_the_shared_redis_for_the_others(sandbox: Sandbox) -> None:
    settings = sandbox.settings(tenants="acme,beta", isolation="shared", services="redis")
    with Environment.up(settings=settings) as env:
        acme = env.tenant("acme").redis.connect(protocol=3)
        beta = env.tenant("beta").redis.connect()
        # allowed, the call would time out after 5 s while the script runs on, and beta would get BUSY
        with pytest.raises(redis.exceptions.NoPermissionError):
            acme.eval("while true do end", 0)
        for number in range(20):  # beta's commands are answered, not BUSY
            assert beta.set(f"beta:customer:{number}", "x") is True
            assert beta.get(f"beta:customer:{number}") == "x"
        # acme sees no beta key name through tracking (RESP3, broadcast on beta's prefix)
        with pytest.raises(redis.exceptions.NoPermissionError):
            acme.execute_command("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "beta:")
        assert set(acme.execute_command("CLIENT", "TRACKINGINFO")["flags"]) == {"off"}
        acme.close()
        beta.close()
