"""Evidence bundles (证据包): the records of an inspection, an enterprise's or a device's period in one ZIP that an
outside party checks offline with ``python -m protocol.verify_bundle`` (protocol/README.md §15.8).

A bundle holds each record as the log hashed it (device events with their signed bodies, and server records), its
inclusion proof against one signed tree head, that head, the day's published head with a consistency proof to it,
the devices' and the server's public keys, the recordings' metadata and hashes, and a summary in Chinese and
English; a manifest lists every file's SHA-256 and is signed by the server key. The format's bytes are
protocol/bundle.py's, which the verifier uses too.

A selector picks the records: ``inspection``, ``case`` (its records by subject ``case:<id>`` and its inspections'),
``enterprise`` + period, ``device`` + period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from protocol.cst import CST
from protocol import bundle as fmt
from protocol.signing import SigningKey
from server.console.auth import Principal
from server.errors import Forbidden, Invalid, NotFound, TooLarge
from protocol import merkle
from server.evidence.bundle_summary import summary_text
from server.evidence.coverage import inspection_media
from server.evidence.log import TreeHead, head_of_whole_log, leaf_hashes, tree_head_before
from server.evidence.records import append_record
from server.storage import evidence as evstore
from server.storage import evidence_bundles as rows
from server.storage.engine import Tx, storage_for

#: The most records one bundle holds: a larger selection is refused (413) and must be narrowed (a shorter period).
MAX_RECORDS = 5000
#: The longest period an enterprise's or a device's bundle may cover.
MAX_PERIOD_MS = 366 * 86_400_000
#: A period ends by 2100-01-01 (epoch ms): a later one holds nothing, and its days could not be written (year > 9999).
LATEST_MS = 4_102_444_800_000
#: How far before an inspection opened and after it ended a device's events are looked at (offline devices, drift).
SLACK_MS = 2 * 86_400_000


class Selector(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Which records a bundle holds."""

    kind: Literal["inspection", "case", "enterprise", "device"]
    inspection_id: str | None = None
    case_id: str | None = None
    credit_code: str | None = None
    device_id: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


@dataclass
class Selection:
    """What a selector found: event rows (LEAF_COLUMNS + body_json), server records, media rows, and for the summary
    the inspections described."""

    events: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    records: dict[str, tuple[str, str, str, int, bytes]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    inspections: list[dict[str, Any]] = field(default_factory=list)
    title: dict[str, str] = field(default_factory=dict)
    names: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)


def _period(sel: Selector) -> tuple[int, int]:
    if sel.from_ms is None or sel.to_ms is None:
        raise Invalid("须给出时段 from_ms 与 to_ms / give the period: from_ms and to_ms")
    if not 0 <= sel.from_ms < sel.to_ms <= LATEST_MS or sel.to_ms - sel.from_ms > MAX_PERIOD_MS:
        raise Invalid(
            f"时段须满足 0 <= from_ms < to_ms <= {LATEST_MS}（2100 年前）且不超过 366 天 / the period needs 0 <= from_ms < to_ms <= {LATEST_MS}"
            f" (before 2100) and at most 366 days, got {sel.from_ms} .. {sel.to_ms}"
        )
    return sel.from_ms, sel.to_ms


def authorize(tx: Tx, p: Principal | None, sel: Selector) -> str | None:
    """Who may export what (None: the operator on the server's own machine, who may export everything): a supervisor
    everything; an agency's administrator what its agency took part in; an officer the inspections they took part in;
    an enterprise the inspections of itself. Returns the agency whose share an enterprise's period is cut to."""
    from server.console.inspect_api import check_inspection

    if sel.kind == "case":
        _case(tx, p, sel.case_id or "")
        return None
    if p is None or p.role == "supervisor":
        return None
    if sel.kind == "inspection":
        check_inspection(tx, p, sel.inspection_id or "")  # 404, or 403 for another agency's or enterprise's
        return None
    if sel.kind == "enterprise":
        if p.role == "enterprise":
            if p.credit_code != sel.credit_code:
                raise Forbidden("企业只能导出本企业的检查记录 / an enterprise exports only the inspections of itself")
            return None
        if p.role == "agency_admin":
            return p.agency_id
    if sel.kind == "device" and p.role == "agency_admin":
        dev = rows.device(tx, sel.device_id or "")
        if dev is None:
            raise NotFound(f"设备 {sel.device_id!r} 不存在 / device {sel.device_id!r} is not registered")
        if dev[1] != p.agency_id:
            raise Forbidden("这是其他执法机关的设备 / this device belongs to another agency")
        return None
    raise Forbidden(f"角色 {p.role} 无权导出此类证据包 / role {p.role} may not export a bundle of this kind")


def may_export(tx: Tx, p: Principal | None, sel: Selector) -> bool:
    """Whether :func:`authorize` lets ``p`` export ``sel``: what a page asks before it offers an export link, so that
    a link is never one the bundle API would refuse (403 or 404)."""
    try:
        authorize(tx, p, sel)
    except (Forbidden, NotFound, Invalid):
        return False
    return True


def _case(tx: Tx, p: Principal | None, case_id: str) -> dict[str, Any]:
    """The case's row if ``p`` may see it (the cases' own rule: its agency, an agency it is being transferred to, the
    enterprise concerned, supervisors), else 404 as the cases API answers."""
    from server.cases.workflow import may_see
    from server.storage import cases as case_rows

    c = case_rows.case(tx, case_id)
    if c is None or (p is not None and not may_see(tx, p, c)):
        raise NotFound(f"案件 {case_id!r} 不存在 / case {case_id!r} does not exist")
    return c


def _add_inspection(tx: Tx, s: Selection, inspection_id: str) -> None:
    """An inspection's records: its scans (terminal scans are events), the device events that name it or its scans,
    its recordings, their integrity reports, and the server's records about it."""
    row = rows.inspection(tx, inspection_id)
    if row is None:
        raise NotFound(f"检查 {inspection_id!r} 不存在 / inspection {inspection_id!r} does not exist")
    iid, code, name, lead, fld, status, opened, ended = row
    parts = rows.parts(tx, iid)
    scans = rows.scans(tx, iid)
    _, _, media = inspection_media(tx, iid)
    names = {iid} | {sid for sid, _, _ in scans} | {p[4] for p in parts if p[4]}
    media_ids = {m.event_id for m in media}
    devices = {p[3] for p in parts if p[3]} | {d for _, _, d in scans if d} | {m.device_id for m in media}
    hi = (ended if ended is not None else int(time.time() * 1000)) + SLACK_MS
    wanted = set(media_ids) | {sid for sid, ch, _ in scans if ch == "terminal"}
    for ev in rows.candidate_events(tx, sorted(devices), opened - SLACK_MS, hi):
        body = json.loads(ev[-1])
        if body.get("inspection_id") in names or body.get("scan_event_id") in names or body.get("media_event_id") in media_ids:
            s.events[ev[0]] = ev
    for ev in rows.events(tx, sorted(wanted - set(s.events))):
        s.events[ev[0]] = ev
    for r in rows.records_of_subjects(tx, [f"inspection:{iid}"]):
        s.records[r[0]] = r
    for m in media:
        s.media[m.event_id] = {**msgspec.structs.asdict(m), "inspection_id": iid}
    s.inspections.append({
        "inspection_id": iid, "credit_code": code, "enterprise": name, "lead_agency_id": lead, "field": fld, "status": status, "opened_ms": opened, "ended_ms": ended,
        "parts": [dict(zip(("officer_id", "agency_id", "field", "device_id", "scan_id", "joined_ms", "ended_ms", "result"), p, strict=True)) for p in parts],
    })  # fmt: skip


#: A case's records the party concerned (the enterprise) gets in its bundle: what the cases API shows it (the
#: decision, its disclosure, the documents), not the agency's internals (the review, referrals, the parties' ID numbers).
PARTY_CASE_RECORDS = ("case.decided", "case.published", "case.document")


def select(tx: Tx, sel: Selector, agency: str | None, *, party: bool = False) -> Selection:
    """The records the selector picks (``agency``: only what that agency took part in; ``party``: for the enterprise
    concerned, a case's records it may see)."""
    s = Selection()
    if sel.kind == "inspection":
        _add_inspection(tx, s, sel.inspection_id or "")
        i = s.inspections[0]
        s.title = {"zh": f"检查 {i['inspection_id']}：{i['enterprise'] or i['credit_code']}", "en": f"Inspection {i['inspection_id']} of {i['credit_code']}"}
    elif sel.kind == "case":
        from server.storage import cases as case_rows

        c = _case(tx, None, sel.case_id or "")
        for row in case_rows.inspections_of(tx, c["case_id"]):
            _add_inspection(tx, s, row[0])
        for r in rows.records_of_subjects(tx, [f"case:{c['case_id']}"]):
            if not party or r[1] in PARTY_CASE_RECORDS:
                s.records[r[0]] = r
        s.title = {"zh": f"案件 {c['case_id']}：{c['title']}", "en": f"Case {c['case_id']}"}
    elif sel.kind == "enterprise":
        lo, hi = _period(sel)
        code = sel.credit_code or ""
        name = rows.enterprise_name(tx, code)
        if name is None:
            raise NotFound(f"企业 {code!r} 未登记 / enterprise {code!r} is not registered")
        ids = rows.inspections_of_enterprise(tx, code, lo, hi, agency)
        if len(ids) > MAX_RECORDS // 4:
            raise TooLarge(f"该时段有 {len(ids)} 次检查，请缩短时段 / {len(ids)} inspections in this period: give a shorter one")
        for iid in ids:
            _add_inspection(tx, s, iid)
        for ev in rows.events(tx, [e for e in rows.terminal_scans_of_enterprise(tx, code, lo, hi, agency) if e not in s.events]):
            s.events[ev[0]] = ev
        s.title = {"zh": f"企业 {name}（{code}）{_day(lo)} 至 {_day(hi - 1)} 的检查", "en": f"Inspections of {code} from {_day(lo)} to {_day(hi - 1)}"}
    else:
        lo, hi = _period(sel)
        dev = rows.device(tx, sel.device_id or "")
        if dev is None:
            raise NotFound(f"设备 {sel.device_id!r} 不存在 / device {sel.device_id!r} is not registered")
        n = rows.count_of_device(tx, dev[0], lo, hi)
        _refuse_if_too_many(n)
        for ev in rows.events_of_device(tx, dev[0], lo, hi, MAX_RECORDS):
            s.events[ev[0]] = ev
        media_ids = [e for e, ev in s.events.items() if ev[3] == "media_captured"]
        for m in rows.media(tx, media_ids):
            s.media[m[0]] = {**dict(zip(rows.MEDIA_COLUMNS, m[: len(rows.MEDIA_COLUMNS)], strict=True)), "inspection_id": m[-2], "linked_by": "device"}
        s.title = {"zh": f"设备 {dev[0]} {_day(lo)} 至 {_day(hi - 1)} 的记录", "en": f"Records of device {dev[0]} from {_day(lo)} to {_day(hi - 1)}"}
    _refuse_if_too_many(len(s.events) + len(s.records))
    parts = [p for i in s.inspections for p in i["parts"]]
    s.names = rows.names(
        tx, [p["officer_id"] for p in parts], [p["agency_id"] for p in parts] + [i["lead_agency_id"] for i in s.inspections],
        [p["field"] for p in parts] + [i["field"] for i in s.inspections],
    )  # fmt: skip
    return s


def _refuse_if_too_many(n: int) -> None:
    if n > MAX_RECORDS:
        raise TooLarge(f"所选记录 {n} 条，超过一个证据包的上限 {MAX_RECORDS} 条，请缩短时段 / {n} records, more than a bundle holds ({MAX_RECORDS}): give a shorter period")


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d")


def day_start(ms: int) -> int:
    """The start of the day (China Standard Time) that holds ``ms``."""
    day = dt.datetime.fromtimestamp(ms / 1000, CST).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


def day_bounds(first: str, last: str) -> tuple[int, int]:
    """[from_ms, to_ms) of a period given as days (YYYY-MM-DD, China Standard Time, the last included) or epoch ms."""

    def one(text: str, end: bool) -> int:
        if text.isdigit():
            return int(text)
        try:
            day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=CST)
        except ValueError:
            raise Invalid(f"日期 {text!r} 应为 YYYY-MM-DD / {text!r} is not a day (YYYY-MM-DD) or epoch ms") from None
        return int((day + dt.timedelta(days=1 if end else 0)).timestamp() * 1000)

    return one(first, False), one(last, True)


def published_head(tx: Tx, public_key: str, now_ms: int) -> TreeHead | None:
    """The daily head an outsider may hold already (the public page shows it): the last head signed before today
    began, China Standard Time."""
    return tree_head_before(tx, day_start(now_ms), public_key)


def _b64(v: Any) -> str:
    import base64

    return base64.b64encode(bytes(v)).decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=False).encode("utf-8") + b"\n"


def export(
    db: str, key: SigningKey, sel: Selector, principal: Principal | None, now_ms: int | None = None, *, admitted: Callable[[], None] | None = None,
) -> tuple[bytes, dict[str, Any]]:  # fmt: skip
    """The bundle's bytes and its manifest (as a dict). Raises Invalid, Forbidden, NotFound or TooLarge.

    ``admitted`` is called once the request is allowed and its selection found (not 400, 403, 404 or 413), before the
    proofs and the ZIP are made: the API's per-user rate limit (server/console/evidence_api.py), which so counts no
    refused request; it may raise.

    The export is itself a server record (``bundle.exported``, subject ``bundle:`` and the first 32 hex digits of the
    ZIP's SHA-256), appended after the bundle is made: later heads cover who exported what, and when."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    store = storage_for(db)
    with store.reading() as tx:  # refused before anything is signed
        agency = authorize(tx, principal, sel)
    head = store.write(lambda tx: head_of_whole_log(tx, key))
    with store.reading() as tx:
        s = select(tx, sel, agency, party=principal is not None and principal.role == "enterprise")
        if admitted is not None:
            admitted()
        ids = list(s.events) + list(s.records)
        indexes = {i: x for i, x in evstore.indexes_of(tx, ids).items() if x < head.tree_size}
        leaves = list(leaf_hashes(tx, head.tree_size))
        device_keys = rows.device_keys(tx, sorted({ev[1] for ev in s.events.values()}))
        pub = published_head(tx, key.public_hex, now)
    proofs = merkle.inclusion_proofs(leaves, indexes.values())
    items = []
    for eid in sorted(indexes, key=indexes.__getitem__):
        i = indexes[eid]
        base = {"log_index": i, "leaf_hash": leaves[i].hex(), "audit_path": [h.hex() for h in proofs[i]]}
        if eid in s.events:
            ev = s.events[eid]
            cols = {c: (_b64(v) if c in ("body", "sig") else v) for c, v in zip(fmt.EVENT_COLUMNS, ev[:11], strict=True)}
            items.append({**base, "event": cols})
        else:
            r = s.records[eid]
            items.append({**base, "record": {"record_id": r[0], "kind": r[1], "subject": r[2], "at_ms": r[3], "body": _b64(r[4])}})
    unlogged = sorted(set(ids) - set(indexes))
    media = [m for e, m in sorted(s.media.items(), key=lambda kv: (kv[1].get("started_ms") or 0, kv[0])) if e in indexes]
    if pub is not None and pub.tree_size > head.tree_size:
        pub = None
    published = None if pub is None else (pub, merkle.consistency_proof(leaves, pub.tree_size))
    by = principal.username if principal else "fe-server (operator)"
    data, manifest = assemble(key, sel, s, items, media, head, published, device_keys, unlogged, by, now)
    digest = hashlib.sha256(data).hexdigest()
    content = {"selector": msgspec.to_builtins(sel), "sha256": digest, "tree_size": head.tree_size, "records": len(items)}
    store.write(lambda tx: append_record(tx, kind="bundle.exported", subject=f"bundle:{digest[:32]}", actor=by, content=content, now_ms=now))
    return data, manifest


def assemble(
    key: SigningKey, sel: Selector, s: Selection, items: list[dict[str, Any]], media: list[dict[str, Any]], head: TreeHead,
    published: tuple[TreeHead, list[bytes]] | None, device_keys: dict[str, str], unlogged: list[str], exported_by: str, now: int,
) -> tuple[bytes, dict[str, Any]]:
    """The bundle's bytes from what was selected and proved (no database: the worked example of §15.8 is made here)."""
    members: dict[str, bytes] = {"tree-head.json": _json(msgspec.to_builtins(head))}
    pub = published[0] if published else None
    if published is not None:
        members["published-head.json"] = _json({"head": msgspec.to_builtins(published[0]), "consistency": [h.hex() for h in published[1]]})
    fp = fmt.fingerprint(key.public_hex)
    members["server-key.txt"] = f"{key.public_hex}\n{fp}\n".encode("ascii")
    members["records.json"] = _json({"tree_size": head.tree_size, "root_hash": head.root_hash, "device_keys": device_keys, "items": items})
    members["media.json"] = _json(media)
    counts = {"records": len(items), "events": sum("event" in x for x in items), "server_records": sum("record" in x for x in items), "media": len(media), "not_in_log": len(unlogged)}
    members["summary.txt"] = summary_text(s, items, media, head, pub, fp, counts, now, unlogged).encode("utf-8")
    manifest = {
        "format": fmt.FORMAT, "created_ms": now, "selector": msgspec.to_builtins(sel), "title": s.title,
        "exported_by": exported_by, "server_public_key": key.public_hex, "key_fingerprint": fp,
        "tree_size": head.tree_size, "root_hash": head.root_hash, "counts": counts, "not_in_log": unlogged,
        "files": {n: hashlib.sha256(members[n]).hexdigest() for n in fmt.LISTED if n in members},
    }  # fmt: skip
    manifest_bytes = _json(manifest)
    signature = key.sign(fmt.MANIFEST_PREFIX + manifest_bytes).hex()
    ordered = [("manifest.json", manifest_bytes), ("manifest.sig", (signature + "\n").encode("ascii"))] + [(n, members[n]) for n in fmt.LISTED if n in members]
    return fmt.write_zip(ordered), manifest


def file_name(sel: Selector, now_ms: int) -> str:
    """A download's file name: evidence-<what>-<date>.zip (ASCII)."""
    what = sel.inspection_id or sel.case_id or sel.credit_code or sel.device_id or sel.kind
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in what)[:64]
    return f"evidence-{sel.kind}-{safe}-{_day(now_ms)}.zip"
