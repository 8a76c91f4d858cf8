"""Transfers (案件移送) and judicial referrals (行刑衔接).

A case that belongs to another agency is transferred with its file (the case moves to 移送中; the receiving agency
sees it, and accepts it, naming at least two of its own officers, or sends it back with its reasons, the case then
returning to where it was). A case that must go to the judicial organs as a suspected crime is referred with its
file; the referral stays open until the agency records the answer it received. Each step is a record of the case.
"""

from __future__ import annotations

from server.cases.forms import AnswerIn, CaseView, TransferIn
from server.cases.workflow import OPEN_STATES, case_row, check_officers, get_case, not_found, record, require_officer
from server.console.auth import Principal
from server.errors import Conflict, Invalid, NotFound
from server.rules.alerts import raise_alert
from server.storage import case_steps as steps
from server.storage import cases as rows
from server.storage import supervision as registers
from server.storage.engine import Tx


def send(tx: Tx, case_id: str, data: TransferIn, principal: Principal, now_ms: int) -> CaseView:
    """Transfer the case to another agency (before a decision), or refer it to the judicial organs."""
    c = case_row(tx, case_id, principal, lock=True)
    require_officer(tx, principal, c, case_id, now_ms)
    transfer_id = f"{case_id}-T{steps.count_transfers(tx, case_id) + 1}"
    if data.kind == "transfer":
        if data.to_agency is None or not registers.agency_exists(tx, data.to_agency):
            raise NotFound(f"没有这个执法机关：{data.to_agency} / no such agency {data.to_agency}")
        if data.to_agency == c["agency_id"]:
            raise Invalid("不能移送本机关 / a case is not transferred to its own agency")
        if c["state"] not in ("filed", "investigating"):
            raise Conflict(f"案件处于“{c['state']}”，不能移送 / the case is {c['state']}: only a case before its decision is transferred")
        names = registers.agency_names(tx)
        to_body = names.get(data.to_agency, (data.to_agency, ""))[0]
        if not rows.set_state(tx, case_id, c["state"], "transferring", now_ms):
            raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    else:
        if not data.to_body:
            raise Invalid("移送司法机关须写明接收机关 / a referral names the judicial organ (to_body)")
        if c["state"] not in OPEN_STATES:
            raise Conflict(f"案件已{c['state']}，不能移送司法机关 / the case is {c['state']}")
        if steps.open_referral(tx, case_id):
            raise Conflict("该案件已移送司法机关，尚待答复 / the case is referred already and awaits the answer")
        to_body = data.to_body
    steps.insert_transfer(
        tx, transfer_id=transfer_id, case_id=case_id, kind=data.kind, from_agency=c["agency_id"], to_agency=data.to_agency if data.kind == "transfer" else None,
        to_body=to_body, reason=data.reason, prior_state=c["state"], sent_by=principal.username, sent_ms=now_ms,
    )  # fmt: skip
    record(tx, case_id, f"{data.kind}_sent", principal, {"transfer_id": transfer_id, "to_agency": data.to_agency, "to_body": to_body, "reason": data.reason}, now_ms)
    if data.kind == "transfer":
        raise_alert(
            tx, "case_transfer", now_ms, f"收到移送案件“{c['title']}”，请接收或说明理由退回。", f"Case {c['title']!r} was transferred to the agency: accept it or send it back.",
            agency_id=data.to_agency, credit_code=c["credit_code"], ref=case_id,
        )  # fmt: skip
    return get_case(tx, case_id, principal, now_ms)


def answer(tx: Tx, case_id: str, transfer_id: str, data: AnswerIn, principal: Principal, now_ms: int) -> CaseView:
    """A transfer's answer, by an officer of the receiving agency; a referral's, by an officer of the case's agency."""
    c = case_row(tx, case_id, principal, lock=True)
    t = steps.transfer(tx, transfer_id)
    if t is None or t["case_id"] != case_id:
        raise NotFound(f"没有这次移送：{transfer_id} / no such transfer {transfer_id}")
    answering = t["to_agency"] if t["kind"] == "transfer" else t["from_agency"]
    if principal.role != "officer" or principal.agency_id != answering:
        raise not_found(case_id)
    if t["kind"] == "referral":
        require_officer(tx, principal, c, case_id, now_ms)  # the case's own officers record the judicial organ's answer
    if t["status"] != "sent":
        raise Conflict("该移送已答复 / the transfer has its answer already")
    status = "accepted" if data.accepted else "returned"
    if t["kind"] == "transfer":
        if data.accepted:
            officers = check_officers(tx, data.officer_ids, answering, c["field"], now_ms)
            if principal.officer_id not in officers:
                raise Invalid("接收案件的执法人员须为承办人员之一 / the officer accepting a case is one of the officers it names")
            if not rows.move_case(tx, case_id, answering, "filed", now_ms):
                raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
            rows.set_officers(tx, case_id, officers)
        elif not rows.set_state(tx, case_id, "transferring", t["prior_state"], now_ms):
            raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    if not steps.answer_transfer(tx, transfer_id, status, data.reason, principal.username, now_ms):
        raise Conflict("该移送已答复 / the transfer has its answer already")
    record(tx, case_id, f"{t['kind']}_{status}", principal, {"transfer_id": transfer_id, "reason": data.reason, "officer_ids": data.officer_ids}, now_ms)
    if t["kind"] == "transfer" and not data.accepted:
        # Sent back, the case is the sender's again: the answer is the case as the receiving agency last saw it.
        return get_case(tx, case_id, Principal(username=principal.username, role="supervisor"), now_ms)
    return get_case(tx, case_id, principal, now_ms)
