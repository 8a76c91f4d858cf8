"""Rows of random draws (双随机): the registers a draw is checked against, its candidates, the draw itself and the
inspection plan it makes. Which draw may be made and who is eligible are server/jobs/draws.py's rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.storage.engine import Tx, sql

_AGENCY_REGION_FIELDS = sql("SELECT region, fields FROM agencies WHERE agency_id = :agency_id")
_FIELD_REGISTERED = sql("SELECT count(*) FROM fields WHERE field_id = :field")
_REGION_REGISTERED = sql("""
    SELECT CASE WHEN EXISTS (SELECT 1 FROM agencies WHERE region = :region)
                  OR EXISTS (SELECT 1 FROM enterprises WHERE region = :region) THEN 1 ELSE 0 END
""")
_ANNOUNCED = sql("""
    SELECT CAST(coalesce(sum(enterprise_count), 0) AS BIGINT) FROM draws
    WHERE agency_id = :agency_id AND field = :field AND region = :region AND committed_ms > :since_ms
""")
_INSERT_DRAW = sql("""
    INSERT INTO draws(draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed_hash, seed,
                      committed_ms, draw_at_ms, status)
    VALUES (:draw_id, :agency_id, :field, :region, :title, :enterprise_count, :officers_per_team, :seed_hash, :seed,
            :committed_ms, :draw_at_ms, 'committed')
""")
_ENTERPRISES_NOT_PROTECTED = sql("""
    SELECT e.credit_code, e.risk, e.credit,
           (SELECT count(*) FROM inspections i WHERE i.credit_code = e.credit_code AND i.opened_ms >= :year_start_ms)
    FROM enterprises e
    WHERE (:region = '' OR e.region = :region)
      AND NOT EXISTS (SELECT 1 FROM no_disturb n WHERE n.credit_code = e.credit_code AND n.removed_ms IS NULL
                      AND n.valid_from_ms <= :now_ms AND (n.valid_to_ms IS NULL OR n.valid_to_ms >= :now_ms))
    ORDER BY e.credit_code
""")
_OFFICERS_VALID = sql("""
    SELECT officer_id, fields FROM officers
    WHERE agency_id = :agency_id AND revoked_ms IS NULL AND valid_from_ms <= :now_ms AND valid_to_ms >= :now_ms
    ORDER BY officer_id
""")
_CONFLICTS = sql("SELECT officer_id, credit_code FROM conflicts ORDER BY officer_id, credit_code")
_DUE_DRAWS = sql("""
    SELECT draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed FROM draws
    WHERE status = 'committed' AND draw_at_ms <= :now_ms ORDER BY draw_at_ms, draw_id
""")
_MARK_DRAWN = sql("""
    UPDATE draws SET status = 'drawn', drawn_ms = :now_ms, result_json = :result_json
    WHERE draw_id = :draw_id AND status = 'committed' RETURNING draw_id
""")
_INSERT_PLAN = sql("""
    INSERT INTO plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms)
    VALUES (:plan_id, :agency_id, :field, 'random_draw', :title, :valid_from_ms, :valid_to_ms, :created_ms)
""")
_INSERT_PLAN_TARGET = sql("INSERT INTO plan_targets(plan_id, credit_code) VALUES (:plan_id, :credit_code)")
_DRAW = sql("""
    SELECT draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed_hash, seed, committed_ms,
           draw_at_ms, drawn_ms, status, result_json
    FROM draws WHERE draw_id = :draw_id
""")
_DRAW_TARGET_NAMES = sql("""
    SELECT e.credit_code, e.name FROM enterprises e
    WHERE e.credit_code IN (SELECT t.credit_code FROM plan_targets t WHERE t.plan_id = :plan_id) ORDER BY e.credit_code
""")
#: The columns of ``draw`` in order (the last, result_json, is left out of the public view's keys).
DRAW_COLUMNS = (
    "draw_id", "agency_id", "field", "region", "title", "enterprise_count", "officers_per_team", "seed_hash", "seed",
    "committed_ms", "draw_at_ms", "drawn_ms", "status", "result_json",
)


def lock_draw_share(tx: Tx, agency_id: str, field: str, region: str) -> None:
    """Serialise the announcements of one agency, field and region until this transaction ends, so that two cannot
    both pass the share check (PostgreSQL; SQLite's writers take turns anyway)."""
    tx.lock(f"fe:draws:{agency_id}:{field}:{region}")


def agency_region_fields(tx: Tx, agency_id: str) -> tuple[str, str] | None:
    """(region, fields as JSON text) of an agency, or None when it is not registered."""
    row = tx.one(_AGENCY_REGION_FIELDS, agency_id=agency_id)
    return None if row is None else (row[0], row[1])


def field_registered(tx: Tx, field: str) -> bool:
    return bool(tx.scalar(_FIELD_REGISTERED, field=field))


def region_registered(tx: Tx, region: str) -> bool:
    """Whether an agency or an enterprise is registered in ``region``."""
    return bool(tx.scalar(_REGION_REGISTERED, region=region))


def enterprises_announced(tx: Tx, agency_id: str, field: str, region: str, since_ms: int) -> int:
    """Enterprises named by the draws of one agency, field and region committed after ``since_ms``."""
    return int(tx.scalar(_ANNOUNCED, agency_id=agency_id, field=field, region=region, since_ms=since_ms))


def insert_draw(tx: Tx, **row: Any) -> None:
    """A committed draw (keys: the columns of ``draws`` but status, drawn_ms and result_json)."""
    tx.run(_INSERT_DRAW, row)


def enterprises_not_protected(tx: Tx, region: str, year_start_ms: int, now_ms: int) -> list[tuple[str, str, str, int]]:
    """(credit_code, risk, credit, inspections this year) of every enterprise in ``region`` ('' = all) not on the
    no-disturb list at ``now_ms``, by credit code."""
    rows = tx.all(_ENTERPRISES_NOT_PROTECTED, region=region, year_start_ms=year_start_ms, now_ms=now_ms)
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


def officers_valid(tx: Tx, agency_id: str, now_ms: int) -> list[tuple[str, str]]:
    """(officer_id, fields as JSON text) of the agency's officers with a valid, unrevoked credential at ``now_ms``."""
    return [(r[0], r[1]) for r in tx.all(_OFFICERS_VALID, agency_id=agency_id, now_ms=now_ms)]


def declared_conflicts(tx: Tx) -> list[tuple[str, str]]:
    """Every declared (officer, enterprise) conflict, sorted."""
    return [(r[0], r[1]) for r in tx.all(_CONFLICTS)]


def due_draws(tx: Tx, now_ms: int) -> list[tuple[str, str, str, str, str, int, int, str]]:
    """(draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed hex) of the committed
    draws whose time has come, oldest first."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in tx.all(_DUE_DRAWS, now_ms=now_ms)]


def mark_drawn(tx: Tx, draw_id: str, now_ms: int, result_json: str) -> bool:
    """Record a draw's result; False when it is no longer committed (drawn meanwhile by another transaction)."""
    return tx.one(_MARK_DRAWN, draw_id=draw_id, now_ms=now_ms, result_json=result_json) is not None


def insert_draw_plan(tx: Tx, *, plan_id: str, agency_id: str, field: str, title: str, valid_from_ms: int, valid_to_ms: int, targets: Sequence[str]) -> None:
    """The inspection plan a draw makes, with its target enterprises."""
    tx.run(_INSERT_PLAN, plan_id=plan_id, agency_id=agency_id, field=field, title=title, valid_from_ms=valid_from_ms, valid_to_ms=valid_to_ms, created_ms=valid_from_ms)
    tx.many(_INSERT_PLAN_TARGET, [{"plan_id": plan_id, "credit_code": c} for c in targets])


def draw(tx: Tx, draw_id: str) -> dict[str, Any] | None:
    """A draw's row keyed by DRAW_COLUMNS, or None."""
    row = tx.one(_DRAW, draw_id=draw_id)
    return None if row is None else dict(zip(DRAW_COLUMNS, row, strict=True))


def draw_target_names(tx: Tx, draw_id: str) -> dict[str, str]:
    """credit code -> name of the registered enterprises a draw's plan names."""
    return {r[0]: r[1] for r in tx.all(_DRAW_TARGET_NAMES, plan_id=draw_id)}
