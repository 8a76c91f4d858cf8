"""Enterprise codes in the database: the signing keys (``code_keys``), the codes issued (``issued_codes``) and their
revocations. Rows only; who may issue or revoke, and which date a new code carries, are server/rules/codes.py's rules."""

from __future__ import annotations

from server.storage.engine import Tx, sql

_ADD_KEY = sql(
    """INSERT INTO code_keys(key_id, public_key, created_ms) VALUES (:key_id, :public_key, :created_ms)
       ON CONFLICT (key_id) DO NOTHING"""
)
_ACTIVE_KEYS = sql("SELECT key_id, public_key FROM code_keys WHERE retired_ms IS NULL ORDER BY key_id")
_ENTERPRISE_NAME = sql("SELECT name FROM enterprises WHERE credit_code = :credit_code")
_LATEST_FROM = sql(
    """SELECT issued, text, revoked_ms FROM issued_codes WHERE credit_code = :credit_code AND issued >= :since
       ORDER BY issued DESC LIMIT 1"""
)
_ADD_CODE = sql(
    """INSERT INTO issued_codes(credit_code, issued, key_id, text, issued_ms)
       VALUES (:credit_code, :issued, :key_id, :text, :issued_ms)"""
)
_REVOKE = sql(
    """UPDATE issued_codes SET revoked_ms = :now_ms, revoked_reason = :reason, revoked_by = :username,
              revoked_role = :role, revoked_agency_id = :agency_id
       WHERE credit_code = :credit_code AND revoked_ms IS NULL
       RETURNING issued"""
)
_REVOKED = sql("SELECT credit_code, issued FROM issued_codes WHERE revoked_ms IS NOT NULL ORDER BY credit_code, issued")
_REVOKED_REASON = sql(
    "SELECT revoked_reason FROM issued_codes WHERE credit_code = :credit_code AND issued = :issued AND revoked_ms IS NOT NULL"
)
_AGENCY_NAMES = sql("SELECT name, coalesce(nullif(name_en, ''), name) FROM agencies WHERE agency_id = :agency_id")
# The agency is in the enterprise's region (or has none), and took part in an inspection of it since
# :inspected_since, or has a plan in force at :now_ms naming it.
_DEALS_WITH = sql(
    """SELECT 1 FROM agencies a JOIN enterprises e ON e.credit_code = :credit_code
       WHERE a.agency_id = :agency_id AND (a.region = '' OR a.region = e.region)
         AND (EXISTS (SELECT 1 FROM inspections i JOIN inspection_parts p ON p.inspection_id = i.inspection_id
                      WHERE i.credit_code = :credit_code AND p.agency_id = :agency_id AND p.joined_ms >= :inspected_since)
              OR EXISTS (SELECT 1 FROM plan_targets t JOIN plans l ON l.plan_id = t.plan_id
                         WHERE t.credit_code = :credit_code AND l.agency_id = :agency_id
                           AND l.valid_from_ms <= :now_ms AND l.valid_to_ms >= :now_ms))"""
)


def lock_enterprise_codes(tx: Tx, credit_code: str) -> None:
    """Serialise issuing and revoking one enterprise's codes until this transaction ends (two issuers on
    PostgreSQL would both see no code in force and insert the same date)."""
    tx.lock(f"fe:codes:{credit_code}")


def add_key(tx: Tx, key_id: str, public_hex: str, now_ms: int) -> None:
    """Register a code key (nothing if its id is already registered)."""
    tx.run(_ADD_KEY, key_id=key_id, public_key=public_hex, created_ms=now_ms)


def active_keys(tx: Tx) -> dict[str, str]:
    """Key id -> public key (hex) of every key not retired."""
    return dict(tx.all(_ACTIVE_KEYS))


def enterprise_name(tx: Tx, credit_code: str) -> str | None:
    """The registered enterprise's name, or None."""
    name: str | None = tx.scalar(_ENTERPRISE_NAME, credit_code=credit_code)
    return name


def latest_code_from(tx: Tx, credit_code: str, since: str) -> tuple[str, str, int | None] | None:
    """(issued date, text, revoked_ms) of the enterprise's latest code dated ``since`` (YYYY-MM-DD) or later."""
    row = tx.one(_LATEST_FROM, credit_code=credit_code, since=since)
    return None if row is None else (row[0], row[1], row[2])


def add_code(tx: Tx, credit_code: str, issued: str, key_id: str, text: str, now_ms: int) -> None:
    """Record an issued code."""
    tx.run(_ADD_CODE, credit_code=credit_code, issued=issued, key_id=key_id, text=text, issued_ms=now_ms)


def revoke_in_force(tx: Tx, credit_code: str, *, reason: str, username: str, role: str, agency_id: str | None, now_ms: int) -> list[str]:
    """Mark every code of the enterprise not yet revoked as revoked; the issue dates of those it marked, in order
    (a concurrent revocation of the same codes finds them taken: PostgreSQL re-checks the row after the wait)."""
    rows = tx.all(_REVOKE, credit_code=credit_code, now_ms=now_ms, reason=reason, username=username, role=role, agency_id=agency_id)
    return sorted(r[0] for r in rows)


def revoked_codes(tx: Tx) -> list[tuple[str, str]]:
    """(credit code, issue date) of every revoked code."""
    return [(r[0], r[1]) for r in tx.all(_REVOKED)]


def revoked_reason(tx: Tx, credit_code: str, issued: str) -> str | None:
    """Why the enterprise's code of that date was revoked; None if it was not."""
    row = tx.one(_REVOKED_REASON, credit_code=credit_code, issued=issued)
    return None if row is None else str(row[0] or "")


def agency_names(tx: Tx, agency_id: str) -> tuple[str, str] | None:
    """(Chinese name, English name or else the Chinese one) of an agency."""
    row = tx.one(_AGENCY_NAMES, agency_id=agency_id)
    return None if row is None else (row[0], row[1])


def agency_deals_with(tx: Tx, agency_id: str, credit_code: str, *, inspected_since: int, now_ms: int) -> bool:
    """Is the enterprise in the agency's region, with an inspection part of the agency since ``inspected_since``
    or a plan of the agency in force at ``now_ms`` naming it?"""
    return tx.one(_DEALS_WITH, agency_id=agency_id, credit_code=credit_code, inspected_since=inspected_since, now_ms=now_ms) is not None
