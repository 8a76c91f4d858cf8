"""Decision snapshots: what a terminal needs to decide a scan offline, for its region, in signed parts."""

from __future__ import annotations

import json
import uuid

from protocol.decision import DAY_MS, Policy
from protocol.messages import Credential, DecisionSnapshot, InspectionRef, NoDisturbEntry
from server.rules.codes import revoked_list
from server.storage.engine import Tx
from server.storage import reports

#: List entries per part, keeping each part's payload well under the 64 KiB message limit.
ENTRIES_PER_PART = 150


def build_snapshot(tx: Tx, device_id: str, region: str, policy: Policy, now_ms: int) -> list[DecisionSnapshot]:
    """The snapshot for a device in ``region`` ('' = everywhere), split into parts."""
    keys = reports.code_keys(tx)
    credentials = [
        Credential(officer_id=o, agency_id=a, credential_no=c, fields=json.loads(f), valid_from_ms=vf, valid_to_ms=vt, revoked=r is not None)
        for o, a, c, f, vf, vt, r in reports.credentials(tx, region)
    ]
    no_disturb = [NoDisturbEntry(credit_code=c, basis=b, valid_to_ms=vt) for c, b, vt in reports.no_disturb_in_force(tx, region, now_ms)]
    open_inspections = [
        InspectionRef(inspection_id=i, credit_code=c, agency_id=a, field=f, started_ms=t)
        for i, c, a, f, t in reports.open_inspections(tx, region, now_ms - int(policy.join_window_hours * 3_600_000))
    ]
    recent = [
        InspectionRef(inspection_id=i, credit_code=c, agency_id=a, field=f, started_ms=t, ended_ms=e)
        for i, c, a, f, t, e in reports.recent_parts(tx, region, now_ms - policy.repeat_window_days * DAY_MS)
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
    revoked = revoked_list(tx)
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


def device_region(con: Tx, device_id: str) -> str | None:
    """The region a device works in (None if unknown device)."""
    return reports.device_region(con, device_id)
