"""Evidence bundles (证据包, issue 17) on both backends: a demo-like inspection's bundle verifies offline, every changed
byte is found and named, and who may export what follows the roles."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from protocol import bundle as fmt
from protocol import topics
from protocol.codec import seal
from protocol.messages import DeviceStatus, InspectionEnded, InspectionStarted, MediaCaptured
from protocol.signing import SigningKey
from protocol.verify_bundle import verify_bytes
from server.evidence import bundle as bundle_mod
from server.evidence.records import records_of
from server.ingest.batch import store_batch
from server.ingest.projector import Projector
from server.ingest.store import DeviceKeys, Incoming
from server.storage.engine import sql, storage_for
from tests.protocol.test_verify_bundle import _CHILD, _isolated, _no_net_prefix
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import FRAGILE, PLAIN, Api
from tests.server.scan_fixtures import POLICY
from tests.server.test_access import open_inspection

DEVICE_KEY = SigningKey.from_seed(bytes(range(7, 39)))
_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:id, 'M', 'body_recorder', :agency, :key, 0)")
BUNDLES = "/api/v1/evidence/bundles"
MEDIA_SHA = "ab" * 32


def device_events(inspection_id: str, device: str = "BR-SAMR-1", officer: str = "OFF-SAMR-1", wire: str = "json") -> list[Incoming]:
    """What a body-worn recorder reports of an inspection: started, a recording, a heartbeat (not the inspection's), ended."""
    now = int(time.time() * 1000)
    common = {"device_id": device, "clock_error_ms": 20}
    msgs = [
        InspectionStarted(event_id=str(uuid.uuid4()), seq=1, device_time_ms=now, inspection_id=inspection_id, officer_id=officer, agency_id="SAMR", credit_code=PLAIN, field="food", **common),
        MediaCaptured(
            event_id=str(uuid.uuid4()), seq=2, device_time_ms=now + 1, file_name="REC_0001.MP4", media_kind="video", size_bytes=1_048_576, sha256=MEDIA_SHA,
            started_ms=now, ended_ms=now + 60_000, officer_id=officer, inspection_id=inspection_id, proves="现场检查全过程", **common,
        ),
        DeviceStatus(event_id=str(uuid.uuid4()), seq=3, device_time_ms=now + 2, outbox_depth=0, oldest_unsent_age_s=0.0, free_storage_bytes=10**9, **common),
        InspectionEnded(event_id=str(uuid.uuid4()), seq=4, device_time_ms=now + 3, inspection_id=inspection_id, officer_id=officer, result="no_violation", **common),
    ]  # fmt: skip
    return [Incoming(topics.device_up(device), seal(m, DEVICE_KEY, wire), 0) for m in msgs]  # type: ignore[arg-type]


def demo(api: Api, url: str, wire: str = "json") -> tuple[str, str]:
    """A demo-like inspection of PLAIN by SAMR (a phone scan, a recorder's events, the enterprise's rating) and an
    inspection of FRAGILE by FIRE; returns both ids."""
    with storage_for(url).writing() as tx:
        tx.run(_DEVICE, id="BR-SAMR-1", agency="SAMR", key=DEVICE_KEY.public_hex)
        tx.run(_DEVICE, id="BR-FIRE-1", agency="FIRE", key=DEVICE_KEY.public_hex)
    inspection = open_inspection(api, "OFF-SAMR-1")
    out = store_batch(url, device_events(inspection, wire=wire), DeviceKeys(), projector=Projector(POLICY))
    assert len(out.receipts["BR-SAMR-1"]) == 4
    r = api.as_("ent-plain").post("/api/v1/ratings", json={"inspection_id": inspection, "score": 5, "comment": "文明规范"})
    assert r.status_code == 201, r.text
    other = open_inspection(api, "OFF-FIRE-1", FRAGILE)
    return inspection, other


def members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:  # any unzip tool reads a bundle
        return {n: z.read(n) for n in z.namelist()}


def rezip(blob: bytes, name: str, change: Any) -> bytes:
    """The bundle with one member changed (``change``: bytes -> bytes), zipped again in the canonical form."""
    pairs, _ = fmt.read_zip(blob)
    return fmt.write_zip([(n, change(d) if n == name else d) for n, d in pairs])


def flip_text(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


def test_a_demo_inspections_bundle_holds_its_records_and_verifies(api: Api, seeded_url: str) -> None:
    inspection, _ = demo(api, seeded_url)
    r = api.get(f"{BUNDLES}/inspection/{inspection}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    assert f"evidence-inspection-{inspection}" in r.headers["content-disposition"]
    files = members(r.content)
    assert list(files) == ["manifest.json", "manifest.sig", "tree-head.json", "server-key.txt", "records.json", "media.json", "summary.txt"]
    items = json.loads(files["records.json"])["items"]
    kinds = [x["event"]["type"] if "event" in x else x["record"]["kind"] for x in items]
    assert kinds == ["inspection_started", "media_captured", "inspection_ended", "inspection.rated"]  # not the heartbeat
    (media,) = json.loads(files["media.json"])
    assert (media["file_name"], media["sha256"], media["linked_by"]) == ("REC_0001.MP4", MEDIA_SHA, "inspection_id")
    summary = files["summary.txt"].decode()
    assert summary.startswith("执法证据包") and "海淀某餐饮公司" in summary and "Evidence bundle" in summary and "REC_0001.MP4" in summary
    assert "市场监管局（SAMR）" in summary and "食品安全（food）" in summary and "Market regulation (SAMR)" in summary and "未发现问题" in summary
    key = api.get("/api/v1/evidence/tree-head").json()["public_key"]
    report = verify_bytes(r.content, key)
    assert report.ok, report.failures
    assert any("4 of 4 records proved" in c for c in report.checked) and any("REC_0001.MP4" in c for c in report.checked)
    manifest = json.loads(files["manifest.json"])
    assert manifest["key_fingerprint"] == fmt.fingerprint(key) and manifest["counts"]["records"] == 4
    assert fmt.read_zip(r.content)[1] == []  # canonical: written as the verifier rebuilds it
    digest = hashlib.sha256(r.content).hexdigest()
    with storage_for(seeded_url).reading() as tx:  # the export itself is on the record: who, what, which file
        (rec,) = records_of(tx, f"bundle:{digest[:32]}")
    assert rec.kind == "bundle.exported" and rec.content() == {
        "actor": "sup", "content": {"selector": {"kind": "inspection", "inspection_id": inspection}, "sha256": digest, "tree_size": manifest["tree_size"], "records": 4},
    }  # fmt: skip


def _ok_bundle(api: Api, url: str) -> tuple[bytes, str]:
    inspection, _ = demo(api, url)
    return api.get(f"{BUNDLES}/inspection/{inspection}").content, api.get("/api/v1/evidence/tree-head").json()["public_key"]


def test_one_changed_item_is_refused_and_named(api: Api, seeded_url: str) -> None:
    blob, key = _ok_bundle(api, seeded_url)
    records = json.loads(members(blob)["records.json"])
    media_event = records["items"][1]["event"]
    path0 = records["items"][0]["audit_path"][0]
    head = json.loads(members(blob)["tree-head.json"])
    cases = {
        "record": ("records.json", lambda d: flip_text(d, f'"seq": {media_event["seq"]}', f'"seq": {media_event["seq"] + 7}'), "record #2 (event"),
        "proof": ("records.json", lambda d: flip_text(d, path0, ("0" if path0[0] != "0" else "1") + path0[1:]), "record #1 (event"),
        "head": ("tree-head.json", lambda d: flip_text(d, head["root_hash"], head["root_hash"][::-1]), "tree-head.json"),
        "signature": ("tree-head.json", lambda d: flip_text(d, head["signature"][:8], "00000000"), "tree-head.json: the signed tree head's signature"),
        "summary": ("summary.txt", lambda d: d.replace("海淀".encode(), "朝阳".encode(), 1), "summary.txt: its SHA-256"),
        "media": ("media.json", lambda d: flip_text(d, MEDIA_SHA, "cd" * 32), "media.json: REC_0001.MP4: sha256 differs"),
        "manifest": ("manifest.json", lambda d: flip_text(d, "fe-server", "fe-serveR") if b"fe-server" in d else d.replace(b'"sup"', b'"sUp"'), "manifest.sig"),
        "key": ("server-key.txt", lambda d: d[:-2] + b"0\n" if d[-2:] != b"0\n" else d[:-2] + b"1\n", "server-key.txt"),
    }
    for what, (name, change, named) in cases.items():
        report = verify_bytes(rezip(blob, name, change), key)
        assert not report.ok, what
        assert any(named in f for f in report.failures), (what, report.failures)
        assert any(name in f for f in report.failures), (what, report.failures)  # the manifest's hash names the file too


def test_any_flipped_byte_is_refused(api: Api, seeded_url: str) -> None:
    """Every byte of the ZIP matters: a flip anywhere (a record, a header, the central directory) is refused."""
    blob, key = _ok_bundle(api, seeded_url)
    step = max(1, len(blob) // 600)
    for at in list(range(0, len(blob), step)) + [len(blob) - 1]:
        changed = bytearray(blob)
        changed[at] ^= 0x01 << (at % 8)
        try:
            report = verify_bytes(bytes(changed), key)
        except fmt.BundleError:
            continue
        assert not report.ok and report.failures, at


def test_who_may_export_what(api: Api, seeded_url: str) -> None:
    inspection, other = demo(api, seeded_url)
    day = 86_400_000
    now = int(time.time() * 1000)
    period = f"from_ms={now - day}&to_ms={now + day}"
    allowed = [
        ("sup", f"inspection/{other}"), ("admin-SAMR", f"inspection/{inspection}"), ("OFF-SAMR-1", f"inspection/{inspection}"),
        ("ent-plain", f"inspection/{inspection}"), ("ent-plain", f"enterprise/{PLAIN}?{period}"), ("admin-SAMR", f"device/BR-SAMR-1?{period}"),
        ("sup", f"device/BR-FIRE-1?{period}"),
    ]  # fmt: skip
    for user, what in allowed:
        r = api.as_(user).get(f"{BUNDLES}/{what}")
        assert r.status_code == 200, (user, what, r.text)
        assert verify_bytes(r.content).ok, (user, what)
    refused = [
        ("ent-plain", f"inspection/{other}"), ("ent-plain", f"enterprise/{FRAGILE}?{period}"), ("admin-FIRE", f"inspection/{inspection}"),
        ("admin-SAMR", f"inspection/{other}"), ("OFF-FIRE-1", f"inspection/{inspection}"), ("admin-FIRE", f"device/BR-SAMR-1?{period}"),
        ("ent-plain", f"device/BR-SAMR-1?{period}"), ("OFF-SAMR-1", f"enterprise/{PLAIN}?{period}"),
    ]  # fmt: skip
    for user, what in refused:
        r = api.as_(user).get(f"{BUNDLES}/{what}")
        assert r.status_code == 403, (user, what, r.text)
    assert api.client.get(f"{BUNDLES}/inspection/{inspection}").status_code == 401
    assert api.get(f"{BUNDLES}/inspection/made-up-inspection").status_code == 404
    assert api.get(f"{BUNDLES}/device/no-such-device?{period}").status_code == 404
    # An agency's period of an enterprise holds only its own share: FIRE took no part in PLAIN's inspection.
    r = api.as_("admin-FIRE").get(f"{BUNDLES}/enterprise/{PLAIN}?{period}")
    assert r.status_code == 200 and json.loads(members(r.content)["records.json"])["items"] == []
    r = api.as_("admin-SAMR").get(f"{BUNDLES}/enterprise/{PLAIN}?{period}")
    assert len(json.loads(members(r.content)["records.json"])["items"]) == 4


def test_a_bundle_is_bounded(api: Api, seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    inspection, _ = demo(api, seeded_url)
    now = int(time.time() * 1000)
    r = api.get(f"{BUNDLES}/device/BR-SAMR-1?from_ms={now - 400 * 86_400_000}&to_ms={now}")
    assert r.status_code == 400 and "366" in r.text
    r = api.get(f"{BUNDLES}/device/BR-SAMR-1?from_ms={now}&to_ms={now}")
    assert r.status_code == 400
    monkeypatch.setattr(bundle_mod, "MAX_RECORDS", 3)
    r = api.get(f"{BUNDLES}/inspection/{inspection}")
    assert r.status_code == 413 and "缩短" in r.text and "shorter" in r.text
    r = api.get(f"{BUNDLES}/device/BR-SAMR-1?from_ms={now - 86_400_000}&to_ms={now + 86_400_000}")
    assert r.status_code == 413


def test_a_messagepack_device_is_checked_as_closely(api: Api, seeded_url: str) -> None:
    """A QR terminal sends MessagePack: its bodies are decoded by the verifier too (columns and recordings)."""
    inspection, _ = demo(api, seeded_url, wire="msgpack")
    blob = api.get(f"{BUNDLES}/inspection/{inspection}").content
    items = json.loads(members(blob)["records.json"])["items"]
    assert {x["event"]["wire_format"] for x in items if "event" in x} == {"msgpack"}
    report = verify_bytes(blob)
    assert report.ok and any("REC_0001.MP4 SHA-256" in c for c in report.checked), report
    bad = rezip(blob, "media.json", lambda d: flip_text(d, MEDIA_SHA, "cd" * 32))
    assert any("sha256 differs from what device BR-SAMR-1 signed" in f for f in verify_bytes(bad).failures)


def test_the_demo_bundle_verifies_in_an_isolated_process_without_network(api: Api, seeded_url: str, tmp_path: Path) -> None:
    """The standalone verifier, in a process that holds only the protocol package and cryptography (no server, no
    msgspec: the child fails if either was imported), with no network, accepts the demo inspection's bundle and
    refuses it with one byte changed."""
    blob, key = _ok_bundle(api, seeded_url)
    lib = _isolated(tmp_path)
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(blob)
    pairs, _ = fmt.read_zip(blob)
    bad.write_bytes(fmt.write_zip([(n, d.replace(b'"seq": 2', b'"seq": 3', 1) if n == "records.json" else d) for n, d in pairs]))
    run = [*_no_net_prefix(), sys.executable, "-I", "-S", "-c", _CHILD, str(lib)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    ok = subprocess.run([*run, str(good), "--key", key], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert ok.returncode == 0 and "VERIFIED 验证通过" in ok.stdout and "4 of 4 records proved" in ok.stdout, ok.stdout + ok.stderr
    no = subprocess.run([*run, str(bad), "--key", key], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert no.returncode == 1 and "FAILED  record #2 (event" in no.stdout, no.stdout + no.stderr
