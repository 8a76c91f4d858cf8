"""Scans, their decisions, inspections and their parts: the rows behind scan-to-inspect (docs/storage-seam.md §2).

Also the register reads a scan's decision needs (officer, enterprise, no-disturb entry, names), so that one
module holds what ``server.rules.scanning`` runs. Rows only: who may inspect what is decided in server/rules/scanning.py and
protocol/decision.py.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from server.storage.engine import Tx, rows_as_dicts, sql


class OpenInspection(msgspec.Struct, frozen=True):
    """An inspection under way at an enterprise, which a scan may join."""

    inspection_id: str
    lead_agency_id: str
    field: str
    opened_ms: int


class RecentPart(msgspec.Struct, frozen=True):
    """One agency's part in an inspection of an enterprise (what the repeat rule looks at)."""

    inspection_id: str
    agency_id: str
    field: str
    joined_ms: int
    ended_ms: int | None


class InspectionCounts(msgspec.Struct, frozen=True):
    """Inspections opened at an enterprise since each of four instants."""

    day: int
    week: int
    month: int
    year: int
    fruitless: int  # of those since ``year``, ended with nothing found (every part's result no_violation)


class ScanRow(msgspec.Struct, frozen=True, kw_only=True):
    """One decided scan, as recorded."""

    scan_id: str
    channel: str
    device_id: str | None
    officer_id: str
    agency_id: str | None
    credit_code: str | None
    code_text: str
    field: str | None
    matter: str
    reason: str
    exception_kind: str | None
    exception_ref: str | None
    lat: float | None
    lon: float | None
    scanned_ms: int
    decided_ms: int
    outcome: str
    code: str
    inspection_id: str | None
    decision_json: str


class NewInspection(msgspec.Struct, frozen=True, kw_only=True):
    inspection_id: str
    credit_code: str
    region: str
    lead_agency_id: str
    field: str
    opened_ms: int
    exception_kind: str | None
    exception_ref: str | None


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """An officer taking part in an inspection."""

    inspection_id: str
    officer_id: str
    agency_id: str
    field: str
    matter: str
    scan_id: str | None
    device_id: str | None
    joined_ms: int


# --- the registers, as a scan's decision reads them ---------------------------------------------------------------

_CREDENTIAL = sql("""
    SELECT officer_id, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms, name FROM officers WHERE officer_id = :officer_id
""")
# Agencies first, then fields: a field named like an agency wins, as it always did.
_NAMES = sql("SELECT 0, agency_id, name FROM agencies UNION ALL SELECT 1, field_id, name FROM fields ORDER BY 1, 2")
_DEVICE_AGENCY = sql("SELECT agency_id FROM devices WHERE device_id = :device_id")
#: The columns of ``enterprise_card``'s row, in order.
ENTERPRISE_COLUMNS = ("credit_code", "name", "address", "region", "risk", "credit")
_ENTERPRISE_CARD = sql(f"SELECT {', '.join(ENTERPRISE_COLUMNS)} FROM enterprises WHERE credit_code = :credit_code")
_LISTED = sql("""
    SELECT 1 FROM no_disturb WHERE credit_code = :credit_code AND removed_ms IS NULL AND (valid_to_ms IS NULL OR valid_to_ms >= :now_ms) LIMIT 1
""")


def credential_row(tx: Tx, officer_id: str) -> tuple[str, str, str, str, int, int, int | None, str] | None:
    """(officer_id, agency_id, credential_no, fields as JSON text, valid_from_ms, valid_to_ms, revoked_ms, name) or None."""
    return tx.one(_CREDENTIAL, officer_id=officer_id)  # type: ignore[return-value]


def names(tx: Tx) -> dict[str, str]:
    """Agency and field ids -> their names."""
    return {key: name for _, key, name in tx.all(_NAMES)}


def enterprise_card(tx: Tx, credit_code: str) -> tuple[object, ...] | None:
    """The enterprise's register row in ``ENTERPRISE_COLUMNS`` order, or None."""
    return tx.one(_ENTERPRISE_CARD, credit_code=credit_code)


def on_no_disturb_list(tx: Tx, credit_code: str, now_ms: int) -> bool:
    """Is the enterprise on the no-disturb list now or from some day on (an entry not removed, not expired)?"""
    return tx.one(_LISTED, credit_code=credit_code, now_ms=now_ms) is not None


def device_agency(tx: Tx, device_id: str) -> str | None:
    return tx.scalar(_DEVICE_AGENCY, device_id=device_id)  # type: ignore[no-any-return]


# --- inspections at an enterprise ---------------------------------------------------------------------------------

#: What a scan's decision reads by key, in one statement: the scan already recorded under its id (a resend), the
#: officer's credential (and name), the enterprise (with its region, for an inspection it opens), the no-disturb entry in
#: force (the latest), and how many inspections the enterprise had opened since each of four instants. The counts'
#: aggregate always has one row; the others join it (NULLs when there is no such scan, officer or enterprise, or no
#: entry is in force: ``listed`` tells).
_SCAN_FACTS = sql(f"""
    SELECT o.officer_id, o.agency_id, o.credential_no, o.fields, o.valid_from_ms, o.valid_to_ms, o.revoked_ms, o.name,
           e.credit_code, e.name, e.risk, e.credit, e.region,
           nd.listed, nd.basis, nd.valid_to_ms,
           c.n_day, c.n_week, c.n_month, c.n_year, c.n_fruitless,
           {", ".join("s." + c for c in ScanRow.__struct_fields__)}
    FROM (
        SELECT count(CASE WHEN opened_ms >= :day THEN 1 END) AS n_day, count(CASE WHEN opened_ms >= :week THEN 1 END) AS n_week,
               count(CASE WHEN opened_ms >= :month THEN 1 END) AS n_month, count(CASE WHEN opened_ms >= :year THEN 1 END) AS n_year,
               count(CASE WHEN opened_ms >= :year AND status = 'ended' AND NOT EXISTS (
                   SELECT 1 FROM inspection_parts p WHERE p.inspection_id = i.inspection_id AND (p.result IS NULL OR p.result <> 'no_violation')
               ) THEN 1 END) AS n_fruitless
        FROM inspections i WHERE credit_code = :credit_code AND opened_ms >= least(:month, :year)
    ) c
    LEFT JOIN scans s ON s.scan_id = :scan_id
    LEFT JOIN officers o ON o.officer_id = :officer_id
    LEFT JOIN enterprises e ON e.credit_code = :credit_code
    LEFT JOIN (
        SELECT 1 AS listed, basis, valid_to_ms FROM no_disturb
        WHERE credit_code = :credit_code AND removed_ms IS NULL AND valid_from_ms <= :now_ms AND (valid_to_ms IS NULL OR valid_to_ms >= :now_ms)
        ORDER BY valid_from_ms DESC, id DESC LIMIT 1
    ) nd ON 1 = 1
""")
# The enterprise's inspections a decision looks at, in one statement: kind 0, those under way (opened since
# :open_since_ms, oldest first), and kind 1, the parts joined since :recent_since_ms (newest first: ``sort_ms`` is
# minus the time). ``status || ''`` keeps the planner (SQLite's) off inspections_open: the enterprise's own index is
# the short way, only the inspections opened inside the join window can be under way. An inspection whose basis
# awaits review, or was rejected, is no door for others: they state their own.
_AT_ENTERPRISE = sql("""
    SELECT 0 AS kind, i.inspection_id, i.lead_agency_id AS agency_id, i.field, i.opened_ms AS at_ms, NULL AS ended_ms, NULL AS officer_id,
           i.opened_ms AS sort_ms
    FROM inspections i
    WHERE i.credit_code = :credit_code AND i.status || '' = 'open' AND i.opened_ms >= :open_since_ms
      AND NOT EXISTS (SELECT 1 FROM exception_reviews r WHERE r.inspection_id = i.inspection_id AND r.status <> 'confirmed')
    UNION ALL
    SELECT 1, p.inspection_id, p.agency_id, p.field, p.joined_ms, p.ended_ms, p.officer_id, -p.joined_ms
    FROM inspection_parts p JOIN inspections i ON i.inspection_id = p.inspection_id
    WHERE i.credit_code = :credit_code AND p.joined_ms >= :recent_since_ms
    ORDER BY kind, sort_ms, inspection_id, officer_id
""")


class ScanFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What ``scan_facts`` reads."""

    recorded: ScanRow | None  # the scan already recorded under this id
    credential: tuple[str, str, str, str, int, int, int | None, str] | None  # as credential_row gives it
    enterprise: tuple[str, str, str, str, str] | None  # (credit_code, name, risk, credit, region)
    no_disturb: tuple[str, int | None] | None  # (basis, valid_to_ms) of the entry in force
    counts: InspectionCounts


def scan_facts(tx: Tx, scan_id: str, officer_id: str, credit_code: str, now_ms: int, *, day: int, week: int, month: int, year: int) -> ScanFacts:
    """The scan recorded under ``scan_id`` if any, the officer's credential, the enterprise, its no-disturb entry in
    force at ``now_ms`` (the latest one) and how many inspections it had opened since each of ``day``, ``week``,
    ``month`` and ``year``: one statement."""
    r = tx.one(_SCAN_FACTS, scan_id=scan_id, officer_id=officer_id, credit_code=credit_code, now_ms=now_ms, day=day, week=week, month=month, year=year)
    assert r is not None  # the aggregate always has a row
    return ScanFacts(
        recorded=None if r[21] is None else ScanRow(**dict(zip(ScanRow.__struct_fields__, r[21:], strict=True))),
        credential=None if r[0] is None else r[0:8],  # type: ignore[arg-type]
        enterprise=None if r[8] is None else r[8:13],  # type: ignore[arg-type]
        no_disturb=None if r[13] is None else (r[14], r[15]),
        counts=InspectionCounts(*r[16:21]),
    )


def inspections_at(tx: Tx, credit_code: str, *, open_since_ms: int, recent_since_ms: int) -> tuple[list[OpenInspection], list[RecentPart]]:
    """The enterprise's inspections opened since ``open_since_ms``, still open, not waiting on a review, oldest first;
    and the parts in its inspections joined since ``recent_since_ms``, newest first: one statement."""
    under_way: list[OpenInspection] = []
    recent: list[RecentPart] = []
    for kind, inspection_id, agency_id, field, at_ms, ended_ms, _, _ in tx.all(_AT_ENTERPRISE, credit_code=credit_code, open_since_ms=open_since_ms, recent_since_ms=recent_since_ms):
        if kind == 0:
            under_way.append(OpenInspection(inspection_id, agency_id, field, at_ms))
        else:
            recent.append(RecentPart(inspection_id, agency_id, field, at_ms, ended_ms))
    return under_way, recent


def lock_enterprise_scans(tx: Tx, credit_code: str) -> None:
    """Serialise the scans of one enterprise until this transaction ends (docs/storage-seam.md §4.1): two agencies
    scanning at once must end in one inspection, the second joining the first's. PostgreSQL: an advisory lock;
    SQLite: its write transaction already serialises every writer. (A code that does not check out names no
    enterprise: its text stands in, so a resend of that scan waits for the first and finds it recorded.)"""
    tx.lock("fe:scan:" + credit_code)


def lock_officer_reviews(tx: Tx, officer_id: str) -> None:
    """Serialise, until this transaction ends, the scans of one officer that would leave an urgent exception
    awaiting review, so that two at once (at two enterprises) cannot both pass the policy's bound. Taken after
    the enterprise's lock, never before: one order, no deadlock."""
    tx.lock("fe:reviews:" + officer_id)


# --- scans ---------------------------------------------------------------------------------------------------------

_SCAN_COLUMNS = tuple(ScanRow.__struct_fields__)
_SCAN = sql(f"SELECT {', '.join(_SCAN_COLUMNS)} FROM scans WHERE scan_id = :scan_id")
_INSERT_SCAN = sql(f"INSERT INTO scans({', '.join(_SCAN_COLUMNS)}) VALUES ({', '.join(':' + c for c in _SCAN_COLUMNS)})")
_SCAN_ENTERPRISE = sql("""
    SELECT s.credit_code, e.name FROM scans s LEFT JOIN enterprises e ON e.credit_code = s.credit_code WHERE s.scan_id = :scan_id
""")
_SCAN_INSPECTION = sql("SELECT inspection_id FROM scans WHERE scan_id = :scan_id")
#: The columns of ``latest_scans``' dicts.
SCAN_LIST_COLUMNS = ("scan_id", "channel", "device_id", "officer_id", "agency_id", "credit_code", "field", "scanned_ms", "decided_ms", "outcome", "code", "inspection_id")
# ``:scope``: 'all', or the scans of one agency or one officer (``:who``; None matches nothing).
_LATEST_SCANS = sql(f"""
    SELECT {", ".join(SCAN_LIST_COLUMNS)} FROM scans
    WHERE CAST(:scope AS TEXT) = 'all' OR (:scope = 'agency' AND agency_id = :who) OR (:scope = 'officer' AND officer_id = :who)
    ORDER BY decided_ms DESC, scan_id LIMIT :limit
""")


def scan(tx: Tx, scan_id: str) -> ScanRow | None:
    """The recorded scan of that id."""
    row = tx.one(_SCAN, scan_id=scan_id)
    return None if row is None else ScanRow(**dict(zip(_SCAN_COLUMNS, row, strict=True)))


def record_scan(tx: Tx, row: ScanRow) -> None:
    """Record a decided scan (its id must be new: the caller looked it up under the enterprise's lock)."""
    tx.run(_INSERT_SCAN, msgspec.structs.asdict(row))


def scan_enterprise(tx: Tx, scan_id: str) -> tuple[str | None, str | None]:
    """(credit code, registered name) of a recorded scan's enterprise; (None, None) for an unknown scan."""
    row = tx.one(_SCAN_ENTERPRISE, scan_id=scan_id)
    return (None, None) if row is None else (row[0], row[1])


def scan_inspection(tx: Tx, scan_id: str) -> str | None:
    """The inspection a recorded scan opened or joined."""
    return tx.scalar(_SCAN_INSPECTION, scan_id=scan_id)  # type: ignore[no-any-return]


def latest_scans(tx: Tx, *, scope: Literal["all", "agency", "officer"], who: str | None, limit: int) -> list[dict[str, object]]:
    """The latest decided scans, newest first: all, or those of the agency or officer ``who``."""
    return rows_as_dicts(tx.run(_LATEST_SCANS, scope=scope, who=who, limit=limit))


# --- inspections and parts ------------------------------------------------------------------------------------------

_INSERT_INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, exception_kind, exception_ref)
    VALUES (:inspection_id, :credit_code, :region, :lead_agency_id, :field, 'open', :opened_ms, :exception_kind, :exception_ref)
""")
_INSERT_PART = sql("""
    INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, matter, scan_id, device_id, joined_ms)
    VALUES (:inspection_id, :officer_id, :agency_id, :field, :matter, :scan_id, :device_id, :joined_ms)
    ON CONFLICT (inspection_id, officer_id) DO UPDATE
    SET matter = excluded.matter, scan_id = excluded.scan_id, device_id = excluded.device_id, joined_ms = excluded.joined_ms,
        ended_ms = NULL, result = NULL, summary = NULL
    WHERE inspection_parts.ended_ms IS NOT NULL
""")
_END_PART = sql("""
    UPDATE inspection_parts SET ended_ms = :now_ms, result = :result, summary = :summary
    WHERE inspection_id = :inspection_id AND officer_id = :officer_id AND ended_ms IS NULL
""")
_OPEN_PARTS = sql("SELECT count(*) FROM inspection_parts WHERE inspection_id = :inspection_id AND ended_ms IS NULL")
_END_INSPECTION = sql("UPDATE inspections SET status = 'ended', ended_ms = :now_ms WHERE inspection_id = :inspection_id")
_EXISTS = sql("SELECT 1 FROM inspections WHERE inspection_id = :inspection_id")
_ENTERPRISE_OF = sql("SELECT credit_code FROM inspections WHERE inspection_id = :inspection_id")
_OF_ENTERPRISE = sql("SELECT 1 FROM inspections WHERE inspection_id = :inspection_id AND credit_code = :credit_code")
_PART_OF_OFFICER = sql("SELECT 1 FROM inspection_parts WHERE inspection_id = :inspection_id AND officer_id = :officer_id")
_PART_OF_AGENCY = sql("SELECT 1 FROM inspection_parts WHERE inspection_id = :inspection_id AND agency_id = :agency_id LIMIT 1")
#: The columns of ``inspection``'s row, in order.
INSPECTION_COLUMNS = ("inspection_id", "credit_code", "enterprise_name", "lead_agency_id", "field", "status", "opened_ms", "ended_ms", "exception_kind", "exception_ref")
_INSPECTION = sql("""
    SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, i.field, i.status, i.opened_ms, i.ended_ms, i.exception_kind, i.exception_ref
    FROM inspections i LEFT JOIN enterprises e ON e.credit_code = i.credit_code WHERE i.inspection_id = :inspection_id
""")
#: The columns of ``parts``' rows, in order.
PART_COLUMNS = ("officer_id", "agency_id", "field", "matter", "joined_ms", "ended_ms", "result")
_PARTS = sql(f"SELECT {', '.join(PART_COLUMNS)} FROM inspection_parts WHERE inspection_id = :inspection_id ORDER BY joined_ms, officer_id")
# ``:scope``: 'all', or the inspections ``:who`` may see: an agency or an officer that took part, an enterprise
# inspected (None matches nothing); then optional filters by status and enterprise.
_LATEST_INSPECTIONS = sql("""
    SELECT inspection_id FROM inspections
    WHERE (CAST(:scope AS TEXT) = 'all'
           OR (:scope = 'agency' AND inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE agency_id = :who))
           OR (:scope = 'officer' AND inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE officer_id = :who))
           OR (:scope = 'enterprise' AND credit_code = :who))
      AND (CAST(:status AS TEXT) IS NULL OR status = :status)
      AND (CAST(:credit_code AS TEXT) IS NULL OR credit_code = :credit_code)
    ORDER BY opened_ms DESC, inspection_id LIMIT :limit
""")


def open_inspection(tx: Tx, new: NewInspection) -> None:
    """Open an inspection (status 'open')."""
    tx.run(_INSERT_INSPECTION, msgspec.structs.asdict(new))


def add_part(tx: Tx, part: Part) -> None:
    """An officer's part in an inspection: nothing if the officer's part there is open; reopened if it had ended (the
    officer came back while another agency's part kept the inspection open; the earlier end stays in the log)."""
    tx.run(_INSERT_PART, msgspec.structs.asdict(part))


def end_part(tx: Tx, inspection_id: str, officer_id: str, result: str, summary: str, now_ms: int) -> bool:
    """End the officer's open part; False if there is none."""
    return bool(tx.run(_END_PART, inspection_id=inspection_id, officer_id=officer_id, result=result, summary=summary, now_ms=now_ms).rowcount)


def open_parts(tx: Tx, inspection_id: str) -> int:
    """How many parts of the inspection are not ended."""
    return int(tx.scalar(_OPEN_PARTS, inspection_id=inspection_id))


def end_inspection(tx: Tx, inspection_id: str, now_ms: int) -> None:
    tx.run(_END_INSPECTION, inspection_id=inspection_id, now_ms=now_ms)


def inspection_exists(tx: Tx, inspection_id: str) -> bool:
    return tx.one(_EXISTS, inspection_id=inspection_id) is not None


def enterprise_inspected(tx: Tx, inspection_id: str) -> str | None:
    """The credit code of the inspection's enterprise (None: no such inspection)."""
    return tx.scalar(_ENTERPRISE_OF, inspection_id=inspection_id)  # type: ignore[no-any-return]


def inspection_of_enterprise(tx: Tx, inspection_id: str, credit_code: str | None) -> bool:
    return tx.one(_OF_ENTERPRISE, inspection_id=inspection_id, credit_code=credit_code) is not None


def officer_took_part(tx: Tx, inspection_id: str, officer_id: str | None) -> bool:
    return tx.one(_PART_OF_OFFICER, inspection_id=inspection_id, officer_id=officer_id) is not None


def agency_took_part(tx: Tx, inspection_id: str, agency_id: str | None) -> bool:
    return tx.one(_PART_OF_AGENCY, inspection_id=inspection_id, agency_id=agency_id) is not None


def inspection(tx: Tx, inspection_id: str) -> tuple[object, ...] | None:
    """The inspection's row in ``INSPECTION_COLUMNS`` order (with the enterprise's registered name), or None."""
    return tx.one(_INSPECTION, inspection_id=inspection_id)


def parts(tx: Tx, inspection_id: str) -> list[tuple[object, ...]]:
    """The inspection's parts in ``PART_COLUMNS`` order, in the order they joined."""
    return tx.all(_PARTS, inspection_id=inspection_id)


def latest_inspections(
    tx: Tx, *, scope: Literal["all", "agency", "officer", "enterprise"], who: str | None, status: str | None, credit_code: str | None, limit: int
) -> list[str]:
    """Ids of the latest inspections in the scope (see ``_LATEST_INSPECTIONS``) with that status and enterprise if
    given, newest first."""
    rows = tx.all(_LATEST_INSPECTIONS, scope=scope, who=who, status=status, credit_code=credit_code, limit=limit)
    return [r[0] for r in rows]
