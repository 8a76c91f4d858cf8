"""Decisions (决定) and their disclosure (行政执法公示).

A decision is made on a case whose investigation is over (调查取证, or 法制审核 with the review answered). It is checked
against the agency's major-decision list (server/cases/policy.py): a major decision without a passed legal review is
refused (409 naming the rules matched) and raises an alert. Issuing a decision registers it with its disclosure
deadline (server/jobs/disclosure.py ``record_decision``: 7 working days for penalties and permits, 20 for others);
publishing it records the disclosure (on time or late) and shows it on the public page, with personal data masked.
"""

from __future__ import annotations

import json
import uuid
from protocol import creditcode
from server.cases import policy as case_policy
from server.cases.forms import CaseView, DecisionIn, PartyView, PublicDecision
from server.cases.masking import mask_id, mask_name, mask_text  # noqa: F401  (mask_id: pages use it from here)
from server.cases.policy import MEASURES
from server.cases.review import proposed_measures
from server.cases.workflow import case_row, get_case, record, require_officer
from server.console.auth import Principal
from server.errors import Conflict
from protocol.cst import cst_date
from server.jobs.disclosure import record_decision, record_disclosure
from server.rules.alerts import raise_alert
from server.storage import case_steps as steps
from server.storage import cases as rows
from server.storage.engine import Tx

#: The disclosure kind of each case kind (server/jobs/disclosure.py DISCLOSURE_DAYS).
DISCLOSURE_KIND = {"penalty": "penalty", "permit": "permit", "coercion": "other", "other": "other"}


class MajorWithoutReview(Conflict):
    """A major decision without a passed legal review (409, naming the rules of the major-decision list it matches),
    or unlike the proposal its review passed (409, naming what differs)."""


def _differences(review: dict[str, object], kind: str, fine_yuan: int, measures: list[str], hearing: bool) -> list[tuple[str, str]]:
    """How a decision goes beyond the proposal its review passed, (Chinese, English) each: at most the reviewed fine,
    no measure outside the reviewed ones, the same kind and hearing."""
    out = []
    if review["kind"] != kind:
        out.append((f"案件种类（审核：{review['kind']}，决定：{kind}）", f"kind (reviewed {review['kind']}, decided {kind})"))
    reviewed_fine = int(review["fine_yuan"])  # type: ignore[call-overload]
    if fine_yuan > reviewed_fine:
        out.append((f"罚款 {fine_yuan:,} 元超过审核的 {reviewed_fine:,} 元", f"fine {fine_yuan:,} yuan above the reviewed {reviewed_fine:,}"))
    reviewed = set(json.loads(str(review["measures"])))
    extra = [m for m in measures if m not in reviewed]
    if extra:
        out.append((f"未经审核的措施：{'、'.join(MEASURES[m][0] if m in MEASURES else m for m in extra)}", f"measures not reviewed: {', '.join(extra)}"))
    if bool(review["hearing"]) != hearing:
        out.append(("听证与审核的不符", "the hearing differs from the reviewed proposal"))
    return out


def passed_review(tx: Tx, case_id: str) -> str | None:
    """The latest review of the case, if it passed (by the reviewer, or by the head's resolution of a disagreement)."""
    reviews = steps.reviews_of(tx, case_id)
    return reviews[-1]["review_id"] if reviews and reviews[-1]["status"] == "passed" else None


def decide(tx: Tx, case_id: str, data: DecisionIn, principal: Principal, now_ms: int, policy: case_policy.CasesPolicy) -> CaseView:
    """Issue the case's decision (its officers)."""
    c = case_row(tx, case_id, principal, lock=True)
    require_officer(tx, principal, c, case_id, now_ms)
    if c["state"] not in ("investigating", "review"):
        raise Conflict(f"案件处于“{c['state']}”，不能作出决定（调查取证终结后方可）/ the case is {c['state']}: a decision follows the investigation")
    reviews = steps.reviews_of(tx, case_id)
    if c["state"] == "review" and reviews and reviews[-1]["status"] in ("pending", "escalated"):
        raise Conflict("法制审核尚无结论 / the legal review has no outcome yet")
    measures = proposed_measures(data.fine_yuan, data.measures)
    rules = case_policy.matching_rules(policy, c["agency_id"], fine_yuan=data.fine_yuan, measures=measures, hearing=data.hearing)
    review_id = passed_review(tx, case_id)
    if rules and review_id is None:
        zh = "；".join(r[1] for r in rules)
        en = "; ".join(r[2] for r in rules)
        # The refusal is an answer, not a failure: the alert is written in its own transaction by the caller.
        raise MajorWithoutReview(
            f"重大执法决定须经法制审核通过后方可作出（重大执法决定事项清单：{zh}）/ a major decision needs a passed legal review first (major-decision list: {en})"
        )
    if review_id is not None:  # a review passed: the decision is the one it reviewed, or not beyond it
        differs = _differences(reviews[-1], c["kind"], data.fine_yuan, measures, data.hearing)
        if differs:
            zh, en = "；".join(d[0] for d in differs), "; ".join(d[1] for d in differs)
            message = f"决定与法制审核通过的拟作出决定（{review_id}）不符：{zh}；须重新提请法制审核 / the decision differs from the proposal review {review_id} passed: {en}; submit it for a new review"
            raise MajorWithoutReview(message) if rules else Conflict(message)
    decided_on = cst_date(now_ms)
    # Not guessable: a decision registered by hand (POST /api/v1/decisions) cannot take the case's id before it.
    decision_id = f"{case_id}-D{uuid.uuid4().hex[:8]}"
    if not steps.insert_decision(
        tx, decision_id=decision_id, case_id=case_id, agency_id=c["agency_id"], kind=c["kind"], summary=data.summary, fine_yuan=data.fine_yuan,
        measures=json.dumps(measures), hearing=int(data.hearing), major_rules=json.dumps([r[0] for r in rules]), review_id=review_id if rules else None,
        decided_by=principal.username, decided_ms=now_ms, decided_on=decided_on.isoformat(),
    ):  # fmt: skip
        raise Conflict("该案件已作出决定 / the case has a decision already")
    if not rows.set_state(tx, case_id, c["state"], "decided", now_ms):
        raise Conflict("案件状态已被改变，请刷新 / the case changed meanwhile: reload it")
    registered = record_decision(
        tx, decision_id=decision_id, agency_id=c["agency_id"], kind=DISCLOSURE_KIND[c["kind"]], decided_on=decided_on, case_no=case_id, credit_code=c["credit_code"]
    )  # fmt: skip
    record(tx, case_id, "decided", principal, {"decision_id": decision_id, "summary": data.summary, "fine_yuan": data.fine_yuan, "measures": measures,
           "hearing": data.hearing, "major_rules": [r[0] for r in rules], "review_id": review_id, "disclosure_deadline": registered["deadline"]}, now_ms)  # fmt: skip
    return get_case(tx, case_id, principal, now_ms)


def alert_refusal(tx: Tx, case_id: str, principal: Principal, message: str, now_ms: int) -> None:
    """The alert of a refused major decision (in a transaction of its own: the refused one is rolled back)."""
    c = rows.case(tx, case_id)
    if c is None:
        return
    zh, _, en = message.partition(" / ")
    raise_alert(
        tx, "major_without_review", now_ms, f"{principal.username} 试图对案件“{c['title']}”作出未经法制审核的重大执法决定：{zh}",
        f"{principal.username} tried to issue a major decision on case {c['title']!r} without a passed legal review: {en}",
        agency_id=c["agency_id"], credit_code=c["credit_code"], officer_id=principal.officer_id, ref=case_id,
    )  # fmt: skip


def publish(tx: Tx, case_id: str, principal: Principal, now_ms: int) -> CaseView:
    """Disclose the decision (its officers, or the agency's administrator): recorded on time or late against its
    deadline, and shown on the public page from now on."""
    c = case_row(tx, case_id, principal, lock=True)
    if principal.role not in ("officer", "agency_admin") or principal.agency_id != c["agency_id"]:
        raise Conflict("只有办案机关可以公示决定 / only the handling agency discloses its decision") if principal.role == "supervisor" else _nf(case_id)
    if principal.role == "officer":
        require_officer(tx, principal, c, case_id, now_ms)  # its named officers; the agency's administrator (its head) too
    d = steps.decision_of(tx, case_id)
    if d is None:
        raise Conflict("案件尚未作出决定 / the case has no decision to disclose")
    if not steps.publish(tx, case_id, now_ms):
        raise Conflict("该决定已公示 / the decision is disclosed already")
    status = record_disclosure(tx, d["decision_id"], cst_date(now_ms))
    record(tx, case_id, "published", principal, {"decision_id": d["decision_id"], "status": status}, now_ms)
    return get_case(tx, case_id, principal, now_ms)


def _nf(case_id: str) -> Exception:
    from server.cases.workflow import not_found

    return not_found(case_id)


# --- the public page's data: personal data masked ----------------------------------------------------------------

def public_decisions(tx: Tx, *, agency_id: str | None, q: str | None, lang: str, limit: int) -> list[PublicDecision]:
    """Disclosed decisions, newest first; ``q`` a credit code or part of an enterprise's name."""
    out = []
    for r in steps.public_decisions(tx, agency_id=agency_id, q=q, limit=limit):
        parties: list[tuple[str, str, str | None]] = rows.parties(tx, r[1])
        individuals = [n for k, n, _ in parties if k == "individual"]
        shown = [
            PartyView(kind=k, name=mask_name(n), id_no=mask_id(d)) if k == "individual" else PartyView(kind=k, name=mask_text(n, []), id_no=_enterprise_no(d))
            for k, n, d in parties
        ]  # fmt: skip
        measures: list[str] = json.loads(r[8])
        out.append(
            PublicDecision(
                case_title=mask_text(r[12], individuals), agency=(r[3] if lang == "zh" else r[4] or r[3]) or "", kind=r[5], decided_on=r[9],
                summary=mask_text(r[6], individuals), fine_yuan=r[7], measures=[MEASURES[m][0 if lang == "zh" else 1] for m in measures if m in MEASURES],
                enterprise=r[11], credit_code=r[10], parties=shown, disclosed_on=r[14],
            )
        )  # fmt: skip
    return out


def _enterprise_no(id_no: str | None) -> str | None:
    """An enterprise party's number as the public sees it: a credit code is public; anything else given there (a sole
    trader's ID number, typed by a careless hand) is masked like an ID number."""
    return id_no if id_no is None or creditcode.is_valid(id_no) else mask_id(id_no)
