"""Deciding a scan on the server: gather the facts from the registers, decide, record, open or join.

``decide_scan`` runs inside one write transaction (a handler's, or the ingest batch's own) and first takes the
enterprise's scan lock (docs/storage-seam.md §4.1: an advisory lock on PostgreSQL, SQLite's write transaction
itself), so two agencies scanning one enterprise at the same moment are serialised on every backend and in every
process: the first opens the inspection, the second finds it under way and joins it. Never two.
A scan is recorded once per scan id: deciding it again (a resent event) returns the recorded decision.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import msgspec

from protocol.cst import CST
from protocol.decision import DAY_MS, Decision, Enterprise, Facts, Policy, decide, refuse_code
from protocol.enterprise_code import CodeError
from protocol.messages import Credential, ExceptionBasis, GeoPoint, InspectionRef, NoDisturbEntry
from server.rules.alerts import raise_alert
from server.rules.codes import check_code
from server.errors import Conflict
from server.rules.exception_bases import KIND_ZH, Check, check_exception, pending_reviews_of, queue_review
from server.storage import inspections as rows
from server.storage.engine import Tx



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


def _credential(row: tuple[str, str, str, str, int, int, int | None, str] | None) -> Credential | None:
    if row is None:
        return None
    return Credential(officer_id=row[0], agency_id=row[1], credential_no=row[2], fields=json.loads(row[3]), valid_from_ms=row[4], valid_to_ms=row[5], revoked=row[6] is not None)


def credential_of(con: Tx, officer_id: str) -> Credential | None:
    """The officer's credential from the register."""
    return _credential(rows.credential_row(con, officer_id))


def year_start_ms(now_ms: int) -> int:
    """Start of the calendar year (China Standard Time) of an instant."""
    now = dt.datetime.fromtimestamp(now_ms / 1000, CST)
    return int(dt.datetime(now.year, 1, 1, tzinfo=CST).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class _Gathered:
    """The facts of a decision, and what recording it needs of the same rows (read once)."""

    facts: Facts
    officer_name: str | None
    region: str  # the enterprise's ('' when it is not registered)


def _scan_facts(tx: Tx, req: ScanRequest, credit_code: str, now_ms: int) -> rows.ScanFacts:
    return rows.scan_facts(
        tx, req.scan_id, req.officer_id, credit_code, now_ms, day=now_ms - DAY_MS, week=now_ms - 7 * DAY_MS, month=now_ms - 30 * DAY_MS, year=year_start_ms(now_ms)
    )


def _gather(tx: Tx, req: ScanRequest, credit_code: str, got: rows.ScanFacts, policy: Policy, now_ms: int) -> _Gathered:
    """Everything the decision needs, from the registers: ``got`` (storage/inspections.py ``scan_facts``, one
    statement), then two more (``inspections_at``, ``names``) besides an exception's own checks."""
    cred = _credential(got.credential)
    ent_row = got.enterprise
    enterprise = Enterprise(credit_code=ent_row[0], name=ent_row[1], risk=ent_row[2], credit=ent_row[3]) if ent_row else None
    nd_row = got.no_disturb
    no_disturb = NoDisturbEntry(credit_code=credit_code, basis=nd_row[0], valid_to_ms=nd_row[1]) if nd_row else None
    counts = got.counts
    # Only inspections opened inside the join window can be under way.
    open_now, recent = rows.inspections_at(
        tx, credit_code, open_since_ms=now_ms - int(policy.join_window_hours * 3_600_000), recent_since_ms=now_ms - policy.repeat_window_days * DAY_MS
    )
    exc_ok: bool | None = None
    problem = ""
    pending = False
    if req.exception is not None:
        rules = policy.exceptions
        check = check_exception(tx, req.exception, credit_code, cred.agency_id if cred else "", req.field or "", now_ms, follow_up_days=rules.rectification_follow_up_days)
        pending = check.verdict == "unregistered" and req.exception.kind in rules.pending_review_kinds
        if pending:
            rows.lock_officer_reviews(tx, req.officer_id)  # the count below holds until this scan's review is queued
        if pending and pending_reviews_of(tx, req.officer_id) >= rules.pending_review_per_officer:
            pending, check = False, Check("invalid", f"{check.problem}；您已有 {rules.pending_review_per_officer} 次检查的紧急例外依据待复核 / you already have inspections on urgent exceptions awaiting review")
        exc_ok, problem = check.verdict == "ok" or pending, check.problem
    facts = Facts(
        now_ms=now_ms,
        officer_id=req.officer_id,
        credential=cred,
        credit_code=credit_code,
        enterprise=enterprise,
        field=req.field or "",
        matter=req.matter,
        no_disturb=no_disturb,
        open_inspections=[InspectionRef(inspection_id=o.inspection_id, credit_code=credit_code, agency_id=o.lead_agency_id, field=o.field, started_ms=o.opened_ms) for o in open_now],
        recent_inspections=[
            InspectionRef(inspection_id=p.inspection_id, credit_code=credit_code, agency_id=p.agency_id, field=p.field, started_ms=p.joined_ms, ended_ms=p.ended_ms) for p in recent
        ],
        inspections_this_year=counts.year,
        fruitless_this_year=counts.fruitless,
        last_day=counts.day,
        last_week=counts.week,
        last_month=counts.month,
        exception=req.exception,
        exception_ok=exc_ok,
        exception_problem=problem,
        exception_pending_review=pending,
        names=rows.names(tx),
    )
    return _Gathered(facts=facts, officer_name=got.credential[7] if got.credential else None, region=(ent_row[4] if ent_row else None) or "")


class ScanConflict(Conflict):
    """A scan id already used for another scan (another officer's, another device's, or another code)."""


def recorded_decision(con: Tx, scan_id: str) -> Decision | None:
    """The decision already recorded for a scan id, if any."""
    row = rows.scan(con, scan_id)
    return None if row is None else msgspec.json.decode(row.decision_json, type=Decision)


def _previous(row: rows.ScanRow | None, req: ScanRequest) -> Decision | None:
    """The recorded decision when this very scan is asked again (a resend, a double click): ``row`` is the scan
    recorded under its id. A scan id belongs to the officer, channel and device that used it first, for that code and
    field only."""
    if row is None:
        return None
    if (row.officer_id, row.channel, row.device_id, row.code_text, row.field) != (req.officer_id, req.channel, req.device_id, req.code_text, req.field):
        raise ScanConflict(f"扫码编号 {req.scan_id} 已被另一次扫码使用 / scan id {req.scan_id} was already used for another scan")
    return msgspec.json.decode(row.decision_json, type=Decision)


@dataclass(frozen=True, slots=True)
class ScanAnswer:
    """A scan's decision with its enterprise, as the phone is answered: the credit code the code named (None when the
    code did not check out) and the enterprise's registered name (None when it is not registered)."""

    decision: Decision
    credit_code: str | None
    enterprise_name: str | None


def decide_scan(tx: Tx, req: ScanRequest, policy: Policy, now_ms: int) -> Decision:
    """Decide and record one scan, raising the alerts it calls for; call inside a write transaction.
    ScanConflict if the scan id belongs to another scan."""
    return decide_scan_for_answer(tx, req, policy, now_ms).decision


def decide_scan_for_answer(tx: Tx, req: ScanRequest, policy: Policy, now_ms: int) -> ScanAnswer:
    """``decide_scan``, with the enterprise the answer names (from the rows the decision read, not read again)."""
    credit_code: str | None = None
    code_error: CodeError | None = None
    try:
        credit_code = check_code(tx, req.code_text).credit_code
    except CodeError as e:
        code_error = e
    # First the lock, then every read: a second agency's scan (or this scan resent) waiting here sees what the
    # first one recorded. A code that does not check out serialises its resends by its text.
    rows.lock_enterprise_scans(tx, credit_code or req.code_text)
    got = _scan_facts(tx, req, credit_code, now_ms) if credit_code is not None else None  # with the scan's id: a resend?
    recorded = got.recorded if got is not None else rows.scan(tx, req.scan_id)
    previous = _previous(recorded, req)
    if previous is not None:
        assert recorded is not None
        if recorded.credit_code is None:
            return ScanAnswer(previous, None, None)
        if got is not None and recorded.credit_code == credit_code:  # the same code: the enterprise just read
            return ScanAnswer(previous, credit_code, got.enterprise[1] if got.enterprise else None)
        return ScanAnswer(previous, *rows.scan_enterprise(tx, req.scan_id))
    facts: Facts | None = None
    if got is None:
        assert code_error is not None
        decision = refuse_code(code_error.reason)
        cred_row = rows.credential_row(tx, req.officer_id)
        cred, officer_name = _credential(cred_row), (cred_row[7] if cred_row else None)
    else:
        assert credit_code is not None
        gathered = _gather(tx, req, credit_code, got, policy, now_ms)
        facts, officer_name = gathered.facts, gathered.officer_name
        decision = _open_or_join(tx, req, decide(facts, policy), facts, gathered.region, now_ms)
        cred = facts.credential
    exc, loc = req.exception, req.location
    rows.record_scan(
        tx,
        rows.ScanRow(
            scan_id=req.scan_id, channel=req.channel, device_id=req.device_id, officer_id=req.officer_id, agency_id=cred.agency_id if cred else None,
            credit_code=credit_code, code_text=req.code_text, field=req.field, matter=req.matter, reason=req.reason,
            exception_kind=exc.kind if exc else None, exception_ref=exc.reference if exc else None, lat=loc.lat if loc else None, lon=loc.lon if loc else None,
            scanned_ms=req.scanned_ms, decided_ms=now_ms, outcome=decision.outcome, code=decision.code, inspection_id=decision.inspection_id,
            decision_json=msgspec.json.encode(decision).decode(),
        ),
    )  # fmt: skip
    _alert_scan(tx, req, decision, facts, cred, officer_name, credit_code, now_ms)
    return ScanAnswer(decision, credit_code, facts.enterprise.name if facts is not None and facts.enterprise is not None else None)


def _alert_scan(
    tx: Tx, req: ScanRequest, d: Decision, facts: Facts | None, cred: Credential | None, officer_name: str | None, credit_code: str | None, now_ms: int
) -> None:
    """Tell supervisors what a decision means for the rules: refusals they should know of, exceptions used,
    repeats and joint inspections. The same for a phone's scan and a terminal's. ``officer_name``: the register's,
    read with the credential."""
    who = officer_name or req.officer_id
    agency = facts.name(cred.agency_id) if facts and cred else (cred.agency_id if cred else "")
    ent = facts.enterprise.name if facts and facts.enterprise else (credit_code or "")
    where = f"（{ent}）" if ent else ""
    exc = req.exception
    basis_zh = f"{KIND_ZH.get(exc.kind, exc.kind)} {exc.reference}" if exc else ""
    basis_en = f"{exc.kind} {exc.reference}" if exc else ""
    kinds: list[tuple[str, str, str]] = []
    if d.code == "no_disturb":
        kinds.append(("no_disturb_attempt", f"{agency}{who}扫码检查无事不扰企业{where}，未说明例外依据，已拦截。", f"{who} ({agency}) tried to inspect no-disturb enterprise {ent} without an exception: refused."))
    elif d.code == "cap_reached":
        kinds.append(("cap_refused", f"{agency}{who}扫码检查{where}：本年度检查次数已达上限，已拦截。", f"{who} ({agency}) tried to inspect {ent}, which has had its yearly maximum of inspections: refused."))
    elif d.code.startswith("credential_"):
        kinds.append(("credential_refused", f"{who}扫码检查{where}因执法证问题被拒绝：{d.message_zh}", f"{who} was refused at {ent or 'an enterprise'} for a credential problem: {d.message_en}"))
    elif d.code == "exception_invalid":
        kinds.append(("exception_invalid", f"{agency}{who}扫码检查{where}所述例外依据（{basis_zh}）核验未通过，已拦截：{d.message_zh}", f"{who} ({agency}) stated an exception ({basis_en}) at {ent} that did not check out: refused."))
    elif d.code in ("code_altered", "code_unknown_key"):
        kinds.append(("forged_code", f"{who}扫描了签名不符或密钥未知的企业码，可能是伪造的企业码：{d.message_zh}", f"{who} scanned a code whose signature or key does not check out (possibly forged): {d.message_en}"))
    elif d.outcome == "repeat":
        kinds.append(("repeat_inspection", f"{agency}{who}试图重复检查{where}：{d.message_zh}", f"{who} ({agency}) tried a repeat inspection of {ent}: {d.message_en}"))
    elif d.outcome == "join":
        kinds.append(("joint_inspection", f"{agency}{who}加入了正在进行的检查{where}：综合查一次。", f"{who} ({agency}) joined the inspection under way at {ent}."))
    for rule in d.overrode:
        kinds.append({
            "no_disturb": ("no_disturb_exception", f"{agency}{who}依例外依据（{basis_zh}）检查无事不扰企业{where}。", f"{who} ({agency}) inspects no-disturb enterprise {ent} on an exception ({basis_en})."),
            "repeat": ("repeat_inspection", f"{agency}{who}依例外依据（{basis_zh}）在重复检查期限内再次检查{where}。", f"{who} ({agency}) inspects {ent} again within the repeat window on an exception ({basis_en})."),
            "cap": ("cap_exception", f"{agency}{who}依例外依据（{basis_zh}）超出年度检查上限检查{where}。", f"{who} ({agency}) inspects {ent} beyond its yearly cap on an exception ({basis_en})."),
        }[rule])  # fmt: skip
    if d.pending_review and exc is not None and credit_code is not None:
        problem = facts.exception_problem if facts else ""
        queue_review(tx, req.scan_id, d.inspection_id, exc, credit_code, req.officer_id, cred.agency_id if cred else None, problem, now_ms)
        kinds.append(("exception_pending_review", f"{agency}{who}依未登记的紧急例外依据（{basis_zh}）检查{where}，待监督人员复核。", f"{who} ({agency}) inspects {ent} on an unregistered urgent exception ({basis_en}): a supervisor must review it."))
    if req.device_id is not None and cred is not None:
        device_agency = rows.device_agency(tx, req.device_id)
        if device_agency is not None and device_agency != cred.agency_id:
            # A device speaks for its own agency's officers: another agency's officer on it is worth a look
            # (a lent or stolen device, or a device misreporting who scanned). The decision itself stands.
            kinds.append(("device_agency_mismatch", f"{who}（{agency}）使用了其他机关的设备 {req.device_id} 扫码{where}。", f"{who} ({agency}) scanned {ent} with device {req.device_id}, which belongs to another agency."))
    for kind, zh, en in kinds:
        raise_alert(tx, kind, now_ms, zh, en, credit_code=credit_code, agency_id=cred.agency_id if cred else None, device_id=req.device_id, officer_id=req.officer_id, ref=req.scan_id)


def _open_or_join(tx: Tx, req: ScanRequest, d: Decision, facts: Facts, region: str, now_ms: int) -> Decision:
    cred = facts.credential
    if cred is None or d.outcome not in ("allowed", "join"):
        return d
    if d.outcome == "allowed":
        exc = req.exception if d.exception_used else None
        new = rows.NewInspection(
            inspection_id=str(uuid.uuid4()), credit_code=facts.credit_code, region=region, lead_agency_id=cred.agency_id,
            field=facts.field, opened_ms=now_ms, exception_kind=exc.kind if exc else None, exception_ref=exc.reference if exc else None,
        )  # fmt: skip
        rows.open_inspection(tx, new)
        d = msgspec.structs.replace(d, inspection_id=new.inspection_id)
    assert d.inspection_id is not None
    part = rows.Part(
        inspection_id=d.inspection_id, officer_id=req.officer_id, agency_id=cred.agency_id, field=facts.field, matter=req.matter,
        scan_id=req.scan_id, device_id=req.device_id, joined_ms=now_ms,
    )  # fmt: skip
    rows.add_part(tx, part)
    return d


def lock_inspection(tx: Tx, inspection_id: str) -> bool:
    """Take the scan lock of the inspection's enterprise: parts join and end under it, so the inspection ends
    exactly when its last part does, whatever runs at the same time. False if there is no such inspection."""
    credit_code = rows.enterprise_inspected(tx, inspection_id)
    if credit_code is None:
        return False
    rows.lock_enterprise_scans(tx, credit_code)
    return True


def end_part(tx: Tx, inspection_id: str, officer_id: str, result: str, summary: str, now_ms: int) -> bool:
    """End one officer's part of an inspection; the inspection ends when every part has. False if unknown."""
    if not lock_inspection(tx, inspection_id) or not rows.end_part(tx, inspection_id, officer_id, result, summary, now_ms):
        return False
    if rows.open_parts(tx, inspection_id) == 0:
        rows.end_inspection(tx, inspection_id, now_ms)
    return True
