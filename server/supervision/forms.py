"""What supervision takes and gives: the requests (a finding, a letter, a report with its files, a note) and the
views (a finding, a letter, a step in the evidence log, a file), with the labels and limits they use. The rules
that act on them are server/supervision/workflow.py's."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from server.evidence.records import Step  # a step of a finding or letter (and of a case: one struct for both)

Source = Literal["alert", "case_review", "hotline", "complaint", "rating", "manual"]
LetterKind = Literal["opinion", "decision"]
LetterStatus = Literal["issued", "replied", "returned", "accepted", "overdue"]

KIND_ZH = {"opinion": "行政执法监督意见书", "decision": "行政执法监督决定书"}
STATUS_ZH = {"issued": "已送达，待整改", "replied": "已报送整改情况", "returned": "已退回，重新整改", "accepted": "整改已认可", "overdue": "逾期未报送"}
#: Working days an agency has to report, unless the letter says otherwise; and the most a letter may give.
DEFAULT_DEADLINE_DAYS = 15
MAX_DEADLINE_DAYS = 60
#: The most inspections, events or records one finding names.
MAX_REFS = 50

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]


class FindingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A finding to open. ``source_ref``: the alert's id for an alert, the ticket's for a hotline ticket, ..."""

    agency_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    reason: Text
    source: Source = "manual"
    source_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    credit_code: Annotated[str, msgspec.Meta(min_length=18, max_length=18)] | None = None
    refs: Annotated[list[Ref], msgspec.Meta(max_length=MAX_REFS)] = []
    # A complaint about an officer's conduct (投诉举报): the finding is about that officer's agency.
    officer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class LetterIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A letter to issue on a finding."""

    issuer: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]  # the issuing body, e.g. 某市司法局
    facts: Text
    basis: Text
    requirements: Text
    kind: LetterKind = "opinion"
    deadline_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DEADLINE_DAYS)] = DEFAULT_DEADLINE_DAYS


#: What a report may attach: documents and photos, recognised by their first bytes as well as their declared type.
ATTACHMENT_TYPES = {"application/pdf": (b"%PDF-",), "image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}
MAX_ATTACHMENTS = 5
#: The most bytes of all the files of one report together (they travel as base64 in one JSON request).
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024


class AttachmentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A file attached to a report: its name, its type and its bytes in base64."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    content_type: Literal["application/pdf", "image/jpeg", "image/png"]
    data_base64: str


class ReplyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An agency's rectification report, with its files (documents, photos)."""

    text: Text
    attachments: Annotated[list[AttachmentIn], msgspec.Meta(max_length=MAX_ATTACHMENTS)] = []


class AttachmentView(msgspec.Struct, kw_only=True):
    """A file of a report (its bytes: GET .../attachments/{attachment_id}); its SHA-256 is in the report's record."""

    attachment_id: str
    record_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_ms: int


class MonitorIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An outside supervisor's account to assign to a finding."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RemarkIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An outside supervisor's remark on a finding."""

    text: Text


class NoteIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A supervisor's note: why a report is sent back, or how a finding was closed (may be empty to accept)."""

    note: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class FindingView(msgspec.Struct, kw_only=True):
    """A finding, with its steps."""

    finding_id: str
    agency_id: str
    credit_code: str | None
    source: str
    source_ref: str | None
    reason: str
    refs: list[str]
    opened_by: str
    opened_ms: int
    status: Literal["open", "closed"]
    closed_by: str | None
    closed_ms: int | None
    close_note: str | None
    officer_id: str | None = None
    steps: list[Step] = []
    refs_in_log: dict[str, int] = {}  # of ``refs``, the events and records in the evidence log: id -> log index (their proofs: /api/v1/evidence/proof/{id})
    letters: list[LetterView] = []  # the letters issued on it (their own steps: GET the letter)
    monitors: list[str] = []  # the outside supervisors assigned to it


class LetterView(msgspec.Struct, kw_only=True):
    """A letter: its number as printed (〔2026〕第3号), its content, its state and its steps."""

    letter_id: str
    kind: LetterKind
    title: str
    issuer: str
    number: str
    finding_id: str
    agency_id: str
    facts: str
    basis: str
    requirements: str
    deadline_days: int
    issued_on: str
    deadline: str
    deadline_exact: bool
    issued_by: str
    issued_ms: int
    status: LetterStatus
    status_zh: str
    reply: str | None
    replied_by: str | None
    replied_ms: int | None
    verdict_note: str | None
    decided_by: str | None
    decided_ms: int | None
    steps: list[Step] = []
    attachments: list[AttachmentView] = []
