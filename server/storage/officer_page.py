"""What the officer's phone page reads (issue 16 item 2): the registered items an officer may cite as an exception
for an enterprise and field, and the officer's own inspections of a day, a page at a time."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql

#: Most items of one kind offered (the newest first): an officer picks from a short list on a phone.
MOST_ITEMS = 30

_COMPLAINTS = sql("""
    SELECT ticket_no, summary, received_ms FROM complaints
    WHERE credit_code = :credit_code AND closed_ms IS NULL AND (field IS NULL OR field = '' OR field = :field)
    ORDER BY received_ms DESC, ticket_no LIMIT :limit
""")
_PLANS = sql("""
    SELECT p.plan_id, p.title, p.valid_to_ms FROM plans p
    JOIN plan_targets t ON t.plan_id = p.plan_id AND t.credit_code = :credit_code
    WHERE p.kind = 'random_draw' AND p.agency_id = :agency_id AND p.field = :field AND p.valid_from_ms <= :now_ms AND p.valid_to_ms >= :now_ms
    ORDER BY p.valid_to_ms, p.plan_id LIMIT :limit
""")
_RECTIFICATIONS = sql("""
    SELECT i.inspection_id, max(p.ended_ms) FROM inspections i
    JOIN inspection_parts p ON p.inspection_id = i.inspection_id
    WHERE i.credit_code = :credit_code AND p.agency_id = :agency_id AND p.result = 'rectification_ordered' AND p.field = :field
      AND p.ended_ms >= :since_ms
      AND NOT EXISTS (SELECT 1 FROM exception_reviews r WHERE r.inspection_id = i.inspection_id AND r.status = 'rejected')
    GROUP BY i.inspection_id ORDER BY max(p.ended_ms) DESC, i.inspection_id LIMIT :limit
""")
_REGISTERED = sql("""
    SELECT kind, reference, summary, issued_by, valid_to_ms FROM exception_bases
    WHERE credit_code = :credit_code AND withdrawn_ms IS NULL AND (agency_id IS NULL OR agency_id = :agency_id)
      AND (field IS NULL OR field = :field) AND valid_from_ms <= :now_ms AND valid_to_ms >= :now_ms
    ORDER BY kind, valid_to_ms, reference LIMIT :limit
""")
_USED = sql("""
    SELECT exception_kind, exception_ref FROM inspections
    WHERE credit_code = :credit_code AND lead_agency_id = :agency_id AND exception_kind IS NOT NULL
""")
_SCANNED = sql("SELECT 1 FROM scans WHERE officer_id = :officer_id AND credit_code = :credit_code AND decided_ms >= :since_ms LIMIT 1")
_MINE_COUNT = sql("""
    SELECT count(*) FROM inspections i
    WHERE i.opened_ms >= :since_ms AND i.opened_ms < :until_ms
      AND EXISTS (SELECT 1 FROM inspection_parts p WHERE p.inspection_id = i.inspection_id AND p.officer_id = :officer_id)
""")
_MINE = sql("""
    SELECT i.inspection_id FROM inspections i
    WHERE i.opened_ms >= :since_ms AND i.opened_ms < :until_ms
      AND EXISTS (SELECT 1 FROM inspection_parts p WHERE p.inspection_id = i.inspection_id AND p.officer_id = :officer_id)
    ORDER BY i.opened_ms DESC, i.inspection_id LIMIT :limit OFFSET :offset
""")


def complaints(tx: Tx, credit_code: str, field: str) -> list[tuple[Any, ...]]:
    """Open complaint tickets about the enterprise in the field (or in no field): (ticket, summary, received)."""
    return tx.all(_COMPLAINTS, credit_code=credit_code, field=field, limit=MOST_ITEMS)


def draw_plans(tx: Tx, credit_code: str, agency_id: str, field: str, now_ms: int) -> list[tuple[Any, ...]]:
    """Random-draw plans of the agency in the field, in force, that drew the enterprise: (plan, title, until)."""
    return tx.all(_PLANS, credit_code=credit_code, agency_id=agency_id, field=field, now_ms=now_ms, limit=MOST_ITEMS)


def rectifications(tx: Tx, credit_code: str, agency_id: str, field: str, since_ms: int) -> list[tuple[Any, ...]]:
    """Inspections of the enterprise in which the agency ordered rectification in the field since ``since_ms``, whose
    basis was not rejected: (inspection, when ordered)."""
    return tx.all(_RECTIFICATIONS, credit_code=credit_code, agency_id=agency_id, field=field, since_ms=since_ms, limit=MOST_ITEMS)


def registered(tx: Tx, credit_code: str, agency_id: str, field: str, now_ms: int) -> list[tuple[Any, ...]]:
    """Superior assignments and major-risk notices in force for the enterprise, the agency (or any) and the field (or
    any): (kind, reference, summary, issued by, until)."""
    return tx.all(_REGISTERED, credit_code=credit_code, agency_id=agency_id, field=field, now_ms=now_ms, limit=4 * MOST_ITEMS)


def used(tx: Tx, credit_code: str, agency_id: str) -> set[tuple[str, str]]:
    """(kind, reference) of every basis on which the agency already led an inspection of the enterprise."""
    return {(str(k), str(r)) for k, r in tx.all(_USED, credit_code=credit_code, agency_id=agency_id)}


def scanned_since(tx: Tx, officer_id: str, credit_code: str, since_ms: int) -> bool:
    """Did the officer scan the enterprise's code since ``since_ms`` (whatever the decision)?"""
    return tx.one(_SCANNED, officer_id=officer_id, credit_code=credit_code, since_ms=since_ms) is not None


def mine(tx: Tx, officer_id: str, since_ms: int, until_ms: int, *, limit: int, offset: int) -> tuple[int, list[str]]:
    """(how many inspections the officer took part in that opened in [since, until), the ids of one page, newest first)."""
    total = int(tx.scalar(_MINE_COUNT, officer_id=officer_id, since_ms=since_ms, until_ms=until_ms))
    ids = [str(r[0]) for r in tx.all(_MINE, officer_id=officer_id, since_ms=since_ms, until_ms=until_ms, limit=limit, offset=offset)]
    return total, ids
