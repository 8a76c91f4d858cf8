"""Rows of the officer's door codes (亮码检查, issue 16 item 3) and what the enterprise's check page reads.

server/console/badges.py holds the rules (who may ask, lifetime, what counts as replayed); this module only runs
the statements."""

from __future__ import annotations

from typing import Any, NamedTuple

from server.storage.engine import Tx, sql


class Badge(NamedTuple):
    """One issued code."""

    badge_id: str
    inspection_id: str
    officer_id: str
    issued_ms: int
    expires_ms: int
    superseded_ms: int | None
    first_checked_ms: int | None


class PartOfficer(NamedTuple):
    """An officer's part in an inspection, with the officer's credential and agency, as the check page shows it."""

    officer_id: str
    name: str
    credential_no: str
    valid_from_ms: int
    valid_to_ms: int
    revoked_ms: int | None
    agency_id: str
    agency_name: str
    agency_name_en: str
    field: str
    joined_ms: int
    ended_ms: int | None
    scan_id: str | None


class InspectionFacts(NamedTuple):
    """What the check page says about the inspection itself."""

    inspection_id: str
    credit_code: str
    enterprise_name: str
    lead_agency_id: str
    field: str
    field_name: str
    field_name_en: str
    status: str
    opened_ms: int
    ended_ms: int | None
    exception_kind: str | None
    exception_ref: str | None


_BADGE_COLUMNS = ", ".join(Badge._fields)
_INSERT = sql(f"INSERT INTO badges({_BADGE_COLUMNS}) VALUES ({', '.join(':' + c for c in Badge._fields)})")
_SUPERSEDE = sql(
    "UPDATE badges SET superseded_ms = :now_ms WHERE inspection_id = :inspection_id AND officer_id = :officer_id AND superseded_ms IS NULL"
)
_ISSUED_SINCE = sql("SELECT count(*) FROM badges WHERE officer_id = :officer_id AND issued_ms >= :since_ms")
_OLDEST_SINCE = sql("SELECT min(issued_ms) FROM badges WHERE officer_id = :officer_id AND issued_ms >= :since_ms")
_GET = sql(f"SELECT {_BADGE_COLUMNS} FROM badges WHERE badge_id = :badge_id")
_CHECKED = sql("UPDATE badges SET first_checked_ms = :now_ms WHERE badge_id = :badge_id AND first_checked_ms IS NULL")
_PART = sql("SELECT ended_ms FROM inspection_parts WHERE inspection_id = :inspection_id AND officer_id = :officer_id")
_LATEST_OF_PART = sql(
    f"SELECT {_BADGE_COLUMNS} FROM badges WHERE inspection_id = :inspection_id AND officer_id = :officer_id"
    " ORDER BY CASE WHEN superseded_ms IS NULL THEN 0 ELSE 1 END, issued_ms DESC, badge_id LIMIT 1"
)
_FACTS = sql("""
    SELECT i.inspection_id, i.credit_code, coalesce(e.name, ''), i.lead_agency_id, i.field, coalesce(f.name, ''), coalesce(f.name_en, ''),
           i.status, i.opened_ms, i.ended_ms, i.exception_kind, i.exception_ref
    FROM inspections i
    LEFT JOIN enterprises e ON e.credit_code = i.credit_code
    LEFT JOIN fields f ON f.field_id = i.field
    WHERE i.inspection_id = :inspection_id
""")
_OFFICERS = sql("""
    SELECT p.officer_id, coalesce(o.name, ''), coalesce(o.credential_no, ''), coalesce(o.valid_from_ms, 0), coalesce(o.valid_to_ms, 0), o.revoked_ms,
           p.agency_id, coalesce(a.name, ''), coalesce(a.name_en, ''), p.field, p.joined_ms, p.ended_ms, p.scan_id
    FROM inspection_parts p
    LEFT JOIN officers o ON o.officer_id = p.officer_id
    LEFT JOIN agencies a ON a.agency_id = p.agency_id
    WHERE p.inspection_id = :inspection_id
    ORDER BY p.joined_ms, p.officer_id
""")
_FIELD_NAMES = sql("SELECT field_id, name, name_en FROM fields WHERE field_id IN (:ids)")
_LISTED = sql("""
    SELECT basis FROM no_disturb
    WHERE credit_code = :credit_code AND removed_ms IS NULL AND valid_from_ms <= :now_ms AND (valid_to_ms IS NULL OR valid_to_ms >= :now_ms)
    ORDER BY valid_from_ms DESC, id DESC LIMIT 1
""")
_REVIEW = sql("SELECT status FROM exception_reviews WHERE inspection_id = :inspection_id ORDER BY created_ms DESC LIMIT 1")
_SCAN_REASON = sql("SELECT matter, reason FROM scans WHERE scan_id = :scan_id")


def insert(tx: Tx, badge: Badge) -> None:
    """Record an issued code."""
    tx.run(_INSERT, badge._asdict())


def lock_officer(tx: Tx, officer_id: str) -> None:
    """Serialise, until this transaction ends, the codes issued to one officer (PostgreSQL; SQLite writers take turns)."""
    tx.lock(f"fe:badge:{officer_id}")


def supersede(tx: Tx, inspection_id: str, officer_id: str, now_ms: int) -> int:
    """Mark the officer's earlier codes for the inspection superseded; returns how many."""
    return int(tx.run(_SUPERSEDE, inspection_id=inspection_id, officer_id=officer_id, now_ms=now_ms).rowcount or 0)


def issued_since(tx: Tx, officer_id: str, since_ms: int) -> tuple[int, int | None]:
    """(how many codes the officer was issued since ``since_ms``, the oldest of them) for the rate limit."""
    count = int(tx.scalar(_ISSUED_SINCE, officer_id=officer_id, since_ms=since_ms))
    oldest = tx.scalar(_OLDEST_SINCE, officer_id=officer_id, since_ms=since_ms) if count else None
    return count, None if oldest is None else int(oldest)


def get(tx: Tx, badge_id: str) -> Badge | None:
    """One issued code."""
    row = tx.one(_GET, badge_id=badge_id)
    return None if row is None else Badge(*row)


def latest_of_part(tx: Tx, inspection_id: str, officer_id: str) -> Badge | None:
    """The officer's live code for the inspection (none superseding it), else their newest."""
    row = tx.one(_LATEST_OF_PART, inspection_id=inspection_id, officer_id=officer_id)
    return None if row is None else Badge(*row)


def mark_checked(tx: Tx, badge_id: str, now_ms: int) -> None:
    """Remember the first time an enterprise opened the code's page (the officer's page says so)."""
    tx.run(_CHECKED, badge_id=badge_id, now_ms=now_ms)


def part_state(tx: Tx, inspection_id: str, officer_id: str) -> tuple[bool, int | None]:
    """(the officer has a part in the inspection, when that part ended)."""
    row = tx.one(_PART, inspection_id=inspection_id, officer_id=officer_id)
    return (False, None) if row is None else (True, None if row[0] is None else int(row[0]))


def facts(tx: Tx, inspection_id: str) -> InspectionFacts | None:
    """The inspection as the check page shows it."""
    row = tx.one(_FACTS, inspection_id=inspection_id)
    return None if row is None else InspectionFacts(*row)


def officers(tx: Tx, inspection_id: str) -> list[PartOfficer]:
    """Every part of the inspection with its officer's credential and agency, in the order they joined."""
    return [PartOfficer(*r) for r in tx.all(_OFFICERS, inspection_id=inspection_id)]


def field_names(tx: Tx, field_ids: list[str]) -> dict[str, tuple[str, str]]:
    """field id -> (Chinese name, English name)."""
    return {r[0]: (r[1], r[2]) for r in tx.all(_FIELD_NAMES, ids=field_ids)} if field_ids else {}


def no_disturb_basis(tx: Tx, credit_code: str, now_ms: int) -> str | None:
    """Why the enterprise is on the no-disturb list now; None if it is not."""
    basis: Any = tx.scalar(_LISTED, credit_code=credit_code, now_ms=now_ms)
    return None if basis is None else str(basis)


def review_status(tx: Tx, inspection_id: str) -> str | None:
    """The supervisors' review of the inspection's urgent basis (pending, confirmed, rejected), if there is one."""
    status: Any = tx.scalar(_REVIEW, inspection_id=inspection_id)
    return None if status is None else str(status)


def scan_reason(tx: Tx, scan_id: str | None) -> tuple[str, str]:
    """(matter, reason) the officer stated when scanning."""
    row = tx.one(_SCAN_REASON, scan_id=scan_id) if scan_id else None
    return ("", "") if row is None else (str(row[0] or ""), str(row[1] or ""))
