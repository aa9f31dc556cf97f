"""MongoDB per tenant (FerretDB on the local backend): seeded, isolated, reset, and bad seed files."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pymongo
import pymongo.errors
import pytest

from driveops_env import Environment
from tests.helpers import Sandbox

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("isolation", ["dedicated", "shared"])
def test_seeded_isolated_and_reset(sandbox: Sandbox, isolation: str) -> None:
    env = Environment.up(settings=sandbox.settings(tenants="acme,beta", isolation=isolation, services="postgres,mongo"))
    try:
        acme, beta = env.tenant("acme"), env.tenant("beta")
        db = acme.connect_mongo()
        notes = db.intervention_notes
        first = notes.find_one({"note_id": "acme-n1"})
        assert first is not None and first["tenant_id"] == acme.tenant_id
        assert first["created_at"] == dt.datetime(2026, 1, 10, 9, 30, tzinfo=dt.UTC)
        assert sorted(db.list_collection_names()) == ["attachments", "audit_events", "intervention_notes"]
        assert "storage_key_unique" in db.attachments.index_information()
        with pytest.raises(pymongo.errors.DuplicateKeyError):  # the unique index is enforced
            notes.insert_one({"note_id": "acme-n1"})

        # cross-tenant access is refused
        stolen = acme.mongo
        # every tenant has its own MongoDB-protocol server in both modes (FerretDB cannot restrict a
        # user to its database): on its own server acme sees nothing of beta, not even names
        assert acme.mongo.port != beta.mongo.port
        assert set(db.client.list_database_names()) - {"admin", "config", "local"} == {"driveops_acme"}
        assert db.client.driveops_beta.list_collection_names() == []
        # acme's credentials, presented to beta's server
        other: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            dataclasses.replace(stolen, port=beta.mongo.port, database="driveops_beta").uri,
            serverSelectionTimeoutMS=3000,
        )
        with pytest.raises(pymongo.errors.OperationFailure):
            other.driveops_beta.list_collection_names()
        with pytest.raises(pymongo.errors.OperationFailure):
            other.driveops_beta.intervention_notes.find_one()
        with pytest.raises(pymongo.errors.OperationFailure):
            other.driveops_beta.intervention_notes.insert_one({"evil": True})
        anonymous: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            f"mongodb://127.0.0.1:{beta.mongo.port}/", serverSelectionTimeoutMS=3000
        )
        with pytest.raises(pymongo.errors.OperationFailure):
            anonymous.driveops_beta.intervention_notes.find_one()
        anonymous.close()
        assert beta.connect_mongo().intervention_notes.count_documents({}) == 3  # beta untouched

        # a test changes things; reset brings back the seeded documents
        notes.delete_many({})
        db.scratch.insert_one({"x": 1})
        timings = acme.reset(stores=("mongo",))
        assert set(timings) == {"mongo"}
        assert notes.count_documents({}) == 3
        assert "scratch" not in db.list_collection_names()
        db.client.close()
        assert all(r.ok for r in env.check())
    finally:
        env.down()
    assert sandbox.leftovers() == []


def test_dotnet_key_and_uri(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme", "--services", "postgres,mongo").returncode == 0
    lines = dict(
        line.split("=", 1) for line in sandbox.cli("env", "--tenant", "acme", "--format", "dotnet").stdout.split()
    )
    uri = lines["ConnectionStrings__MongoConnection"]
    assert uri.startswith("mongodb://driveops_acme_mongo:") and "/driveops_acme?auth" in uri
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    assert client.driveops_acme.audit_events.count_documents({"action": "tenant.created"}) == 1
    client.close()
    check = sandbox.cli("check")
    assert check.returncode == 0 and "mongodb" in check.stdout
    assert sandbox.cli("down").returncode == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"documents": [{"a": 1}', "not valid JSON"),
        ('{"documents": [{"a": {"b": "{{ nope }}"}}]}', "unknown placeholder"),
        ('{"indexes": [{"keys": {"a": 1}, "expireAfterSeconds": 60}], "documents": []}', "not supported"),
        ('{"documents": [{"a.b": 1}]}', "not portable"),
        ('{"documents": [{"a": [[1, 2]]}]}', "nested arrays"),
        ('{"docs": []}', "unknown key"),
    ],
)
def test_malformed_mongo_seed_exits_2_and_starts_nothing(
    sandbox: Sandbox, tmp_path: Path, content: str, fragment: str
) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "mongo").mkdir(parents=True)
    (seeds / "mongo" / "broken.json").write_text(content)
    result = sandbox.cli("up", "--tenants", "acme", "--services", "postgres,mongo", "--seeds-dir", str(seeds))
    assert result.returncode == 2, result.stderr
    assert "broken.json" in result.stderr and "tenant acme" in result.stderr and fragment in result.stderr
    assert sandbox.leftovers() == []


def test_a_document_the_server_refuses_names_the_file_and_tenant(sandbox: Sandbox, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "mongo").mkdir(parents=True)
    (seeds / "mongo" / "dupes.json").write_text(
        '{"indexes": [{"keys": {"k": 1}, "unique": true}], "documents": [{"k": 1}, {"k": 1}]}'
    )
    result = sandbox.cli("up", "--tenants", "acme", "--services", "postgres,mongo", "--seeds-dir", str(seeds))
    assert result.returncode == 2, result.stderr
    assert "dupes.json" in result.stderr and "tenant acme" in result.stderr and "duplicate" in result.stderr.lower()
    assert sandbox.leftovers() == []
