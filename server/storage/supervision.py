"""Rows of supervision: findings and letters (server/supervision/workflow.py holds the rules: who may do what, and
in which state)."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql

FINDING_COLUMNS = (
    "finding_id", "agency_id", "credit_code", "source", "source_ref", "reason", "refs", "opened_by", "opened_ms",
    "status", "closed_by", "closed_ms", "close_note", "officer_id",
)  # fmt: skip
LETTER_COLUMNS = (
    "letter_id", "kind", "issuer", "year", "number", "finding_id", "agency_id", "facts", "basis", "requirements",
    "deadline_days", "issued_on", "deadline", "issued_by", "issued_ms", "status", "reply", "replied_by", "replied_ms",
    "verdict_note", "decided_by", "decided_ms",
)  # fmt: skip

_NEXT_FINDING = sql("SELECT coalesce(max(seq), 0) + 1 FROM findings WHERE year = :year")
_INSERT_FINDING = sql("""
    INSERT INTO findings(finding_id, year, seq, agency_id, credit_code, source, source_ref, reason, refs, opened_by, opened_ms, status, officer_id)
    VALUES (:finding_id, :year, :seq, :agency_id, :credit_code, :source, :source_ref, :reason, :refs, :opened_by, :opened_ms, 'open', :officer_id)
""")
_FINDING = sql(f"SELECT {', '.join(FINDING_COLUMNS)} FROM findings WHERE finding_id = :finding_id")
_FINDINGS = sql(f"""
    SELECT {', '.join(FINDING_COLUMNS)} FROM findings
    WHERE (CAST(:agency_id AS TEXT) IS NULL OR agency_id = :agency_id) AND (CAST(:status AS TEXT) IS NULL OR status = :status)
    ORDER BY opened_ms DESC, finding_id DESC LIMIT :limit
""")
_CLOSE_FINDING = sql("""
    UPDATE findings SET status = 'closed', closed_by = :by, closed_ms = :at, close_note = :note
    WHERE finding_id = :finding_id AND status = 'open'
""")
_SOURCE_FINDING = sql("SELECT finding_id FROM findings WHERE source = :source AND source_ref = :ref AND status = 'open'")

_NEXT_NUMBER = sql("SELECT coalesce(max(number), 0) + 1 FROM letters WHERE issuer = :issuer AND kind = :kind AND year = :year")
_INSERT_LETTER = sql(f"""
    INSERT INTO letters({', '.join(LETTER_COLUMNS[:16])})
    VALUES ({', '.join(':' + c for c in LETTER_COLUMNS[:16])})
""")
_LETTER = sql(f"SELECT {', '.join(LETTER_COLUMNS)} FROM letters WHERE letter_id = :letter_id")
_LETTERS = sql(f"""
    SELECT {', '.join(LETTER_COLUMNS)} FROM letters
    WHERE (CAST(:agency_id AS TEXT) IS NULL OR agency_id = :agency_id) AND (CAST(:finding_id AS TEXT) IS NULL OR finding_id = :finding_id)
      AND (CAST(:status AS TEXT) IS NULL OR status = :status)
    ORDER BY issued_ms DESC, letter_id DESC LIMIT :limit
""")
_REPLY = sql("""
    UPDATE letters SET status = 'replied', reply = :reply, replied_by = :by, replied_ms = :at
    WHERE letter_id = :letter_id AND status IN ('issued', 'returned', 'overdue')
""")
_DECIDE = sql("""
    UPDATE letters SET status = :verdict, verdict_note = :note, decided_by = :by, decided_ms = :at
    WHERE letter_id = :letter_id AND status = 'replied'
""")
_DUE = sql(f"""
    SELECT {', '.join(LETTER_COLUMNS)} FROM letters
    WHERE status IN ('issued', 'returned') AND deadline < :today ORDER BY deadline, letter_id
""")
_MARK_OVERDUE = sql("UPDATE letters SET status = 'overdue' WHERE letter_id = :letter_id AND status IN ('issued', 'returned')")


def next_finding_seq(tx: Tx, year: int) -> int:
    """The next number of a finding in ``year`` (the caller holds the year's lock)."""
    return int(tx.scalar(_NEXT_FINDING, year=year))


def insert_finding(tx: Tx, **row: Any) -> None:
    """One new finding (open)."""
    tx.run(_INSERT_FINDING, row)


def finding(tx: Tx, finding_id: str) -> tuple[Any, ...] | None:
    """A finding's row (FINDING_COLUMNS)."""
    return tx.one(_FINDING, finding_id=finding_id)


def findings(tx: Tx, *, agency_id: str | None, status: str | None, limit: int) -> list[tuple[Any, ...]]:
    """Findings, newest first (of one agency, or all)."""
    return tx.all(_FINDINGS, agency_id=agency_id, status=status, limit=limit)


def close_finding(tx: Tx, finding_id: str, by: str, note: str, at_ms: int) -> bool:
    """Close an open finding; False if it was not open."""
    return bool(tx.run(_CLOSE_FINDING, finding_id=finding_id, by=by, note=note, at=at_ms).rowcount)


def open_finding_of(tx: Tx, source: str, ref: str) -> str | None:
    """The open finding opened from this alert, review, ..., if any."""
    return tx.scalar(_SOURCE_FINDING, source=source, ref=ref)


def next_letter_number(tx: Tx, issuer: str, kind: str, year: int) -> int:
    """The next number of ``issuer``'s letters of ``kind`` in ``year`` (the caller holds the lock of that series)."""
    return int(tx.scalar(_NEXT_NUMBER, issuer=issuer, kind=kind, year=year))


def insert_letter(tx: Tx, **row: Any) -> None:
    """One new letter (the first 16 LETTER_COLUMNS)."""
    tx.run(_INSERT_LETTER, row)


def letter(tx: Tx, letter_id: str) -> tuple[Any, ...] | None:
    """A letter's row (LETTER_COLUMNS)."""
    return tx.one(_LETTER, letter_id=letter_id)


def letters(tx: Tx, *, agency_id: str | None, finding_id: str | None, status: str | None, limit: int) -> list[tuple[Any, ...]]:
    """Letters, newest first."""
    return tx.all(_LETTERS, agency_id=agency_id, finding_id=finding_id, status=status, limit=limit)


def reply(tx: Tx, letter_id: str, text: str, by: str, at_ms: int) -> bool:
    """Record the agency's report; False unless the letter awaited one."""
    return bool(tx.run(_REPLY, letter_id=letter_id, reply=text, by=by, at=at_ms).rowcount)


def decide(tx: Tx, letter_id: str, verdict: str, note: str, by: str, at_ms: int) -> bool:
    """Accept or return a replied letter; False unless it was replied."""
    return bool(tx.run(_DECIDE, letter_id=letter_id, verdict=verdict, note=note, by=by, at=at_ms).rowcount)


def overdue(tx: Tx, today: str) -> list[tuple[Any, ...]]:
    """Letters still awaiting a report whose deadline has passed (before ``today``, an ISO date)."""
    return tx.all(_DUE, today=today)


def mark_overdue(tx: Tx, letter_id: str) -> bool:
    """Mark one letter overdue; False if its state changed meanwhile."""
    return bool(tx.run(_MARK_OVERDUE, letter_id=letter_id).rowcount)


# --- what a finding may name -------------------------------------------------------------------------------------

_AGENCY = sql("SELECT 1 FROM agencies WHERE agency_id = :id")
_ENTERPRISE = sql("SELECT 1 FROM enterprises WHERE credit_code = :id")
_ALERT = sql("SELECT agency_id, credit_code FROM alerts WHERE id = :id")
_INSPECTIONS = sql("SELECT inspection_id FROM inspections WHERE inspection_id IN (:ids)")
_FAILED_REVIEW = sql("""
    SELECT d.agency_id FROM sample_items s JOIN decisions d ON d.decision_id = s.decision_id
    WHERE s.sample_id = :sample_id AND s.decision_id = :decision_id AND s.result = 'fail'
""")


def agency_exists(tx: Tx, agency_id: str) -> bool:
    return tx.one(_AGENCY, id=agency_id) is not None


def enterprise_exists(tx: Tx, credit_code: str) -> bool:
    return tx.one(_ENTERPRISE, id=credit_code) is not None


def alert_row(tx: Tx, alert_id: int) -> tuple[str | None, str | None] | None:
    """(agency_id, credit_code) of an alert."""
    row = tx.one(_ALERT, id=alert_id)
    return None if row is None else (row[0], row[1])


def known_inspections(tx: Tx, ids: list[str]) -> set[str]:
    """Those of ``ids`` that are inspections."""
    return {r[0] for r in tx.all(_INSPECTIONS, ids=ids)} if ids else set()


# --- what the page shows beside ids --------------------------------------------------------------------------------

_AGENCY_NAMES = sql("SELECT agency_id, name, name_en FROM agencies ORDER BY agency_id")
_ENTERPRISE_NAMES = sql("SELECT credit_code, name FROM enterprises WHERE credit_code IN (:codes)")


def agency_names(tx: Tx) -> dict[str, tuple[str, str]]:
    """agency_id -> (name, English name) of every agency."""
    return {a: (n, e) for a, n, e in tx.all(_AGENCY_NAMES)}


def enterprise_names(tx: Tx, codes: list[str]) -> dict[str, str]:
    """credit code -> name, for those of ``codes`` registered."""
    return {c: n for c, n in tx.all(_ENTERPRISE_NAMES, codes=sorted(set(codes)))} if codes else {}


_ALERT_TEXT = sql("SELECT agency_id, credit_code, message_zh, message_en FROM alerts WHERE id = :id")


def alert_text(tx: Tx, alert_id: int) -> tuple[str | None, str | None, str, str] | None:
    """(agency_id, credit_code, message zh, message en) of an alert."""
    row = tx.one(_ALERT_TEXT, id=alert_id)
    return None if row is None else (row[0], row[1], row[2], row[3])


# --- outside supervisors ---------------------------------------------------------------------------------------------

_ASSIGN = sql("""
    INSERT INTO finding_monitors(finding_id, username, assigned_by, assigned_ms) VALUES (:finding_id, :username, :by, :at)
    ON CONFLICT (finding_id, username) DO NOTHING
""")
_ASSIGNED = sql("SELECT 1 FROM finding_monitors WHERE finding_id = :finding_id AND username = :username")
_MONITORS = sql("SELECT username FROM finding_monitors WHERE finding_id = :finding_id ORDER BY username")
_FINDINGS_OF_MONITOR = sql(f"""
    SELECT {', '.join(f'f.{c}' for c in FINDING_COLUMNS)} FROM findings f JOIN finding_monitors m ON m.finding_id = f.finding_id
    WHERE m.username = :username AND (CAST(:status AS TEXT) IS NULL OR f.status = :status)
    ORDER BY f.opened_ms DESC, f.finding_id DESC LIMIT :limit
""")
_LETTERS_OF_MONITOR = sql(f"""
    SELECT {', '.join(f'l.{c}' for c in LETTER_COLUMNS)} FROM letters l JOIN finding_monitors m ON m.finding_id = l.finding_id
    WHERE m.username = :username AND (CAST(:finding_id AS TEXT) IS NULL OR l.finding_id = :finding_id)
      AND (CAST(:status AS TEXT) IS NULL OR l.status = :status)
    ORDER BY l.issued_ms DESC, l.letter_id DESC LIMIT :limit
""")
_ROLE = sql("SELECT role FROM users WHERE username = :username")


def assign_monitor(tx: Tx, finding_id: str, username: str, by: str, at_ms: int) -> bool:
    """Assign an outside supervisor to a finding; False if already assigned."""
    return bool(tx.run(_ASSIGN, finding_id=finding_id, username=username, by=by, at=at_ms).rowcount)


def is_assigned(tx: Tx, finding_id: str, username: str) -> bool:
    return tx.one(_ASSIGNED, finding_id=finding_id, username=username) is not None


def monitors(tx: Tx, finding_id: str) -> list[str]:
    return [u for (u,) in tx.all(_MONITORS, finding_id=finding_id)]


def findings_of_monitor(tx: Tx, username: str, *, status: str | None, limit: int) -> list[tuple[Any, ...]]:
    return tx.all(_FINDINGS_OF_MONITOR, username=username, status=status, limit=limit)


def letters_of_monitor(tx: Tx, username: str, *, finding_id: str | None, status: str | None, limit: int) -> list[tuple[Any, ...]]:
    return tx.all(_LETTERS_OF_MONITOR, username=username, finding_id=finding_id, status=status, limit=limit)


def role_of(tx: Tx, username: str) -> str | None:
    """A user's role (None: no such user)."""
    return tx.scalar(_ROLE, username=username)


def failed_review_agency(tx: Tx, sample_id: str, decision_id: str) -> str | None:
    """The agency of a decision whose case-file review (案卷评查) failed; None if there is no such failed review."""
    return tx.scalar(_FAILED_REVIEW, sample_id=sample_id, decision_id=decision_id)


# --- an officer a finding is about; the files of a report -----------------------------------------------------------

_OFFICER_AGENCY = sql("SELECT agency_id FROM officers WHERE officer_id = :officer_id")
ATTACHMENT_COLUMNS = ("attachment_id", "letter_id", "record_id", "filename", "content_type", "size", "sha256", "uploaded_by", "uploaded_ms")
_INSERT_ATTACHMENT = sql(f"""
    INSERT INTO letter_attachments({', '.join(ATTACHMENT_COLUMNS)}, data) VALUES ({', '.join(':' + c for c in ATTACHMENT_COLUMNS)}, :data)
""")
_ATTACHMENTS = sql(f"SELECT {', '.join(ATTACHMENT_COLUMNS)} FROM letter_attachments WHERE letter_id = :letter_id ORDER BY uploaded_ms, attachment_id")
_ATTACHMENT = sql(f"SELECT {', '.join(ATTACHMENT_COLUMNS)}, data FROM letter_attachments WHERE letter_id = :letter_id AND attachment_id = :attachment_id")


def officer_agency(tx: Tx, officer_id: str) -> str | None:
    """The agency of a registered officer (None: no such officer)."""
    return tx.scalar(_OFFICER_AGENCY, officer_id=officer_id)


def insert_attachment(tx: Tx, *, data: bytes, **row: Any) -> None:
    """One file of a report (ATTACHMENT_COLUMNS and its bytes)."""
    tx.run(_INSERT_ATTACHMENT, {**row, "data": data})


def attachments(tx: Tx, letter_id: str) -> list[tuple[Any, ...]]:
    """A letter's report files (ATTACHMENT_COLUMNS, without the bytes), oldest first."""
    return tx.all(_ATTACHMENTS, letter_id=letter_id)


def attachment(tx: Tx, letter_id: str, attachment_id: str) -> tuple[Any, ...] | None:
    """One file with its bytes (ATTACHMENT_COLUMNS and data)."""
    return tx.one(_ATTACHMENT, letter_id=letter_id, attachment_id=attachment_id)


_FAILED_REVIEWS = sql("""
    SELECT s.sample_id, s.decision_id, d.agency_id, d.case_no, d.credit_code, coalesce(s.notes, ''), s.reviewer, s.reviewed_ms, f.finding_id
    FROM sample_items s JOIN decisions d ON d.decision_id = s.decision_id
    LEFT JOIN findings f ON f.source = 'case_review' AND f.source_ref = s.sample_id || '/' || s.decision_id
    WHERE s.result = 'fail' AND (CAST(:agency_id AS TEXT) IS NULL OR d.agency_id = :agency_id)
    ORDER BY s.reviewed_ms DESC, s.sample_id, s.decision_id LIMIT :limit
""")


def failed_reviews(tx: Tx, agency_id: str | None, limit: int) -> list[tuple[Any, ...]]:
    """Case-file reviews that failed, newest first, with the finding opened from each (if any)."""
    return tx.all(_FAILED_REVIEWS, agency_id=agency_id, limit=limit)
