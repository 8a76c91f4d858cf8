"""The supervision workflow: a finding opened (from an alert, a case-file review, a hotline ticket, or by hand), an
opinion letter issued on it to the agency with a deadline in working days, the agency's rectification report, the
supervisor's verdict (accepted, or sent back), a missed deadline marked and alerted, and a decision letter where the
agency did not rectify. Every step is a server record in the evidence log (server/evidence/records.py), so who did
what and when cannot be changed unnoticed.

Who may do what (the routes' guards say the roles; the checks that depend on a record are here): a supervisor opens,
issues, accepts, returns and closes; an agency's administrator sees and answers their own agency's letters and
findings only (another agency's are "not found", so their existence does not leak); an outside supervisor
(行政执法监督员, role ``monitor``) reads the findings assigned to them and their letters, and adds remarks, nothing
more; officers see none of it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from typing import Any, Literal

import msgspec

from server.console.auth import Principal
from server.errors import Conflict, Invalid, NotFound
from server.evidence.log import indexes_of
from server.evidence.records import append_record, steps_of
from protocol.cst import cst_date
from server.rules.alerts import raise_alert
from server.rules.workdays import add_working_days
from server.storage import supervision as rows
from server.storage.engine import Tx
from server.supervision.forms import (  # noqa: F401  (the requests and views, used by the routes through this module too)
    ATTACHMENT_TYPES,
    AttachmentIn,
    AttachmentView,
    DEFAULT_DEADLINE_DAYS,
    FindingIn,
    FindingView,
    KIND_ZH,
    LetterIn,
    LetterKind,
    LetterStatus,
    LetterView,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_DEADLINE_DAYS,
    MAX_REFS,
    MonitorIn,
    NoteIn,
    Ref,
    RemarkIn,
    ReplyIn,
    Source,
    STATUS_ZH,
    Step,
    Text,
)


def _finding_view(tx: Tx, row: tuple[Any, ...], *, steps: bool) -> FindingView:
    d = dict(zip(rows.FINDING_COLUMNS, row, strict=True))
    d["refs"] = json.loads(d["refs"])
    view = FindingView(**d)
    if steps:
        view.steps = steps_of(tx, f"finding:{view.finding_id}")
    return view


def _letter_view(tx: Tx, row: tuple[Any, ...], *, steps: bool) -> LetterView:
    d = dict(zip(rows.LETTER_COLUMNS, row, strict=True))
    year, number = d.pop("year"), d.pop("number")
    _, exact = add_working_days(dt.date.fromisoformat(d["issued_on"]), d["deadline_days"])
    view = LetterView(
        **d, title=KIND_ZH[d["kind"]], number=f"〔{year}〕第{number}号", status_zh=STATUS_ZH[d["status"]], deadline_exact=exact,
    )
    if steps:
        view.steps = steps_of(tx, f"letter:{view.letter_id}")
        view.attachments = [AttachmentView(**dict(zip(rows.ATTACHMENT_COLUMNS[:1] + rows.ATTACHMENT_COLUMNS[2:], (r[0], *r[2:]), strict=True))) for r in rows.attachments(tx, view.letter_id)]
    return view


def _may_see(tx: Tx, principal: Principal, agency_id: str, finding_id: str, what: str, ident: str) -> None:
    """A supervisor sees everything; an agency administrator their own agency's findings and letters; an outside
    supervisor (monitor) those of the findings assigned to them. Anything else is not found."""
    if principal.role == "supervisor":
        return
    if principal.role == "agency_admin" and principal.agency_id == agency_id:
        return
    if principal.role == "monitor" and rows.is_assigned(tx, finding_id, principal.username):
        return
    raise NotFound(f"没有这个{what}：{ident} / no such {what} {ident}")


# --- findings ------------------------------------------------------------------------------------------------------


def open_finding(tx: Tx, data: FindingIn, principal: Principal, now_ms: int) -> FindingView:
    """Open a finding (supervisors). Every reference must exist: the agency, the enterprise, the alert, and each
    inspection, event or record named; the same alert opens one open finding, not two (a double click)."""
    if not rows.agency_exists(tx, data.agency_id):
        raise NotFound(f"没有这个执法机关：{data.agency_id} / no such agency {data.agency_id}")
    if data.officer_id is not None:
        officer_agency = rows.officer_agency(tx, data.officer_id)
        if officer_agency is None:
            raise NotFound(f"没有这名执法人员：{data.officer_id} / no such officer {data.officer_id}")
        if officer_agency != data.agency_id:
            raise Invalid(f"该执法人员属于另一执法机关（{officer_agency}）/ the officer belongs to another agency ({officer_agency})")
    if data.credit_code is not None and not rows.enterprise_exists(tx, data.credit_code):
        raise NotFound(f"没有这家企业：{data.credit_code} / no such enterprise {data.credit_code}")
    if data.source == "alert":
        if data.source_ref is None or not data.source_ref.isdigit() or len(data.source_ref) > 18:
            raise Invalid("由告警发起时须给出告警编号 / a finding from an alert names the alert's id (source_ref)")
        alert = rows.alert_row(tx, int(data.source_ref))
        if alert is None:
            raise NotFound(f"没有这条告警：{data.source_ref} / no such alert {data.source_ref}")
        if alert[0] is not None and alert[0] != data.agency_id:
            raise Invalid(f"该告警属于另一执法机关（{alert[0]}）/ the alert concerns another agency ({alert[0]})")
    if data.source == "case_review":
        sample_id, _, decision_id = (data.source_ref or "").partition("/")
        agency = rows.failed_review_agency(tx, sample_id, decision_id) if decision_id else None
        if agency is None:
            raise Invalid(f"案卷评查来源须为未通过的评查：抽样编号/决定编号 / a finding from a case-file review names a failed review as <sample id>/<decision id>, got {data.source_ref!r}")
        if agency != data.agency_id:
            raise Invalid(f"该评查的决定属于另一执法机关（{agency}）/ the reviewed decision is another agency's ({agency})")
    refs = list(dict.fromkeys(data.refs))
    known = rows.known_inspections(tx, refs) | set(indexes_of(tx, refs))
    unknown = [r for r in refs if r not in known]
    if unknown:
        raise Invalid(f"以下检查或记录不存在：{', '.join(unknown[:5])} / no inspection, event or record {', '.join(unknown[:5])}")
    year = cst_date(now_ms).year
    tx.lock(f"finding-number:{year}")
    already = rows.open_finding_of(tx, data.source, data.source_ref) if data.source in ("alert", "case_review") and data.source_ref else None
    if already is not None:  # a double click, or a second supervisor: one open finding an alert or a review
        raise Conflict(f"该{'告警' if data.source == 'alert' else '评查'}已立为监督事项 {already} / the {data.source.replace('_', ' ')} already opened finding {already}")
    seq = rows.next_finding_seq(tx, year)
    finding_id = f"F-{year}-{seq:04d}"
    rows.insert_finding(
        tx, finding_id=finding_id, year=year, seq=seq, agency_id=data.agency_id, credit_code=data.credit_code, source=data.source,
        source_ref=data.source_ref, reason=data.reason, refs=json.dumps(refs), opened_by=principal.username, opened_ms=now_ms,
        officer_id=data.officer_id,
    )  # fmt: skip
    append_record(tx, kind="finding.opened", subject=f"finding:{finding_id}", actor=principal.username, content=data, now_ms=now_ms)
    return get_finding(tx, finding_id, principal)


def get_finding(tx: Tx, finding_id: str, principal: Principal) -> FindingView:
    row = rows.finding(tx, finding_id)
    if row is None:
        raise NotFound(f"没有这个监督事项：{finding_id} / no such finding {finding_id}")
    view = _finding_view(tx, row, steps=True)
    _may_see(tx, principal, view.agency_id, finding_id, "监督事项", finding_id)
    view.monitors = rows.monitors(tx, finding_id)
    view.refs_in_log = indexes_of(tx, view.refs)
    view.letters = [_letter_view(tx, r, steps=False) for r in reversed(rows.letters(tx, agency_id=None, finding_id=finding_id, status=None, limit=1000))]
    return view


def list_findings(tx: Tx, principal: Principal, *, status: str | None, limit: int) -> list[FindingView]:
    if principal.role == "monitor":
        return [_finding_view(tx, r, steps=False) for r in rows.findings_of_monitor(tx, principal.username, status=status, limit=limit)]
    agency = None if principal.role == "supervisor" else principal.agency_id
    return [_finding_view(tx, r, steps=False) for r in rows.findings(tx, agency_id=agency, status=status, limit=limit)]


def close_finding(tx: Tx, finding_id: str, note: str, principal: Principal, now_ms: int) -> FindingView:
    """Close a finding (supervisors): not while a letter on it still awaits a report or a verdict."""
    view = get_finding(tx, finding_id, principal)
    if view.status != "open":
        raise Conflict(f"监督事项 {finding_id} 已办结 / finding {finding_id} is already closed")
    waiting = [x for x in view.letters if x.status in ("issued", "replied", "returned")]
    if waiting:
        raise Conflict(f"尚有 {len(waiting)} 份文书未办结 / {len(waiting)} letter(s) on it still await a report or a verdict")
    if not rows.close_finding(tx, finding_id, principal.username, note, now_ms):
        raise Conflict(f"监督事项 {finding_id} 已办结 / finding {finding_id} is already closed")
    append_record(tx, kind="finding.closed", subject=f"finding:{finding_id}", actor=principal.username, content={"note": note}, now_ms=now_ms)
    return get_finding(tx, finding_id, principal)


def assign_monitor(tx: Tx, finding_id: str, username: str, principal: Principal, now_ms: int) -> FindingView:
    """Assign an outside supervisor (an account of role ``monitor``) to a finding (supervisors)."""
    get_finding(tx, finding_id, principal)
    if rows.role_of(tx, username) != "monitor":
        raise Invalid(f"{username} 不是行政执法监督员账号 / {username} is not an outside supervisor's account (role monitor)")
    if not rows.assign_monitor(tx, finding_id, username, principal.username, now_ms):
        raise Conflict(f"{username} 已被指派到该事项 / {username} is already assigned to this finding")
    append_record(tx, kind="finding.monitor_assigned", subject=f"finding:{finding_id}", actor=principal.username, content={"username": username}, now_ms=now_ms)
    return get_finding(tx, finding_id, principal)


def add_remark(tx: Tx, finding_id: str, text: str, principal: Principal, now_ms: int) -> FindingView:
    """An outside supervisor's remark on a finding assigned to them: a record, nothing more."""
    get_finding(tx, finding_id, principal)  # not assigned: not found
    append_record(tx, kind="finding.remark", subject=f"finding:{finding_id}", actor=principal.username, content={"text": text}, now_ms=now_ms)
    return get_finding(tx, finding_id, principal)


# --- letters -------------------------------------------------------------------------------------------------------


def issue_letter(tx: Tx, finding_id: str, data: LetterIn, principal: Principal, now_ms: int) -> LetterView:
    """Issue a letter on an open finding (supervisors). An opinion letter while another on the same finding still
    awaits the agency is refused (a double click issues one); a decision letter only where the agency did not
    rectify: an opinion letter on the finding is overdue, or its report was sent back."""
    finding = get_finding(tx, finding_id, principal)
    if finding.status != "open":
        raise Conflict(f"监督事项 {finding_id} 已办结 / finding {finding_id} is closed")
    opinions = [x for x in finding.letters if x.kind == "opinion"]
    if data.kind == "opinion" and any(x.status in ("issued", "replied", "returned") for x in opinions):
        raise Conflict("该事项已有待办结的监督意见书 / an opinion letter on this finding still awaits the agency")
    if data.kind == "decision":
        if not any(x.status in ("overdue", "returned") for x in opinions):
            raise Conflict("只有在意见书逾期未整改或整改被退回时才能作出监督决定书 / a decision letter follows an overdue or returned opinion letter only")
        if any(x.kind == "decision" and x.status != "accepted" for x in finding.letters):
            raise Conflict("该事项已有待办结的监督决定书 / a decision letter on this finding still awaits the agency")
    issued_on = cst_date(now_ms)
    deadline, _ = add_working_days(issued_on, data.deadline_days)
    year = issued_on.year
    tx.lock(f"letter-number:{data.issuer}:{data.kind}:{year}")
    number = rows.next_letter_number(tx, data.issuer, data.kind, year)
    letter_id = f"L{year}-{uuid.uuid4().hex[:12]}"
    rows.insert_letter(
        tx, letter_id=letter_id, kind=data.kind, issuer=data.issuer, year=year, number=number, finding_id=finding_id,
        agency_id=finding.agency_id, facts=data.facts, basis=data.basis, requirements=data.requirements,
        deadline_days=data.deadline_days, issued_on=issued_on.isoformat(), deadline=deadline.isoformat(),
        issued_by=principal.username, issued_ms=now_ms, status="issued",
    )  # fmt: skip
    content = {**msgspec.to_builtins(data), "finding_id": finding_id, "number": f"〔{year}〕第{number}号", "deadline": deadline.isoformat()}
    append_record(tx, kind="letter.issued", subject=f"letter:{letter_id}", actor=principal.username, content=content, now_ms=now_ms)
    raise_alert(
        tx, "letter_issued", now_ms,
        f"{data.issuer}向本机关发出{KIND_ZH[data.kind]}〔{year}〕第{number}号，请于 {deadline} 前报送整改情况。",
        f"{data.issuer} issued a supervision {data.kind} letter ({year}) no. {number} to the agency: report by {deadline}.",
        agency_id=finding.agency_id, credit_code=finding.credit_code, ref=letter_id,
    )  # fmt: skip
    return get_letter(tx, letter_id, principal)


def get_letter(tx: Tx, letter_id: str, principal: Principal) -> LetterView:
    row = rows.letter(tx, letter_id)
    if row is None:
        raise NotFound(f"没有这份文书：{letter_id} / no such letter {letter_id}")
    view = _letter_view(tx, row, steps=True)
    _may_see(tx, principal, view.agency_id, view.finding_id, "文书", letter_id)
    return view


def list_letters(tx: Tx, principal: Principal, *, finding_id: str | None, status: str | None, limit: int) -> list[LetterView]:
    if principal.role == "monitor":
        found = rows.letters_of_monitor(tx, principal.username, finding_id=finding_id, status=status, limit=limit)
        return [_letter_view(tx, r, steps=False) for r in found]
    agency = None if principal.role == "supervisor" else principal.agency_id
    return [_letter_view(tx, r, steps=False) for r in rows.letters(tx, agency_id=agency, finding_id=finding_id, status=status, limit=limit)]


def reply(tx: Tx, letter_id: str, data: ReplyIn, principal: Principal, now_ms: int) -> LetterView:
    """The agency's rectification report (its administrators): to a letter issued, sent back, or overdue (a late
    report is taken, and its lateness stays in the record)."""
    view = get_letter(tx, letter_id, principal)
    if principal.role != "agency_admin":
        raise NotFound(f"没有这份文书：{letter_id} / no such letter {letter_id}")
    if not rows.reply(tx, letter_id, data.text, principal.username, now_ms):
        raise Conflict(f"该文书当前状态为“{STATUS_ZH[view.status]}”，不能报送 / the letter is {view.status}: no report is awaited")
    files = _checked_files(data.attachments)
    late = view.status == "overdue" or cst_date(now_ms).isoformat() > view.deadline
    batch = uuid.uuid4().hex[:16]  # the files of one report: one prefix, then their order (ids sort as they came)
    named = [
        {"attachment_id": f"A-{batch}-{i}", "filename": a.filename, "content_type": a.content_type, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        for i, (a, raw) in enumerate(files)
    ]
    rec, _ = append_record(
        tx, kind="letter.replied", subject=f"letter:{letter_id}", actor=principal.username, content={"text": data.text, "late": late, "attachments": named}, now_ms=now_ms,
    )  # fmt: skip
    for meta, (_, raw) in zip(named, files, strict=True):
        rows.insert_attachment(tx, letter_id=letter_id, record_id=rec.record_id, uploaded_by=principal.username, uploaded_ms=now_ms, data=raw, **meta)
    raise_alert(
        tx, "letter_replied", now_ms,
        f"{view.agency_id} 报送了{view.title}{view.number}的整改情况{'（逾期）' if late else ''}，待审核。",
        f"{view.agency_id} reported on letter {view.number}{' (late)' if late else ''}: awaiting a verdict.",
        agency_id=view.agency_id, ref=letter_id,
    )  # fmt: skip
    return get_letter(tx, letter_id, principal)


def _checked_files(attachments: list[AttachmentIn]) -> list[tuple[AttachmentIn, bytes]]:
    """Each attachment's bytes: valid base64, not empty, of the type it says it is, all within MAX_ATTACHMENT_BYTES."""
    out, total = [], 0
    for a in attachments:
        try:
            raw = base64.b64decode(a.data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"附件“{a.filename}”不是有效的 base64 编码 / attachment {a.filename!r}: data_base64 is not valid base64") from None
        if not raw or not raw.startswith(ATTACHMENT_TYPES[a.content_type]):
            raise Invalid(f"附件“{a.filename}”的内容不是所述的 {a.content_type} / attachment {a.filename!r} is not the {a.content_type} it says it is")
        total += len(raw)
        if total > MAX_ATTACHMENT_BYTES:
            raise Invalid(f"附件合计超过 {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB / the attachments exceed {MAX_ATTACHMENT_BYTES:,} bytes together")
        out.append((a, raw))
    return out


def attachment(tx: Tx, letter_id: str, attachment_id: str, principal: Principal) -> tuple[AttachmentView, bytes]:
    """One file of a letter's report, for whoever may see the letter."""
    get_letter(tx, letter_id, principal)
    row = rows.attachment(tx, letter_id, attachment_id)
    if row is None:
        raise NotFound(f"没有这个附件：{attachment_id} / no such attachment {attachment_id}")
    view = AttachmentView(**dict(zip(rows.ATTACHMENT_COLUMNS[:1] + rows.ATTACHMENT_COLUMNS[2:], (row[0], *row[2:9]), strict=True)))
    return view, bytes(row[9])


def decide(tx: Tx, letter_id: str, verdict: Literal["accepted", "returned"], note: str, principal: Principal, now_ms: int) -> LetterView:
    """A supervisor accepts the report, or sends it back saying why."""
    view = get_letter(tx, letter_id, principal)
    if verdict == "returned" and not note.strip():
        raise Invalid("退回须说明理由 / sending a report back needs a note saying why")
    if not rows.decide(tx, letter_id, verdict, note, principal.username, now_ms):
        raise Conflict(f"该文书当前状态为“{STATUS_ZH[view.status]}”，没有待审核的整改情况 / the letter is {view.status}: no report awaits a verdict")
    append_record(tx, kind=f"letter.{verdict}", subject=f"letter:{letter_id}", actor=principal.username, content={"note": note}, now_ms=now_ms)
    if verdict == "returned":
        raise_alert(
            tx, "letter_returned", now_ms, f"{view.title}{view.number}的整改情况被退回：{note}", f"The report on letter {view.number} was sent back: {note}",
            agency_id=view.agency_id, ref=letter_id,
        )  # fmt: skip
    return get_letter(tx, letter_id, principal)


def check_deadlines(tx: Tx, now_ms: int) -> dict[str, int]:
    """The daily job: letters past their deadline without a report become overdue, once each, with an alert that
    leads to a decision letter."""
    marked = 0
    for row in rows.overdue(tx, cst_date(now_ms).isoformat()):
        view = _letter_view(tx, row, steps=False)
        if not rows.mark_overdue(tx, view.letter_id):
            continue
        marked += 1
        append_record(tx, kind="letter.overdue", subject=f"letter:{view.letter_id}", actor="system", content={"deadline": view.deadline}, now_ms=now_ms)
        raise_alert(
            tx, "letter_overdue", now_ms,
            f"{view.agency_id} 未在 {view.deadline} 前报送{view.title}{view.number}的整改情况，可作出监督决定书。",
            f"{view.agency_id} did not report on letter {view.number} by {view.deadline}: a decision letter may follow.",
            agency_id=view.agency_id, ref=view.letter_id,
        )  # fmt: skip
    return {"overdue": marked}

