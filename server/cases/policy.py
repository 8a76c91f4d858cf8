"""The ``[cases]`` section of the policy file (server/policy.toml): the legal-review deadline, the case's own
decision deadline per kind and the warning before it, the least share of
legal reviewers among an agency's officers, how long a judicial referral may wait for its answer, and each agency's
major-decision list (重大执法决定事项清单).

``[cases.major.default]`` applies to every agency without a list of its own (``[cases.major.<agency id>]``). A decision
is major when it matches any rule of its agency's list: a fine above ``fine_over_yuan``, one of ``measures``, or a
hearing held (``hearing = true``). A wrong key stops the server's start, naming the file and the key.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Literal, get_args

import msgspec

from protocol.config import ConfigError, explain

#: The kinds of case (CaseIn.kind, server/cases/forms.py).
CaseKind = Literal["penalty", "coercion", "permit", "other"]
Measure = Literal[
    "warning", "fine", "confiscation", "licence_suspension", "licence_revocation", "business_suspension", "qualification_restriction",
    "seizure", "impoundment", "freezing", "permit_granted", "permit_refused", "other",
]  # fmt: skip
#: Each measure a decision may take, in words (also registered as labels: server/cases/labels.py).
MEASURES: dict[str, tuple[str, str]] = {
    "warning": ("警告", "warning"), "fine": ("罚款", "fine"), "confiscation": ("没收违法所得、非法财物", "confiscation"),
    "licence_suspension": ("暂扣许可证件", "licence suspended"), "licence_revocation": ("吊销许可证件", "licence revoked"),
    "business_suspension": ("责令停产停业", "business suspended"), "qualification_restriction": ("限制从业", "barred from the trade"),
    "seizure": ("查封场所、设施或者财物", "seizure"), "impoundment": ("扣押财物", "impoundment"), "freezing": ("冻结存款、汇款", "freezing of funds"),
    "permit_granted": ("准予许可", "permit granted"), "permit_refused": ("不予许可", "permit refused"), "other": ("其他", "other"),
}  # fmt: skip


class MajorList(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One agency's major-decision list."""

    fine_over_yuan: Annotated[int, msgspec.Meta(ge=0)] | None = None
    measures: list[Measure] = []
    hearing: bool = False


#: The list of an agency when the policy file names none.
DEFAULT_LIST = MajorList(fine_over_yuan=100_000, measures=["licence_revocation", "business_suspension"], hearing=True)


class CasesPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[cases]``."""

    review_working_days: Annotated[int, msgspec.Meta(ge=1, le=60)] = 7
    case_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 90  # a case is to be decided within this many days of filing
    # ... or, for a kind named here, within its own days (行政处罚法 art. 60: a penalty within 90 days of filing,
    # unless a law says otherwise), e.g. [cases.decision_days] penalty = 90
    decision_days: dict[str, Annotated[int, msgspec.Meta(ge=1, le=3650)]] = {}  # keys: CaseKind (checked by parse)
    # The case_reviews job alerts a case not yet decided this many working days before its deadline, and once past it.
    deadline_warning_working_days: Annotated[int, msgspec.Meta(ge=0, le=60)] = 5
    # The scorecard (server/supervision/scorecard.py): the least share of an agency's officers who are qualified legal
    # reviewers (below it the indicator is flagged), and the days a judicial referral may wait for its answer.
    reviewer_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.05
    referral_answer_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    major: dict[str, MajorList] = msgspec.field(default_factory=lambda: {"default": DEFAULT_LIST})


class _Root(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cases: CasesPolicy


def parse(section: dict[str, object], source: str = "server/policy.toml") -> CasesPolicy:
    """The section checked; ConfigError names the file and the key (``cases.<key>``)."""
    try:
        checked = msgspec.convert({"cases": section}, _Root).cases
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {explain(e, _Root)}") from None
    kinds = get_args(CaseKind)
    for kind in checked.decision_days:
        if kind not in kinds:
            raise ConfigError(f"{source}: key 'cases.decision_days.{kind}': unknown case kind (expected one of: {', '.join(kinds)})")
    return checked


@functools.lru_cache(maxsize=8)
def _cached(text: str) -> CasesPolicy:
    return msgspec.convert(json.loads(text), CasesPolicy)


def of(policy: object) -> CasesPolicy:
    """The cases policy of the server's Policy (checked at start-up, so no error here)."""
    return _cached(json.dumps(getattr(policy, "cases", {}) or {}, sort_keys=True, default=str))


def decision_days(p: CasesPolicy, kind: str) -> int:
    """The days a case of ``kind`` is to be decided in, from its filing."""
    return p.decision_days.get(kind, p.case_days)


def major_list(p: CasesPolicy, agency_id: str) -> MajorList:
    return p.major.get(agency_id) or p.major.get("default") or MajorList()


def matching_rules(p: CasesPolicy, agency_id: str, *, fine_yuan: int, measures: list[str], hearing: bool) -> list[tuple[str, str, str]]:
    """The rules of the agency's list a decision matches: (rule key, Chinese, English)."""
    lst = major_list(p, agency_id)
    out = []
    if lst.fine_over_yuan is not None and fine_yuan > lst.fine_over_yuan:
        out.append(("fine_over", f"罚款金额超过 {lst.fine_over_yuan:,} 元", f"a fine above {lst.fine_over_yuan:,} yuan"))
    for m in lst.measures:
        if m in measures:
            out.append((f"measure:{m}", MEASURES[m][0], MEASURES[m][1]))
    if lst.hearing and hearing:
        out.append(("hearing", "经过听证程序", "a hearing was held"))
    return out
