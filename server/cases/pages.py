"""The pages of cases: ``/cases`` (console: an agency's staff their agency's cases, a supervisor all, an enterprise
its own; the selected case with the actions the reader may take) and ``/public/disclosure`` (no sign-in: disclosed
decisions, personal data masked, searchable by enterprise and agency). Every action goes through the API
(server/cases/api.py) from static/cases.js; no raw id is shown: states, kinds, measures, checklist items by their
labels (server/cases/labels.py), officers and agencies by name, a case by its number."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from server import db as dbmod
from server.cases import decide, review, workflow
from server.cases import policy as case_policy
from server.cases.forms import CHECKLIST, FILE_CHECKLIST, CaseView, ReviewView
from server.cases.labels import CHECKLIST as ITEM_WORDS
from server.cases.labels import word
from server.cases.policy import MEASURES
from server.cases.texts import TEXT
from server.console.auth import Principal, principal_of
from server.errors import NotFound
from protocol.cst import cst_date
from server.storage import case_steps as steps
from server.storage import cases as rows
from server.storage import supervision as names

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]


def number(case_id: str, lang: str) -> str:
    """A case's number as people write it: 〔2026〕第 1 号."""
    _, year, seq = (case_id.split("-") + ["", "", ""])[:3]
    return f"〔{year}〕第 {int(seq or 0)} 号" if lang == "zh" else f"No. {int(seq or 0)} of {year}"


def _ctx(lang: str) -> dict[str, str]:
    from server.console.pages import TEXT as BASE

    return {**BASE[lang], **TEXT[lang]}


@get("/cases", sync_to_thread=True, include_in_schema=False)
def cases_page(
    request: Request, state: State, lang: Lang = "zh", case: Annotated[str | None, QueryParameter(max_length=32, description="the case shown")] = None,
    inspection: Annotated[str | None, QueryParameter(max_length=64, description="an ended inspection to open a case from")] = None,
) -> Template | Redirect:
    """The cases of the signed-in reader, and one case with its actions (``?inspection=``: the new-case form filled in
    from that inspection, for an officer; the officer's page may link here)."""
    from server.console.pages import HOME, _page, _when

    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role == "monitor":
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    now = int(time.time() * 1000)
    t = _ctx(lang)
    least = case_policy.of(state.policy).reviewer_share
    with dbmod.reading(state.settings.db) as tx:
        agencies = {a: (zh if lang == "zh" else en or zh) for a, (zh, en) in names.agency_names(tx).items()}
        listed = workflow.list_cases(tx, p, state=None, credit_code=None, limit=300)
        firms = names.enterprise_names(tx, [c.credit_code for c in listed if c.credit_code])
        shown = None
        if case:
            try:
                shown = workflow.get_case(tx, case, p, now)
            except NotFound:
                shown = None
        detail = _detail(tx, shown, p, lang, agencies, now) if shown else None
        colleagues = _colleagues(tx, p.agency_id, now) if p.role in ("officer", "agency_admin") else []
        reviewers = review.list_reviewers(tx, p) if p.role == "agency_admin" else []
        share = rows.reviewer_share(tx, now).get(p.agency_id or "", (0, 0)) if p.role == "agency_admin" else (0, 0)
        fields = [(f, zh if lang == "zh" else en) for f, (zh, en) in rows.field_names(tx).items()]
        field_words = dict(fields)
        waiting = rows.inspections_to_open(tx, p.agency_id or "-", now - 90 * 86_400_000, 50) if p.role == "officer" else []
        pending = review.pending(tx, p, now) if p.role in ("officer", "agency_admin", "supervisor") else []
        is_reviewer = p.role == "officer" and review.is_reviewer_for(tx, p, p.agency_id or "")
        sampled = steps.sampled_cases(tx, 100) if p.role == "supervisor" else []
    to_open: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ins, _code, firm, field, ended in waiting:
        if ins not in seen:
            seen.add(ins)
            to_open.append({"id": ins, "enterprise": firm or "–", "field": field_words.get(field, "–"), "ended": _when(ended), "chosen": ins == inspection})
    case_rows = [
        {
            "id": c.case_id, "number": number(c.case_id, lang), "title": c.title, "kind": word("case_kind", c.kind, lang),
            "agency": agencies.get(c.agency_id, "–"), "enterprise": firms.get(c.credit_code or "", "–"), "state": word("case_state", c.state, lang),
            "deadline": c.deadline, "opened": _when(c.opened_ms), "selected": shown is not None and shown.case_id == c.case_id,
        }
        for c in listed
    ]  # fmt: skip
    review_rows = [{"case": r.case_id, "number": number(r.case_id, lang), "status": word("case_review_status", r.status, lang), "deadline": r.deadline, "overdue": r.overdue} for r in pending]
    kinds = [(k, word("case_kind", k, lang)) for k in ("penalty", "coercion", "permit", "other")]
    files = [
        {
            "url": f"/api/v1/cases/samples/{sample}/files/{decision}/score", "case": case_id, "number": number(case_id, lang), "title": title,
            "agency": agencies.get(agency_id, "–"), "result": t.get(f"file_{result}", t["file_none"]) if result else t["file_none"], "notes": notes or "",
        }
        for sample, decision, case_id, title, agency_id, result, notes in sampled
    ]  # fmt: skip
    return _page(
        "cases.html", lang, p, t=t, cases=case_rows, detail=detail, colleagues=colleagues, kinds=kinds, reviews=review_rows, is_reviewer=is_reviewer,
        measures=[(k, v[0] if lang == "zh" else v[1]) for k, v in MEASURES.items()], items=[(k, ITEM_WORDS[k][0 if lang == "zh" else 1]) for k in CHECKLIST],
        agencies=sorted(((a, n) for a, n in agencies.items() if a != p.agency_id), key=lambda kv: kv[1]), fields=fields, to_open=to_open, prefill=inspection or "",
        reviewers=[{"id": r.officer_id, "name": r.name or "–", "no": r.qualification_no, "granted": _when(r.granted_ms)} for r in reviewers],
        candidates=[(o, n) for o, n in colleagues if o not in {r.officer_id for r in reviewers}],
        share={"officers": share[0], "reviewers": share[1], "low": p.role == "agency_admin" and share[1] < least * share[0], "least": f"{100 * least:g}"},
        files=files, file_items=[(k, word("case_file_item", k, lang), points) for k, points in FILE_CHECKLIST.items()],
    )  # fmt: skip


def _colleagues(tx: Any, agency_id: str | None, now_ms: int) -> list[tuple[str, str]]:
    """(officer id, name) of the officers of an agency with a valid credential, for the forms' checkboxes (the id is
    the value, not shown)."""
    return [(o[0], o[1]) for o in rows.agency_officers(tx, agency_id or "-", now_ms)]


def _detail(tx: Any, c: CaseView, p: Principal, lang: str, agencies: dict[str, str], now: int) -> dict[str, Any]:
    """The selected case in words, with the actions the reader may take on it."""
    from server.console.pages import _when

    # Only the case's named officers work it (server/cases/workflow.py require_officer): no form for a colleague not named.
    mine = p.role == "officer" and p.agency_id == c.agency_id and p.officer_id in {o.officer_id for o in c.officers}
    handling = p.officer_id in [o.officer_id for o in c.officers]
    last = c.reviews[-1] if c.reviews else None
    reviewer = p.role == "officer" and not handling and review.is_reviewer_for(tx, p, c.agency_id)
    incoming = next((x for x in c.transfers if x.kind == "transfer" and x.status == "sent" and x.to_agency == p.agency_id and p.role == "officer"), None)
    referral = next((x for x in c.transfers if x.kind == "referral" and x.status == "sent"), None)
    d = c.decision
    named = {oid: facts[1] for oid, facts in rows.officer_facts(tx, sorted({s.actor for s in c.steps})).items()}  # an officer's account is their id
    steps = [
        {
            "what": TEXT[lang].get(f"step_{s.kind.removeprefix('case.')}", TEXT[lang]["step_other"]), "when": _when(s.at_ms),
            "who": named.get(s.actor, TEXT[lang]["system"] if s.actor == "system" else s.actor), "log": s.log_index,
        }
        for s in c.steps
    ]  # fmt: skip
    return {
        "id": c.case_id, "number": number(c.case_id, lang), "title": c.title, "kind": word("case_kind", c.kind, lang), "state": word("case_state", c.state, lang),
        "agency": agencies.get(c.agency_id, "–"), "deadline": c.deadline, "opened": _when(c.opened_ms),
        "officers": [{"name": o.name, "credential": o.credential_no, "valid": o.valid} for o in c.officers],
        "parties": [{"kind": TEXT[lang]["party_" + x.kind], "name": x.name, "id_no": decide.mask_id(x.id_no) if x.kind == "individual" else x.id_no} for x in c.parties],
        "evidence": [{"kind": word("evidence_kind", e.kind, lang), "title": e.title, "sha": e.sha256[:16] + "…", "log": e.log_index, "when": _when(e.at_ms), "integrity": e.integrity} for e in c.evidence],
        "reviews": [
            {
                "id": r.review_id, "status": word("case_review_status", r.status, lang), "deadline": r.deadline, "overdue": r.overdue, "proposal": _proposal(r, lang),
                "opinion": r.opinion or "", "head_note": r.head_note or "", "crime": r.crime_suspected,
                "checks": [{"item": word("review_item", k, lang), "ok": v.ok, "note": v.note} for k, v in (r.checklist or {}).items()],
            }
            for r in c.reviews
        ],
        "decision": None if d is None else {
            "summary": d.summary, "fine": d.fine_yuan, "measures": "、".join(word("case_measure", m, lang) for m in d.measures) or "–",
            "major": "；".join(d.major_rules) if d.major_rules else "", "decided_on": d.decided_on, "deadline": d.disclosure_deadline or "–",
            "disclosure": word("disclosure_status", d.disclosure_status, lang) if d.disclosure_status else "–", "published": d.published, "sampled": bool(d.sampled_in),
        },
        "transfers": [
            {"kind": word("transfer_kind", x.kind, lang), "to": x.to_body, "reason": x.reason, "status": word("transfer_status", x.status, lang), "answer": x.answer or "", "when": _when(x.sent_ms)}
            for x in c.transfers
        ],
        "steps": steps,
        "can": {
            "investigate": mine and c.state == "filed",
            # a different proposal after a passed review: a new review of it (the decision must match the reviewed one)
            "submit_review": mine and (c.state == "investigating" or (c.state == "review" and last is not None and last.status == "passed")),
            "decide": mine and (c.state == "investigating" or (c.state == "review" and last is not None and last.status == "passed")),
            "review": reviewer and c.state == "review" and last is not None and last.status == "pending",
            "resolve": p.role == "agency_admin" and p.agency_id == c.agency_id and last is not None and last.status == "escalated",
            "publish": (mine or (p.role == "agency_admin" and p.agency_id == c.agency_id)) and d is not None and not d.published,
            "next": [(s, word("case_state", s, lang)) for s in workflow.NEXT if mine and c.state in workflow.NEXT[s] and s != "investigating"],
            "transfer": mine and c.state in ("filed", "investigating"),
            "refer": mine and c.state in workflow.OPEN_STATES and referral is None,
            "document": mine and c.state in workflow.OPEN_STATES,
            "accept": incoming is not None,
            "referral_answer": mine and referral is not None,
        },
        "review_id": last.review_id if last else None,
        "incoming_id": incoming.transfer_id if incoming else None,
        "referral_id": referral.transfer_id if referral else None,
        "today": cst_date(now).isoformat(),
    }


@get("/public/disclosure", sync_to_thread=True, include_in_schema=False)
def disclosure_page(
    request: Request, state: State, lang: Lang = "zh",
    q: Annotated[str | None, QueryParameter(max_length=100, description="a credit code or part of an enterprise's name")] = None,
    agency: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Template:  # fmt: skip
    """Disclosed enforcement decisions (行政执法公示), for anyone: no sign-in, personal data masked."""
    from server.console.pages import _page

    t = _ctx(lang)
    with dbmod.reading(state.settings.db) as tx:
        agencies = {a: (zh if lang == "zh" else en or zh) for a, (zh, en) in names.agency_names(tx).items()}
        found = decide.public_decisions(tx, agency_id=agency or None, q=(q or "").strip() or None, lang=lang, limit=200)
    items = [
        {
            "title": d.case_title, "agency": d.agency, "kind": word("case_kind", d.kind, lang), "decided_on": d.decided_on, "summary": d.summary,
            "fine": d.fine_yuan, "measures": "、".join(d.measures) or "–", "enterprise": d.enterprise or "–", "code": d.credit_code or "–",
            "parties": "；".join(f"{x.name}" + (f"（{x.id_no}）" if x.id_no else "") for x in d.parties), "disclosed_on": d.disclosed_on or "–",
        }
        for d in found
    ]  # fmt: skip
    return _page("public_disclosure.html", lang, principal_of(request), t=t, items=items, q=q or "", agency=agency or "", agencies=sorted(agencies.items(), key=lambda kv: kv[1]))


ROUTES = [cases_page, disclosure_page]


def _proposal(r: ReviewView, lang: str) -> str:
    """The proposal reviewed: the officers' words and what the decision would order (a decision must match it)."""
    t = TEXT[lang]
    parts = [f"{t['fine']} {r.fine_yuan:,}"] + (["、".join(word("case_measure", m, lang) for m in r.measures if m != "fine")] if [m for m in r.measures if m != "fine"] else [])
    if r.hearing:
        parts.append(t["hearing"])
    return f"{r.proposal}（{'；'.join(p for p in parts if p)}）" if lang == "zh" else f"{r.proposal} ({'; '.join(p for p in parts if p)})"
