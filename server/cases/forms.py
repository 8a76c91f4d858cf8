"""Requests and views of cases (``/api/v1/cases``): msgspec Structs with their limits, so that a bad body is a
documented 400 and the OpenAPI schema says what is accepted."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from server.cases.policy import Measure
from server.evidence.records import Step as StepView  # one step of the case's thread, as a finding's or a letter's

CaseKind = Literal["penalty", "coercion", "permit", "other"]
State = Literal["filed", "investigating", "review", "decided", "served", "executed", "closed", "archived", "transferring"]
Step = Literal["investigating", "served", "executed", "closed", "archived"]
CHECKLIST = (
    "lawful_body", "qualified_officers", "lawful_procedure", "facts_evidence", "law_discretion", "within_powers", "documents_complete",
    "crime_transfer",
)  # fmt: skip
ChecklistItem = Literal[
    "lawful_body", "qualified_officers", "lawful_procedure", "facts_evidence", "law_discretion", "within_powers", "documents_complete",
    "crime_transfer",
]  # fmt: skip
#: The case-file review's checklist (案卷评查) and each item's most points (100 together; 80 passes, as is usual).
FILE_CHECKLIST = {"filing": 10, "evidence": 25, "procedure": 25, "law_applied": 20, "documents": 10, "archiving": 10}
FILE_PASS_SCORE = 80
FileItem = Literal["filing", "evidence", "procedure", "law_applied", "documents", "archiving"]

#: No NUL character in any text (PostgreSQL cannot store one, SQLite would: the same 400 on both backends).
_NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=_NO_NUL)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NO_NUL)]
Note = Annotated[str, msgspec.Meta(max_length=2000, pattern=_NO_NUL)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
CreditCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class PartyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A party concerned (当事人): an enterprise (its credit code as id_no) or an individual (their ID number)."""

    kind: Literal["enterprise", "individual"]
    name: Short
    id_no: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")] | None = None


class CaseIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Open a case (立案): from an ended inspection (its id), or by hand (field and, if any, the enterprise)."""

    kind: CaseKind
    title: Short
    officer_ids: Annotated[list[Ident], msgspec.Meta(min_length=2, max_length=10)]
    inspection_id: Ident | None = None
    field: Ident | None = None
    credit_code: CreditCode | None = None
    parties: Annotated[list[PartyIn], msgspec.Meta(max_length=20)] = []


class TransitionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Move a case on: 调查取证 (investigating), 送达 (served), 执行 (executed), 结案 (closed), 归档 (archived)."""

    to: Step
    note: Note = ""


class DocumentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A document of the case file (its title and the SHA-256 of its file), added to the evidence log."""

    title: Short
    sha256: Sha256


class ReviewIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Submit the proposed decision (拟作出的决定) for legal review (法制审核), with the handling officers' opinion: what
    it orders (fine, measures, hearing; its kind is the case's). The decision issued after the review passes must not
    go beyond it (at most the fine, no other measure, the same hearing); a different one needs a new review."""

    proposal: Text
    fine_yuan: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    measures: Annotated[list[Measure], msgspec.Meta(max_length=13)] = []
    hearing: bool = False


class ItemFinding(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ok: bool
    note: Note = ""


class OutcomeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A reviewer's findings, one per checklist item (``crime_transfer`` ok: no suspected crime), and the outcome."""

    checklist: dict[ChecklistItem, ItemFinding]
    outcome: Literal["passed", "returned", "disagreement"]
    opinion: Note = ""


class ExtensionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The agency head's extension of a case's decision deadline (延长办案期限): the new date and why."""

    deadline: dt.date
    reason: Text


class ResolutionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The agency head's resolution of a disagreement between the reviewer and the handling officers."""

    outcome: Literal["passed", "returned"]
    note: Text


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The decision (决定): what it orders; checked against the agency's major-decision list."""

    summary: Text
    fine_yuan: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    measures: Annotated[list[Measure], msgspec.Meta(max_length=13)] = []
    hearing: bool = False


class TransferIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Transfer a case to another agency (案件移送), or refer it to the judicial organs as a suspected crime (行刑衔接)."""

    kind: Literal["transfer", "referral"]
    reason: Text
    to_agency: Ident | None = None
    to_body: Short | None = None


class AnswerIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The answer to a transfer (the receiving agency: accepted, with its officers; or sent back with reasons), or the
    judicial organ's answer to a referral as the agency received it."""

    accepted: bool
    reason: Text
    officer_ids: Annotated[list[Ident], msgspec.Meta(max_length=10)] = []


class ReviewerIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Qualify an officer as a legal reviewer (法制审核人员)."""

    officer_id: Ident
    qualification_no: Short


class FileScoreIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The score of a sampled case file (案卷评查), per checklist item (at most its points)."""

    scores: dict[FileItem, Annotated[int, msgspec.Meta(ge=0, le=100)]]
    notes: Note = ""


# --- views -------------------------------------------------------------------------------------------------------


class OfficerView(msgspec.Struct, kw_only=True):
    officer_id: str
    name: str
    credential_no: str
    valid: bool


class PartyView(msgspec.Struct, kw_only=True):
    kind: str
    name: str
    id_no: str | None


class EvidenceView(msgspec.Struct, kw_only=True):
    """A recording or photo of the case's inspections, or a document: its hash and its place in the evidence log."""

    kind: str
    title: str
    sha256: str
    ref: str
    log_index: int | None
    at_ms: int | None
    inspection_id: str | None = None
    integrity: str = "ok"


class ReviewView(msgspec.Struct, kw_only=True):
    review_id: str
    case_id: str
    agency_id: str
    proposal: str
    kind: str
    fine_yuan: int
    measures: list[str]
    hearing: bool
    submitted_by: str
    submitted_ms: int
    deadline: str
    status: str
    reviewer: str | None
    checklist: dict[str, ItemFinding] | None
    opinion: str | None
    crime_suspected: bool
    reviewed_ms: int | None
    head_note: str | None
    resolved_by: str | None
    resolved_ms: int | None
    overdue: bool = False


class DecisionView(msgspec.Struct, kw_only=True):
    decision_id: str
    kind: str
    summary: str
    fine_yuan: int
    measures: list[str]
    hearing: bool
    major_rules: list[str]
    review_id: str | None
    decided_by: str
    decided_on: str
    disclosure_deadline: str | None
    disclosed_on: str | None
    disclosure_status: str | None
    published: bool
    sampled_in: list[str] = []


class TransferView(msgspec.Struct, kw_only=True):
    transfer_id: str
    kind: str
    from_agency: str
    to_agency: str | None
    to_body: str
    reason: str
    sent_by: str
    sent_ms: int
    status: str
    answer: str | None
    answered_by: str | None
    answered_ms: int | None


class CaseView(msgspec.Struct, kw_only=True):
    case_id: str
    agency_id: str
    kind: str
    field: str
    title: str
    credit_code: str | None
    inspection_id: str | None
    state: str
    opened_by: str
    opened_ms: int
    deadline: str
    updated_ms: int
    officers: list[OfficerView] = []
    parties: list[PartyView] = []
    inspections: list[str] = []
    evidence: list[EvidenceView] = []
    reviews: list[ReviewView] = []
    decision: DecisionView | None = None
    transfers: list[TransferView] = []
    steps: list[StepView] = []


class ReviewerView(msgspec.Struct, kw_only=True):
    officer_id: str
    name: str | None
    agency_id: str
    qualification_no: str
    granted_by: str
    granted_ms: int


class PublicDecision(msgspec.Struct, kw_only=True):
    """A disclosed decision as the public sees it: personal data masked."""

    case_title: str
    agency: str
    kind: str
    decided_on: str
    summary: str
    fine_yuan: int
    measures: list[str]
    enterprise: str | None
    credit_code: str | None
    parties: list[PartyView]
    disclosed_on: str | None


class FileScoreView(msgspec.Struct, kw_only=True):
    sample_id: str
    decision_id: str
    total: int
    result: str
    finding_id: str | None
