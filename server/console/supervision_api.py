"""HTTP API of supervision (``/api/v1/supervision/``): findings, the letters issued on them, the agencies' reports and
the supervisors' verdicts (the rules: server/supervision/workflow.py)."""

from __future__ import annotations

import time
from typing import Annotated, Literal
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.console.guards import MANAGERS, requires, supervisors
from server.errors import Conflict, Invalid, NotFound, answers
from server.storage.codes import agency_names
from server.supervision import documents, workflow
from server.supervision.workflow import MAX_ATTACHMENT_BYTES, FindingIn, FindingView, LetterIn, LetterView, MonitorIn, NoteIn, RemarkIn, ReplyIn

FindingPath = Annotated[str, PathParameter(description="the finding, e.g. F-2026-0001", max_length=32)]
LetterPath = Annotated[str, PathParameter(description="the letter's id", max_length=32)]
agency_admins = requires("agency_admin")
#: A report's body: its text and its files in base64 (4 characters for 3 bytes), with room for the JSON around them.
REPLY_MAX_BODY = MAX_ATTACHMENT_BYTES * 4 // 3 + 64 * 1024
#: Who reads findings and letters: managers, and outside supervisors (those assigned to them; workflow.py checks).
readers = requires(*MANAGERS, "monitor")
monitors = requires("monitor")


def _now() -> int:
    return int(time.time() * 1000)


class SupervisionController(Controller):
    """Findings (监督事项) and supervision letters (监督意见书、监督决定书)."""

    path = "/api/v1/supervision"
    tags = ["supervision"]

    @get("/findings", sync_to_thread=True, guards=[readers])
    def findings(
        self,
        state: State,
        principal: CurrentPrincipal,
        status: Annotated[Literal["open", "closed"] | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[FindingView]:
        """Findings, newest first: a supervisor sees all, an agency's administrator their agency's."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.list_findings(tx, principal, status=status, limit=limit)

    @post("/findings", sync_to_thread=True, status_code=201, guards=[supervisors], responses=answers(NotFound, Conflict))
    def open_finding(self, state: State, data: JSONBody[FindingIn], principal: CurrentPrincipal) -> FindingView:
        """Open a finding: from an alert (its id), a case-file review, a hotline ticket, a complaint, or by hand."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.open_finding(tx, data, principal, _now())

    @get("/findings/{finding_id:str}", sync_to_thread=True, guards=[readers], responses=answers(NotFound))
    def finding(self, state: State, finding_id: FindingPath, principal: CurrentPrincipal) -> FindingView:
        """One finding with its steps (each with its place in the evidence log) and its letters."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.get_finding(tx, finding_id, principal)

    @post("/findings/{finding_id:str}/close", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(NotFound, Conflict))
    def close(self, state: State, finding_id: FindingPath, data: JSONBody[NoteIn], principal: CurrentPrincipal) -> FindingView:
        """Close a finding (办结): not while a letter on it awaits a report or a verdict."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.close_finding(tx, finding_id, data.note, principal, _now())

    @post("/findings/{finding_id:str}/monitors", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(NotFound, Conflict, Invalid))
    def assign(self, state: State, finding_id: FindingPath, data: JSONBody[MonitorIn], principal: CurrentPrincipal) -> FindingView:
        """Assign an outside supervisor (行政执法监督员, an account of role monitor) to the finding."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.assign_monitor(tx, finding_id, data.username, principal, _now())

    @post("/findings/{finding_id:str}/remarks", sync_to_thread=True, status_code=200, guards=[monitors], responses=answers(NotFound))
    def remark(self, state: State, finding_id: FindingPath, data: JSONBody[RemarkIn], principal: CurrentPrincipal) -> FindingView:
        """An outside supervisor's remark on a finding assigned to them (a record in the evidence log)."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.add_remark(tx, finding_id, data.text, principal, _now())

    @post("/findings/{finding_id:str}/letters", sync_to_thread=True, status_code=201, guards=[supervisors], responses=answers(NotFound, Conflict))
    def issue(self, state: State, finding_id: FindingPath, data: JSONBody[LetterIn], principal: CurrentPrincipal) -> LetterView:
        """Issue an opinion letter (or, where the agency did not rectify, a decision letter), numbered per issuing body
        and year, with a deadline in working days; the agency's administrators are alerted."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.issue_letter(tx, finding_id, data, principal, _now())

    @get("/letters", sync_to_thread=True, guards=[readers])
    def letters(
        self,
        state: State,
        principal: CurrentPrincipal,
        status: Annotated[Literal["issued", "replied", "returned", "accepted", "overdue"] | None, QueryParameter()] = None,
        finding_id: Annotated[str | None, QueryParameter(max_length=32)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[LetterView]:
        """Letters, newest first: a supervisor sees all, an agency's administrator those to their agency."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.list_letters(tx, principal, finding_id=finding_id, status=status, limit=limit)

    @get("/letters/{letter_id:str}", sync_to_thread=True, guards=[readers], responses=answers(NotFound))
    def letter(self, state: State, letter_id: LetterPath, principal: CurrentPrincipal) -> LetterView:
        """One letter with its steps."""
        with dbmod.reading(state.settings.db) as tx:
            return workflow.get_letter(tx, letter_id, principal)

    @get("/letters/{letter_id:str}/pdf", sync_to_thread=True, guards=[readers], media_type="application/pdf", responses=answers(NotFound))
    def letter_pdf(self, state: State, request: Request, letter_id: LetterPath, principal: CurrentPrincipal) -> Response[bytes]:
        """The letter as a PDF in the official layout (Chinese), with a QR code leading to its record in the evidence
        log and that record's inclusion proof; the same reach as the letter itself."""
        with dbmod.reading(state.settings.db) as tx:
            view = workflow.get_letter(tx, letter_id, principal)
            names = agency_names(tx, view.agency_id)
        body = documents.render_letter_pdf(view, names[0] if names else view.agency_id, str(request.base_url))
        return Response(body, media_type="application/pdf", headers={"Content-Disposition": documents.content_disposition(view)})

    @post(
        "/letters/{letter_id:str}/reply", sync_to_thread=True, status_code=200, guards=[agency_admins], responses=answers(NotFound, Conflict),
        request_max_body_size=REPLY_MAX_BODY,
    )  # fmt: skip
    def reply(self, state: State, letter_id: LetterPath, data: JSONBody[ReplyIn], principal: CurrentPrincipal) -> LetterView:
        """The agency's rectification report (整改情况报告), by its administrators, with up to 5 files (PDF, JPEG, PNG;
        15 MB together, in base64); their SHA-256 go into the report's record in the evidence log."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.reply(tx, letter_id, data, principal, _now())

    @get("/letters/{letter_id:str}/attachments/{attachment_id:str}", sync_to_thread=True, guards=[readers], responses=answers(NotFound), media_type="application/octet-stream")
    def attachment(
        self, state: State, letter_id: LetterPath, attachment_id: Annotated[str, PathParameter(max_length=40)], principal: CurrentPrincipal
    ) -> Response[bytes]:
        """One file of the letter's report, as it was uploaded (whoever may see the letter)."""
        with dbmod.reading(state.settings.db) as tx:
            view, data = workflow.attachment(tx, letter_id, attachment_id, principal)
        ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in view.filename) or "attachment"
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(view.filename)}"
        return Response(content=data, media_type=view.content_type, headers={"Content-Disposition": disposition, "X-Content-SHA256": view.sha256})

    @post("/letters/{letter_id:str}/accept", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(NotFound, Conflict))
    def accept(self, state: State, letter_id: LetterPath, data: JSONBody[NoteIn], principal: CurrentPrincipal) -> LetterView:
        """Accept the agency's report."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.decide(tx, letter_id, "accepted", data.note, principal, _now())

    @post("/letters/{letter_id:str}/return", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(NotFound, Conflict, Invalid))
    def send_back(self, state: State, letter_id: LetterPath, data: JSONBody[NoteIn], principal: CurrentPrincipal) -> LetterView:
        """Send the report back, saying why: the agency rectifies and reports again."""
        with dbmod.writing(state.settings.db) as tx:
            return workflow.decide(tx, letter_id, "returned", data.note, principal, _now())


ROUTES = [SupervisionController]
