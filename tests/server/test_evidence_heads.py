"""Heads that outsiders keep (issue 17 item 3), on both backends: every signed head is kept and served by size, the
daily head is published without sign-in and travels in bundles, and ``fe-server tree-head --check`` takes a head
fetched from the API; ``fe-server evidence export`` writes a bundle the verifier accepts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from protocol import bundle as fmt
from protocol.signing import SigningKey
from protocol.verify_bundle import verify_bytes
from server.cli import main as fe_server
from server.evidence.bundle import day_start
from server.evidence.log import sign_tree_head
from server.ingest.batch import store_batch
from server.ingest.store import DeviceKeys
from server.settings import ServerSettings
from server.storage.engine import storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import Api
from tests.server.test_bundle import BUNDLES, demo, device_events, members

HEAD = "/api/v1/evidence/tree-head"
DAY_MS = 86_400_000


def _key(tmp_path: Path, url: str) -> SigningKey:
    """The key the test app signs with (api_backends: key files in tmp_path)."""
    return SigningKey.load(ServerSettings(db_path=url, key_dir=tmp_path).server_key_path)


def test_every_head_is_kept_and_served_by_size(api: Api, seeded_url: str, tmp_path: Path) -> None:
    inspection, _ = demo(api, seeded_url)
    first = api.client.get(HEAD).json()  # public: no sign-in
    store_batch(seeded_url, device_events(inspection, device="BR-FIRE-1", officer="OFF-FIRE-1"), DeviceKeys())
    later = api.client.get(HEAD).json()
    assert later["tree_size"] == first["tree_size"] + 4
    past = api.client.get(f"{HEAD}?size={first['tree_size']}")
    assert past.status_code == 200 and past.json() == first
    assert fmt.head_ok(past.json(), _key(tmp_path, seeded_url).public_hex)
    assert api.client.get(f"{HEAD}?size={first['tree_size'] + 1}").status_code == 404  # no head was signed at that size
    assert api.client.get(f"{HEAD}?size=-1").status_code == 400
    assert api.client.get(f"{HEAD}?size=abc").status_code == 400


def test_a_head_fetched_by_size_is_checked_by_the_cli(api: Api, seeded_url: str, tmp_path: Path, capsys: object) -> None:
    demo(api, seeded_url)
    size = api.client.get(HEAD).json()["tree_size"]
    store_batch(seeded_url, device_events("later-inspection", device="BR-FIRE-1", officer="OFF-FIRE-1"), DeviceKeys())
    api.client.get(HEAD)  # a later head
    kept = tmp_path / "head.json"
    kept.write_bytes(api.client.get(f"{HEAD}?size={size}").content)
    key = str(ServerSettings(db_path=seeded_url, key_dir=tmp_path).server_key_path)
    assert fe_server(["tree-head", "--check", str(kept), "--db", seeded_url, "--key", key]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith(f"OK: the log of {size + 4} records extends the exported head of {size}")
    forged = json.loads(kept.read_text())
    forged["root_hash"] = "00" * 32
    kept.write_text(json.dumps(forged))
    assert fe_server(["tree-head", "--check", str(kept), "--db", seeded_url, "--key", key]) == 1


def test_the_daily_head_is_public_and_in_every_bundle(api: Api, seeded_url: str, tmp_path: Path) -> None:
    inspection, _ = demo(api, seeded_url)
    key = _key(tmp_path, seeded_url)
    yesterday = day_start(int(time.time() * 1000)) - DAY_MS + 3_600_000
    daily = storage_for(seeded_url).write(lambda tx: sign_tree_head(tx, key, yesterday))
    store_batch(seeded_url, device_events(inspection, device="BR-FIRE-1", officer="OFF-FIRE-1"), DeviceKeys())
    page = api.client.get("/public/tree-head")
    assert page.status_code == 200 and "公开树头" in page.text and "公钥指纹" in page.text
    assert fmt.grouped(fmt.fingerprint(key.public_hex)) in page.text and daily.root_hash in page.text
    assert f"{HEAD}?size={daily.tree_size}" in page.text
    en = api.client.get("/public/tree-head?lang=en")
    assert en.status_code == 200 and "Key fingerprint" in en.text
    blob = api.get(f"{BUNDLES}/inspection/{inspection}").content
    files = members(blob)
    published = json.loads(files["published-head.json"])
    assert published["head"]["root_hash"] == daily.root_hash and published["head"]["tree_size"] == daily.tree_size
    report = verify_bytes(blob, key.public_hex)
    assert report.ok and any("extends the daily head" in c for c in report.checked), report
    # A consistency proof that does not lead from the daily head to the bundle's head is named.
    pairs, _ = fmt.read_zip(blob)
    bad = json.loads(files["published-head.json"])
    bad["consistency"] = list(reversed(bad["consistency"])) if len(bad["consistency"]) > 1 else ["00" * 32]
    changed = fmt.write_zip([(n, (json.dumps(bad).encode() if n == "published-head.json" else d)) for n, d in pairs])
    assert any(f.startswith("published-head.json: the consistency proof") for f in verify_bytes(changed, key.public_hex).failures)


def test_the_operator_exports_a_bundle_from_the_command_line(api: Api, seeded_url: str, tmp_path: Path, capsys: object) -> None:
    inspection, _ = demo(api, seeded_url)
    key = ServerSettings(db_path=seeded_url, key_dir=tmp_path).server_key_path
    out = tmp_path / "bundle.zip"
    assert fe_server(["evidence", "export", "--db", seeded_url, "--key", str(key), "--inspection", inspection, "--out", str(out)]) == 0
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "4 records (3 device events, 1 server records), 1 recordings" in printed and "python -m protocol.verify_bundle" in printed
    assert verify_bytes(out.read_bytes(), _key(tmp_path, seeded_url).public_hex).ok
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    dev = tmp_path / "device.zip"
    assert fe_server(["evidence", "export", "--db", seeded_url, "--key", str(key), "--device", "BR-SAMR-1", "--from", today, "--to", today, "--out", str(dev)]) == 0
    assert len(json.loads(members(dev.read_bytes())["records.json"])["items"]) == 4  # the heartbeat too: a device's period is all of it
    assert fe_server(["evidence", "export", "--db", seeded_url, "--key", str(key), "--inspection", "made-up", "--out", str(tmp_path / "x.zip")]) == 1
    assert fe_server(["evidence", "export", "--db", seeded_url, "--key", str(key), "--device", "BR-SAMR-1", "--out", str(tmp_path / "x.zip")]) == 1
    assert not (tmp_path / "x.zip").exists()
    capsys.readouterr()  # type: ignore[attr-defined]
    assert fe_server(["key", "--db", seeded_url, "--key", str(key), "--fingerprint"]) == 0
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert lines == [_key(tmp_path, seeded_url).public_hex, fmt.fingerprint(lines[0])]


def test_a_server_record_is_served_as_logged_to_supervisors(api: Api, seeded_url: str) -> None:
    inspection, _ = demo(api, seeded_url)
    blob = api.get(f"{BUNDLES}/inspection/{inspection}").content
    (rated,) = [x for x in json.loads(members(blob)["records.json"])["items"] if "record" in x]
    r = api.get(f"/api/v1/evidence/record/{rated['record']['record_id']}")
    assert r.status_code == 200, r.text
    assert r.json() == {"log_index": rated["log_index"], "leaf_hash": rated["leaf_hash"], "columns": rated["record"]}
    assert api.as_("ent-plain").get(f"/api/v1/evidence/record/{rated['record']['record_id']}").status_code == 403
    assert api.get("/api/v1/evidence/record/rec:00000000000000000000000000000000").status_code == 404


def test_the_public_page_of_an_empty_log(api: Api) -> None:
    page = api.client.get("/public/tree-head")
    assert page.status_code == 200 and "尚无签名树头" in page.text and "<script" not in page.text
    assert "No signed tree head yet" in api.client.get("/public/tree-head?lang=en").text
    assert api.client.get("/public/tree-head?lang=fr").status_code == 400
