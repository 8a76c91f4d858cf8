"""Deciding a scan on the server: gather the facts from the registers, decide, record, open or join.

``decide_scan`` runs inside one write transaction (BEGIN IMMEDIATE, or the ingest batch's own), so two
agencies scanning one enterprise at the same moment are serialised by SQLite: the first opens the
inspection, the second finds it under way and joins it. Never two.
A scan is recorded once per scan id: deciding it again (a resent event) returns the recorded decision.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from dataclasses import dataclass

import msgspec

from protocol.decision import DAY_MS, Decision, Enterprise, Facts, Policy, decide, refuse_code
from protocol.enterprise_code import CodeError
from protocol.messages import Credential, ExceptionBasis, GeoPoint, InspectionRef, NoDisturbEntry
from server.codes import check_code

_CST = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """One scan, from a phone (HTTP) or a terminal (an EnterpriseScanned event)."""

    scan_id: str
    channel: str  # "phone" or "terminal"
    officer_id: str
    code_text: str
    field: str | None
    scanned_ms: int
    matter: str = ""
    reason: str = ""
    exception: ExceptionBasis | None = None
    location: GeoPoint | None = None
    device_id: str | None = None


def credential_of(con: sqlite3.Connection, officer_id: str) -> Credential | None:
    """The officer's credential from the register."""
    row = con.execute(
        "SELECT officer_id, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms FROM officers WHERE officer_id = ?", (officer_id,)
    ).fetchone()
    if row is None:
        return None
    return Credential(officer_id=row[0], agency_id=row[1], credential_no=row[2], fields=json.loads(row[3]), valid_from_ms=row[4], valid_to_ms=row[5], revoked=row[6] is not None)


def year_start_ms(now_ms: int) -> int:
    """Start of the calendar year (China Standard Time) of an instant."""
    now = dt.datetime.fromtimestamp(now_ms / 1000, _CST)
    return int(dt.datetime(now.year, 1, 1, tzinfo=_CST).timestamp() * 1000)


def _exception_check(con: sqlite3.Connection, exc: ExceptionBasis, credit_code: str, agency_id: str, now_ms: int) -> tuple[bool, str]:
    """Check a stated exception against the registers where the server has them."""
    ref = exc.reference
    if exc.kind == "complaint":
        row = con.execute("SELECT credit_code, closed_ms FROM complaints WHERE ticket_no = ?", (ref,)).fetchone()
        if row is None:
            return False, f"投诉举报工单 {ref} 不存在 / complaint ticket {ref} does not exist"
        if row[0] != credit_code:
            return False, f"工单 {ref} 针对的是其他企业 / ticket {ref} concerns another enterprise"
        if row[1] is not None:
            return False, f"工单 {ref} 已办结 / ticket {ref} is closed"
        return True, ""
    if exc.kind == "random_draw":
        row = con.execute(
            "SELECT p.agency_id, p.valid_from_ms, p.valid_to_ms FROM plans p JOIN plan_targets t USING (plan_id) WHERE p.plan_id = ? AND t.credit_code = ?",
            (ref, credit_code),
        ).fetchone()
        if row is None:
            return False, f"抽查计划 {ref} 未抽中该企业 / draw plan {ref} did not draw this enterprise"
        if row[0] != agency_id:
            return False, f"抽查计划 {ref} 属于 {row[0]} / draw plan {ref} belongs to {row[0]}"
        if not row[1] <= now_ms <= row[2]:
            return False, f"抽查计划 {ref} 不在有效期内 / draw plan {ref} is not in force"
        return True, ""
    if exc.kind == "rectification_follow_up":
        row = con.execute(
            "SELECT 1 FROM inspection_parts p JOIN inspections i USING (inspection_id) WHERE i.inspection_id = ? AND i.credit_code = ? AND p.result = 'rectification_ordered'",
            (ref, credit_code),
        ).fetchone()
        if row is None:
            return False, f"检查 {ref} 未对该企业责令整改 / inspection {ref} ordered no rectification of this enterprise"
        return True, ""
    # major_risk and superior_assignment: recorded with their reference for audit; no register to check here.
    return True, ""


def gather_facts(con: sqlite3.Connection, req: ScanRequest, credit_code: str, policy: Policy, now_ms: int) -> Facts:
    """Everything the decision needs, from the registers."""
    cred = credential_of(con, req.officer_id)
    ent_row = con.execute("SELECT credit_code, name, risk, credit FROM enterprises WHERE credit_code = ?", (credit_code,)).fetchone()
    enterprise = Enterprise(credit_code=ent_row[0], name=ent_row[1], risk=ent_row[2], credit=ent_row[3]) if ent_row else None
    nd_row = con.execute(
        "SELECT basis, valid_to_ms FROM no_disturb WHERE credit_code = ? AND removed_ms IS NULL AND valid_from_ms <= ? AND (valid_to_ms IS NULL OR valid_to_ms >= ?)"
        " ORDER BY valid_from_ms DESC LIMIT 1",
        (credit_code, now_ms, now_ms),
    ).fetchone()
    no_disturb = NoDisturbEntry(credit_code=credit_code, basis=nd_row[0], valid_to_ms=nd_row[1]) if nd_row else None
    # "+status": look the enterprise up by its own index, not by walking every open inspection; only those
    # inside the join window can be under way.
    open_rows = con.execute(
        "SELECT inspection_id, lead_agency_id, field, opened_ms FROM inspections WHERE credit_code = ? AND +status = 'open' AND opened_ms >= ? ORDER BY opened_ms",
        (credit_code, now_ms - int(policy.join_window_hours * 3_600_000)),
    ).fetchall()
    window_start = now_ms - policy.repeat_window_days * DAY_MS
    recent_rows = con.execute(
        "SELECT p.inspection_id, p.agency_id, p.field, p.joined_ms, p.ended_ms FROM inspection_parts p JOIN inspections i USING (inspection_id)"
        " WHERE i.credit_code = ? AND p.joined_ms >= ? ORDER BY p.joined_ms DESC",
        (credit_code, window_start),
    ).fetchall()
    counts = con.execute(
        "SELECT SUM(opened_ms >= ?), SUM(opened_ms >= ?), SUM(opened_ms >= ?), SUM(opened_ms >= ?) FROM inspections WHERE credit_code = ? AND opened_ms >= ?",
        (now_ms - DAY_MS, now_ms - 7 * DAY_MS, now_ms - 30 * DAY_MS, year_start_ms(now_ms), credit_code, min(now_ms - 30 * DAY_MS, year_start_ms(now_ms))),
    ).fetchone()
    day, week, month, year = (c or 0 for c in counts)
    exc_ok: bool | None = None
    problem = ""
    if req.exception is not None:
        exc_ok, problem = _exception_check(con, req.exception, credit_code, cred.agency_id if cred else "", now_ms)
    names = dict(con.execute("SELECT agency_id, name FROM agencies ORDER BY agency_id").fetchall())
    names.update(con.execute("SELECT field_id, name FROM fields ORDER BY field_id").fetchall())
    return Facts(
        now_ms=now_ms,
        officer_id=req.officer_id,
        credential=cred,
        credit_code=credit_code,
        enterprise=enterprise,
        field=req.field or "",
        matter=req.matter,
        no_disturb=no_disturb,
        open_inspections=[InspectionRef(inspection_id=r[0], credit_code=credit_code, agency_id=r[1], field=r[2], started_ms=r[3]) for r in open_rows],
        recent_inspections=[InspectionRef(inspection_id=r[0], credit_code=credit_code, agency_id=r[1], field=r[2], started_ms=r[3], ended_ms=r[4]) for r in recent_rows],
        inspections_this_year=year,
        last_day=day,
        last_week=week,
        last_month=month,
        exception=req.exception,
        exception_ok=exc_ok,
        exception_problem=problem,
        names=names,
    )


def recorded_decision(con: sqlite3.Connection, scan_id: str) -> Decision | None:
    """The decision already recorded for a scan id, if any."""
    row = con.execute("SELECT decision_json FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
    return None if row is None else msgspec.json.decode(row[0], type=Decision)


def decide_scan(con: sqlite3.Connection, req: ScanRequest, policy: Policy, now_ms: int) -> Decision:
    """Decide and record one scan; call inside a write transaction."""
    previous = recorded_decision(con, req.scan_id)
    if previous is not None:
        return previous
    credit_code: str | None = None
    try:
        credit_code = check_code(con, req.code_text).credit_code
    except CodeError as e:
        decision = refuse_code(e.reason)
        cred = credential_of(con, req.officer_id)
    else:
        facts = gather_facts(con, req, credit_code, policy, now_ms)
        decision = _open_or_join(con, req, decide(facts, policy), facts, now_ms)
        cred = facts.credential
    exc = req.exception
    con.execute(
        "INSERT INTO scans(scan_id, channel, device_id, officer_id, agency_id, credit_code, code_text, field, matter, reason, exception_kind, exception_ref,"
        " lat, lon, scanned_ms, decided_ms, outcome, code, inspection_id, decision_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            req.scan_id, req.channel, req.device_id, req.officer_id, cred.agency_id if cred else None, credit_code, req.code_text, req.field, req.matter, req.reason,
            exc.kind if exc else None, exc.reference if exc else None, req.location.lat if req.location else None, req.location.lon if req.location else None,
            req.scanned_ms, now_ms, decision.outcome, decision.code, decision.inspection_id, msgspec.json.encode(decision).decode(),
        ),
    )  # fmt: skip
    return decision


def _open_or_join(con: sqlite3.Connection, req: ScanRequest, d: Decision, facts: Facts, now_ms: int) -> Decision:
    cred = facts.credential
    if cred is None or d.outcome not in ("allowed", "join"):
        return d
    if d.outcome == "allowed":
        inspection_id = str(uuid.uuid4())
        region = con.execute("SELECT region FROM enterprises WHERE credit_code = ?", (facts.credit_code,)).fetchone()
        exc = req.exception if d.exception_used else None
        con.execute(
            "INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, exception_kind, exception_ref)"
            " VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            (inspection_id, facts.credit_code, region[0] if region else "", cred.agency_id, facts.field, now_ms, exc.kind if exc else None, exc.reference if exc else None),
        )
        d = msgspec.structs.replace(d, inspection_id=inspection_id)
    assert d.inspection_id is not None
    con.execute(
        "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, matter, scan_id, device_id, joined_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(inspection_id, officer_id) DO NOTHING",
        (d.inspection_id, req.officer_id, cred.agency_id, facts.field, req.matter, req.scan_id, req.device_id, now_ms),
    )
    return d


def end_part(con: sqlite3.Connection, inspection_id: str, officer_id: str, result: str, summary: str, now_ms: int) -> bool:
    """End one officer's part of an inspection; the inspection ends when every part has. False if unknown."""
    cur = con.execute(
        "UPDATE inspection_parts SET ended_ms = ?, result = ?, summary = ? WHERE inspection_id = ? AND officer_id = ? AND ended_ms IS NULL",
        (now_ms, result, summary, inspection_id, officer_id),
    )
    if cur.rowcount == 0:
        return False
    open_parts = con.execute("SELECT COUNT(*) FROM inspection_parts WHERE inspection_id = ? AND ended_ms IS NULL", (inspection_id,)).fetchone()[0]
    if open_parts == 0:
        con.execute("UPDATE inspections SET status = 'ended', ended_ms = ? WHERE inspection_id = ?", (now_ms, inspection_id))
    return True
