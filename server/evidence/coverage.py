"""Full-process recording (执法全过程记录): was an inspection recorded from start to end?

Media are linked to an inspection by its id when the device named it, and otherwise by officer or device
and time: a recording by one of the inspection's officers (or on one of its devices) that overlaps the
inspection's time belongs to it. Coverage is the union of the recordings' intervals within the
inspection; what is left are the gaps, reported in minutes.
"""

from __future__ import annotations

import time

import msgspec

from server.rules.alerts import raise_alert
from server.storage.engine import Tx
from server.storage import jobs as stored_jobs
from server.storage import reports

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


def _item(row: tuple[object, ...], linked_by: str) -> MediaItem:
    return MediaItem(**dict(zip(reports.MEDIA_COLUMNS, row, strict=True)), linked_by=linked_by)  # type: ignore[arg-type]


def inspection_media(tx: Tx, inspection_id: str) -> tuple[int, int, list[MediaItem]]:
    """The inspection's time span and every recording linked to it."""
    span = reports.inspection_span(tx, inspection_id)
    if span is None:
        raise KeyError(inspection_id)
    start, end = span[0], span[1] if span[1] is not None else int(time.time() * 1000)
    parts = reports.part_officers_devices(tx, inspection_id)
    officers = [officer for officer, _ in parts]
    devices = [device for _, device in parts if device]
    items: dict[str, MediaItem] = {}
    for row in reports.media_naming(tx, inspection_id):
        items[str(row[0])] = _item(row, "inspection_id")
    if officers or devices:
        for row in reports.media_by_who_and_time(tx, officers, devices, start, end):
            items.setdefault(str(row[0]), _item(row, "officer_and_time"))
    return start, end, sorted(items.values(), key=lambda m: (m.started_ms or 0, m.event_id))


def coverage(con: Tx, inspection_id: str) -> Coverage:
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


def check_ended_recordings(tx: Tx, now_ms: int, grace_ms: int) -> dict[str, int]:
    """Alert on inspections that ended at least ``grace_ms`` ago and were not recorded from start to end;
    each ended inspection is checked once (inside the caller's write transaction)."""
    rows = stored_jobs.ended_unchecked(tx, now_ms - grace_ms, RECORDING_CHECK_BATCH)
    alerted = 0
    for inspection_id, credit_code, ent, agency_id, agency in rows:
        if not stored_jobs.mark_recording_checked(tx, inspection_id, now_ms):
            continue  # checked by a concurrent run since it was read
        c = coverage(tx, inspection_id)
        if not c.complete:
            alerted += 1
            what_zh = "全程无录音录像" if not c.recorded else f"有 {c.uncovered_minutes} 分钟未录音录像"
            what_en = "was not recorded at all" if not c.recorded else f"has {c.uncovered_minutes} unrecorded minutes"
            raise_alert(
                tx, "unrecorded_inspection", now_ms,
                f"{agency or agency_id}对“{ent or credit_code}”的检查{what_zh}，未做到执法全过程记录。",
                f"The inspection of {ent or credit_code} by {agency or agency_id} {what_en}: not recorded from start to end.",
                credit_code=credit_code, agency_id=agency_id, ref=inspection_id,
            )  # fmt: skip
    return {"checked": len(rows), "unrecorded": alerted}
