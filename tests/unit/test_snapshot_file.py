"""The snapshot file: what is written reads back, and every forged or damaged file is refused (exit 2,
naming what is wrong) before anything is read into the caller's folder beyond the parts checked."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from driveops_env import masking, snapshot
from driveops_env.errors import UsageError


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Path]:
    made = {}
    for name, data in (("postgres", b"PGDMP" + os.urandom(3000)), ("redis", b'{"keys": []}')):
        path = tmp_path / f"in-{name}"
        path.write_bytes(data)
        made[name] = path
    return made


def _write(tmp_path: Path, parts: dict[str, Path]) -> Path:
    target = tmp_path / "acme.snap"
    snapshot.write(target, "acme", {"migrate-postgres": "abc"}, False, parts)
    return target


def _out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir(exist_ok=True)
    return folder


def test_written_file_reads_back_with_its_parts(tmp_path: Path, parts: dict[str, Path]) -> None:
    target = _write(tmp_path, parts)
    assert target.stat().st_mode & 0o777 == 0o600
    manifest, found = snapshot.read(target, _out(tmp_path))
    assert manifest.tenant == "acme" and manifest.migrations == {"migrate-postgres": "abc"}
    assert {n: p.read_bytes() for n, p in found.items()} == {n: p.read_bytes() for n, p in parts.items()}
    assert "127.0.0.1" not in target.read_bytes().decode("latin-1")


def _forge(tmp_path: Path, members: list[tuple[str, bytes]], kind: bytes = tarfile.REGTYPE) -> Path:
    target = tmp_path / "forged.snap"
    with tarfile.open(target, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.type = len(data), kind if name != snapshot.MANIFEST else tarfile.REGTYPE
            if kind == tarfile.SYMTYPE and name != snapshot.MANIFEST:
                info.size, info.linkname = 0, "/etc/passwd"
                tar.addfile(info)
            else:
                tar.addfile(info, io.BytesIO(data))
    return target


def _manifest(data: dict[str, bytes], **changes: object) -> bytes:
    import hashlib

    described = {
        n: {"member": f"parts/{n}", "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in data.items()
    }
    body = {"format": 1, "tenant": "acme", "migrations": {}, "masked": False, "parts": described} | changes
    return json.dumps(body).encode()


def _refused(path: Path, tmp_path: Path, words: str) -> None:
    with pytest.raises(UsageError, match=words) as caught:
        snapshot.read(path, _out(tmp_path))
    assert caught.value.exit_code == 2
    assert "nothing was changed" in caught.value.message


def test_a_part_changed_after_writing_is_refused(tmp_path: Path) -> None:
    data = {"postgres": b"x" * 100}
    forged = _forge(tmp_path, [("manifest.json", _manifest(data)), ("parts/postgres", b"y" * 100)])
    _refused(forged, tmp_path, "size or SHA-256 differ")


def test_a_truncated_file_is_refused(tmp_path: Path, parts: dict[str, Path]) -> None:
    target = _write(tmp_path, parts)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError) as caught:
        snapshot.read(target, _out(tmp_path))
    assert caught.value.exit_code == 2


def test_a_path_in_a_member_name_is_refused(tmp_path: Path) -> None:
    data = {"postgres": b"x"}
    manifest = _manifest(data, parts={"postgres": {"member": "../../etc/cron.d/x", "size": 1, "sha256": "0" * 64}})
    forged = _forge(tmp_path, [("manifest.json", manifest), ("../../etc/cron.d/x", b"x")])
    _refused(forged, tmp_path, "member name")
    assert not (tmp_path.parent.parent / "etc").exists()


def test_a_member_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    data = {"postgres": b"x"}
    forged = _forge(tmp_path, [("manifest.json", _manifest(data)), ("parts/postgres", b"x"), ("parts/evil", b"z")])
    _refused(forged, tmp_path, "more members than the 1 part")


def test_a_link_member_is_refused(tmp_path: Path) -> None:
    data = {"postgres": b""}
    forged = _forge(tmp_path, [("manifest.json", _manifest(data)), ("parts/postgres", b"")], kind=tarfile.SYMTYPE)
    _refused(forged, tmp_path, "not a file")


def test_a_claimed_size_beyond_the_file_is_refused(tmp_path: Path) -> None:
    huge = {"postgres": {"member": "parts/postgres", "size": 100 * 1024**3, "sha256": "0" * 64}}
    forged = _forge(tmp_path, [("manifest.json", _manifest({}, parts=huge))])
    _refused(forged, tmp_path, "claims 107374182400 bytes")


def test_a_nested_manifest_is_refused(tmp_path: Path) -> None:
    bomb = b'{"format": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    forged = _forge(tmp_path, [("manifest.json", bomb)])
    with pytest.raises(UsageError, match="nests deeper"):
        snapshot.read(forged, _out(tmp_path))


def test_a_missing_part_is_refused(tmp_path: Path) -> None:
    data = {"postgres": b"x", "redis": b"y"}
    forged = _forge(tmp_path, [("manifest.json", _manifest(data)), ("parts/postgres", b"x")])
    _refused(forged, tmp_path, "redis its manifest lists are missing")


def test_other_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _refused(text, tmp_path, "not a snapshot file")
    _refused(_forge(tmp_path, [("parts/postgres", b"x")]), tmp_path, "first member is not manifest.json")
    _refused(_forge(tmp_path, [("manifest.json", _manifest({}, format=99))]), tmp_path, "not of format 1")


def test_masking_is_deterministic_and_keeps_the_form() -> None:
    mask = masking.Masking.of(masking.DEFAULT_NAMES)
    doc = {"email": "zed@real.example", "nested": [{"Phone": "+33 6 12"}], "city": "Lyon", "full_name": 3}
    once, again = mask.document(doc), mask.document(doc)
    assert once == again
    assert once["email"].endswith("@example.invalid") and "zed" not in once["email"]
    assert once["nested"][0]["Phone"].startswith("+1555") and once["nested"][0]["Phone"][1:].isdigit()
    assert once["city"] == "Lyon" and once["full_name"] == 3
    assert masking.value("email", "a@b.c") != masking.value("email", "a@b.d")


def test_the_mongodb_part_is_checked_whole(tmp_path: Path) -> None:
    from bson import encode

    from driveops_env.services.mongo import snapshot as mongo_part

    header = {"collections": [{"name": "notes", "indexes": [{"keys": {"n": 1}, "name": "by_n"}], "documents": 2}]}
    documents = encode({"n": 1}) + encode({"n": 2})
    part = tmp_path / "mongo"
    part.write_bytes(json.dumps(header).encode() + b"\n" + documents)
    ((name, indexes, found),) = list(mongo_part._read(part))
    assert name == "notes" and indexes[0]["name"] == "by_n" and [d["n"] for d in found] == [1, 2]
    for data, words in (
        (documents + b"\x00", "1 bytes follow"),
        (documents[:-3], "length beyond the file"),
        (b"\xff\xff\xff\x7f" + documents, "length beyond the file"),
    ):
        part.write_bytes(json.dumps(header).encode() + b"\n" + data)
        with pytest.raises(UsageError, match=words):
            list(mongo_part._read(part))
    part.write_bytes(b'{"collections": [{"name": "x", "indexes": "all", "documents": 1}]}\n')
    with pytest.raises(UsageError, match="does not name collections"):
        list(mongo_part._read(part))


def test_an_address_masks_the_same_in_any_case_and_lists_are_masked() -> None:
    mask = masking.Masking.of(("email", "phone"))
    assert masking.value("email", "Zed@Real.Example") == masking.value("email", "zed@real.example")
    assert mask.document({"phone": ["+4912345", 7]})["phone"][0].startswith("+1555")
