"""Read-only queries behind the reports, the live dashboard, recording coverage and device decision snapshots
(docs/storage-seam.md §2). Rows come back as tuples in the SELECT's order; the rule modules (stats.py, live.py,
coverage.py, snapshots.py) shape them.

Portability notes: an optional agency is ``CAST(:agency_id AS TEXT) IS NULL OR ...`` (PostgreSQL must know the
parameter's type); sums are cast to BIGINT (PostgreSQL's sum of integers is numeric); a CST calendar day is the
integer day number ``(ms + 8 h) / 1 day`` (integer division on both backends), turned into a date in Python.
"""

from __future__ import annotations

from protocol.cst import CST_OFFSET_MS
from server.storage.engine import Tx, sql

#: China Standard Time's offset and a day, in ms: CST day number = (epoch ms + offset) / day.
DAY_MS = 86_400_000
_CST_DAY = f"(({{col}} + {CST_OFFSET_MS}) / {DAY_MS})"

# --- recording coverage -------------------------------------------------------------------------------------------

#: The columns of a media row, in the order MEDIA_* queries return them.
MEDIA_COLUMNS = ("event_id", "device_id", "officer_id", "file_name", "media_kind", "sha256", "size_bytes", "started_ms", "ended_ms", "integrity")
_MEDIA = ", ".join(MEDIA_COLUMNS)
_INSPECTION_SPAN = sql("SELECT opened_ms, ended_ms FROM inspections WHERE inspection_id = :inspection_id")
_PARTS_OFFICERS_DEVICES = sql("""
    SELECT officer_id, device_id FROM inspection_parts WHERE inspection_id = :inspection_id ORDER BY officer_id, joined_ms
""")
_MEDIA_NAMING = sql(f"""
    SELECT {_MEDIA} FROM media WHERE inspection_id = :inspection_id ORDER BY started_ms NULLS FIRST, event_id
""")
_MEDIA_BY_WHO_AND_TIME = sql(f"""
    SELECT {_MEDIA} FROM media
    WHERE (officer_id IN (:officers) OR device_id IN (:devices)) AND inspection_id IS NULL
      AND started_ms <= :to_ms AND coalesce(ended_ms, started_ms) >= :from_ms
    ORDER BY started_ms NULLS FIRST, event_id
""")


def inspection_span(tx: Tx, inspection_id: str) -> tuple[int, int | None] | None:
    """(opened_ms, ended_ms) of an inspection, or None."""
    row = tx.one(_INSPECTION_SPAN, inspection_id=inspection_id)
    return None if row is None else (row[0], row[1])


def part_officers_devices(tx: Tx, inspection_id: str) -> list[tuple[str, str | None]]:
    """(officer_id, device_id) of each part of an inspection."""
    return [(r[0], r[1]) for r in tx.all(_PARTS_OFFICERS_DEVICES, inspection_id=inspection_id)]


def media_naming(tx: Tx, inspection_id: str) -> list[tuple[object, ...]]:
    """Media rows (MEDIA_COLUMNS) whose device named the inspection."""
    return tx.all(_MEDIA_NAMING, inspection_id=inspection_id)


def media_by_who_and_time(tx: Tx, officers: list[str], devices: list[str], from_ms: int, to_ms: int) -> list[tuple[object, ...]]:
    """Media rows (MEDIA_COLUMNS) naming no inspection, by one of ``officers`` or on one of ``devices``, overlapping
    ``[from_ms, to_ms]``."""
    return tx.all(_MEDIA_BY_WHO_AND_TIME, officers=officers, devices=devices, from_ms=from_ms, to_ms=to_ms)


# --- decision snapshots -------------------------------------------------------------------------------------------

_CODE_KEYS = sql("SELECT key_id, public_key FROM code_keys WHERE retired_ms IS NULL ORDER BY key_id")
_CREDENTIALS = sql("""
    SELECT o.officer_id, o.agency_id, o.credential_no, o.fields, o.valid_from_ms, o.valid_to_ms, o.revoked_ms
    FROM officers o LEFT JOIN agencies a ON a.agency_id = o.agency_id
    WHERE (:region = '' OR a.region = :region) ORDER BY o.officer_id
""")
_NO_DISTURB = sql("""
    SELECT n.credit_code, n.basis, n.valid_to_ms FROM no_disturb n JOIN enterprises e ON e.credit_code = n.credit_code
    WHERE n.removed_ms IS NULL AND n.valid_from_ms <= :now_ms AND (n.valid_to_ms IS NULL OR n.valid_to_ms >= :now_ms)
      AND (:region = '' OR e.region = :region)
    ORDER BY n.credit_code, n.valid_from_ms
""")
# As on the server (server/rules/scanning.py): a basis awaiting review or rejected is no door for others.
_OPEN_INSPECTIONS = sql("""
    SELECT i.inspection_id, i.credit_code, i.lead_agency_id, i.field, i.opened_ms FROM inspections i
    WHERE i.status = 'open' AND i.opened_ms >= :since_ms
      AND NOT EXISTS (SELECT 1 FROM exception_reviews r WHERE r.inspection_id = i.inspection_id AND r.status != 'confirmed')
      AND (:region = '' OR i.region = :region)
    ORDER BY i.opened_ms, i.inspection_id
""")
_RECENT_PARTS = sql("""
    SELECT p.inspection_id, i.credit_code, p.agency_id, p.field, p.joined_ms, p.ended_ms
    FROM inspection_parts p JOIN inspections i ON i.inspection_id = p.inspection_id
    WHERE p.joined_ms >= :since_ms AND (:region = '' OR i.region = :region)
    ORDER BY p.joined_ms, p.inspection_id, p.officer_id
""")
_DEVICE_REGION = sql("""
    SELECT coalesce(nullif(d.region, ''), a.region, '') FROM devices d LEFT JOIN agencies a ON a.agency_id = d.agency_id
    WHERE d.device_id = :device_id AND d.revoked_ms IS NULL
""")


def code_keys(tx: Tx) -> dict[str, str]:
    """key id -> public key of the enterprise-code keys in use."""
    return {r[0]: r[1] for r in tx.all(_CODE_KEYS)}


def credentials(tx: Tx, region: str) -> list[tuple[str, str, str, str, int, int, int | None]]:
    """(officer_id, agency_id, credential_no, fields JSON, valid_from_ms, valid_to_ms, revoked_ms) of every officer of
    an agency in ``region`` ('' = everywhere)."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in tx.all(_CREDENTIALS, region=region)]


def no_disturb_in_force(tx: Tx, region: str, now_ms: int) -> list[tuple[str, str, int | None]]:
    """(credit_code, basis, valid_to_ms) of the no-disturb entries in force at ``now_ms`` in ``region``."""
    return [(r[0], r[1], r[2]) for r in tx.all(_NO_DISTURB, region=region, now_ms=now_ms)]


def open_inspections(tx: Tx, region: str, since_ms: int) -> list[tuple[str, str, str, str, int]]:
    """(inspection_id, credit_code, lead agency, field, opened_ms) of inspections open since ``since_ms`` that others
    may join."""
    return [(r[0], r[1], r[2], r[3], r[4]) for r in tx.all(_OPEN_INSPECTIONS, region=region, since_ms=since_ms)]


def recent_parts(tx: Tx, region: str, since_ms: int) -> list[tuple[str, str, str, str, int, int | None]]:
    """(inspection_id, credit_code, agency_id, field, joined_ms, ended_ms) of inspection parts joined since ``since_ms``."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in tx.all(_RECENT_PARTS, region=region, since_ms=since_ms)]


def device_region(tx: Tx, device_id: str) -> str | None:
    """The device's own region, else its agency's, else ''; None for an unknown or revoked device."""
    row = tx.one(_DEVICE_REGION, device_id=device_id)
    return None if row is None else str(row[0])


# --- report figures (stats.py) ------------------------------------------------------------------------------------

#: The agency ``:agency_id`` (NULL: any) led or took part in the inspection ``i``.
_TOOK_PART = (
    "(CAST(:agency_id AS TEXT) IS NULL OR i.lead_agency_id = :agency_id"
    " OR EXISTS (SELECT 1 FROM inspection_parts q WHERE q.inspection_id = i.inspection_id AND q.agency_id = :agency_id))"
)
#: 1 when the inspection ``i`` has parts from more than one agency, else 0.
_JOINT = (
    "CASE WHEN (SELECT count(DISTINCT p.agency_id) FROM inspection_parts p WHERE p.inspection_id = i.inspection_id) > 1"
    " THEN 1 ELSE 0 END"
)
_ANY_AGENCY = "(CAST(:agency_id AS TEXT) IS NULL OR {col} = :agency_id)"

_BY_AGENCY_FIELD = sql(f"""
    SELECT p.agency_id, coalesce(a.name, p.agency_id), p.field, coalesce(f.name, p.field), count(DISTINCT p.inspection_id), count(*)
    FROM inspection_parts p LEFT JOIN agencies a ON a.agency_id = p.agency_id LEFT JOIN fields f ON f.field_id = p.field
    WHERE p.joined_ms >= :from_ms AND p.joined_ms < :to_ms AND {_ANY_AGENCY.format(col="p.agency_id")}
    GROUP BY p.agency_id, p.field, a.name, f.name ORDER BY p.agency_id, p.field
""")
_SCAN_COUNTS = sql(f"""
    SELECT outcome, code, count(*) FROM scans
    WHERE decided_ms >= :from_ms AND decided_ms < :to_ms AND {_ANY_AGENCY.format(col="agency_id")}
    GROUP BY outcome, code ORDER BY outcome, code
""")
_CREDENTIALED = sql(f"""
    SELECT count(*) FROM officers
    WHERE valid_from_ms < :to_ms AND valid_to_ms >= :from_ms
      AND (revoked_ms IS NULL OR (revoked_ms > :from_ms AND revoked_ms > valid_from_ms)) AND {_ANY_AGENCY.format(col="agency_id")}
""")
_ACTIVE = sql(f"""
    SELECT count(DISTINCT officer_id) FROM inspection_parts
    WHERE joined_ms >= :from_ms AND joined_ms < :to_ms AND {_ANY_AGENCY.format(col="agency_id")}
""")
_INSPECTIONS_AND_JOINT = sql(f"""
    SELECT count(*), CAST(coalesce(sum({_JOINT}), 0) AS BIGINT) FROM inspections i
    WHERE {_TOOK_PART} AND i.opened_ms >= :from_ms AND i.opened_ms < :to_ms
""")
_ENDED_IN = sql(f"""
    SELECT i.inspection_id FROM inspections i
    WHERE {_TOOK_PART} AND i.ended_ms >= :from_ms AND i.ended_ms < :to_ms AND i.status = 'ended' ORDER BY i.inspection_id
""")
_ALERTS_BY_KIND = sql(f"""
    SELECT kind, count(*) FROM alerts
    WHERE created_ms >= :from_ms AND created_ms < :to_ms AND {_ANY_AGENCY.format(col="agency_id")}
    GROUP BY kind ORDER BY kind
""")
_INSPECTIONS_PER_DAY = sql(f"""
    SELECT {_CST_DAY.format(col="i.opened_ms")} AS day_no, count(*), CAST(sum({_JOINT}) AS BIGINT) FROM inspections i
    WHERE {_TOOK_PART} AND i.opened_ms >= :from_ms AND i.opened_ms < :to_ms
    GROUP BY day_no ORDER BY day_no
""")
_SCANS_PER_DAY = sql(f"""
    SELECT {_CST_DAY.format(col="decided_ms")} AS day_no, count(*),
           CAST(sum(CASE WHEN outcome = 'refused' THEN 1 ELSE 0 END) AS BIGINT),
           CAST(sum(CASE WHEN outcome = 'repeat' THEN 1 ELSE 0 END) AS BIGINT)
    FROM scans WHERE decided_ms >= :from_ms AND decided_ms < :to_ms AND {_ANY_AGENCY.format(col="agency_id")}
    GROUP BY day_no ORDER BY day_no
""")


def parts_by_agency_field(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[tuple[str, str, str, str, int, int]]:
    """(agency_id, agency name, field, field name, distinct inspections, parts) of the parts joined in the period."""
    rows = tx.all(_BY_AGENCY_FIELD, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)
    return [(r[0], r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows]


def scan_counts(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[tuple[str, str, int]]:
    """(outcome, code, scans) of the scans decided in the period."""
    return [(r[0], r[1], int(r[2])) for r in tx.all(_SCAN_COUNTS, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)]


def officer_counts(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> tuple[int, int]:
    """(officers with a valid, unrevoked credential at some instant of the period, officers who joined an inspection)."""
    credentialed = tx.scalar(_CREDENTIALED, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)
    active = tx.scalar(_ACTIVE, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)
    return int(credentialed), int(active)


def inspections_and_joint(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> tuple[int, int]:
    """(inspections opened in the period that the agency took part in, how many of them joint)."""
    row = tx.one(_INSPECTIONS_AND_JOINT, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)
    assert row is not None  # an aggregate without GROUP BY always has a row
    return int(row[0]), int(row[1])


def ended_inspections(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[str]:
    """Ids of the ended inspections (ended in the period) that the agency took part in."""
    return [r[0] for r in tx.all(_ENDED_IN, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)]


def alerts_by_kind(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> dict[str, int]:
    """kind -> alerts raised in the period (for an agency: those naming it)."""
    return {r[0]: int(r[1]) for r in tx.all(_ALERTS_BY_KIND, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)}


def inspections_per_day(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[tuple[int, int, int]]:
    """(CST day number, inspections opened, joint ones) per day of the period that has any."""
    return [(int(r[0]), int(r[1]), int(r[2])) for r in tx.all(_INSPECTIONS_PER_DAY, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)]


def scans_per_day(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[tuple[int, int, int, int]]:
    """(CST day number, scans, refused, repeat answers) per day of the period that has any."""
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in tx.all(_SCANS_PER_DAY, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id)]


# --- the live dashboard (live.py) ---------------------------------------------------------------------------------

_UNDER_WAY = sql("""
    SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, i.field, i.opened_ms, i.exception_kind,
           (SELECT count(*) FROM media m WHERE m.inspection_id = i.inspection_id AND m.media_kind IN ('video', 'audio'))
    FROM inspections i LEFT JOIN enterprises e ON e.credit_code = i.credit_code
    WHERE i.status = 'open' AND i.opened_ms >= :since_ms
      AND (CAST(:agency_id AS TEXT) IS NULL OR i.inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE agency_id = :agency_id))
    ORDER BY i.opened_ms DESC, i.inspection_id DESC LIMIT :limit
""")
_PARTS_NAMED = sql("""
    SELECT p.officer_id, o.name, p.agency_id, a.name
    FROM inspection_parts p LEFT JOIN officers o ON o.officer_id = p.officer_id LEFT JOIN agencies a ON a.agency_id = p.agency_id
    WHERE p.inspection_id = :inspection_id ORDER BY p.joined_ms, p.officer_id
""")
_FLEET = sql("""
    SELECT d.device_id, d.kind, d.agency_id, coalesce(s.online, 0), s.last_seen_ms, s.last_status_json
    FROM devices d LEFT JOIN device_state s ON s.device_id = d.device_id
    WHERE CAST(:agency_id AS TEXT) IS NULL OR d.agency_id = :agency_id ORDER BY d.device_id
""")


def under_way(tx: Tx, since_ms: int, agency_id: str | None, limit: int) -> list[tuple[str, str, str | None, str, str, int, str | None, int]]:
    """(inspection_id, credit_code, enterprise name, lead agency, field, opened_ms, exception kind, audio/video files)
    of the inspections open since ``since_ms`` (an agency's: those it has a part in), newest first."""
    rows = tx.all(_UNDER_WAY, since_ms=since_ms, agency_id=agency_id, limit=limit)
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7])) for r in rows]


def parts_named(tx: Tx, inspection_id: str) -> list[tuple[str, str | None, str, str | None]]:
    """(officer_id, officer name, agency_id, agency name) of each part of an inspection, in joining order."""
    return [(r[0], r[1], r[2], r[3]) for r in tx.all(_PARTS_NAMED, inspection_id=inspection_id)]


def fleet(tx: Tx, agency_id: str | None) -> list[tuple[str, str, str, int, int | None, str | None]]:
    """(device_id, kind, agency_id, online, last_seen_ms, last status JSON) of every device (an agency's only)."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in tx.all(_FLEET, agency_id=agency_id)]
