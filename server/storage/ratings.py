"""Rows of enterprises' ratings of inspections (server/supervision/ratings.py holds who may rate what)."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql

RATING_COLUMNS = ("inspection_id", "credit_code", "lead_agency_id", "score", "comment", "rated_by", "rated_ms")

_INSPECTION = sql("SELECT credit_code, lead_agency_id, status, opened_ms FROM inspections WHERE inspection_id = :id")
_INSERT = sql(f"""
    INSERT INTO ratings({', '.join(RATING_COLUMNS)}) VALUES ({', '.join(':' + c for c in RATING_COLUMNS)})
    ON CONFLICT (inspection_id) DO NOTHING RETURNING inspection_id
""")
_RATINGS = sql(f"""
    SELECT {', '.join(f'r.{c}' for c in RATING_COLUMNS)}, i.opened_ms FROM ratings r JOIN inspections i ON i.inspection_id = r.inspection_id
    WHERE (CAST(:credit_code AS TEXT) IS NULL OR r.credit_code = :credit_code)
      AND (CAST(:agency_id AS TEXT) IS NULL OR r.lead_agency_id = :agency_id)
    ORDER BY r.rated_ms DESC, r.inspection_id LIMIT :limit
""")
_ONE = sql(f"""
    SELECT {', '.join(f'r.{c}' for c in RATING_COLUMNS)}, i.opened_ms FROM ratings r JOIN inspections i ON i.inspection_id = r.inspection_id
    WHERE r.inspection_id = :id
""")
_OF = sql("SELECT inspection_id, score FROM ratings WHERE inspection_id IN (:ids)")


def inspection(tx: Tx, inspection_id: str) -> tuple[str, str, str, int] | None:
    """(credit code, lead agency, status, opened) of an inspection."""
    row = tx.one(_INSPECTION, id=inspection_id)
    return None if row is None else (row[0], row[1], row[2], int(row[3]))


def insert(tx: Tx, **row: Any) -> bool:
    """One rating; False if the inspection was rated already."""
    return tx.one(_INSERT, row) is not None


def ratings(tx: Tx, *, credit_code: str | None, agency_id: str | None, limit: int) -> list[tuple[Any, ...]]:
    """Ratings newest first (RATING_COLUMNS and the inspection's start)."""
    return tx.all(_RATINGS, credit_code=credit_code, agency_id=agency_id, limit=limit)


def scores_of(tx: Tx, inspection_ids: list[str]) -> dict[str, int]:
    """inspection id -> its score, for those rated."""
    return {i: int(s) for i, s in tx.all(_OF, ids=inspection_ids)} if inspection_ids else {}


def rating(tx: Tx, inspection_id: str) -> tuple[Any, ...] | None:
    """One rating (RATING_COLUMNS and the inspection's start)."""
    return tx.one(_ONE, id=inspection_id)
