"""Cases (案件): opened from an ended inspection or by hand, worked through 立案 → 调查取证 → (法制审核) → 决定 → 送达 →
执行 → 结案 → 归档, each step checked here and appended to the evidence log as a server record (subject
``case:<id>``), as server/supervision/workflow.py does for findings.

Who may do what: officers open and work their own agency's cases (and only cases they could act on: at least two
officers of the case's agency with a valid credential for its field act on each); agency administrators and
supervisors read (their agency's, all); an enterprise reads the cases about itself, without the internal review;
anyone else, or another agency, gets "not found" so a case's existence does not leak.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec

from server.cases import policy as case_policy
from server.cases.masking import mask_id
from server.cases.forms import CaseIn, CaseView, DecisionView, EvidenceView, ItemFinding, OfficerView, PartyView, ReviewView, TransferView
from server.console.auth import Principal
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.evidence.records import append_record, steps_of
from protocol.cst import cst_date
from server.storage import case_steps as steps
from server.storage import cases as rows
from server.storage import supervision as registers
from server.storage.engine import Tx

#: The transitions a case may make by ``POST .../transitions`` (the others go through reviews, decisions and transfers).
NEXT: dict[str, tuple[str, ...]] = {"investigating": ("filed",), "served": ("decided",), "executed": ("served",), "closed": ("served", "executed"), "archived": ("closed",)}
#: States in which a case is still being handled (documents may be added, a referral sent).
OPEN_STATES = ("filed", "investigating", "review", "decided", "served", "executed")


def not_found(case_id: str) -> NotFound:
    return NotFound(f"没有这个案件：{case_id} / no such case {case_id}")


def record(tx: Tx, case_id: str, kind: str, principal: Principal, content: Any, now_ms: int) -> None:
    """Append a step of the case to the evidence log."""
    append_record(tx, kind=f"case.{kind}", subject=f"case:{case_id}", actor=principal.username, content=content, now_ms=now_ms)


def _valid(officer: tuple[Any, ...], field: str, now_ms: int) -> str | None:
    """Why an officer may not act in a case of ``field`` now, or None."""
    _, _, _, _, fields, valid_from, valid_to, revoked = officer
    if revoked is not None and revoked <= now_ms:
        return "执法证已注销 / credential revoked"
    if not valid_from <= now_ms < valid_to:
        return "执法证不在有效期内 / credential not valid now"
    if field not in json.loads(fields or "[]"):
        return f"执法证不含领域 {field} / credential does not cover field {field}"
    return None


def check_officers(tx: Tx, officer_ids: list[str], agency_id: str, field: str, now_ms: int) -> list[str]:
    """The officers, deduplicated, if at least two exist in ``agency_id`` with a valid credential for ``field``."""
    ids = list(dict.fromkeys(officer_ids))
    facts = rows.officer_facts(tx, ids)
    for o in ids:
        if o not in facts:
            raise NotFound(f"没有这名执法人员：{o} / no such officer {o}")
        if facts[o][2] != agency_id:
            raise Invalid(f"执法人员 {o} 不属于办案机关 / officer {o} belongs to another agency")
        why = _valid(facts[o], field, now_ms)
        if why:
            raise Invalid(f"执法人员 {o}：{why}")
    if len(ids) < 2:
        raise Invalid("案件须有至少两名持有效执法证的执法人员 / a case needs at least two officers with valid credentials")
    return ids


def require_officer(tx: Tx, principal: Principal, c: dict[str, Any], case_id: str, now_ms: int) -> None:
    """Only the case's named officers work it, while their credential holds (others of another agency: not found, or
    403 by the route's guard; a colleague of the same agency who is not named, or a named officer whose credential is
    revoked or out of its dates: 403). The agency head's part (resolving a disagreement, publishing) goes through its
    own routes."""
    if principal.role != "officer" or principal.agency_id != c["agency_id"]:
        raise not_found(case_id)
    me = next((o for o in rows.officers_of(tx, case_id) if o[0] == principal.officer_id), None)
    if me is None:
        raise Forbidden("您不是本案的承办人员 / you are not one of the case's officers")
    if (me[7] is not None and me[7] <= now_ms) or me[5] is None or not me[5] <= now_ms < me[6]:
        raise Forbidden("您的执法证已注销或不在有效期内，不能办理案件 / your credential is revoked or not valid now: no step on a case")


def case_row(tx: Tx, case_id: str, principal: Principal, *, lock: bool = False) -> dict[str, Any]:
    """The case's row, if ``principal`` may see it (else not found); ``lock``: first take the case's lock, so that
    two steps on one case (two clicks, two officers) take turns and the second sees what the first did."""
    if lock:
        tx.lock(f"fe:case:{case_id}")
    c = rows.case(tx, case_id)
    if c is None or not may_see(tx, principal, c):
        raise not_found(case_id)
    return c


def may_see(tx: Tx, principal: Principal, c: dict[str, Any]) -> bool:
    if principal.role == "supervisor":
        return True
    if principal.role in ("agency_admin", "officer") and principal.agency_id is not None:
        if c["agency_id"] == principal.agency_id:
            return True
        return any(t["to_agency"] == principal.agency_id and t["status"] == "sent" for t in steps.transfers_of(tx, c["case_id"]))
    return principal.role == "enterprise" and c["credit_code"] is not None and c["credit_code"] == principal.credit_code


def open_case(tx: Tx, data: CaseIn, principal: Principal, now_ms: int, policy: case_policy.CasesPolicy) -> CaseView:
    """Open a case (officers): from an ended inspection in which their agency took part (not one that found nothing),
    once per inspection and agency; or by hand, naming the field (and the enterprise, if any)."""
    agency = principal.agency_id or ""
    field, code = data.field, data.credit_code
    if data.inspection_id is not None:
        found = rows.inspection(tx, data.inspection_id)
        parts = [p for p in rows.part_results(tx, data.inspection_id) if p[1] == agency] if found else []
        if found is None or not parts:
            raise NotFound(f"本机关没有参加这次检查：{data.inspection_id} / no inspection {data.inspection_id} of your agency")
        if found[4] is None:
            raise Conflict("检查尚未结束，不能立案 / the inspection has not ended: no case yet")
        if all(p[3] in ("no_violation", "not_completed") for p in parts):
            raise Conflict("该次检查未发现问题，不能据此立案 / the inspection found nothing: no case from it")
        if code is not None and code != found[0]:
            raise Invalid("企业与检查不符 / the enterprise is not the inspection's")
        if field is not None and field not in {p[2] for p in parts}:
            raise Invalid(f"执法领域与检查不符 / the inspection was not in field {field}")
        code, field = found[0], field or parts[0][2]
        tx.lock(f"fe:case-of:{data.inspection_id}:{agency}")
        for other, other_agency in rows.cases_of_inspection(tx, data.inspection_id):
            if other_agency == agency:
                raise Conflict(f"该检查已立案 {other} / the inspection already opened case {other}")
    if field is None:
        raise Invalid("手工立案须写明执法领域 / a case opened by hand names its field")
    if code is not None and not registers.enterprise_exists(tx, code):
        raise NotFound(f"没有这家企业：{code} / no such enterprise {code}")
    officers = check_officers(tx, data.officer_ids, agency, field, now_ms)
    if principal.officer_id not in officers:
        raise Invalid("立案人须为本案承办人员之一 / the officer opening a case is one of its named officers")
    year = cst_date(now_ms).year
    tx.lock(f"fe:case-number:{year}")
    seq = rows.next_case_seq(tx, year)
    case_id = f"CASE-{year}-{seq:05d}"
    deadline = (cst_date(now_ms) + dt.timedelta(days=case_policy.decision_days(policy, data.kind))).isoformat()
    rows.insert_case(
        tx, case_id=case_id, year=year, seq=seq, agency_id=agency, kind=data.kind, field=field, title=data.title, credit_code=code,
        inspection_id=data.inspection_id, opened_by=principal.username, opened_ms=now_ms, deadline=deadline,
    )  # fmt: skip
    rows.set_officers(tx, case_id, officers)
    parties = [(p.kind, p.name, p.id_no) for p in data.parties]
    if code is not None and not any(k == "enterprise" for k, _, _ in parties):
        names = registers.enterprise_names(tx, [code])
        parties.insert(0, ("enterprise", names.get(code, code), code))
    rows.add_parties(tx, case_id, parties)
    if data.inspection_id is not None:
        rows.add_inspection(tx, case_id, data.inspection_id)
    record(tx, case_id, "opened", principal, {**msgspec.to_builtins(data), "case_id": case_id, "agency_id": agency, "field": field, "deadline": deadline}, now_ms)
    return get_case(tx, case_id, principal)


def get_case(tx: Tx, case_id: str, principal: Principal, now_ms: int | None = None) -> CaseView:
    """The whole case, for whoever may see it (an enterprise without the internal reviews, transfers and steps)."""
    c = case_row(tx, case_id, principal)
    view = CaseView(**c)
    now_ms = now_ms or c["updated_ms"]
    view.officers = [
        OfficerView(officer_id=o[0], name=o[1] or o[0], credential_no=o[3] or "", valid=o[2] is not None and _valid(o, c["field"], now_ms) is None)
        for o in rows.officers_of(tx, case_id)
    ]  # fmt: skip
    view.parties = [PartyView(kind=k, name=n, id_no=mask_id(d) if k == "individual" and principal.role == "enterprise" else d) for k, n, d in rows.parties(tx, case_id)]
    view.inspections = [r[0] for r in rows.inspections_of(tx, case_id)]
    view.evidence = [
        EvidenceView(kind=m[2], title=m[3], sha256=m[4], ref=m[0], log_index=m[8], at_ms=m[6], inspection_id=m[1], integrity=m[7])
        for m in rows.media_of(tx, case_id)
    ] + [EvidenceView(kind="document", title=d[1], sha256=d[2], ref=d[3], log_index=d[4], at_ms=d[6]) for d in rows.documents(tx, case_id)]
    view.decision = decision_view(tx, case_id)
    if principal.role != "enterprise":  # the party concerned sees its case and decision, not the agency's internals
        view.transfers = [TransferView(**{k: v for k, v in t.items() if k not in ("prior_state", "case_id")}) for t in steps.transfers_of(tx, case_id)]
        today = cst_date(now_ms).isoformat()
        view.reviews = [review_view(r, today) for r in steps.reviews_of(tx, case_id)]
        view.steps = steps_of(tx, f"case:{case_id}")
    return view


def review_view(r: dict[str, Any], today: str) -> ReviewView:
    checklist = None if r["checklist"] is None else {k: ItemFinding(**v) for k, v in json.loads(r["checklist"]).items()}
    return ReviewView(**{**r, "checklist": checklist, "crime_suspected": bool(r["crime_suspected"]), "measures": json.loads(r["measures"]), "hearing": bool(r["hearing"])}, overdue=r["status"] == "pending" and r["deadline"] < today)


def decision_view(tx: Tx, case_id: str) -> DecisionView | None:
    d = steps.decision_of(tx, case_id)
    if d is None:
        return None
    disclosed = steps.disclosure(tx, d["decision_id"])
    return DecisionView(
        decision_id=d["decision_id"], kind=d["kind"], summary=d["summary"], fine_yuan=d["fine_yuan"], measures=json.loads(d["measures"]),
        hearing=bool(d["hearing"]), major_rules=json.loads(d["major_rules"]), review_id=d["review_id"], decided_by=d["decided_by"],
        decided_on=d["decided_on"], disclosure_deadline=disclosed[0] if disclosed else None, disclosed_on=disclosed[1] if disclosed else None,
        disclosure_status=disclosed[2] if disclosed else None, published=d["published_ms"] is not None,
        sampled_in=[s for s, _ in steps.sampled(tx, d["decision_id"])],
    )  # fmt: skip


def list_cases(tx: Tx, principal: Principal, *, state: str | None, credit_code: str | None, limit: int) -> list[CaseView]:
    """Cases newest first: a supervisor all, an agency's staff their agency's (and those sent to it), an enterprise
    its own (without the internals)."""
    if principal.role == "enterprise":
        found = rows.cases(tx, agency_id=None, credit_code=principal.credit_code or "-", state=state, limit=limit)
    elif principal.role == "supervisor":
        found = rows.cases(tx, agency_id=None, credit_code=credit_code, state=state, limit=limit)
    else:
        found = rows.cases(tx, agency_id=principal.agency_id or "-", credit_code=credit_code, state=state, limit=limit)
    return [CaseView(**c) for c in found]


def transition(tx: Tx, case_id: str, to: str, note: str, principal: Principal, now_ms: int) -> CaseView:
    """Move a case on (its officers): 立案 → 调查取证 (still at least two officers with valid credentials), 决定 → 送达 →
    执行 → 结案 (a decision with nothing to execute may close once served) → 归档. A replayed or out-of-order step is 409."""
    c = case_row(tx, case_id, principal, lock=True)
    require_officer(tx, principal, c, case_id, now_ms)
    allowed = NEXT[to]
    if c["state"] not in allowed:
        raise Conflict(
            f"案件处于“{_zh(c['state'])}”，不能转为“{_zh(to)}” / the case is {c['state']}: it cannot move to {to} (only from {', '.join(allowed)})"
        )
    if to == "investigating":
        check_officers(tx, [o[0] for o in rows.officers_of(tx, case_id)], c["agency_id"], c["field"], now_ms)
    if to == "closed" and c["state"] == "served" and c["kind"] in ("penalty", "coercion"):
        raise Conflict("处罚、强制决定须执行后结案 / a penalty or coercion is executed before the case closes")
    if to == "closed" and steps.open_referral(tx, case_id):
        raise Conflict("移送司法机关尚未答复，不能结案 / a referral to the judicial organs awaits its answer")
    if not rows.set_state(tx, case_id, c["state"], to, now_ms):
        raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    record(tx, case_id, to, principal, {"from": c["state"], "to": to, "note": note}, now_ms)
    return get_case(tx, case_id, principal, now_ms)


def add_document(tx: Tx, case_id: str, title: str, sha256: str, principal: Principal, now_ms: int) -> CaseView:
    """Add a document of the case file (its hash goes into the evidence log), while the case is being handled."""
    c = case_row(tx, case_id, principal, lock=True)
    require_officer(tx, principal, c, case_id, now_ms)
    if c["state"] not in OPEN_STATES:
        raise Conflict(f"案件已{_zh(c['state'])}，不能再添加文书 / the case is {c['state']}: no more documents")
    rec, _ = append_record(tx, kind="case.document", subject=f"case:{case_id}", actor=principal.username, content={"title": title, "sha256": sha256}, now_ms=now_ms)
    rows.add_document(tx, case_id=case_id, title=title, sha256=sha256, record_id=rec.record_id, added_by=principal.username, added_ms=now_ms)
    return get_case(tx, case_id, principal, now_ms)


def _zh(state: str) -> str:
    from server.cases.labels import STATES

    return STATES.get(state, (state, state))[0]
