"""The kubernetes backend on the local cluster the tests start: the CLI end to end (up, env read by
standard clients, token, check, reset, tenant add, logs, a deleted Pod reported and healed, down), the
plugin's fixtures and ``--driveops-from``, two environments in two namespaces, and what a user gets
wrong (no such context, an image the cluster cannot pull, a Pod too big for the node)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import psycopg
import pymongo
import pytest
import redis

from tests.helpers import Sandbox, make_sandbox, run
from tests.integration.test_in_network import OIDC_CLIENT
from tests.kube.cluster import Cluster, kubectl, load_images

pytestmark = [pytest.mark.kubernetes, pytest.mark.xdist_group("kubernetes")]
IMAGE_VARS = ("DRIVEOPS_ENV_IMAGE_POSTGRES", "DRIVEOPS_ENV_IMAGE_REDIS", "DRIVEOPS_ENV_IMAGE_MONGO")


@pytest.fixture(scope="session")
def kube_images(kube_cluster: Cluster) -> Cluster:
    """The stand-in images (scripts/provision --docker), copied from the Docker engine into the cluster."""
    names = [os.environ[v] for v in (*IMAGE_VARS, "DRIVEOPS_ENV_IMAGE_KEYCLOAK") if os.environ.get(v)]
    if len(names) < 4:
        pytest.fail("the stand-in images' settings are not set: run through scripts/test (it sources images.env)")
    load_images(kube_cluster, names)
    return kube_cluster


def kube_leftovers(cluster: Cluster, home: str) -> list[str]:
    """Whatever of a sandbox (its home label) the cluster still holds: namespaces, pods, services, secrets."""
    kinds = "namespaces,pods,services,secrets"
    found = kubectl(cluster, "get", kinds, "-A", "-l", f"org.driveops-env.home={home}", "-o", "name")
    assert found.returncode == 0, found.stderr
    return found.stdout.split()


@pytest.fixture
def kbox(kube_images: Cluster, tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox on the kubernetes backend of the local cluster; at its end nothing of it is left there."""
    with make_sandbox(tmp_path, services="postgres,redis", backend="kubernetes") as box:
        box.extra_env["KUBECONFIG"] = kube_images.kubeconfig
        yield box
        left = kube_leftovers(kube_images, box.home_label())
        if left:  # the cluster clean for the next test, then this one fails
            box.cli("down", timeout=300)
        assert left == []


def env_values(box: Sandbox, *args: str) -> dict[str, str]:
    printed = box.cli("env", "--format", "json", *args)
    assert printed.returncode == 0, printed.stderr
    values: dict[str, str] = json.loads(printed.stdout)
    return values


def test_the_cli_end_to_end_on_a_cluster(kbox: Sandbox, kube_images: Cluster) -> None:
    kbox.services = "keycloak,postgres,mongo,redis"
    up = kbox.cli("up", "--tenants", "acme,beta", timeout=900)
    assert up.returncode == 0, up.stderr
    namespace = f"driveops-{kbox.name}"
    assert kbox.state()["services"]["postgres.acme"]["pod"]["namespace"] == namespace
    names = kubectl(kube_images, "get", "services", "-n", namespace, "-o", "name").stdout.split()
    assert "service/postgres-acme" in names and "service/keycloak" in names  # named like docker's aliases
    spec = kubectl(kube_images, "get", "pods", "-n", namespace, "-o", "json").stdout
    assert kbox.state()["services"]["postgres.acme"]["admin_password"] not in spec  # secrets in Secrets only

    # standard clients, fed the printed values as printed
    acme = env_values(kbox)
    with psycopg.connect(acme["DRIVEOPS_POSTGRES_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (3,)
        conn.execute("TRUNCATE customers CASCADE")
    assert redis.Redis.from_url(acme["DRIVEOPS_REDIS_URL"]).ping()
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(acme["DRIVEOPS_MONGO_URI"])
    assert mongo[acme["DRIVEOPS_MONGO_DATABASE"]].list_collection_names()
    mongo.close()
    token = kbox.cli("token", "--tenant", "acme")
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert claims["iss"] == acme["DRIVEOPS_KEYCLOAK_ISSUER"]  # one issuer, inside the cluster and out
    inside = env_values(kbox, "--network")
    assert "@postgres-acme:5432/" in inside["DRIVEOPS_POSTGRES_DSN"]  # the in-cluster name
    assert inside["DRIVEOPS_KEYCLOAK_ISSUER"] == acme["DRIVEOPS_KEYCLOAK_ISSUER"]
    for fmt, found in _oidc_in_a_pod(kbox, kube_images, namespace).items():  # discovery, JWKS, a token in the cluster
        assert found["issuer"] == acme["DRIVEOPS_KEYCLOAK_ISSUER"], fmt
        assert found["token_endpoint"].startswith(inside["DRIVEOPS_KEYCLOAK_URL"] + "/"), fmt
        assert jwt.decode(found["token"], options={"verify_signature": False})["iss"] == found["issuer"], fmt
        assert jwt.get_unverified_header(found["token"])["kid"] in found["kids"], fmt

    check = kbox.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert kbox.cli("reset", "--tenant", "acme").returncode == 0
    with psycopg.connect(acme["DRIVEOPS_POSTGRES_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    added = kbox.cli("tenant", "add", "gamma", timeout=600)
    assert added.returncode == 0, added.stderr
    assert env_values(kbox, "--tenant", "gamma")["DRIVEOPS_POSTGRES_DSN"] != acme["DRIVEOPS_POSTGRES_DSN"]
    logs = kbox.cli("logs", "postgres", "--tenant", "acme")
    assert logs.returncode == 0 and "database system is ready" in logs.stdout, logs.stderr

    # a Pod deleted behind its back: reported, and healed by up
    pod = kbox.state()["services"]["redis.beta"]["pod"]["name"]
    assert kubectl(kube_images, "delete", "pod", pod, "-n", namespace, "--wait=true").returncode == 0
    status = kbox.cli("status")
    assert status.returncode == 1 and re.search(r"redis\.beta.*FAIL", status.stdout), status.stdout
    healed = kbox.cli("up", "--tenants", "acme,beta,gamma", timeout=900)
    assert healed.returncode == 0 and "recreating" in healed.stderr, healed.stderr
    assert kbox.cli("status").returncode == 0

    down = kbox.cli("down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert kubectl(kube_images, "get", "namespace", namespace).returncode != 0  # the namespace is gone


def _oidc_in_a_pod(box: Sandbox, cluster: Cluster, namespace: str) -> dict[str, Any]:
    """What a client in a Pod of the environment's namespace fetched (discovery, JWKS, a token) with
    `env --network` in each format as Kubernetes hands it over: dotenv through a ConfigMap made by
    `kubectl create configmap --from-env-file` (envFrom), shell and json as mounted files."""
    files: dict[str, str] = {"oidc.pl": OIDC_CLIENT}
    for fmt in ("dotenv", "shell", "json"):
        printed = box.cli("env", "--tenant", "acme", "--network", "--format", fmt)
        assert printed.returncode == 0, printed.stderr
        files[f"acme.{fmt}"] = printed.stdout + "\n"
        (box.state_dir.parent / f"acme.{fmt}").write_text(files[f"acme.{fmt}"])
    made = kubectl(
        cluster,
        "create",
        "configmap",
        "acme-dotenv",
        "-n",
        namespace,
        f"--from-env-file={box.state_dir.parent / 'acme.dotenv'}",
    )
    assert made.returncode == 0, made.stderr
    mounted = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "acme-values"}, "data": files}
    script = (
        "perl /values/oidc.pl && echo && (. /values/acme.shell && perl /values/oidc.pl) && echo"
        " && perl /values/oidc.pl /values/acme.json"
    )
    container = {
        "name": "client",
        "image": os.environ["DRIVEOPS_ENV_IMAGE_POSTGRES"],
        "imagePullPolicy": "Never",
        "command": ["bash", "-c", script],
        "envFrom": [{"configMapRef": {"name": "acme-dotenv"}}],
        "volumeMounts": [{"name": "values", "mountPath": "/values"}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "oidc-client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [{"name": "values", "configMap": {"name": "acme-values"}}],
        },
    }
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": [mounted, pod]})
    applied = kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    done = "jsonpath={.status.phase}=Succeeded"
    waited = kubectl(
        cluster, "wait", "-n", namespace, f"--for={done}", "pod/oidc-client", "--timeout=180s", timeout=200
    )
    logs = kubectl(cluster, "logs", "-n", namespace, "pod/oidc-client").stdout
    assert waited.returncode == 0, waited.stderr + logs
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    return dict(zip(("dotenv", "shell", "json"), lines, strict=True))


PLUGIN_TESTS = """
def test_writes(tenant_pg, tenant_redis):
    tenant_pg.execute("TRUNCATE customers CASCADE")
    tenant_pg.commit()
    tenant_redis.set("written", "1")

def test_sees_the_seed(tenant_pg, tenant_redis):
    assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    assert tenant_redis.get("written") is None
"""


def test_the_plugin_and_a_descriptor_against_the_cluster(
    kbox: Sandbox, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in kbox.env().items():
        if key.startswith(("DRIVEOPS_ENV_", "KUBECONFIG")):
            monkeypatch.setenv(key, value)
    pytester.makepyfile(test_stores=PLUGIN_TESTS)
    own = run(pytester, "-p", "no:randomly", "-n", "2")  # the session starts its own environment, xdist
    own.assert_outcomes(passed=2)
    assert kbox.cli("up", "--tenants", "acme").returncode == 0
    descriptor = tmp_path / "staging.json"
    assert kbox.cli("export", "--output", str(descriptor)).returncode == 0
    monkeypatch.delenv("KUBECONFIG")  # another machine: only the descriptor
    shared = run(pytester, "-p", "no:randomly", f"--driveops-from={descriptor}")
    shared.assert_outcomes(passed=2)
    assert kbox.cli("down").returncode == 0


def test_two_environments_in_two_namespaces_see_only_their_own(kbox: Sandbox, tmp_path: Path) -> None:
    kbox.services = "redis"
    (tmp_path / "second").mkdir()
    with make_sandbox(tmp_path / "second", services="redis", backend="kubernetes") as other:
        other.extra_env["KUBECONFIG"] = kbox.extra_env["KUBECONFIG"]
        assert kbox.cli("up", "--tenants", "acme").returncode == 0
        assert other.cli("up", "--tenants", "acme").returncode == 0
        mine, theirs = env_values(kbox)["DRIVEOPS_REDIS_URL"], env_values(other)["DRIVEOPS_REDIS_URL"]
        assert mine != theirs
        redis.Redis.from_url(mine).set("whose", "mine")
        assert redis.Redis.from_url(theirs).get("whose") is None
        m, t = urlsplit(mine), urlsplit(theirs)
        crossed = redis.Redis(host=str(t.hostname), port=t.port or 6379, username=m.username, password=m.password)
        with pytest.raises(redis.AuthenticationError):  # one environment's password opens nothing of the other's
            crossed.ping()
        assert other.cli("down").returncode == 0
        assert kbox.cli("status").returncode == 0  # the other's down touched nothing of this one
        assert kbox.cli("down").returncode == 0


def test_what_a_user_gets_wrong_is_named_and_leaves_nothing(kbox: Sandbox, kube_images: Cluster) -> None:
    kbox.services = "redis"
    nowhere = kbox.cli("up", "--kube-context", "no-such-context")
    assert nowhere.returncode == 2 and "no-such-context" in nowhere.stderr, nowhere.stderr
    # a registry on the node's own loopback that refuses at once: the pull never leaves the cluster's namespace
    missing = kbox.cli("up", "--image-redis", "127.0.0.1:9/no-such-image:1", timeout=600)
    assert missing.returncode == 2 and "--image-redis" in missing.stderr, missing.stderr  # as on docker
    too_big = kbox.cli("up", "--kube-memory-mb", "262144", "--startup-timeout", "40", timeout=600)
    assert too_big.returncode == 1 and "unschedulable" in too_big.stderr.lower(), too_big.stderr
    assert kube_leftovers(kube_images, kbox.home_label()) == []
