"""Rows of a case's later steps (issue 15): legal reviews, decisions and their publication, transfers and judicial
referrals, and the counts the scorecard reads. Reading and writing only (the rules: server/cases/*)."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql

REVIEW_COLUMNS = (
    "review_id", "case_id", "agency_id", "proposal", "kind", "fine_yuan", "measures", "hearing", "submitted_by", "submitted_ms", "deadline", "status", "reviewer", "checklist",
    "opinion", "crime_suspected", "reviewed_ms", "head_note", "resolved_by", "resolved_ms",
)  # fmt: skip
DECISION_COLUMNS = (
    "decision_id", "case_id", "agency_id", "kind", "summary", "fine_yuan", "measures", "hearing", "major_rules", "review_id",
    "decided_by", "decided_ms", "decided_on", "published_ms",
)  # fmt: skip
TRANSFER_COLUMNS = (
    "transfer_id", "case_id", "kind", "from_agency", "to_agency", "to_body", "reason", "prior_state", "sent_by", "sent_ms", "status",
    "answer", "answered_by", "answered_ms",
)  # fmt: skip

_COUNT_REVIEWS = sql("SELECT count(*) FROM case_reviews WHERE case_id = :case_id")
_INSERT_REVIEW = sql("""
    INSERT INTO case_reviews(review_id, case_id, agency_id, proposal, kind, fine_yuan, measures, hearing, submitted_by, submitted_ms, deadline, status)
    VALUES (:review_id, :case_id, :agency_id, :proposal, :kind, :fine_yuan, :measures, :hearing, :submitted_by, :submitted_ms, :deadline, 'pending')
""")
_REVIEW = sql("SELECT " + ", ".join(REVIEW_COLUMNS) + " FROM case_reviews WHERE review_id = :review_id")
#: A case's reviews in the order they were submitted: by their number (<case id>-R<n>: length, then text, so R10 follows
#: R9), not by time, which two API processes' clocks may disagree on (the latest review is the one a decision answers to).
_REVIEWS_OF = sql("SELECT " + ", ".join(REVIEW_COLUMNS) + " FROM case_reviews WHERE case_id = :case_id ORDER BY length(review_id), review_id")
_REVIEWS = sql(
    "SELECT " + ", ".join(REVIEW_COLUMNS) + """ FROM case_reviews
    WHERE (CAST(:agency_id AS TEXT) IS NULL OR agency_id = :agency_id) AND (CAST(:status AS TEXT) IS NULL OR status = :status)
    ORDER BY submitted_ms DESC, review_id DESC LIMIT :limit"""
)
_RECORD_REVIEW = sql("""
    UPDATE case_reviews SET status = :status, reviewer = :reviewer, checklist = :checklist, opinion = :opinion,
        crime_suspected = :crime_suspected, reviewed_ms = :reviewed_ms
    WHERE review_id = :review_id AND status = 'pending' RETURNING review_id
""")
_RESOLVE = sql("""
    UPDATE case_reviews SET status = :status, head_note = :note, resolved_by = :by, resolved_ms = :at_ms
    WHERE review_id = :review_id AND status = 'escalated' RETURNING review_id
""")


def count_reviews(tx: Tx, case_id: str) -> int:
    return int(tx.scalar(_COUNT_REVIEWS, case_id=case_id))


def insert_review(tx: Tx, **row: Any) -> None:
    tx.run(_INSERT_REVIEW, row)


def _review(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return None if row is None else dict(zip(REVIEW_COLUMNS, row, strict=True))


def review(tx: Tx, review_id: str) -> dict[str, Any] | None:
    return _review(tx.one(_REVIEW, review_id=review_id))


def reviews_of(tx: Tx, case_id: str) -> list[dict[str, Any]]:
    return [dict(zip(REVIEW_COLUMNS, r, strict=True)) for r in tx.all(_REVIEWS_OF, case_id=case_id)]


def reviews(tx: Tx, *, agency_id: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    return [dict(zip(REVIEW_COLUMNS, r, strict=True)) for r in tx.all(_REVIEWS, agency_id=agency_id, status=status, limit=limit)]


def record_review(tx: Tx, **row: Any) -> bool:
    """A pending review's outcome; False when it is no longer pending (reviewed already)."""
    return tx.one(_RECORD_REVIEW, row) is not None


def resolve_review(tx: Tx, review_id: str, status: str, note: str, by: str, at_ms: int) -> bool:
    """The agency head's resolution of an escalated review; False when it is not escalated (any more)."""
    return tx.one(_RESOLVE, review_id=review_id, status=status, note=note, by=by, at_ms=at_ms) is not None


# --- decisions ---------------------------------------------------------------------------------------------------

_INSERT_DECISION = sql("""
    INSERT INTO case_decisions(decision_id, case_id, agency_id, kind, summary, fine_yuan, measures, hearing, major_rules, review_id,
        decided_by, decided_ms, decided_on)
    VALUES (:decision_id, :case_id, :agency_id, :kind, :summary, :fine_yuan, :measures, :hearing, :major_rules, :review_id,
        :decided_by, :decided_ms, :decided_on)
    ON CONFLICT DO NOTHING RETURNING decision_id
""")
_DECISION_OF = sql("SELECT " + ", ".join(DECISION_COLUMNS) + " FROM case_decisions WHERE case_id = :case_id")
_PUBLISH = sql("UPDATE case_decisions SET published_ms = :now_ms WHERE case_id = :case_id AND published_ms IS NULL RETURNING decision_id")
_DISCLOSURE = sql("SELECT deadline, disclosed_on, status FROM decisions WHERE decision_id = :decision_id")
_PUBLIC = sql("""
    SELECT d.decision_id, d.case_id, d.agency_id, a.name, a.name_en, d.kind, d.summary, d.fine_yuan, d.measures, d.decided_on,
           c.credit_code, e.name, c.title, x.deadline, x.disclosed_on
    FROM case_decisions d JOIN cases c ON c.case_id = d.case_id
    LEFT JOIN agencies a ON a.agency_id = d.agency_id
    LEFT JOIN enterprises e ON e.credit_code = c.credit_code
    LEFT JOIN decisions x ON x.decision_id = d.decision_id
    WHERE d.published_ms IS NOT NULL
      AND (CAST(:agency_id AS TEXT) IS NULL OR d.agency_id = :agency_id)
      AND (CAST(:q AS TEXT) IS NULL OR c.credit_code = :q OR e.name LIKE :pattern ESCAPE '!'
           OR d.case_id IN (SELECT case_id FROM case_parties WHERE kind = 'enterprise' AND name LIKE :pattern ESCAPE '!'))
    ORDER BY d.decided_on DESC, d.decision_id DESC LIMIT :limit
""")
_SAMPLED = sql("SELECT sample_id, result FROM sample_items WHERE decision_id = :decision_id ORDER BY sample_id")


def insert_decision(tx: Tx, **row: Any) -> bool:
    """A case's decision; False when the case has one already."""
    return tx.one(_INSERT_DECISION, row) is not None


def decision_of(tx: Tx, case_id: str) -> dict[str, Any] | None:
    row = tx.one(_DECISION_OF, case_id=case_id)
    return None if row is None else dict(zip(DECISION_COLUMNS, row, strict=True))


def publish(tx: Tx, case_id: str, now_ms: int) -> bool:
    """Mark a case's decision published; False when it was already."""
    return tx.one(_PUBLISH, case_id=case_id, now_ms=now_ms) is not None


def disclosure(tx: Tx, decision_id: str) -> tuple[str, str | None, str] | None:
    """(deadline, disclosed_on, status) of the decision's disclosure (server/jobs/disclosure.py)."""
    row = tx.one(_DISCLOSURE, decision_id=decision_id)
    return None if row is None else (row[0], row[1], row[2])


def public_decisions(tx: Tx, *, agency_id: str | None, q: str | None, limit: int) -> list[tuple[Any, ...]]:
    """Published decisions: (decision_id, case_id, agency_id, agency name, English name, kind, summary, fine, measures JSON,
    decided_on, credit_code, enterprise name, case title, deadline, disclosed_on); ``q``: a credit code or part of a name."""
    pattern = None if q is None else "%" + q.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"  # q's % and _ are letters
    return tx.all(_PUBLIC, agency_id=agency_id, q=q, pattern=pattern, limit=limit)


def sampled(tx: Tx, decision_id: str) -> list[tuple[str, str | None]]:
    """(sample_id, result) of each monthly sample that drew the decision."""
    return [(r[0], r[1]) for r in tx.all(_SAMPLED, decision_id=decision_id)]


# --- transfers and referrals -------------------------------------------------------------------------------------

_COUNT_TRANSFERS = sql("SELECT count(*) FROM case_transfers WHERE case_id = :case_id")
_INSERT_TRANSFER = sql("""
    INSERT INTO case_transfers(transfer_id, case_id, kind, from_agency, to_agency, to_body, reason, prior_state, sent_by, sent_ms, status)
    VALUES (:transfer_id, :case_id, :kind, :from_agency, :to_agency, :to_body, :reason, :prior_state, :sent_by, :sent_ms, 'sent')
""")
_TRANSFER = sql("SELECT " + ", ".join(TRANSFER_COLUMNS) + " FROM case_transfers WHERE transfer_id = :transfer_id")
_TRANSFERS_OF = sql("SELECT " + ", ".join(TRANSFER_COLUMNS) + " FROM case_transfers WHERE case_id = :case_id ORDER BY sent_ms, transfer_id")
_ANSWER = sql("""
    UPDATE case_transfers SET status = :status, answer = :answer, answered_by = :by, answered_ms = :at_ms
    WHERE transfer_id = :transfer_id AND status = 'sent' RETURNING transfer_id
""")
_OPEN_REFERRAL = sql("SELECT transfer_id FROM case_transfers WHERE case_id = :case_id AND kind = 'referral' AND status = 'sent'")


def count_transfers(tx: Tx, case_id: str) -> int:
    return int(tx.scalar(_COUNT_TRANSFERS, case_id=case_id))


def insert_transfer(tx: Tx, **row: Any) -> None:
    tx.run(_INSERT_TRANSFER, row)


def transfer(tx: Tx, transfer_id: str) -> dict[str, Any] | None:
    row = tx.one(_TRANSFER, transfer_id=transfer_id)
    return None if row is None else dict(zip(TRANSFER_COLUMNS, row, strict=True))


def transfers_of(tx: Tx, case_id: str) -> list[dict[str, Any]]:
    return [dict(zip(TRANSFER_COLUMNS, r, strict=True)) for r in tx.all(_TRANSFERS_OF, case_id=case_id)]


def answer_transfer(tx: Tx, transfer_id: str, status: str, answer: str, by: str, at_ms: int) -> bool:
    """Answer a transfer or referral still awaiting one; False when it was answered already."""
    return tx.one(_ANSWER, transfer_id=transfer_id, status=status, answer=answer, by=by, at_ms=at_ms) is not None


def open_referral(tx: Tx, case_id: str) -> str | None:
    return tx.scalar(_OPEN_REFERRAL, case_id=case_id)


# --- the scorecard's counts --------------------------------------------------------------------------------------

_KEPT = sql("""
    SELECT c.agency_id, count(DISTINCT c.case_id) FROM case_reviews r JOIN cases c ON c.case_id = r.case_id
    WHERE r.crime_suspected = 1 AND r.reviewed_ms >= :from_ms AND r.reviewed_ms < :to_ms
      AND NOT EXISTS (SELECT 1 FROM case_transfers t WHERE t.case_id = c.case_id AND t.kind = 'referral')
    GROUP BY c.agency_id ORDER BY c.agency_id
""")
_REFERRALS = sql("""
    SELECT from_agency, count(*), CAST(sum(CASE WHEN status = 'sent' AND sent_ms < :overdue_before_ms THEN 1 ELSE 0 END) AS BIGINT)
    FROM case_transfers WHERE kind = 'referral' AND sent_ms >= :from_ms AND sent_ms < :to_ms
    GROUP BY from_agency ORDER BY from_agency
""")


def kept_counts(tx: Tx, from_ms: int, to_ms: int) -> dict[str, int]:
    """agency -> cases whose review in the period found a suspected crime and that were never referred."""
    return {r[0]: int(r[1]) for r in tx.all(_KEPT, from_ms=from_ms, to_ms=to_ms)}


def referral_counts(tx: Tx, from_ms: int, to_ms: int, overdue_before_ms: int) -> dict[str, tuple[int, int]]:
    """agency -> (referrals sent in the period, of which still unanswered and sent before ``overdue_before_ms``)."""
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in tx.all(_REFERRALS, from_ms=from_ms, to_ms=to_ms, overdue_before_ms=overdue_before_ms)}


_SAMPLED_CASES = sql("""
    SELECT i.sample_id, i.decision_id, d.case_id, c.title, c.agency_id, i.result, i.notes
    FROM sample_items i JOIN case_decisions d ON d.decision_id = i.decision_id JOIN cases c ON c.case_id = d.case_id
    ORDER BY i.sample_id DESC, i.decision_id LIMIT :limit
""")


def sampled_cases(tx: Tx, limit: int) -> list[tuple[Any, ...]]:
    """(sample_id, decision_id, case_id, title, agency_id, result, notes) of the case files drawn in the samples."""
    return tx.all(_SAMPLED_CASES, limit=limit)


_OVERDUE_REVIEWS = sql("""
    SELECT r.review_id, r.case_id, r.agency_id, r.deadline, c.title, c.credit_code FROM case_reviews r JOIN cases c ON c.case_id = r.case_id
    WHERE r.status = 'pending' AND r.deadline < :today
      AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.kind = 'review_overdue' AND a.ref = r.review_id)
    ORDER BY r.deadline, r.review_id
""")


def overdue_reviews(tx: Tx, today: str) -> list[tuple[Any, ...]]:
    """(review_id, case_id, agency_id, deadline, case title, credit code) of pending reviews past their deadline that
    were not alerted yet."""
    return tx.all(_OVERDUE_REVIEWS, today=today)
