"""Decision snapshots: what a terminal needs to decide a scan offline, for its region, in signed parts."""

from __future__ import annotations

import json
import sqlite3
import uuid

from protocol.decision import DAY_MS, Policy
from protocol.messages import Credential, DecisionSnapshot, InspectionRef, NoDisturbEntry
from server.codes import revoked_list

#: List entries per part, keeping each part's payload well under the 64 KiB message limit.
ENTRIES_PER_PART = 150


def _region_clause(region: str, column: str) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if not region else (f" AND {column} = ?", (region,))


def build_snapshot(con: sqlite3.Connection, device_id: str, region: str, policy: Policy, now_ms: int) -> list[DecisionSnapshot]:
    """The snapshot for a device in ``region`` ('' = everywhere), split into parts."""
    keys = dict(con.execute("SELECT key_id, public_key FROM code_keys WHERE retired_ms IS NULL ORDER BY key_id").fetchall())
    where, args = _region_clause(region, "a.region")
    credentials = [
        Credential(officer_id=r[0], agency_id=r[1], credential_no=r[2], fields=json.loads(r[3]), valid_from_ms=r[4], valid_to_ms=r[5], revoked=r[6] is not None)
        for r in con.execute(
            "SELECT o.officer_id, o.agency_id, o.credential_no, o.fields, o.valid_from_ms, o.valid_to_ms, o.revoked_ms"
            " FROM officers o LEFT JOIN agencies a USING (agency_id) WHERE 1 = 1" + where + " ORDER BY o.officer_id",
            args,
        )
    ]
    where, args = _region_clause(region, "e.region")
    no_disturb = [
        NoDisturbEntry(credit_code=r[0], basis=r[1], valid_to_ms=r[2])
        for r in con.execute(
            "SELECT n.credit_code, n.basis, n.valid_to_ms FROM no_disturb n JOIN enterprises e USING (credit_code)"
            " WHERE n.removed_ms IS NULL AND n.valid_from_ms <= ? AND (n.valid_to_ms IS NULL OR n.valid_to_ms >= ?)" + where + " ORDER BY n.credit_code",
            (now_ms, now_ms, *args),
        )
    ]
    where, args = _region_clause(region, "i.region")
    open_inspections = [
        InspectionRef(inspection_id=r[0], credit_code=r[1], agency_id=r[2], field=r[3], started_ms=r[4])
        for r in con.execute(
            "SELECT i.inspection_id, i.credit_code, i.lead_agency_id, i.field, i.opened_ms FROM inspections i WHERE i.status = 'open' AND i.opened_ms >= ?"
            # as on the server (server/scanning.py): a basis awaiting review or rejected is no door for others
            " AND NOT EXISTS (SELECT 1 FROM exception_reviews r WHERE r.inspection_id = i.inspection_id AND r.status != 'confirmed')"
            + where + " ORDER BY i.opened_ms",
            (now_ms - int(policy.join_window_hours * 3_600_000), *args),
        )
    ]  # fmt: skip
    recent = [
        InspectionRef(inspection_id=r[0], credit_code=r[1], agency_id=r[2], field=r[3], started_ms=r[4], ended_ms=r[5])
        for r in con.execute(
            "SELECT p.inspection_id, i.credit_code, p.agency_id, p.field, p.joined_ms, p.ended_ms FROM inspection_parts p JOIN inspections i USING (inspection_id)"
            " WHERE p.joined_ms >= ?" + where + " ORDER BY p.joined_ms",
            (now_ms - policy.repeat_window_days * DAY_MS, *args),
        )
    ]
    lists: list[tuple[str, list[object]]] = [
        ("credentials", list(credentials)), ("no_disturb", list(no_disturb)), ("open_inspections", list(open_inspections)), ("recent_inspections", list(recent)),
    ]  # fmt: skip
    chunks: list[dict[str, list[object]]] = [{}]
    room = ENTRIES_PER_PART
    for name, items in lists:
        while items:
            if room == 0:
                chunks.append({})
                room = ENTRIES_PER_PART
            take, items = items[:room], items[room:]
            chunks[-1].setdefault(name, []).extend(take)
            room -= len(take)
    revoked = revoked_list(con)
    version = now_ms
    return [
        DecisionSnapshot(
            message_id=str(uuid.uuid4()),
            device_id=device_id,
            server_time_ms=now_ms,
            version=version,
            part=i,
            parts=len(chunks),
            region=region,
            policy=policy.for_devices(),
            code_keys=keys,
            revoked_codes=revoked if i == 1 else [],
            **chunk,  # type: ignore[arg-type]
        )
        for i, chunk in enumerate(chunks, start=1)
    ]


def device_region(con: sqlite3.Connection, device_id: str) -> str | None:
    """The region a device works in (None if unknown device)."""
    row = con.execute(
        "SELECT COALESCE(NULLIF(d.region, ''), a.region, '') FROM devices d LEFT JOIN agencies a USING (agency_id) WHERE d.device_id = ? AND d.revoked_ms IS NULL",
        (device_id,),
    ).fetchone()
    return None if row is None else row[0]
