"""The kubernetes backend as a team's shared cluster hands it out: a namespace, a ServiceAccount bound to
a Role that grants exactly the README's "Permissions" (create, get, list, delete of pods, services,
secrets; pods/exec; pods/log), nothing of the cluster's scope, and a ResourceQuota and a LimitRange in
the namespace.  Every command runs with that account's kubeconfig, without --kube-address (the node's
address comes from a Pod placed in the namespace); a quota that refuses a Pod is named."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.browser import dashboard
from tests.helpers import Sandbox, make_sandbox, run
from tests.integration.test_in_network import OIDC_CLIENT
from tests.kube.cluster import Cluster, kubectl
from tests.kube.test_backend import PLUGIN_TESTS, env_values, kube_images, kube_leftovers  # noqa: F401

pytestmark = [pytest.mark.kubernetes, pytest.mark.xdist_group("kubernetes")]

RULES = [  # the README's Permissions, in the namespace: nothing more
    {"apiGroups": [""], "resources": ["pods", "services", "secrets"], "verbs": ["create", "get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


@dataclasses.dataclass
class Team:
    namespace: str
    kubeconfig: str
    cluster: Cluster


def _apply(cluster: Cluster, namespace: str, *items: dict[str, Any]) -> None:
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})
    applied = kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=listed)
    assert applied.returncode == 0, applied.stderr


def _account_kubeconfig(cluster: Cluster, namespace: str, target: Path) -> str:
    """A kubeconfig of the ServiceAccount ``dev`` (a token the API issues for it), the admin's cluster."""
    token = kubectl(cluster, "create", "token", "dev", "-n", namespace, "--duration", "2h")
    assert token.returncode == 0, token.stderr
    viewed = kubectl(cluster, "config", "view", "--raw", "-o", "json")
    admin = json.loads(viewed.stdout)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"][:1],
        "users": [{"name": "dev", "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "team", "context": {"cluster": admin["clusters"][0]["name"], "user": "dev"}}],
        "current-context": "team",
    }
    target.write_text(json.dumps(config))  # JSON is YAML
    target.chmod(0o600)
    return str(target)


@pytest.fixture
def team(kube_images: Cluster, tmp_path: Path) -> Iterator[Team]:  # noqa: F811
    namespace = f"team-{uuid.uuid4().hex[:6]}"
    assert kubectl(kube_images, "create", "namespace", namespace).returncode == 0
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "driveops"}}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "driveops"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "driveops"},
        "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": namespace}],
    }
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "team-quota"}}
    quota["spec"] = {"hard": {"pods": "30", "limits.memory": "24Gi"}}
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "team-limits"}}
    limits["spec"] = {"limits": [{"type": "Container", "max": {"memory": "4Gi"}, "defaultRequest": {"cpu": "50m"}}]}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dev"}}
    _apply(kube_images, namespace, account, role | {"rules": RULES}, binding, quota, limits)
    try:
        yield Team(namespace, _account_kubeconfig(kube_images, namespace, tmp_path / "team.conf"), kube_images)
    finally:
        kubectl(kube_images, "delete", "namespace", namespace, "--wait=false")


@contextlib.contextmanager
def _box(team: Team, tmp_path: Path, services: str) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path, services=services, backend="kubernetes") as box:
        box.extra_env |= {"KUBECONFIG": team.kubeconfig, "DRIVEOPS_ENV_KUBE_NAMESPACE": team.namespace}
        yield box
        left = kube_leftovers(team.cluster, box.home_label())
        if left:
            box.cli("down", timeout=300)
        assert left == []


def test_a_namespace_handed_out_with_the_readmes_permissions_runs_every_command(team: Team, tmp_path: Path) -> None:
    with _box(team, tmp_path, "keycloak,postgres,redis") as box:
        up = box.cli("up", "--tenants", "acme,beta", timeout=900)
        assert up.returncode == 0, up.stderr
        assert box.state()["services"]["postgres.acme"]["pod"]["namespace"] == team.namespace
        for fmt in ("dotenv", "shell", "json", "dotnet"):
            assert box.cli("env", "--tenant", "acme", "--format", fmt).returncode == 0, fmt
        acme = env_values(box)
        status, check = box.cli("status"), box.cli("check")
        assert status.returncode == 0 and check.returncode == 0, status.stdout + check.stdout + check.stderr
        token = box.cli("token", "--tenant", "beta")
        assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
        assert box.cli("reset", "--tenant", "acme").returncode == 0
        added = box.cli("tenant", "add", "gamma", timeout=600)
        assert added.returncode == 0, added.stderr
        _follows_the_log(box)
        _dashboard_answers(box)
        found = _app_pod(box, team)
        assert found["count"] == "3" and found["issuer"] == acme["DRIVEOPS_KEYCLOAK_ISSUER"], found
        assert box.cli("export", "-o", str(tmp_path / "staging.json")).returncode == 0
        assert box.cli("gc").returncode == 0 and box.cli("status").returncode == 0  # gc touched nothing live
        down = box.cli("down", timeout=300)
        assert down.returncode == 0, down.stderr
        kinds = ["serviceaccount/dev", "role/driveops", "rolebinding/driveops", "resourcequota/team-quota"]
        kept = kubectl(team.cluster, "get", *kinds, "limitrange/team-limits", "-n", team.namespace)
        assert kept.returncode == 0, kept.stderr  # the namespace's own objects stay, ours are gone (the box checks)


def _follows_the_log(box: Sandbox) -> None:
    """`logs --follow` prints a line the server writes after it started (Redis's background save)."""
    follow = box.popen("logs", "redis", "--tenant", "acme", "--follow")
    try:
        record = box.state()["services"]["redis.acme"]
        admin = redis.Redis(host=record["host"], port=record["port"], password=record["admin_password"])
        assert follow.stdout is not None
        seen = ""
        admin.bgsave()
        for _ in range(20):
            seen += follow.stdout.readline()
            if "saving" in seen.lower():
                break
        assert "background saving" in seen.lower(), seen
        admin.close()
    finally:
        follow.kill()
        follow.communicate()


def _dashboard_answers(box: Sandbox) -> None:
    """The dashboard's status (every server healthy) and a token, asked as a program does."""
    with dashboard(box) as url:
        origin, secret = url.split("/?token=")
        headers = {"X-Driveops-Token": secret, "Content-Type": "application/json"}
        asked = urllib.request.Request(origin + "/api/status", headers=headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(asked, timeout=60) as answer:  # noqa: S310
            status = json.loads(answer.read())
        assert "postgres.acme" in status["servers"] and all(s["ok"] for s in status["services"]), status
        body = b'{"tenant": "acme"}'
        asked = urllib.request.Request(origin + "/api/actions/token", data=body, headers=headers)  # noqa: S310
        with urllib.request.urlopen(asked, timeout=60) as answer:  # noqa: S310
            assert answer.status == 200 and answer.read().count(b".") >= 2


def _app_pod(box: Sandbox, team: Team) -> dict[str, Any]:
    """What an application Pod the account starts in the namespace saw, given the values of `env
    --network` as its environment: the tenant's customers (psql) and a token from Keycloak (its issuer)."""
    values = env_values(box, "--tenant", "acme", "--network")
    script = 'psql "$DRIVEOPS_POSTGRES_DSN" -Atc "SELECT count(*) FROM customers" && exec perl -e "$0"'
    container = {
        "name": "app",
        "image": os.environ["DRIVEOPS_ENV_IMAGE_POSTGRES"],
        "imagePullPolicy": "Never",
        "command": ["bash", "-c", script, OIDC_CLIENT],
        "env": [{"name": k, "value": v} for k, v in values.items()],
        "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "64Mi"}},
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}}
    pod["spec"] = {"restartPolicy": "Never", "containers": [container]}
    account = dataclasses.replace(team.cluster, kubeconfig=team.kubeconfig)
    made = kubectl(account, "apply", "-n", team.namespace, "-f", "-", stdin=json.dumps(pod))
    assert made.returncode == 0, made.stderr
    try:
        done = "--for=jsonpath={.status.phase}=Succeeded"
        waited = kubectl(account, "wait", "-n", team.namespace, done, "pod/app", "--timeout=180s", timeout=200)
        logs = kubectl(account, "logs", "-n", team.namespace, "pod/app").stdout
        assert waited.returncode == 0, waited.stderr + logs
        count, printed = logs.strip().splitlines()[-2:]
        found: dict[str, Any] = json.loads(printed)
        return found | {"count": count}
    finally:
        kubectl(account, "delete", "pod", "app", "-n", team.namespace, "--wait=false")


def test_the_plugin_runs_with_the_account(
    team: Team, tmp_path: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _box(team, tmp_path, "postgres,redis") as box:
        for key, value in box.env().items():
            if key.startswith(("DRIVEOPS_ENV_", "KUBECONFIG")):
                monkeypatch.setenv(key, value)
        pytester.makepyfile(test_stores=PLUGIN_TESTS)
        run(pytester, "-p", "no:randomly", "-n", "2").assert_outcomes(passed=2)


def test_what_the_account_may_not_do_and_a_quota_are_named(team: Team, tmp_path: Path) -> None:
    with _box(team, tmp_path, "redis") as box:
        elsewhere = box.cli("up", "--kube-namespace", "kube-system")
        assert elsewhere.returncode == 2, elsewhere.stderr
        assert "forbidden: list pods in kube-system for system:serviceaccount" in elsewhere.stderr, elsewhere.stderr
        assert "does not answer" not in elsewhere.stderr
        del box.extra_env["DRIVEOPS_ENV_KUBE_NAMESPACE"]  # a namespace of its own
        own = box.cli("up", "--kube-address", "198.19.0.9")
        assert own.returncode == 2 and "forbidden: create namespaces" in own.stderr, own.stderr
        _apply(
            team.cluster,
            team.namespace,
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "tight"},
                "spec": {"hard": {"limits.memory": "700Mi"}},
            },
        )
        box.extra_env["DRIVEOPS_ENV_KUBE_NAMESPACE"] = team.namespace
        refused = box.cli("up", "--tenants", "acme,beta", "--kube-memory-mb", "512", timeout=600)
        assert refused.returncode == 1 and "quota 'tight' refused" in refused.stderr, refused.stderr
        assert kube_leftovers(team.cluster, box.home_label()) == []  # what was started is removed
