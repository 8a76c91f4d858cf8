"""Legal review of major decisions (重大执法决定法制审核): the reviewers' qualification, a case submitted for review, the
reviewer's finding on each checklist item and outcome (passed, returned for correction, or disagreement, which goes
to the agency's head with both opinions), and the head's resolution. Deadlines are in working days
(server/rules/workdays.py); each step is a record of the case in the evidence log.

A reviewer is a registered officer holding a reviewer qualification (table ``case_reviewers``, granted by their
agency's administrator or a supervisor); they review their own agency's cases, never one they handle themselves.
"""

from __future__ import annotations

import json

from server.cases import policy as case_policy
from server.cases.forms import CHECKLIST, CaseView, OutcomeIn, ReviewerIn, ReviewerView, ReviewIn, ReviewView
from server.cases.workflow import case_row, get_case, record, require_officer, review_view
from server.console.auth import Principal
from server.errors import Conflict, Invalid, NotFound
from server.evidence.records import append_record, records_of
from protocol.cst import cst_date
from server.rules.alerts import raise_alert
from server.rules.workdays import add_working_days
from server.storage import case_steps as steps
from server.storage import cases as rows
from server.storage.engine import Tx


# --- reviewers ---------------------------------------------------------------------------------------------------


def grant(tx: Tx, data: ReviewerIn, principal: Principal, now_ms: int) -> ReviewerView:
    """Qualify an officer as a legal reviewer: an agency's administrator for their own officers, a supervisor for any."""
    facts = rows.officer_facts(tx, [data.officer_id]).get(data.officer_id)
    if facts is None or (principal.role != "supervisor" and facts[2] != principal.agency_id):
        raise NotFound(f"没有这名执法人员：{data.officer_id} / no such officer {data.officer_id}")
    if facts[7] is not None and facts[7] <= now_ms:
        raise Invalid(f"执法人员 {data.officer_id} 的执法证已注销 / officer {data.officer_id}'s credential is revoked")
    if not rows.grant_reviewer(tx, officer_id=data.officer_id, agency_id=facts[2], qualification_no=data.qualification_no, granted_by=principal.username, granted_ms=now_ms):
        raise Conflict(f"{data.officer_id} 已是法制审核人员 / {data.officer_id} is a legal reviewer already")
    append_record(tx, kind="reviewer.granted", subject=f"officer:{data.officer_id}", actor=principal.username, content={"qualification_no": data.qualification_no, "agency_id": facts[2]}, now_ms=now_ms)
    return next(r for r in list_reviewers(tx, principal) if r.officer_id == data.officer_id)


def revoke(tx: Tx, officer_id: str, principal: Principal, now_ms: int) -> None:
    agency = rows.reviewer_agency(tx, officer_id)
    if agency is None or (principal.role != "supervisor" and agency != principal.agency_id):
        raise NotFound(f"{officer_id} 不是法制审核人员 / {officer_id} is not a legal reviewer")
    if not rows.revoke_reviewer(tx, officer_id, now_ms):
        raise Conflict(f"{officer_id} 的审核资格已取消 / {officer_id}'s qualification is revoked already")
    append_record(tx, kind="reviewer.revoked", subject=f"officer:{officer_id}", actor=principal.username, content={"agency_id": agency}, now_ms=now_ms)


def list_reviewers(tx: Tx, principal: Principal) -> list[ReviewerView]:
    agency = None if principal.role == "supervisor" else principal.agency_id or "-"
    return [ReviewerView(officer_id=r[0], name=r[1], agency_id=r[2], qualification_no=r[3], granted_by=r[4], granted_ms=r[5]) for r in rows.reviewers(tx, agency)]


def is_reviewer_for(tx: Tx, principal: Principal, agency_id: str) -> bool:
    return principal.role == "officer" and principal.officer_id is not None and rows.reviewer_agency(tx, principal.officer_id) == agency_id


# --- reviews -----------------------------------------------------------------------------------------------------


def proposed_measures(fine_yuan: int, measures: list[str]) -> list[str]:
    """The measures of a proposal or decision, once each, with ``fine`` when there is a fine."""
    out = list(dict.fromkeys(measures))
    if fine_yuan > 0 and "fine" not in out:
        out.append("fine")
    return out


def submit(tx: Tx, case_id: str, data: ReviewIn, principal: Principal, now_ms: int, policy: case_policy.CasesPolicy) -> CaseView:
    """The case's officers submit their proposed decision (拟作出的决定: what it orders, and their opinion) for review:
    the investigation is over (调查取证 → 法制审核). A case whose review passed may submit a different proposal: a new
    review, since a decision must match the proposal reviewed (server/cases/decide.py)."""
    c = case_row(tx, case_id, principal, lock=True)
    require_officer(tx, principal, c, case_id, now_ms)
    earlier = steps.reviews_of(tx, case_id)
    again = c["state"] == "review" and bool(earlier) and earlier[-1]["status"] == "passed"
    if c["state"] != "investigating" and not again:
        raise Conflict(f"只有调查取证中的案件可以提请法制审核 / only a case under investigation goes to legal review (it is {c['state']})")
    if not again and not rows.set_state(tx, case_id, "investigating", "review", now_ms):
        raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    measures = proposed_measures(data.fine_yuan, data.measures)
    proposal = data.proposal
    review_id = f"{case_id}-R{steps.count_reviews(tx, case_id) + 1}"
    deadline, _ = add_working_days(cst_date(now_ms), policy.review_working_days)
    steps.insert_review(
        tx, review_id=review_id, case_id=case_id, agency_id=c["agency_id"], proposal=proposal, kind=c["kind"], fine_yuan=data.fine_yuan,
        measures=json.dumps(measures), hearing=int(data.hearing), submitted_by=principal.username, submitted_ms=now_ms, deadline=deadline.isoformat(),
    )  # fmt: skip
    record(tx, case_id, "review_submitted", principal, {
        "review_id": review_id, "proposal": proposal, "kind": c["kind"], "fine_yuan": data.fine_yuan, "measures": measures, "hearing": data.hearing,
        "deadline": deadline.isoformat(),
    }, now_ms)  # fmt: skip
    return get_case(tx, case_id, principal, now_ms)


def _review(tx: Tx, case_id: str, review_id: str) -> dict[str, object]:
    r = steps.review(tx, review_id)
    if r is None or r["case_id"] != case_id:
        raise NotFound(f"没有这次审核：{review_id} / no such review {review_id}")
    return r


def outcome(tx: Tx, case_id: str, review_id: str, data: OutcomeIn, principal: Principal, now_ms: int) -> CaseView:
    """A reviewer's findings and outcome. Every checklist item gets a finding; ``passed`` only when every item is
    sound (a suspected crime is referred first); ``returned`` and ``disagreement`` say why. A disagreement goes to the
    agency's head with the handling officers' proposal and the reviewer's opinion."""
    tx.lock(f"fe:case:{case_id}")
    c = rows.case(tx, case_id)
    if c is None or not is_reviewer_for(tx, principal, c["agency_id"]):
        raise NotFound(f"没有这个案件：{case_id} / no such case {case_id} (for a legal reviewer of its agency)")
    r = _review(tx, case_id, review_id)
    if principal.officer_id in [o[0] for o in rows.officers_of(tx, case_id)] or principal.username in _handled_by(tx, case_id):
        raise Conflict("承办人员不得审核本人承办的案件 / an officer handling the case may not review it")
    facts = rows.officer_facts(tx, [principal.officer_id or ""]).get(principal.officer_id or "")
    if facts is None or (facts[7] is not None and facts[7] <= now_ms) or not facts[5] <= now_ms < facts[6]:
        raise Conflict("审核人员的执法证已注销或不在有效期内，不能审核 / the reviewer's credential is revoked or not valid now: no review")
    if r["status"] != "pending":
        raise Conflict(f"该审核已有结论（{r['status']}）/ the review has an outcome already ({r['status']})")
    missing = [i for i in CHECKLIST if i not in data.checklist]
    if missing:
        raise Invalid(f"审核须逐项给出意见，缺少：{', '.join(missing)} / a finding for every checklist item is needed, missing {', '.join(missing)}")
    faults = [i for i in CHECKLIST if not data.checklist[i].ok]
    if data.outcome == "passed" and faults:
        raise Invalid(f"存在问题的审核事项不能通过：{', '.join(faults)} / a review with faults cannot pass ({', '.join(faults)})")
    if data.outcome != "passed" and not data.opinion.strip():
        raise Invalid("退回或意见分歧须写明审核意见 / a return or a disagreement states the reviewer's opinion")
    if data.outcome == "returned" and not faults:
        raise Invalid("退回须指出存在问题的审核事项 / a return names the checklist items at fault")
    status = {"passed": "passed", "returned": "returned", "disagreement": "escalated"}[data.outcome]
    checklist = json.dumps({k: {"ok": v.ok, "note": v.note} for k, v in data.checklist.items()}, ensure_ascii=False)
    crime = not data.checklist["crime_transfer"].ok
    if not steps.record_review(
        tx, review_id=review_id, status=status, reviewer=principal.officer_id, checklist=checklist, opinion=data.opinion, crime_suspected=int(crime), reviewed_ms=now_ms,
    ):  # fmt: skip
        raise Conflict("该审核已有结论 / the review has an outcome already")
    if status == "returned" and not rows.set_state(tx, case_id, "review", "investigating", now_ms):
        raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    record(tx, case_id, f"review_{status}", principal, {"review_id": review_id, "checklist": json.loads(checklist), "opinion": data.opinion, "crime_suspected": crime}, now_ms)
    if status == "escalated":
        raise_alert(
            tx, "review_disagreement", now_ms,
            f"案件“{c['title']}”法制审核意见分歧，报机关负责人决定。承办意见：{r['proposal']}；审核意见：{data.opinion}",
            f"Legal review disagreement on case {c['title']!r}, for the agency head: handling officers: {r['proposal']}; reviewer: {data.opinion}",
            agency_id=c["agency_id"], credit_code=c["credit_code"], ref=case_id,
        )  # fmt: skip
    return get_case(tx, case_id, principal, now_ms)


#: The records a reviewer or the head writes about a case: the others' actors are the people who handled it.
_REVIEWERS_OWN = ("case.review_passed", "case.review_returned", "case.review_escalated", "case.review_overdue", "case.review_resolved_")


def _handled_by(tx: Tx, case_id: str) -> set[str]:
    """Who worked the case (opened it, moved it on, added documents, submitted it for review...): a reviewer who did
    is not the independent check the review is meant to be, even when not named among the case's officers."""
    return {str(r.content().get("actor", "")) for r in records_of(tx, f"case:{case_id}") if not r.kind.startswith(_REVIEWERS_OWN)}


def resolve(tx: Tx, case_id: str, review_id: str, result: str, note: str, principal: Principal, now_ms: int) -> CaseView:
    """The agency head (its administrator) decides a disagreement, with both opinions before them."""
    c = case_row(tx, case_id, principal, lock=True)
    if principal.role != "agency_admin" or principal.agency_id != c["agency_id"]:
        raise NotFound(f"没有这个案件：{case_id} / no such case {case_id}")
    r = _review(tx, case_id, review_id)
    if r["status"] != "escalated" or not steps.resolve_review(tx, review_id, result, note, principal.username, now_ms):
        raise Conflict("该审核没有待机关负责人决定的分歧 / the review has no disagreement awaiting the head")
    if result == "returned" and not rows.set_state(tx, case_id, "review", "investigating", now_ms):
        raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    record(tx, case_id, f"review_resolved_{result}", principal, {"review_id": review_id, "note": note, "proposal": r["proposal"], "opinion": r["opinion"]}, now_ms)
    return get_case(tx, case_id, principal, now_ms)


def pending(tx: Tx, principal: Principal, now_ms: int) -> list[ReviewView]:
    """Reviews awaiting a reviewer (or, escalated, the head) in the principal's agency; a supervisor sees all."""
    agency = None if principal.role == "supervisor" else principal.agency_id or "-"
    today = cst_date(now_ms).isoformat()
    return [review_view(r, today) for r in steps.reviews(tx, agency_id=agency, status=None, limit=200) if r["status"] in ("pending", "escalated")]


def check_deadlines(tx: Tx, now_ms: int) -> dict[str, int]:
    """A job (server/jobs/tasks.py, twice a day): each pending review past its deadline is
    alerted to its agency, once (``review_overdue``, its ref the review)."""
    today = cst_date(now_ms).isoformat()
    tx.lock("fe:case-review-deadlines")
    found = steps.overdue_reviews(tx, today)
    for review_id, case_id, agency_id, deadline, title, code in found:
        raise_alert(
            tx, "review_overdue", now_ms, f"案件“{title}”的法制审核应于 {deadline} 前完成，已逾期。",
            f"The legal review of case {title!r} was due by {deadline} and is overdue.", agency_id=agency_id, credit_code=code, ref=review_id,
        )  # fmt: skip
        append_record(tx, kind="case.review_overdue", subject=f"case:{case_id}", actor="system", content={"review_id": review_id, "deadline": deadline}, now_ms=now_ms)
    return {"overdue": len(found)}
