"""Read-only queries behind the agency scorecard (server/supervision/scorecard.py) that the report figures
(server/storage/reports.py, through server/console/stats.py ``summary``) do not already give: disclosure on time,
case-file reviews, findings, letters and enterprises' ratings, per agency over a period. Rows come back as tuples in
the SELECT's order.

A decision falls in a period by its ``decided_on`` (an ISO date, CST), compared as text with the period's first day
and the day after its last; a case-file review by ``reviewed_ms``; a finding by ``opened_ms``; a letter by
``issued_ms``; a rating by ``rated_ms`` (it counts for the agency that led the inspection).
"""

from __future__ import annotations

from server.storage.engine import Tx, sql

_DISCLOSURE = sql("""
    SELECT agency_id,
           CAST(sum(CASE WHEN status = 'disclosed_on_time' THEN 1 ELSE 0 END) AS BIGINT),
           CAST(sum(CASE WHEN status IN ('disclosed_on_time', 'disclosed_late', 'missed') THEN 1 ELSE 0 END) AS BIGINT)
    FROM decisions WHERE decided_on >= :first_day AND decided_on < :next_day
    GROUP BY agency_id ORDER BY agency_id
""")
_REVIEWS = sql("""
    SELECT s.agency_id, count(*), CAST(sum(CASE WHEN i.result = 'pass' THEN 1 ELSE 0 END) AS BIGINT)
    FROM sample_items i JOIN samples s ON s.sample_id = i.sample_id
    WHERE i.result IS NOT NULL AND i.reviewed_ms >= :from_ms AND i.reviewed_ms < :to_ms
    GROUP BY s.agency_id ORDER BY s.agency_id
""")
_FINDINGS = sql("""
    SELECT agency_id, count(*) FROM findings WHERE opened_ms >= :from_ms AND opened_ms < :to_ms
    GROUP BY agency_id ORDER BY agency_id
""")
_LETTERS = sql("""
    SELECT agency_id, kind, status, deadline, replied_ms FROM letters WHERE issued_ms >= :from_ms AND issued_ms < :to_ms
    ORDER BY agency_id, issued_ms, letter_id
""")
_RATINGS = sql("""
    SELECT lead_agency_id, count(*), CAST(sum(score) AS BIGINT) FROM ratings WHERE rated_ms >= :from_ms AND rated_ms < :to_ms
    GROUP BY lead_agency_id ORDER BY lead_agency_id
""")
_AGENCIES = sql("SELECT agency_id, name, name_en FROM agencies ORDER BY agency_id")


def agencies(tx: Tx) -> list[tuple[str, str, str | None]]:
    """(agency_id, name, English name) of every registered agency."""
    return [(r[0], r[1], r[2]) for r in tx.all(_AGENCIES)]


def disclosure_counts(tx: Tx, first_day: str, next_day: str) -> dict[str, tuple[int, int]]:
    """agency -> (decisions disclosed on time, decisions disclosed or missed), of decisions made in the period."""
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in tx.all(_DISCLOSURE, first_day=first_day, next_day=next_day)}


def review_counts(tx: Tx, from_ms: int, to_ms: int) -> dict[str, tuple[int, int]]:
    """agency -> (case files reviewed in the period, passed)."""
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in tx.all(_REVIEWS, from_ms=from_ms, to_ms=to_ms)}


def finding_counts(tx: Tx, from_ms: int, to_ms: int) -> dict[str, int]:
    """agency -> findings opened about it in the period."""
    return {r[0]: int(r[1]) for r in tx.all(_FINDINGS, from_ms=from_ms, to_ms=to_ms)}


def rating_counts(tx: Tx, from_ms: int, to_ms: int) -> dict[str, tuple[int, int]]:
    """agency (the inspection's lead) -> (enterprises' ratings given in the period, the sum of their scores 1–5)."""
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in tx.all(_RATINGS, from_ms=from_ms, to_ms=to_ms)}


def letters_issued(tx: Tx, from_ms: int, to_ms: int) -> list[tuple[str, str, str, str, int | None]]:
    """(agency_id, kind, status, deadline ISO date, replied_ms) of the letters issued in the period."""
    return [(r[0], r[1], r[2], r[3], r[4]) for r in tx.all(_LETTERS, from_ms=from_ms, to_ms=to_ms)]
