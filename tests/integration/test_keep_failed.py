"""`pytest --driveops-keep-failed`: the copies a failed test used stay as it left them (every store), the
failure says how to reach them, `driveops-env copies` lists them, the next test of the process gets a
new copy at the seed, and `gc` drops them (and the environment kept for them) once they expire."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pymongo
import pytest
import redis

from tests.helpers import Sandbox, run

pytestmark = [pytest.mark.integration, pytest.mark.local_only]

TESTS = """
def test_1_fails_after_writing(tenant_pg, tenant_mongo, tenant_redis, tenant):
    tenant_pg.execute(
        "insert into garages (tenant_id, name, city) select id, 'left by the failed test', 'Lyon' from tenants limit 1"
    )
    tenant_pg.commit()
    tenant_mongo.written.insert_one({"by": "the failed test"})
    tenant_redis.set(tenant.redis.key_prefix + "written", "by the failed test")
    assert False, "the failure whose state we want to see"


def test_2_starts_from_the_seed(tenant_pg, tenant_mongo, tenant_redis, tenant):
    count = tenant_pg.execute("select count(*) from garages where name = 'left by the failed test'").fetchone()
    assert count == (0,)
    assert tenant_mongo.written.count_documents({}) == 0
    assert tenant_redis.get(tenant.redis.key_prefix + "written") is None
"""


def _copy_values(box: Sandbox, copy_id: str) -> dict[str, Any]:
    printed = box.cli("env", "--copy", copy_id, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    return dict(json.loads(printed.stdout))


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_a_failed_tests_copies_are_kept_then_dropped_by_gc(
    pytester: pytest.Pytester, box: Sandbox, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_keep=TESTS)
    options = ("--driveops-keep-failed", "--driveops-keep-failed-hours", "0")
    result = run(pytester, "-p", "no:randomly", *workers, *options)
    result.assert_outcomes(passed=1, failed=1)
    said = "\n".join(result.outlines)
    found = re.search(r"kept copy (\S+) of tenant 'acme' until .*: driveops-env env --name \S+ --copy (\S+)", said)
    assert said.count("kept copy ") == 1, said
    assert found is not None and found.group(1) == found.group(2), said
    copy_id = found.group(1)
    assert re.search(r"kept running for 1 failed test\(s\)' copies", said), said

    listed = box.cli("copies")
    assert listed.returncode == 0 and copy_id in listed.stdout, listed.stdout + listed.stderr
    assert "test_1_fails_after_writing" in listed.stdout and "expired" in listed.stdout
    values = _copy_values(box, copy_id)  # as the failed test left them, in every store
    with psycopg.connect(values["DRIVEOPS_POSTGRES_DSN"]) as conn:
        assert conn.execute("select count(*) from garages where name = 'left by the failed test'").fetchone() == (1,)
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(values["DRIVEOPS_MONGO_URI"])
    assert mongo[values["DRIVEOPS_MONGO_DATABASE"]].written.count_documents({"by": "the failed test"}) == 1
    mongo.close()
    prefix = values.get("DRIVEOPS_REDIS_KEY_PREFIX", "")
    assert redis.Redis.from_url(values["DRIVEOPS_REDIS_URL"]).get(f"{prefix}written") == b"by the failed test"

    collected = box.cli("gc")  # expired (0 hours): the copy dropped, the environment kept for it stopped
    assert collected.returncode == 0, collected.stderr
    assert f"kept copy {copy_id}" in collected.stdout + collected.stderr
    assert "kept for copies that expired" in collected.stdout + collected.stderr
    assert box.leftovers() == []


def test_without_the_option_nothing_is_kept(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(test_keep=TESTS)
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    assert "kept copy" not in "\n".join(result.outlines)
    assert box.leftovers() == []
