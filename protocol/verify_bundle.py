"""Check an evidence bundle (证据包) offline: ``python -m protocol.verify_bundle FILE [--key HEX] [--json]``.

No server, no network, no database: the standard library and ``cryptography``. It prints every check and a verdict:

- exit 0 (``VERIFIED``): every record is in the log of the signed tree head, every device signature and the manifest's
  signature hold, every file is the one the manifest names, and the ZIP is in its canonical form;
- exit 1 (``NOT VERIFIED``): something does not hold; each failure names the record, proof, head, signature or file;
- exit 2: the file cannot be read at all, or the arguments are wrong.

``--key`` gives the server's public key as learnt from elsewhere (§15.3): without it the key the bundle carries is
used, and the verdict says so (compare its fingerprint with the one the operator published).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from protocol import bundle as fmt
from protocol import merkle
from protocol.bundle import BundleError

EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2


@dataclass
class Report:
    """What was checked (``checked``) and what failed (``failures``), each a line naming its item."""

    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key: str = ""
    key_given: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, ok: bool, what: str, failure: str) -> bool:
        (self.checked if ok else self.failures).append(what if ok else failure)
        return ok


def _json(members: dict[str, bytes], name: str, report: Report) -> Any:
    if name not in members:
        report.failures.append(f"{name}: missing from the bundle")
        return None
    try:
        return json.loads(members[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        report.failures.append(f"{name}: not valid JSON (changed)")
        return None


def verify_bytes(blob: bytes, key_hex: str | None = None) -> Report:
    """Check a bundle's bytes; raises BundleError when they are no bundle at all."""
    report = Report(key_given=key_hex is not None)
    pairs, problems = fmt.read_zip(blob)
    report.failures.extend(problems)
    members = dict(pairs)
    names = [n for n, _ in pairs]
    expected = [n for n in fmt.MEMBERS if n in members]
    report.check(names == expected and all(n in members for n in fmt.MEMBERS if n != "published-head.json"), "ZIP: the members of a bundle, in order",
                 f"ZIP: members {names}, expected {[n for n in fmt.MEMBERS]} in that order (published-head.json may be absent)")
    manifest = _json(members, "manifest.json", report) or {}
    carried = manifest.get("server_public_key") if isinstance(manifest, dict) else None
    key = key_hex.lower() if key_hex else carried if isinstance(carried, str) else ""
    report.key = key
    if key_hex and carried != key:
        report.failures.append(f"manifest.json: the bundle carries server key {carried}, not the one given ({key})")
    raw_sig = members.get("manifest.sig", b"")
    sig = raw_sig[:-1].decode("ascii", "replace") if raw_sig.endswith(b"\n") else ""  # exactly 128 hex digits and LF: one spelling
    report.check(fmt.ed25519_ok(key, fmt.MANIFEST_PREFIX + members.get("manifest.json", b""), sig), "manifest.json: signed by the server key (manifest.sig)",
                 "manifest.sig: not the server key's signature of manifest.json (the manifest or its signature changed)")
    if isinstance(manifest, dict):
        report.check(manifest.get("format") == fmt.FORMAT, f"manifest.json: format {fmt.FORMAT}", f"manifest.json: format is {manifest.get('format')!r}, not {fmt.FORMAT}")
        listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
        for name in fmt.LISTED:
            if name in members or name in listed:
                got = hashlib.sha256(members.get(name, b"")).hexdigest() if name in members else None
                report.check(got is not None and listed.get(name) == got, f"{name}: SHA-256 as the manifest lists it",
                             f"{name}: its SHA-256 {got} is not the manifest's {listed.get(name)} (the file changed)")
        report.check(manifest.get("key_fingerprint") == (fmt.fingerprint(key) if fmt.HEX64.fullmatch(key) else None), "manifest.json: the key's fingerprint",
                     "manifest.json: key_fingerprint is not SHA-256 of the server key")
    _check_key_file(members, key, report)
    head = _check_head(members, key, report)
    events, n = _check_records(members, head, report)
    _check_published(members, key, head, report)
    _check_media(members, events, report)
    if isinstance(manifest, dict) and isinstance(manifest.get("counts"), dict):
        report.check(manifest["counts"].get("records") == n, f"manifest.json: {n} records, as counted",
                     f"manifest.json: counts.records is {manifest['counts'].get('records')}, the bundle holds {n}")
    return report


def _check_key_file(members: dict[str, bytes], key: str, report: Report) -> None:
    lines = members.get("server-key.txt", b"").decode("ascii", "replace").splitlines()
    ok = len(lines) >= 2 and lines[0] == key and lines[1] == fmt.fingerprint(key) if fmt.HEX64.fullmatch(key) else False
    report.check(ok, "server-key.txt: the key and its fingerprint", "server-key.txt: does not hold the server key and its fingerprint (changed)")


def _check_head(members: dict[str, bytes], key: str, report: Report) -> dict[str, Any] | None:
    head = _json(members, "tree-head.json", report)
    if not report.check(fmt.head_ok(head, key), "tree-head.json: signed by the server key", "tree-head.json: the signed tree head's signature does not hold (the head or its signature changed)"):
        return None
    report.check(head.get("public_key") == key, "tree-head.json: names the server key", f"tree-head.json: names key {head.get('public_key')}, not {key}")
    return head


def _check_records(members: dict[str, bytes], head: dict[str, Any] | None, report: Report) -> tuple[dict[str, dict[str, Any]], int]:
    """Each record's leaf recomputed, proved against the head, its device signature checked; returns the events by id
    and how many records the bundle holds."""
    data = _json(members, "records.json", report)
    events: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        report.failures.append("records.json: no list of items")
        return events, 0
    keys = data.get("device_keys") if isinstance(data.get("device_keys"), dict) else {}
    size = head["tree_size"] if head else None
    root = bytes.fromhex(head["root_hash"]) if head else None
    report.check(head is None or data.get("tree_size") == size, "records.json: proofs against the head's size", f"records.json: tree_size {data.get('tree_size')} is not the head's {size}")
    proved = 0
    if not data["items"]:
        report.notes.append("records.json: the bundle holds no record (nothing of the selection is in the log)")
    for n, item in enumerate(data["items"]):
        label = f"record #{n + 1}"
        try:
            if not isinstance(item, dict):
                raise BundleError("not an object")
            if "event" in item and "record" in item:
                raise BundleError("both an event and a server record")
            if isinstance(item.get("event"), dict):
                ev = item["event"]
                label = f"record #{n + 1} (event {ev.get('event_id')}, device {ev.get('device_id')}, seq {ev.get('seq')})"
                leaf = merkle.leaf_hash(fmt.event_leaf_data(ev))
            elif isinstance(item.get("record"), dict):
                label = f"record #{n + 1} (server record {item['record'].get('record_id')}, {item['record'].get('kind')})"
                leaf = merkle.leaf_hash(fmt.record_leaf_data(item["record"]))
            else:
                raise BundleError("neither an event nor a server record")
            index, path = item.get("log_index"), fmt.hexes(item.get("audit_path"))
            if type(index) is not int:
                raise BundleError("log_index is not an integer")
        except BundleError as e:
            report.failures.append(f"{label}: {e} (changed)")
            continue
        if item.get("leaf_hash") != leaf.hex():
            report.failures.append(f"{label}: its content does not give the leaf hash listed with it (the record changed)")
            continue
        if head is not None and root is not None:
            if merkle.verify_inclusion(leaf, index, size, path, root):
                proved += 1
            else:
                report.failures.append(f"{label}: its inclusion proof (log index {index}, audit path) does not lead to the head's root (the proof changed)")
        if isinstance(item.get("event"), dict):
            _check_device_signature(item["event"], keys, label, report)
            events[item["event"]["event_id"]] = item["event"]
    report.check(proved == len(data["items"]) and head is not None, f"records.json: {proved} of {len(data['items'])} records proved in the log of the head",
                 f"records.json: {proved} of {len(data['items'])} records proved in the log of the head")
    return events, len(data["items"])


def _check_device_signature(ev: dict[str, Any], keys: dict[str, Any], label: str, report: Report) -> None:
    device_key = keys.get(ev["device_id"])
    body, sig = base64.b64decode(ev["body"]), base64.b64decode(ev["sig"]).hex()
    if not isinstance(device_key, str) or not fmt.ed25519_ok(device_key, body, sig):
        report.failures.append(f"{label}: the device's signature of its body does not hold with the device key the bundle lists")
        return
    try:
        said = fmt.decode_body(body, ev["wire_format"])
    except BundleError as e:
        report.failures.append(f"{label}: {e}")
        return
    for col in ("event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms"):
        if not isinstance(said, dict) or said.get(col) != ev[col]:
            report.failures.append(f"{label}: column {col} differs from what the device signed")
            return


def _check_published(members: dict[str, bytes], key: str, head: dict[str, Any] | None, report: Report) -> None:
    if "published-head.json" not in members:
        report.notes.append("no published daily head in the bundle (the server signed none before the day of the export)")
        return
    pub = _json(members, "published-head.json", report)
    if not isinstance(pub, dict) or not report.check(fmt.head_ok(pub.get("head"), key), "published-head.json: the daily head, signed by the server key",
                                                       "published-head.json: the daily head's signature does not hold (changed)"):
        return
    if head is None:
        return
    old, new = pub["head"], head
    try:
        proof = fmt.hexes(pub.get("consistency"))
    except BundleError:
        proof = [b"x"]
    ok = merkle.verify_consistency(old["tree_size"], new["tree_size"], bytes.fromhex(old["root_hash"]), bytes.fromhex(new["root_hash"]), proof)
    report.check(ok, f"published-head.json: the log of the head ({new['tree_size']}) extends the daily head ({old['tree_size']})",
                 "published-head.json: the consistency proof from the daily head to the bundle's head fails (the proof or a head changed)")


def _check_media(members: dict[str, bytes], events: dict[str, dict[str, Any]], report: Report) -> None:
    media = _json(members, "media.json", report)
    if not isinstance(media, list):
        report.failures.append("media.json: not a list")
        return
    for m in media:
        ev = events.get(m.get("event_id")) if isinstance(m, dict) and isinstance(m.get("event_id"), str) else None
        if ev is None:
            report.failures.append(f"media.json: {m.get('file_name') if isinstance(m, dict) else m!r}: its media_captured event is not among the records")
            continue
        try:
            said = fmt.decode_body(base64.b64decode(ev["body"]), ev["wire_format"])
        except BundleError:
            said = None
        if not isinstance(said, dict):
            report.failures.append(f"media.json: {m.get('file_name')}: the body of event {ev['event_id']} is not an object")
            continue
        for col in ("file_name", "sha256", "size_bytes", "media_kind"):
            if said.get(col) != m.get(col):
                report.failures.append(f"media.json: {m.get('file_name')}: {col} differs from what device {ev['device_id']} signed (event {ev['event_id']})")
                break
        else:
            report.checked.append(f"media.json: {m.get('file_name')} SHA-256 {m.get('sha256')} as the device signed it")


def render(report: Report, path: str) -> str:
    """The report as text: what was checked, what failed, the verdict."""
    out = [f"证据包 / evidence bundle: {path}"]
    if fmt.HEX64.fullmatch(report.key):
        src = "given with --key" if report.key_given else "carried by the bundle: compare its fingerprint with the operator's"
        out.append(f"server key {report.key} ({src})\nfingerprint {fmt.grouped(fmt.fingerprint(report.key))}")
    out += [f"  ok      {c}" for c in report.checked] + [f"  note    {n}" for n in report.notes] + [f"  FAILED  {f}" for f in report.failures]
    if report.ok:
        out.append("VERIFIED 验证通过: every record is in the signed log, nothing in the bundle was changed")
    else:
        out.append(f"NOT VERIFIED 验证未通过: {len(report.failures)} problem(s), see FAILED above")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module's docstring for the exit codes."""
    p = argparse.ArgumentParser(prog="python -m protocol.verify_bundle", description="Check an evidence bundle (证据包) offline.")
    p.add_argument("file", help="the bundle (.zip)")
    p.add_argument("--key", help="the server's public key (64 hex digits) as you know it from elsewhere")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return EXIT_UNREADABLE if e.code else EXIT_OK
    if args.key is not None and not fmt.HEX64.fullmatch(args.key.lower()):
        print("verify_bundle: --key must be 64 hex digits", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        with open(args.file, "rb") as f:
            blob = f.read()
        report = verify_bytes(blob, args.key)
    except OSError as e:
        print(f"verify_bundle: {args.file}: {e.strerror or e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except BundleError as e:
        print(f"verify_bundle: {args.file}: {e}\nNOT VERIFIED 验证未通过", file=sys.stderr)
        return EXIT_UNREADABLE
    except Exception as e:  # noqa: BLE001  (a verdict, never a traceback: whatever the file holds, it is not verified)
        print(f"verify_bundle: {args.file}: cannot be checked ({type(e).__name__}: {e})\nNOT VERIFIED 验证未通过", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps({"ok": report.ok, "checked": report.checked, "failures": report.failures, "notes": report.notes, "key": report.key}, ensure_ascii=False))
    else:
        print(render(report, args.file))
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
