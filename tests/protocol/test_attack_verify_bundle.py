"""The standalone verifier (protocol/verify_bundle.py) fed hostile files: whatever it is given, it prints a verdict and
exits 0, 1 or 2, never a traceback. Each bundle below was once a crash (a deeply nested manifest, a media entry whose
event id is a list, a record item that also carries a non-object "event", a media entry of an event whose body names
no file), or is a ZIP trick (a path with ../, a compressed zip bomb, a member listed twice or left out)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from protocol import bundle as fmt
from protocol import merkle
from protocol.verify_bundle import EXIT_FAILED, EXIT_OK, EXIT_UNREADABLE, main, verify_bytes
from tests.protocol.test_verify_bundle import SERVER_KEY, worked_example

KEY = SERVER_KEY.public_hex


def _members() -> dict[str, bytes]:
    return dict(fmt.read_zip(worked_example())[0])


def _rezip(files: dict[str, bytes]) -> bytes:
    return fmt.write_zip([(n, files[n]) for n in fmt.MEMBERS if n in files])


def _records_with(extra: dict[str, Any]) -> dict[str, bytes]:
    files = _members()
    data = json.loads(files["records.json"])
    data["items"].append(extra)
    files["records.json"] = json.dumps(data).encode()
    return files


def _verdict(blob: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "b.zip"
    path.write_bytes(blob)
    code = main([str(path), "--key", KEY])
    out = capsys.readouterr()
    return code, out.out + out.err


def _assert_refused(blob: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    report = verify_bytes(blob, KEY)  # raises nothing (a BundleError is for no bundle at all)
    assert not report.ok
    code, text = _verdict(blob, tmp_path, capsys)
    assert code == EXIT_FAILED and "NOT VERIFIED" in text and "Traceback" not in text, text
    return text


def test_the_untouched_example_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _verdict(worked_example(), tmp_path, capsys)[0] == EXIT_OK


@pytest.mark.parametrize("member", ["manifest.json", "records.json", "media.json", "tree-head.json", "published-head.json"])
def test_a_deeply_nested_member_is_refused_not_a_crash(member: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _members()
    files[member] = b"[" * 200_000 + b"]" * 200_000
    assert member in _assert_refused(_rezip(files), tmp_path, capsys)


def test_a_media_entry_whose_event_id_is_a_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _members()
    files["media.json"] = json.dumps([{"event_id": ["x"], "file_name": {"a": 1}}, 5, None, {"event_id": {"k": 1}}]).encode()
    assert "media.json" in _assert_refused(_rezip(files), tmp_path, capsys)


def test_a_record_item_that_also_carries_a_non_object_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"record_id": "rec:" + "0" * 32, "kind": "case.opened", "subject": "case:X", "at_ms": 1, "body": base64.b64encode(b"{}").decode()}
    leaf = merkle.leaf_hash(fmt.record_leaf_data(record)).hex()
    for event in (5, "x", [1], None):
        files = _records_with({"record": record, "event": event, "log_index": 0, "leaf_hash": leaf, "audit_path": []})
        _assert_refused(_rezip(files), tmp_path, capsys)


def test_a_media_entry_of_an_event_that_names_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev = {
        "event_id": "EV-ATTACK", "device_id": "DEV-X", "seq": 1, "type": "media_captured", "device_time_ms": 1, "clock_error_ms": 0, "received_ms": 1,
        "stored_ms": 1, "wire_format": "json", "body": base64.b64encode(b"{}").decode(), "sig": base64.b64encode(bytes(64)).decode(),
    }  # fmt: skip
    leaf = merkle.leaf_hash(fmt.event_leaf_data(ev)).hex()
    files = _records_with({"event": ev, "log_index": 0, "leaf_hash": leaf, "audit_path": []})
    files["media.json"] = json.dumps([{"event_id": "EV-ATTACK"}]).encode()
    _assert_refused(_rezip(files), tmp_path, capsys)


def test_a_member_listed_twice_or_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _members()
    pairs = [(n, files[n]) for n in fmt.MEMBERS if n in files]
    twice = fmt.write_zip(pairs + [("records.json", b'{"items": []}')])
    assert "ZIP: members" in _assert_refused(twice, tmp_path, capsys)
    shadowed = fmt.write_zip([("records.json", b'{"items": []}')] + pairs)
    _assert_refused(shadowed, tmp_path, capsys)
    for left_out in ("records.json", "manifest.sig", "tree-head.json", "media.json", "summary.txt", "manifest.json"):
        assert left_out in _assert_refused(fmt.write_zip([p for p in pairs if p[0] != left_out]), tmp_path, capsys)


def test_zip_tricks_get_a_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _members()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n in fmt.MEMBERS:
            if n in files:
                z.writestr(n, files[n])
        z.writestr("../../etc/passwd", b"root:x:0:0")
        z.writestr("bomb.bin", b"\0" * 50_000_000)  # 50 MB in about 50 kB: read as stored, never inflated
    code, text = _verdict(buf.getvalue(), tmp_path, capsys)
    assert code in (EXIT_FAILED, EXIT_UNREADABLE) and "NOT VERIFIED" in text and "Traceback" not in text
    assert not (tmp_path.parent / "etc").exists()
    canonical = [(n, files[n]) for n in fmt.MEMBERS if n in files]
    evil = fmt.write_zip(canonical + [("../evil.txt", b"x"), ("/abs", b"y")])
    assert "ZIP: members" in _assert_refused(evil, tmp_path, capsys)


@pytest.mark.parametrize(
    "blob",
    [b"", b"PK", b"PK\x03\x04", b"not a zip at all", b"PK\x03\x04" + b"\xff" * 26, b"\x00" * 4096, b"PK\x05\x06" + b"\x00" * 18],
)
def test_non_bundles_are_unreadable_with_a_verdict(blob: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _verdict(blob, tmp_path, capsys)
    assert code == EXIT_UNREADABLE and "NOT VERIFIED" in text and "Traceback" not in text, text


def test_a_directory_a_missing_file_and_a_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == EXIT_UNREADABLE
    assert main([str(tmp_path / "nope.zip")]) == EXIT_UNREADABLE
    path = tmp_path / "b.zip"
    path.write_bytes(worked_example())
    assert main([str(path), "--key", "zz" * 32]) == EXIT_UNREADABLE
    assert main([str(path), "--key", "00" * 32]) == EXIT_FAILED  # another server's key
    assert "Traceback" not in capsys.readouterr().err


def test_a_huge_file_is_read_once_and_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _members()
    files["summary.txt"] = b"x" * 30_000_000
    assert "summary.txt" in _assert_refused(_rezip(files), tmp_path, capsys)
