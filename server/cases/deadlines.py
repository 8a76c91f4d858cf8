"""A case's own decision deadline (办案期限; 行政处罚法 art. 60: a penalty decision within 90 days of filing, unless a law
says otherwise, longer only with the agency head's approval). The deadline is set when the case is opened, from the
``[cases]`` policy (``decision_days`` per kind, else ``case_days``); the ``case_reviews`` job (server/jobs/tasks.py)
alerts the agency of a case not yet decided ``deadline_warning_working_days`` working days before it
(``case_deadline_due``) and once past it (``case_overdue``, also a record on the case), each once per case and
deadline (the alert's ref is ``<case id>@<deadline>``); the agency's head (its administrator) may extend it, with the
reason, as a record of the case.
"""

from __future__ import annotations

import datetime as dt

from protocol.cst import cst_date
from server.cases import policy as case_policy
from server.cases.forms import CaseView, ExtensionIn
from server.cases.labels import STATES
from server.cases.workflow import case_row, get_case, record
from server.console.auth import Principal
from server.errors import Conflict, Forbidden, Invalid
from server.evidence.records import append_record
from server.rules.alerts import raise_alert
from server.rules.workdays import add_working_days
from server.storage import cases as rows
from server.storage.engine import Tx

#: The states of a case not yet decided (its decision deadline runs).
UNDECIDED = ("filed", "investigating", "review", "transferring")
#: The latest deadline an extension may set, in days from the filing (as ``case_days`` at most).
MAX_DAYS = 3650


def check(tx: Tx, now_ms: int, policy: case_policy.CasesPolicy) -> dict[str, int]:
    """Alert each case not yet decided whose deadline is within the warning's working days (``due``), and each past
    it (``late``): once per case and deadline, however often the job runs (an extension gives a new deadline, alerted
    again in its turn). A case already past its deadline when first seen gets only the second alert."""
    today = cst_date(now_ms)
    tx.lock("fe:case-deadlines")
    n = policy.deadline_warning_working_days
    soon, _ = add_working_days(today, n)
    due = rows.undecided_due(tx, "case_deadline_due", today.isoformat(), soon.isoformat())
    for case_id, agency_id, deadline, title, code in due:
        raise_alert(
            tx, "case_deadline_due", now_ms,
            f"案件“{title}”应于 {deadline} 前作出决定，期限将至（{n} 个工作日内）。",
            f"Case {title!r} is to be decided by {deadline}: the deadline is within {n} working days.",
            agency_id=agency_id, credit_code=code, ref=f"{case_id}@{deadline}",
        )  # fmt: skip
    late = rows.undecided_due(tx, "case_overdue", "0000-01-01", (today - dt.timedelta(days=1)).isoformat())
    for case_id, agency_id, deadline, title, code in late:
        raise_alert(
            tx, "case_overdue", now_ms,
            f"案件“{title}”应于 {deadline} 前作出决定，已超过办案期限；确需延长的，须经机关负责人批准。",
            f"Case {title!r} was to be decided by {deadline} and is past its deadline; an extension needs the agency head's approval.",
            agency_id=agency_id, credit_code=code, ref=f"{case_id}@{deadline}",
        )  # fmt: skip
        append_record(tx, kind="case.deadline_overdue", subject=f"case:{case_id}", actor="system", content={"deadline": deadline}, now_ms=now_ms)
    return {"due": len(due), "late": len(late)}


def extend(tx: Tx, case_id: str, data: ExtensionIn, principal: Principal, now_ms: int) -> CaseView:
    """The agency head (its administrator) extends the decision deadline of a case of their agency not yet decided,
    to a later date, with the reason: a record of the case (``case.deadline_extended``: from, to, reason, approved
    by). 404 for a case the reader may not see, 403 for anyone but the case's agency's administrator, 409 for a
    case decided already or a date not later than the present deadline (a double click's second)."""
    c = case_row(tx, case_id, principal, lock=True)
    if principal.role != "agency_admin" or principal.agency_id != c["agency_id"]:
        raise Forbidden("只有办案机关负责人（本机关管理员）可以批准延长办案期限 / only the head (administrator) of the case's agency extends its deadline")
    if c["state"] not in UNDECIDED:
        zh, en = STATES.get(c["state"], (c["state"], c["state"]))
        raise Conflict(f"案件已作出决定（现为{zh}阶段），不能延长办案期限 / the case is decided (now {en}): its deadline is no longer extended")
    old, new = c["deadline"], data.deadline.isoformat()
    if new <= old:
        raise Conflict(f"新的办案期限须晚于现期限 {old} / the new deadline must be later than the present one, {old} (got {new})")
    latest = cst_date(c["opened_ms"]) + dt.timedelta(days=MAX_DAYS)
    if data.deadline > latest:
        raise Invalid(f"办案期限不能晚于立案后 {MAX_DAYS} 日（{latest}） / a deadline is at most {MAX_DAYS} days after filing ({latest})")
    if not rows.extend_deadline(tx, case_id, old, new, now_ms):
        raise Conflict("案件已被改变，请刷新 / the case changed meanwhile: reload it")
    record(tx, case_id, "deadline_extended", principal, {"from": old, "to": new, "reason": data.reason, "approved_by": principal.username}, now_ms)
    return get_case(tx, case_id, principal, now_ms)
