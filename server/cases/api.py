"""``/api/v1/cases``: cases, their transitions, legal reviews, decisions, transfers and case-file scores; the public's
disclosed decisions (``/api/v1/cases/disclosed``, no sign-in); and the pages ``/cases`` and ``/public/disclosure``
(server/cases/pages.py). The rules are in server/cases/workflow.py, review.py, decide.py, transfers.py, sampling.py."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.datastructures import State as AppState
from litestar.params import JSONBody, PathParameter, QueryParameter

from server import db as dbmod
from server.cases import deadlines, decide, pages, review, sampling, transfers, workflow
from server.cases import labels as _labels  # noqa: F401  (registers the cases' labels)
from server.cases import policy as case_policy
from server.cases.forms import (
    AnswerIn, CaseIn, CaseView, DecisionIn, DocumentIn, ExtensionIn, FileScoreIn, FileScoreView, OutcomeIn, PublicDecision, ResolutionIn, ReviewerIn,
    ReviewerView, ReviewIn, ReviewView, TransferIn, TransitionIn,
)  # fmt: skip
from server.console.auth import CurrentPrincipal
from server.console.guards import MANAGERS, requires, supervisors
from server.errors import Conflict, Forbidden, Invalid, NotFound, answers

CasePath = Annotated[str, PathParameter(description="the case, e.g. CASE-2026-00001", max_length=32)]
SubPath = Annotated[str, PathParameter(description="a review or transfer of the case", max_length=40)]
officers = requires("officer")
readers = requires(*MANAGERS, "officer", "enterprise")
workers = requires("officer", "agency_admin")
managers = requires(*MANAGERS)
staff = requires(*MANAGERS, "officer")


def _now() -> int:
    return int(time.time() * 1000)


def _policy(state: AppState) -> case_policy.CasesPolicy:
    return case_policy.of(state.policy)


class CasesController(Controller):
    """Enforcement cases (案件) and the legal-review gate (法制审核)."""

    path = "/api/v1/cases"
    tags = ["cases"]

    @get("", sync_to_thread=True, guards=[readers])
    def cases(
        self, state: AppState, principal: CurrentPrincipal,
        case_state: Annotated[Literal["filed", "investigating", "review", "decided", "served", "executed", "closed", "archived", "transferring"] | None, QueryParameter(name="state")] = None,
        credit_code: Annotated[str | None, QueryParameter(max_length=18)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[CaseView]:  # fmt: skip
        """Cases, newest first: a supervisor all, an agency's staff their agency's, an enterprise those about itself."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.list_cases(tx, principal, state=case_state, credit_code=credit_code, limit=limit)

    @post("", sync_to_thread=True, status_code=201, guards=[officers], responses=answers(NotFound, Conflict, Invalid))
    def open_case(self, state: AppState, data: JSONBody[CaseIn], principal: CurrentPrincipal) -> CaseView:
        """Open a case (立案), from an ended inspection of the officer's agency or by hand, with at least two officers
        holding valid credentials for the field."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.open_case(tx, data, principal, _now(), _policy(state))

    @get("/{case_id:str}", sync_to_thread=True, guards=[readers], responses=answers(NotFound))
    def case(self, state: AppState, case_id: CasePath, principal: CurrentPrincipal) -> CaseView:
        """One case: officers, parties, inspections, evidence (hashes and places in the evidence log), reviews, decision,
        transfers and its steps."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.get_case(tx, case_id, principal, _now())

    @post("/{case_id:str}/transitions", sync_to_thread=True, status_code=200, guards=[officers], responses=answers(NotFound, Conflict, Invalid, Forbidden))
    def transition(self, state: AppState, case_id: CasePath, data: JSONBody[TransitionIn], principal: CurrentPrincipal) -> CaseView:
        """Move the case on: 调查取证, 送达, 执行, 结案, 归档 (each only from the state before it)."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.transition(tx, case_id, data.to, data.note, principal, _now())

    @post("/{case_id:str}/documents", sync_to_thread=True, status_code=200, guards=[officers], responses=answers(NotFound, Conflict, Forbidden))
    def document(self, state: AppState, case_id: CasePath, data: JSONBody[DocumentIn], principal: CurrentPrincipal) -> CaseView:
        """Add a document to the case file: its title and SHA-256 go into the evidence log."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.add_document(tx, case_id, data.title, data.sha256, principal, _now())

    @post("/{case_id:str}/reviews", sync_to_thread=True, status_code=201, guards=[officers], responses=answers(NotFound, Conflict, Forbidden))
    def submit_review(self, state: AppState, case_id: CasePath, data: JSONBody[ReviewIn], principal: CurrentPrincipal) -> CaseView:
        """Submit the proposed decision (拟作出的决定: fine, measures, hearing, opinion) for legal review (法制审核), due in
        working days; the decision issued must match it."""
        with dbmod.writing(state.settings.db) as tx:
            return review.submit(tx, case_id, data, principal, _now(), _policy(state))

    @post("/{case_id:str}/reviews/{review_id:str}/outcome", sync_to_thread=True, status_code=200, guards=[officers], responses=answers(NotFound, Conflict, Invalid))
    def review_outcome(self, state: AppState, case_id: CasePath, review_id: SubPath, data: JSONBody[OutcomeIn], principal: CurrentPrincipal) -> CaseView:
        """A legal reviewer's finding on each checklist item and the outcome: passed, returned, or disagreement (to the
        agency's head with both opinions)."""
        with dbmod.writing(state.settings.db) as tx:
            return review.outcome(tx, case_id, review_id, data, principal, _now())

    @post("/{case_id:str}/reviews/{review_id:str}/resolution", sync_to_thread=True, status_code=200, guards=[requires("agency_admin")], responses=answers(NotFound, Conflict))
    def review_resolution(self, state: AppState, case_id: CasePath, review_id: SubPath, data: JSONBody[ResolutionIn], principal: CurrentPrincipal) -> CaseView:
        """The agency head's resolution of a disagreement (its administrator)."""
        with dbmod.writing(state.settings.db) as tx:
            return review.resolve(tx, case_id, review_id, data.outcome, data.note, principal, _now())

    @post("/{case_id:str}/extension", sync_to_thread=True, status_code=200, guards=[requires("agency_admin")], responses=answers(NotFound, Conflict, Forbidden, Invalid))
    def extension(self, state: AppState, case_id: CasePath, data: JSONBody[ExtensionIn], principal: CurrentPrincipal) -> CaseView:
        """Extend the case's decision deadline (延长办案期限), approved by the agency's head (its administrator): a later
        date and the reason, recorded on the case; 409 for a date not later than the present deadline or a decided
        case, 403 for anyone but the administrator of the case's agency."""
        with dbmod.writing(state.settings.db) as tx:
            return deadlines.extend(tx, case_id, data, principal, _now())

    @post("/{case_id:str}/decision", sync_to_thread=True, status_code=201, guards=[officers], responses=answers(NotFound, Conflict, Forbidden))
    def decision(self, state: AppState, case_id: CasePath, data: JSONBody[DecisionIn], principal: CurrentPrincipal) -> CaseView:
        """Issue the decision. A decision on the agency's major-decision list without a passed legal review is refused
        (409 naming the rules) and raises an alert; otherwise its disclosure deadline starts."""
        now = _now()
        try:
            with dbmod.writing(state.settings.db) as tx:
                return decide.decide(tx, case_id, data, principal, now, _policy(state))
        except decide.MajorWithoutReview as refused:
            with dbmod.writing(state.settings.db) as tx:
                decide.alert_refusal(tx, case_id, principal, str(refused), now)
            raise

    @post("/{case_id:str}/publish", sync_to_thread=True, status_code=200, guards=[workers], responses=answers(NotFound, Conflict, Forbidden))
    def publish(self, state: AppState, case_id: CasePath, principal: CurrentPrincipal) -> CaseView:
        """Disclose the decision (行政执法公示): on time or late against its deadline; public from now on."""
        with dbmod.writing(state.settings.db) as tx:
            return decide.publish(tx, case_id, principal, _now())

    @post("/{case_id:str}/transfers", sync_to_thread=True, status_code=201, guards=[officers], responses=answers(NotFound, Conflict, Invalid, Forbidden))
    def transfer(self, state: AppState, case_id: CasePath, data: JSONBody[TransferIn], principal: CurrentPrincipal) -> CaseView:
        """Transfer the case to another agency (案件移送), or refer it to the judicial organs (行刑衔接)."""
        with dbmod.writing(state.settings.db) as tx:
            return transfers.send(tx, case_id, data, principal, _now())

    @post("/{case_id:str}/transfers/{transfer_id:str}/answer", sync_to_thread=True, status_code=200, guards=[officers], responses=answers(NotFound, Conflict, Invalid, Forbidden))
    def answer(self, state: AppState, case_id: CasePath, transfer_id: SubPath, data: JSONBody[AnswerIn], principal: CurrentPrincipal) -> CaseView:
        """Answer a transfer (the receiving agency: accepted with its officers, or sent back with reasons), or record
        the judicial organ's answer to a referral."""
        with dbmod.writing(state.settings.db) as tx:
            return transfers.answer(tx, case_id, transfer_id, data, principal, _now())


class CaseReviewsController(Controller):
    """Legal reviewers (法制审核人员), reviews awaiting an outcome, and case-file scores (案卷评查)."""

    path = "/api/v1/cases"
    tags = ["cases"]

    @get("/reviews", sync_to_thread=True, guards=[staff])
    def reviews(self, state: AppState, principal: CurrentPrincipal) -> list[ReviewView]:
        """Reviews awaiting a reviewer, or (a disagreement) the agency's head: the agency's, or all for a supervisor."""
        with dbmod.reading(state.settings.db) as tx:
            return review.pending(tx, principal, _now())

    @get("/reviewers", sync_to_thread=True, guards=[managers])
    def reviewers(self, state: AppState, principal: CurrentPrincipal) -> list[ReviewerView]:
        """The qualified legal reviewers: the agency's, or all for a supervisor."""
        with dbmod.reading(state.settings.db) as tx:
            return review.list_reviewers(tx, principal)

    @post("/reviewers", sync_to_thread=True, status_code=201, guards=[managers], responses=answers(NotFound, Conflict, Invalid))
    def grant(self, state: AppState, data: JSONBody[ReviewerIn], principal: CurrentPrincipal) -> ReviewerView:
        """Qualify an officer as a legal reviewer (an agency's administrator: their own officers)."""
        with dbmod.writing(state.settings.db) as tx:
            return review.grant(tx, data, principal, _now())

    @post("/reviewers/{officer_id:str}/revoke", sync_to_thread=True, status_code=204, guards=[managers], responses=answers(NotFound, Conflict))
    def revoke(self, state: AppState, officer_id: Annotated[str, PathParameter(max_length=64)], principal: CurrentPrincipal) -> None:
        """Withdraw an officer's reviewer qualification."""
        with dbmod.writing(state.settings.db) as tx:
            review.revoke(tx, officer_id, principal, _now())

    @post("/samples/{sample_id:str}/files/{decision_id:str}/score", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(NotFound, Invalid, Conflict))
    def score(
        self, state: AppState, sample_id: Annotated[str, PathParameter(max_length=100)], decision_id: Annotated[str, PathParameter(max_length=100)],
        data: JSONBody[FileScoreIn], principal: CurrentPrincipal,
    ) -> FileScoreView:  # fmt: skip
        """Score a sampled case file item by item (案卷评查); a failing one opens a supervision finding, and while that
        finding is open the file is not scored again (409)."""
        with dbmod.writing(state.settings.db) as tx:
            return sampling.score(tx, sample_id, decision_id, data, principal, _now())

    @get("/disclosed", sync_to_thread=True, security=[])
    def disclosed(
        self, state: AppState,
        q: Annotated[str | None, QueryParameter(description="a credit code or part of an enterprise's name", max_length=100)] = None,
        agency: Annotated[str | None, QueryParameter(max_length=64)] = None,
        lang: Annotated[Literal["zh", "en"], QueryParameter()] = "zh",
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[PublicDecision]:  # fmt: skip
        """Disclosed decisions for the public, without sign-in; individuals' names and ID numbers masked."""
        with dbmod.reading(state.settings.db) as tx:
            return decide.public_decisions(tx, agency_id=agency or None, q=(q or "").strip() or None, lang=lang, limit=limit)


#: This module's routes (server/app.py).
ROUTES: list[object] = [CasesController, CaseReviewsController, *pages.ROUTES]
