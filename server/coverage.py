"""Full-process recording (执法全过程记录): was an inspection recorded from start to end?

Media are linked to an inspection by its id when the device named it, and otherwise by officer or device
and time: a recording by one of the inspection's officers (or on one of its devices) that overlaps the
inspection's time belongs to it. Coverage is the union of the recordings' intervals within the
inspection; what is left are the gaps, reported in minutes.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec

from server.alerts import raise_alert

#: Gaps shorter than this are not reported (a recorder restarting a file between segments).
GAP_TOLERANCE_MS = 60_000


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """A stretch of an inspection with no recording."""

    from_ms: int
    to_ms: int
    minutes: float


class MediaItem(msgspec.Struct, frozen=True, kw_only=True):
    """A recording linked to an inspection."""

    event_id: str
    device_id: str
    officer_id: str | None
    file_name: str
    media_kind: str
    sha256: str
    size_bytes: int
    started_ms: int | None
    ended_ms: int | None
    integrity: str
    linked_by: str  # "inspection_id" or "officer_and_time"


class Coverage(msgspec.Struct, frozen=True, kw_only=True):
    """How much of an inspection was recorded."""

    inspection_id: str
    from_ms: int
    to_ms: int
    recorded: bool  # any audio or video at all
    covered_ms: int
    uncovered_minutes: float
    complete: bool  # recorded from start to end (gaps under the tolerance ignored)
    gaps: list[Gap]
    media: list[MediaItem]


def inspection_media(con: sqlite3.Connection, inspection_id: str) -> tuple[int, int, list[MediaItem]]:
    """The inspection's time span and every recording linked to it."""
    row = con.execute("SELECT opened_ms, ended_ms FROM inspections WHERE inspection_id = ?", (inspection_id,)).fetchone()
    if row is None:
        raise KeyError(inspection_id)
    start, end = row[0], row[1] if row[1] is not None else int(time.time() * 1000)
    parts = con.execute("SELECT officer_id, device_id FROM inspection_parts WHERE inspection_id = ? ORDER BY officer_id", (inspection_id,)).fetchall()
    officers = [p[0] for p in parts]
    devices = [p[1] for p in parts if p[1]]
    cols = "event_id, device_id, officer_id, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms, integrity"
    items: dict[str, MediaItem] = {}
    for r in con.execute(f"SELECT {cols} FROM media WHERE inspection_id = ? ORDER BY started_ms, event_id", (inspection_id,)):
        items[r[0]] = MediaItem(**dict(zip(cols.split(", "), r, strict=True)), linked_by="inspection_id")
    if officers or devices:
        marks = ",".join("?" * len(officers)) or "NULL"
        dmarks = ",".join("?" * len(devices)) or "NULL"
        rows = con.execute(
            f"SELECT {cols} FROM media WHERE (officer_id IN ({marks}) OR device_id IN ({dmarks}))"
            " AND inspection_id IS NULL AND started_ms <= ? AND COALESCE(ended_ms, started_ms) >= ? ORDER BY started_ms, event_id",
            (*officers, *devices, end, start),
        )
        for r in rows:
            items.setdefault(r[0], MediaItem(**dict(zip(cols.split(", "), r, strict=True)), linked_by="officer_and_time"))
    return start, end, sorted(items.values(), key=lambda m: (m.started_ms or 0, m.event_id))


def coverage(con: sqlite3.Connection, inspection_id: str) -> Coverage:
    """Coverage of one inspection by its audio and video recordings (photos are moments, not coverage)."""
    start, end, media = inspection_media(con, inspection_id)
    spans = sorted(
        (max(start, m.started_ms), min(end, m.ended_ms))
        for m in media
        if m.media_kind in ("video", "audio") and m.started_ms is not None and m.ended_ms is not None and m.ended_ms > start and m.started_ms < end
    )
    covered = 0
    gaps: list[Gap] = []
    cursor = start
    for a, b in spans:
        if a > cursor:
            if a - cursor >= GAP_TOLERANCE_MS:
                gaps.append(Gap(from_ms=cursor, to_ms=a, minutes=round((a - cursor) / 60_000, 1)))
        if b > cursor:
            covered += b - max(a, cursor)
            cursor = b
    if end - cursor >= GAP_TOLERANCE_MS:
        gaps.append(Gap(from_ms=cursor, to_ms=end, minutes=round((end - cursor) / 60_000, 1)))
    uncovered = max(0, (end - start) - covered)
    return Coverage(
        inspection_id=inspection_id,
        from_ms=start,
        to_ms=end,
        recorded=bool(spans),
        covered_ms=covered,
        uncovered_minutes=round(uncovered / 60_000, 1),
        complete=bool(spans) and not gaps,
        gaps=gaps,
        media=media,
    )


#: Ended inspections checked per run (a backlog after downtime is worked off over a few runs).
RECORDING_CHECK_BATCH = 500


def check_ended_recordings(con: sqlite3.Connection, now_ms: int, grace_ms: int) -> dict[str, int]:
    """Alert on inspections that ended at least ``grace_ms`` ago and were not recorded from start to end;
    each ended inspection is checked once (inside the caller's write transaction)."""
    rows = con.execute(
        "SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, a.name FROM inspections i LEFT JOIN enterprises e USING (credit_code)"
        " LEFT JOIN agencies a ON a.agency_id = i.lead_agency_id"
        " WHERE i.recording_checked_ms IS NULL AND i.ended_ms IS NOT NULL AND i.ended_ms <= ? ORDER BY i.ended_ms, i.inspection_id LIMIT ?",
        (now_ms - grace_ms, RECORDING_CHECK_BATCH),
    ).fetchall()
    alerted = 0
    for inspection_id, credit_code, ent, agency_id, agency in rows:
        c = coverage(con, inspection_id)
        if not c.complete:
            alerted += 1
            what_zh = "全程无录音录像" if not c.recorded else f"有 {c.uncovered_minutes} 分钟未录音录像"
            what_en = "was not recorded at all" if not c.recorded else f"has {c.uncovered_minutes} unrecorded minutes"
            raise_alert(
                con, "unrecorded_inspection", now_ms,
                f"{agency or agency_id}对“{ent or credit_code}”的检查{what_zh}，未做到执法全过程记录。",
                f"The inspection of {ent or credit_code} by {agency or agency_id} {what_en}: not recorded from start to end.",
                credit_code=credit_code, agency_id=agency_id, ref=inspection_id,
            )  # fmt: skip
        con.execute("UPDATE inspections SET recording_checked_ms = ? WHERE inspection_id = ?", (now_ms, inspection_id))
    return {"checked": len(rows), "unrecorded": alerted}
