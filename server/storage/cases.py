"""Rows of enforcement cases (issue 15): cases, their officers, parties, inspections and documents; the legal
reviewers' qualification; legal reviews; decisions and their publication; transfers and judicial referrals; and the
counts the scorecard reads. Reading and writing only: the rules are server/cases/*. Portable SQL (SQLite and
PostgreSQL); an optional filter is ``CAST(:x AS TEXT) IS NULL OR col = :x``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.storage.engine import Tx, sql

CASE_COLUMNS = (
    "case_id", "agency_id", "kind", "field", "title", "credit_code", "inspection_id", "state", "opened_by", "opened_ms", "deadline", "updated_ms",
)  # fmt: skip
_CASE_SELECT = "SELECT " + ", ".join(CASE_COLUMNS) + " FROM cases"

_NEXT_SEQ = sql("SELECT coalesce(max(seq), 0) + 1 FROM cases WHERE year = :year")
_INSERT_CASE = sql("""
    INSERT INTO cases(case_id, year, seq, agency_id, kind, field, title, credit_code, inspection_id, state, opened_by, opened_ms, deadline, updated_ms)
    VALUES (:case_id, :year, :seq, :agency_id, :kind, :field, :title, :credit_code, :inspection_id, 'filed', :opened_by, :opened_ms, :deadline, :opened_ms)
""")
_CASE = sql(_CASE_SELECT + " WHERE case_id = :case_id")
_CASES = sql(
    _CASE_SELECT + """ WHERE (CAST(:agency_id AS TEXT) IS NULL OR agency_id = :agency_id
    OR case_id IN (SELECT case_id FROM case_transfers WHERE to_agency = :agency_id AND status = 'sent'))
    AND (CAST(:credit_code AS TEXT) IS NULL OR credit_code = :credit_code)
    AND (CAST(:state AS TEXT) IS NULL OR state = :state)
    ORDER BY opened_ms DESC, case_id DESC LIMIT :limit"""
)
_SET_STATE = sql("""
    UPDATE cases SET state = :to_state, updated_ms = :now_ms WHERE case_id = :case_id AND state = :from_state RETURNING case_id
""")
_MOVE = sql("UPDATE cases SET agency_id = :agency_id, state = :state, updated_ms = :now_ms WHERE case_id = :case_id AND state = 'transferring' RETURNING case_id")
_CASES_OF_INSPECTION = sql("""
    SELECT c.case_id, c.agency_id FROM case_inspections i JOIN cases c ON c.case_id = i.case_id
    WHERE i.inspection_id = :inspection_id ORDER BY c.case_id
""")

_ADD_OFFICER = sql("INSERT INTO case_officers(case_id, officer_id) VALUES (:case_id, :officer_id) ON CONFLICT DO NOTHING")
_DROP_OFFICERS = sql("DELETE FROM case_officers WHERE case_id = :case_id")
_OFFICERS_OF = sql("""
    SELECT c.officer_id, o.name, o.agency_id, o.credential_no, o.fields, o.valid_from_ms, o.valid_to_ms, o.revoked_ms
    FROM case_officers c LEFT JOIN officers o ON o.officer_id = c.officer_id WHERE c.case_id = :case_id ORDER BY c.officer_id
""")
_OFFICER_FACTS = sql("""
    SELECT officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms FROM officers WHERE officer_id IN (:ids)
""")
_ADD_PARTY = sql("INSERT INTO case_parties(case_id, seq, kind, name, id_no) VALUES (:case_id, :seq, :kind, :name, :id_no)")
_PARTIES = sql("SELECT kind, name, id_no FROM case_parties WHERE case_id = :case_id ORDER BY seq")
_ADD_INSPECTION = sql("INSERT INTO case_inspections(case_id, inspection_id) VALUES (:case_id, :inspection_id) ON CONFLICT DO NOTHING RETURNING inspection_id")
_INSPECTIONS_OF = sql("""
    SELECT i.inspection_id, i.credit_code, i.lead_agency_id, i.field, i.status, i.opened_ms, i.ended_ms
    FROM case_inspections c JOIN inspections i ON i.inspection_id = c.inspection_id WHERE c.case_id = :case_id ORDER BY i.opened_ms
""")
_INSPECTION = sql("SELECT credit_code, lead_agency_id, field, status, ended_ms FROM inspections WHERE inspection_id = :inspection_id")
_PART_RESULTS = sql("SELECT officer_id, agency_id, field, result FROM inspection_parts WHERE inspection_id = :inspection_id ORDER BY officer_id")
_MEDIA = sql("""
    SELECT m.event_id, m.inspection_id, m.media_kind, m.file_name, m.sha256, m.size_bytes, m.started_ms, m.integrity, l.idx
    FROM media m LEFT JOIN evidence_log l ON l.event_id = m.event_id
    WHERE m.inspection_id IN (SELECT inspection_id FROM case_inspections WHERE case_id = :case_id)
    ORDER BY m.started_ms, m.event_id
""")
_NEXT_DOC = sql("SELECT coalesce(max(seq), 0) + 1 FROM case_documents WHERE case_id = :case_id")
_ADD_DOC = sql("""
    INSERT INTO case_documents(case_id, seq, title, sha256, record_id, added_by, added_ms)
    VALUES (:case_id, :seq, :title, :sha256, :record_id, :added_by, :added_ms)
""")
_DOCS = sql("""
    SELECT d.seq, d.title, d.sha256, d.record_id, l.idx, d.added_by, d.added_ms
    FROM case_documents d LEFT JOIN evidence_log l ON l.event_id = d.record_id WHERE d.case_id = :case_id ORDER BY d.seq
""")


def next_case_seq(tx: Tx, year: int) -> int:
    return int(tx.scalar(_NEXT_SEQ, year=year))


def insert_case(tx: Tx, **row: Any) -> None:
    tx.run(_INSERT_CASE, row)


def case(tx: Tx, case_id: str) -> dict[str, Any] | None:
    row = tx.one(_CASE, case_id=case_id)
    return None if row is None else dict(zip(CASE_COLUMNS, row, strict=True))


def cases(tx: Tx, *, agency_id: str | None, credit_code: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
    """Cases newest first; ``agency_id``: that agency's, and those being transferred to it."""
    rows = tx.all(_CASES, agency_id=agency_id, credit_code=credit_code, state=state, limit=limit)
    return [dict(zip(CASE_COLUMNS, r, strict=True)) for r in rows]


_EXTEND = sql("UPDATE cases SET deadline = :new, updated_ms = :now_ms WHERE case_id = :case_id AND deadline = :old RETURNING case_id")
_UNDECIDED_DUE = sql("""
    SELECT c.case_id, c.agency_id, c.deadline, c.title, c.credit_code FROM cases c
    WHERE c.state IN ('filed', 'investigating', 'review', 'transferring') AND c.deadline >= :from_day AND c.deadline <= :to_day
      AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.kind = :kind AND a.ref = c.case_id || '@' || c.deadline)
    ORDER BY c.deadline, c.case_id
""")


def extend_deadline(tx: Tx, case_id: str, old: str, new: str, now_ms: int) -> bool:
    """Move a case's decision deadline from ``old`` only (False when it changed meanwhile: a double click, a race)."""
    return tx.one(_EXTEND, case_id=case_id, old=old, new=new, now_ms=now_ms) is not None


def undecided_due(tx: Tx, kind: str, from_day: str, to_day: str) -> list[tuple[Any, ...]]:
    """(case_id, agency_id, deadline, title, credit_code) of cases not yet decided whose deadline falls in
    [from_day, to_day] and that have no alert ``kind`` for this deadline yet (its ref: ``<case id>@<deadline>``)."""
    return tx.all(_UNDECIDED_DUE, kind=kind, from_day=from_day, to_day=to_day)


def set_state(tx: Tx, case_id: str, from_state: str, to_state: str, now_ms: int) -> bool:
    """Move a case from ``from_state`` only (False when it is no longer there: a double click, a race)."""
    return tx.one(_SET_STATE, case_id=case_id, from_state=from_state, to_state=to_state, now_ms=now_ms) is not None


def move_case(tx: Tx, case_id: str, agency_id: str, state: str, now_ms: int) -> bool:
    return tx.one(_MOVE, case_id=case_id, agency_id=agency_id, state=state, now_ms=now_ms) is not None


def cases_of_inspection(tx: Tx, inspection_id: str) -> list[tuple[str, str]]:
    """(case_id, agency_id) of the cases an inspection is part of."""
    return [(r[0], r[1]) for r in tx.all(_CASES_OF_INSPECTION, inspection_id=inspection_id)]


def set_officers(tx: Tx, case_id: str, officer_ids: Iterable[str]) -> None:
    tx.run(_DROP_OFFICERS, case_id=case_id)
    tx.many(_ADD_OFFICER, [{"case_id": case_id, "officer_id": o} for o in officer_ids])


def officers_of(tx: Tx, case_id: str) -> list[tuple[Any, ...]]:
    """(officer_id, name, agency_id, credential_no, fields JSON, valid_from_ms, valid_to_ms, revoked_ms) of a case's officers."""
    return tx.all(_OFFICERS_OF, case_id=case_id)


def officer_facts(tx: Tx, officer_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """officer_id -> (officer_id, name, agency_id, credential_no, fields JSON, valid_from_ms, valid_to_ms, revoked_ms)."""
    return {r[0]: r for r in tx.all(_OFFICER_FACTS, ids=officer_ids)} if officer_ids else {}


def add_parties(tx: Tx, case_id: str, parties: Iterable[tuple[str, str, str | None]]) -> None:
    tx.many(_ADD_PARTY, [{"case_id": case_id, "seq": i, "kind": k, "name": n, "id_no": d} for i, (k, n, d) in enumerate(parties, 1)])


def parties(tx: Tx, case_id: str) -> list[tuple[str, str, str | None]]:
    return [(r[0], r[1], r[2]) for r in tx.all(_PARTIES, case_id=case_id)]


def add_inspection(tx: Tx, case_id: str, inspection_id: str) -> bool:
    return tx.one(_ADD_INSPECTION, case_id=case_id, inspection_id=inspection_id) is not None


def inspections_of(tx: Tx, case_id: str) -> list[tuple[Any, ...]]:
    """(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms) of a case's inspections."""
    return tx.all(_INSPECTIONS_OF, case_id=case_id)


def inspection(tx: Tx, inspection_id: str) -> tuple[Any, ...] | None:
    """(credit_code, lead_agency_id, field, status, ended_ms) of an inspection, or None."""
    return tx.one(_INSPECTION, inspection_id=inspection_id)


def part_results(tx: Tx, inspection_id: str) -> list[tuple[Any, ...]]:
    """(officer_id, agency_id, field, result) of each officer's part of an inspection."""
    return tx.all(_PART_RESULTS, inspection_id=inspection_id)


def media_of(tx: Tx, case_id: str) -> list[tuple[Any, ...]]:
    """(event_id, inspection_id, kind, file name, sha256, size, started_ms, integrity, log index) of the recordings and
    photos of a case's inspections."""
    return tx.all(_MEDIA, case_id=case_id)


def add_document(tx: Tx, **row: Any) -> int:
    seq = int(tx.scalar(_NEXT_DOC, case_id=row["case_id"]))
    tx.run(_ADD_DOC, {**row, "seq": seq})
    return seq


def documents(tx: Tx, case_id: str) -> list[tuple[Any, ...]]:
    """(seq, title, sha256, record_id, log index, added_by, added_ms) of a case's documents."""
    return tx.all(_DOCS, case_id=case_id)


# --- legal reviewers ---------------------------------------------------------------------------------------------

_GRANT = sql("""
    INSERT INTO case_reviewers(officer_id, agency_id, qualification_no, granted_by, granted_ms, revoked_ms)
    VALUES (:officer_id, :agency_id, :qualification_no, :granted_by, :granted_ms, NULL)
    ON CONFLICT (officer_id) DO UPDATE SET agency_id = excluded.agency_id, qualification_no = excluded.qualification_no,
        granted_by = excluded.granted_by, granted_ms = excluded.granted_ms, revoked_ms = NULL
    WHERE case_reviewers.revoked_ms IS NOT NULL
    RETURNING officer_id
""")
_REVOKE = sql("UPDATE case_reviewers SET revoked_ms = :now_ms WHERE officer_id = :officer_id AND revoked_ms IS NULL RETURNING officer_id")
_IS_REVIEWER = sql("SELECT agency_id FROM case_reviewers WHERE officer_id = :officer_id AND revoked_ms IS NULL")
_REVIEWERS = sql("""
    SELECT r.officer_id, o.name, r.agency_id, r.qualification_no, r.granted_by, r.granted_ms
    FROM case_reviewers r LEFT JOIN officers o ON o.officer_id = r.officer_id
    WHERE r.revoked_ms IS NULL AND (CAST(:agency_id AS TEXT) IS NULL OR r.agency_id = :agency_id) ORDER BY r.agency_id, r.officer_id
""")
_REVIEWER_SHARE = sql("""
    SELECT a.agency_id,
           (SELECT count(*) FROM officers o WHERE o.agency_id = a.agency_id AND o.revoked_ms IS NULL AND o.valid_to_ms > :now_ms),
           (SELECT count(*) FROM case_reviewers r JOIN officers o ON o.officer_id = r.officer_id
             WHERE r.agency_id = a.agency_id AND r.revoked_ms IS NULL AND o.revoked_ms IS NULL AND o.valid_to_ms > :now_ms)
    FROM agencies a ORDER BY a.agency_id
""")


def grant_reviewer(tx: Tx, **row: Any) -> bool:
    """Qualify an officer as a legal reviewer; False when they are one already."""
    return tx.one(_GRANT, row) is not None


def revoke_reviewer(tx: Tx, officer_id: str, now_ms: int) -> bool:
    return tx.one(_REVOKE, officer_id=officer_id, now_ms=now_ms) is not None


def reviewer_agency(tx: Tx, officer_id: str) -> str | None:
    """The agency an officer reviews for, if they hold a reviewer qualification."""
    return tx.scalar(_IS_REVIEWER, officer_id=officer_id)


def reviewers(tx: Tx, agency_id: str | None) -> list[tuple[Any, ...]]:
    """(officer_id, name, agency_id, qualification_no, granted_by, granted_ms) of the qualified reviewers."""
    return tx.all(_REVIEWERS, agency_id=agency_id)


def reviewer_share(tx: Tx, now_ms: int) -> dict[str, tuple[int, int]]:
    """agency -> (officers with a valid credential, of whom qualified reviewers)."""
    return {r[0]: (int(r[1]), int(r[2])) for r in tx.all(_REVIEWER_SHARE, now_ms=now_ms)}


_AGENCY_OFFICERS = sql("""
    SELECT officer_id, name FROM officers
    WHERE agency_id = :agency_id AND revoked_ms IS NULL AND valid_from_ms <= :now_ms AND valid_to_ms > :now_ms ORDER BY name, officer_id
""")


def agency_officers(tx: Tx, agency_id: str, now_ms: int) -> list[tuple[str, str]]:
    """(officer_id, name) of an agency's officers whose credential is valid at ``now_ms``."""
    return [(r[0], r[1]) for r in tx.all(_AGENCY_OFFICERS, agency_id=agency_id, now_ms=now_ms)]


_FIELD_NAMES = sql("SELECT field_id, name, name_en FROM fields ORDER BY field_id")


def field_names(tx: Tx) -> dict[str, tuple[str, str]]:
    """field_id -> (Chinese name, English name) of every enforcement field."""
    return {r[0]: (r[1], r[2] or r[1]) for r in tx.all(_FIELD_NAMES)}


_TO_OPEN = sql("""
    SELECT p.inspection_id, i.credit_code, e.name, p.field, p.ended_ms
    FROM inspection_parts p JOIN inspections i ON i.inspection_id = p.inspection_id
    LEFT JOIN enterprises e ON e.credit_code = i.credit_code
    WHERE p.agency_id = :agency_id AND p.result = 'case_opened' AND i.ended_ms IS NOT NULL AND i.ended_ms >= :since_ms
      AND NOT EXISTS (SELECT 1 FROM case_inspections ci JOIN cases c ON c.case_id = ci.case_id
                      WHERE ci.inspection_id = p.inspection_id AND c.agency_id = :agency_id)
    ORDER BY p.ended_ms DESC, p.inspection_id LIMIT :limit
""")


def inspections_to_open(tx: Tx, agency_id: str, since_ms: int, limit: int) -> list[tuple[Any, ...]]:
    """(inspection_id, credit_code, enterprise name, field, ended_ms) of the agency's inspections since ``since_ms`` that
    ended with 立案 (case_opened) and have no case of the agency yet, newest first (one row per officer's part)."""
    return tx.all(_TO_OPEN, agency_id=agency_id, since_ms=since_ms, limit=limit)
