"""The exception registers in the database: superior assignments and major-risk notices (``exception_bases``), the
review queue of unregistered urgent exceptions (``exception_reviews``), and the register lookups that check a stated
exception (complaints, plans, rectification orders, earlier uses). Rows only; what a basis must fit is
server/rules/exception_bases.py's rule."""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from server.storage.engine import Tx, sql

ReviewStatus = Literal["pending", "confirmed", "rejected"]


class BasisView(msgspec.Struct, kw_only=True):
    """A registered superior assignment or major-risk notice."""

    kind: str
    reference: str
    credit_code: str
    enterprise_name: str | None
    agency_id: str | None
    field: str | None
    issued_by: str
    summary: str
    valid_from_ms: int
    valid_to_ms: int
    created_by: str
    created_ms: int
    withdrawn_ms: int | None
    withdrawn_by: str | None


class ReviewView(msgspec.Struct, kw_only=True):
    """An inspection that went ahead on an unregistered urgent exception, and what a supervisor said of it."""

    scan_id: str
    inspection_id: str | None
    kind: str
    reference: str
    credit_code: str
    enterprise_name: str | None
    officer_id: str
    agency_id: str | None
    problem: str
    created_ms: int
    status: ReviewStatus
    reviewed_by: str | None
    reviewed_ms: int | None
    note: str | None


class Complaint(NamedTuple):
    credit_code: str
    closed_ms: int | None
    field: str | None


class Plan(NamedTuple):
    agency_id: str
    valid_from_ms: int
    valid_to_ms: int
    kind: str
    field: str


class BasisFit(NamedTuple):
    """What decides whether a register entry fits a scan."""

    reference: str
    credit_code: str
    agency_id: str | None
    field: str | None
    valid_from_ms: int
    valid_to_ms: int
    withdrawn_ms: int | None


class NewBasis(NamedTuple):
    kind: str
    reference: str
    credit_code: str
    agency_id: str | None
    field: str | None
    issued_by: str
    summary: str
    valid_from_ms: int
    valid_to_ms: int


# ------------------------------------------------------------------------------------------ register lookups

_COMPLAINT = sql("SELECT credit_code, closed_ms, field FROM complaints WHERE ticket_no = :ticket_no")
_PLAN = sql("SELECT agency_id, valid_from_ms, valid_to_ms, kind, field FROM plans WHERE plan_id = :plan_id")
_PLAN_TARGET = sql("SELECT 1 FROM plan_targets WHERE plan_id = :plan_id AND credit_code = :credit_code")
_INSPECTED_ENTERPRISE = sql("SELECT credit_code FROM inspections WHERE inspection_id = :inspection_id")
# Both backends: an empty :field means any field.
_RECTIFICATION_ORDERED = sql(
    """SELECT max(ended_ms) FROM inspection_parts
       WHERE inspection_id = :inspection_id AND result = 'rectification_ordered' AND agency_id = :agency_id
         AND (:field = '' OR field = :field)"""
)
_REVIEW_REJECTED = sql("SELECT 1 FROM exception_reviews WHERE inspection_id = :inspection_id AND status = 'rejected'")
_BASIS_USED = sql(
    """SELECT 1 FROM inspections WHERE credit_code = :credit_code AND lead_agency_id = :agency_id
       AND exception_kind = :kind AND exception_ref = :reference"""
)
_ENTERPRISE_KNOWN = sql("SELECT 1 FROM enterprises WHERE credit_code = :credit_code")
_AGENCY_KNOWN = sql("SELECT 1 FROM agencies WHERE agency_id = :agency_id")
_FIELD_KNOWN = sql("SELECT 1 FROM fields WHERE field_id = :field_id")
_REGIONS = sql("SELECT a.region, e.region FROM agencies a, enterprises e WHERE a.agency_id = :agency_id AND e.credit_code = :credit_code")


def complaint(tx: Tx, ticket_no: str) -> Complaint | None:
    """A complaint ticket."""
    row = tx.one(_COMPLAINT, ticket_no=ticket_no)
    return None if row is None else Complaint(*row)


def plan(tx: Tx, plan_id: str) -> Plan | None:
    """A plan (random draw, special action, ...)."""
    row = tx.one(_PLAN, plan_id=plan_id)
    return None if row is None else Plan(*row)


def plan_names(tx: Tx, plan_id: str, credit_code: str) -> bool:
    """Does the plan list the enterprise among its targets?"""
    return tx.one(_PLAN_TARGET, plan_id=plan_id, credit_code=credit_code) is not None


def inspected_enterprise(tx: Tx, inspection_id: str) -> str | None:
    """The credit code an inspection concerns; None if there is no such inspection."""
    code: str | None = tx.scalar(_INSPECTED_ENTERPRISE, inspection_id=inspection_id)
    return code


def rectification_ordered_ms(tx: Tx, inspection_id: str, agency_id: str, field: str) -> int | None:
    """When the agency's latest part of the inspection that ordered rectification in ``field`` (empty: any) ended."""
    ended: int | None = tx.scalar(_RECTIFICATION_ORDERED, inspection_id=inspection_id, agency_id=agency_id, field=field)
    return ended


def review_rejected(tx: Tx, inspection_id: str) -> bool:
    """Was the basis of this inspection rejected by a supervisor?"""
    return tx.one(_REVIEW_REJECTED, inspection_id=inspection_id) is not None


def lock_basis_use(tx: Tx, credit_code: str, agency_id: str, kind: str, reference: str) -> None:
    """Serialise, until this transaction ends, the transactions that may open an inspection of the enterprise by
    the agency on this basis: the second then sees the first's inspection (PostgreSQL; SQLite writers take turns)."""
    tx.lock(f"fe:basis:{credit_code}:{agency_id}:{kind}:{reference}")


def basis_used(tx: Tx, credit_code: str, agency_id: str, kind: str, reference: str) -> bool:
    """Did the agency lead an inspection of the enterprise on this very basis?"""
    return tx.one(_BASIS_USED, credit_code=credit_code, agency_id=agency_id, kind=kind, reference=reference) is not None


def enterprise_known(tx: Tx, credit_code: str) -> bool:
    return tx.one(_ENTERPRISE_KNOWN, credit_code=credit_code) is not None


def agency_known(tx: Tx, agency_id: str) -> bool:
    return tx.one(_AGENCY_KNOWN, agency_id=agency_id) is not None


def field_known(tx: Tx, field_id: str) -> bool:
    return tx.one(_FIELD_KNOWN, field_id=field_id) is not None


def regions(tx: Tx, agency_id: str, credit_code: str) -> tuple[str, str] | None:
    """(the agency's region, empty for all; the enterprise's region), or None if either is not registered."""
    row = tx.one(_REGIONS, agency_id=agency_id, credit_code=credit_code)
    return None if row is None else (row[0], row[1])


# ------------------------------------------------------------------------------------------ the register

_FIT_COLS = "reference, credit_code, agency_id, field, valid_from_ms, valid_to_ms, withdrawn_ms"
_FITS_EXACT = sql(f"SELECT {_FIT_COLS} FROM exception_bases WHERE kind = :kind AND reference = :reference ORDER BY credit_code")
_FITS_OF_KIND = sql(f"SELECT {_FIT_COLS} FROM exception_bases WHERE kind = :kind ORDER BY reference, credit_code")
_BASIS_COLS = (
    "b.kind, b.reference, b.credit_code, e.name, b.agency_id, b.field, b.issued_by, b.summary, b.valid_from_ms,"
    " b.valid_to_ms, b.created_by, b.created_ms, b.withdrawn_ms, b.withdrawn_by"
)
_BASIS_KEYS = tuple(BasisView.__struct_fields__)
_ADD_BASIS = sql(
    """INSERT INTO exception_bases(kind, reference, credit_code, agency_id, field, issued_by, summary, valid_from_ms,
                                   valid_to_ms, created_by, created_ms)
       VALUES (:kind, :reference, :credit_code, :agency_id, :field, :issued_by, :summary, :valid_from_ms,
               :valid_to_ms, :created_by, :created_ms)
       ON CONFLICT (kind, reference, credit_code) DO NOTHING
       RETURNING kind"""
)
_GET_BASIS = sql(
    f"""SELECT {_BASIS_COLS} FROM exception_bases b LEFT JOIN enterprises e ON e.credit_code = b.credit_code
        WHERE b.kind = :kind AND b.reference = :reference AND b.credit_code = :credit_code"""
)
# A NULL filter matches every row; :agency_id also matches entries given to any agency.
_LIST_BASES = sql(
    f"""SELECT {_BASIS_COLS} FROM exception_bases b LEFT JOIN enterprises e ON e.credit_code = b.credit_code
        WHERE (CAST(:agency_id AS TEXT) IS NULL OR b.agency_id = :agency_id OR b.agency_id IS NULL)
          AND (CAST(:credit_code AS TEXT) IS NULL OR b.credit_code = :credit_code)
          AND (CAST(:kind AS TEXT) IS NULL OR b.kind = :kind)
        ORDER BY b.created_ms DESC, b.kind, b.reference, b.credit_code
        LIMIT :limit"""
)
_WITHDRAW = sql(
    """UPDATE exception_bases SET withdrawn_ms = :now_ms, withdrawn_by = :by
       WHERE kind = :kind AND reference = :reference AND credit_code = :credit_code AND withdrawn_ms IS NULL"""
)


def bases_named(tx: Tx, kind: str, reference: str) -> list[BasisFit]:
    """The entries of a kind with exactly this reference (one per enterprise)."""
    return [BasisFit(*r) for r in tx.all(_FITS_EXACT, kind=kind, reference=reference)]


def bases_of_kind(tx: Tx, kind: str) -> list[BasisFit]:
    """Every entry of a kind (to find look-alikes of a reference, which SQL cannot compare)."""
    return [BasisFit(*r) for r in tx.all(_FITS_OF_KIND, kind=kind)]


def add_basis(tx: Tx, b: NewBasis, created_by: str, now_ms: int) -> bool:
    """Insert an entry; False if the enterprise already has one of that kind and reference."""
    return tx.one(_ADD_BASIS, b._asdict(), created_by=created_by, created_ms=now_ms) is not None


def get_basis(tx: Tx, kind: str, reference: str, credit_code: str) -> BasisView | None:
    """One entry, with the enterprise's name."""
    row = tx.one(_GET_BASIS, kind=kind, reference=reference, credit_code=credit_code)
    return None if row is None else BasisView(**dict(zip(_BASIS_KEYS, row, strict=True)))


def list_bases(tx: Tx, *, agency_id: str | None, credit_code: str | None, kind: str | None, limit: int) -> list[BasisView]:
    """Entries, newest first; each filter given narrows them."""
    rows = tx.all(_LIST_BASES, agency_id=agency_id, credit_code=credit_code, kind=kind, limit=limit)
    return [BasisView(**dict(zip(_BASIS_KEYS, r, strict=True))) for r in rows]


def withdraw_basis(tx: Tx, kind: str, reference: str, credit_code: str, by: str, now_ms: int) -> bool:
    """Mark an entry withdrawn; False if there is none not yet withdrawn."""
    cur = tx.run(_WITHDRAW, kind=kind, reference=reference, credit_code=credit_code, by=by, now_ms=now_ms)
    return bool(cur.rowcount)


# ------------------------------------------------------------------------------------------ the review queue

_REVIEW_COLS = (
    "r.scan_id, r.inspection_id, r.kind, r.reference, r.credit_code, e.name, r.officer_id, r.agency_id, r.problem,"
    " r.created_ms, r.status, r.reviewed_by, r.reviewed_ms, r.note"
)
_REVIEW_KEYS = tuple(ReviewView.__struct_fields__)
_QUEUE_REVIEW = sql(
    """INSERT INTO exception_reviews(scan_id, inspection_id, kind, reference, credit_code, officer_id, agency_id,
                                     problem, created_ms, status)
       VALUES (:scan_id, :inspection_id, :kind, :reference, :credit_code, :officer_id, :agency_id, :problem,
               :created_ms, 'pending')
       ON CONFLICT (scan_id) DO NOTHING"""
)
_PENDING_OF = sql("SELECT count(*) FROM exception_reviews WHERE officer_id = :officer_id AND status = 'pending'")
_REVIEW_FROM = f"SELECT {_REVIEW_COLS} FROM exception_reviews r LEFT JOIN enterprises e ON e.credit_code = r.credit_code"
_GET_REVIEW = sql(f"{_REVIEW_FROM} WHERE r.scan_id = :scan_id")
_REVIEW_FILTER = """WHERE (CAST(:agency_id AS TEXT) IS NULL OR r.agency_id = :agency_id)
                      AND (CAST(:status AS TEXT) IS NULL OR r.status = :status)"""
_LIST_REVIEWS_OLDEST = sql(f"{_REVIEW_FROM} {_REVIEW_FILTER} ORDER BY r.created_ms, r.scan_id LIMIT :limit")
_LIST_REVIEWS_NEWEST = sql(f"{_REVIEW_FROM} {_REVIEW_FILTER} ORDER BY r.created_ms DESC, r.scan_id LIMIT :limit")
_DECIDE_REVIEW = sql(
    """UPDATE exception_reviews SET status = :verdict, reviewed_by = :by, reviewed_ms = :now_ms, note = :note
       WHERE scan_id = :scan_id AND status = 'pending'"""
)
_REVIEW_COUNTS = sql(
    """SELECT status, count(*) FROM exception_reviews
       WHERE created_ms >= :since_ms AND created_ms < :until_ms
         AND (CAST(:agency_id AS TEXT) IS NULL OR agency_id = :agency_id)
       GROUP BY status ORDER BY status"""
)


def queue_review(
    tx: Tx, *, scan_id: str, inspection_id: str | None, kind: str, reference: str, credit_code: str,
    officer_id: str, agency_id: str | None, problem: str, now_ms: int,
) -> None:  # fmt: skip
    """Add a pending review (nothing if the scan already has one)."""
    tx.run(
        _QUEUE_REVIEW, scan_id=scan_id, inspection_id=inspection_id, kind=kind, reference=reference, credit_code=credit_code,
        officer_id=officer_id, agency_id=agency_id, problem=problem, created_ms=now_ms,
    )  # fmt: skip


def pending_reviews_of(tx: Tx, officer_id: str) -> int:
    """How many of the officer's reviews are pending."""
    return int(tx.scalar(_PENDING_OF, officer_id=officer_id))


def get_review(tx: Tx, scan_id: str) -> ReviewView | None:
    """One review, with the enterprise's name."""
    row = tx.one(_GET_REVIEW, scan_id=scan_id)
    return None if row is None else ReviewView(**dict(zip(_REVIEW_KEYS, row, strict=True)))


def list_reviews(tx: Tx, *, agency_id: str | None, status: str | None, oldest_first: bool, limit: int) -> list[ReviewView]:
    """Reviews of one agency (None: all) and status (None: any), by creation time."""
    stmt = _LIST_REVIEWS_OLDEST if oldest_first else _LIST_REVIEWS_NEWEST
    rows = tx.all(stmt, agency_id=agency_id, status=status, limit=limit)
    return [ReviewView(**dict(zip(_REVIEW_KEYS, r, strict=True))) for r in rows]


def decide_review(tx: Tx, scan_id: str, verdict: str, by: str, note: str, now_ms: int) -> bool:
    """Record a verdict on a pending review; False if it is not pending (decided, or no such review)."""
    cur = tx.run(_DECIDE_REVIEW, scan_id=scan_id, verdict=verdict, by=by, note=note, now_ms=now_ms)
    return bool(cur.rowcount)


def review_counts(tx: Tx, *, agency_id: str | None, since_ms: int, until_ms: int) -> dict[str, int]:
    """Reviews created in [since_ms, until_ms) by status (only the statuses that occur)."""
    return {status: int(n) for status, n in tx.all(_REVIEW_COUNTS, agency_id=agency_id, since_ms=since_ms, until_ms=until_ms)}
