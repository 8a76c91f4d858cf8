"""The scan decision (扫码检查): may this officer inspect this enterprise now, for this reason?

One pure function, ``decide(facts, policy)``, shared by the server (facts from its registers) and by a
device deciding offline (facts from the server's signed snapshot, marked provisional). The rules'
numbers live in the policy file, never in code. Rules, in order:

0. the scan must name its enforcement field;
1. the officer's credential (持证执法): missing, revoked, not yet or no longer valid, or not covering the field;
2. the enterprise must be registered;
3. an inspection under way at the enterprise is joined (综合查一次: one visit, many checks);
4. the no-disturb list (无事不扰) refuses, unless a valid exception is stated;
5. the same field inspected within the repeat window is a repeat: only with a stated exception;
6. the enterprise's yearly cap for its risk and credit band, unless a valid exception is stated;
7. low-yield inspections: inspected N times this year with nothing found, a warning, or a refusal if the
   policy says so, unless a valid exception is stated (server only: a device does not know the results);
8. otherwise allowed, with frequency warnings (more than N a day, week or month) where they apply.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta, Struct

from protocol.cst import CST
from protocol.messages import Credential, DecisionWarning, ExceptionBasis, ExceptionBasisKind, InspectionRef, NoDisturbEntry, SnapshotPolicy

Outcome = Literal["allowed", "join", "repeat", "refused"]
DAY_MS = 86_400_000


class _Strict(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


RiskClass = Literal["low", "medium", "high"]
CreditGrade = Literal["A", "B", "C", "D"]


class CapBand(_Strict, kw_only=True):
    """Most inspections a year for enterprises of one risk class and credit grade."""

    risk: RiskClass
    credit: CreditGrade
    per_year: Annotated[int, Meta(ge=0)]


class FrequencyLimits(_Strict, kw_only=True):
    """Warn when one enterprise gets more inspections than these (all agencies together)."""

    per_day: Annotated[int, Meta(ge=0)] = 1
    per_week: Annotated[int, Meta(ge=0)] = 2
    per_month: Annotated[int, Meta(ge=0)] = 3


class LowYieldPolicy(_Strict, kw_only=True):
    """Low-yield inspections: an enterprise inspected this many times this year with nothing found gets a
    warning on the next scan, or a refusal when ``refuse`` is set, unless an exception is stated (as for the
    no-disturb list). Server only: a device deciding offline does not know the results."""

    after: Annotated[int, Meta(ge=1, le=1000)] = 3
    refuse: bool = False


class HotlinePolicy(_Strict, kw_only=True):
    """The 12345 hotline joined with inspections (server/supervision/hotline.py): a ticket not followed by an
    inspection within ``within_days`` working days is flagged, and so is one about an enterprise inspected within
    ``window_days`` calendar days before it. Server only."""

    within_days: Annotated[int, Meta(ge=1, le=60)] = 10
    window_days: Annotated[int, Meta(ge=1, le=366)] = 30


class ScorecardPolicy(_Strict, kw_only=True):
    """The agency scorecard's weights (server/supervision/scorecard.py names the indicators and their defaults; a
    weight given here replaces that indicator's default). Server only."""

    weights: dict[str, float] = {}  # each 0..1000, checked with the indicator's name by the server


class ExceptionPolicy(_Strict, kw_only=True):
    """What becomes of a stated exception whose reference matches nothing registered."""

    # Kinds that may go ahead unregistered as urgent cases (a gas leak does not wait for a notice to be
    # registered): allowed only "pending review", with an alert, until a supervisor confirms or rejects
    # the basis after the fact. Every other unregistered reference is refused.
    pending_review_kinds: list[ExceptionBasisKind] = []
    # At most this many of an officer's inspections may wait for review at once: an officer cannot open
    # door after door on unregistered "urgent" references.
    pending_review_per_officer: Annotated[int, Meta(ge=0, le=100)] = 1
    # A rectification order may be followed up (整改复查) by the agency that ordered it, in the field it
    # was ordered in, for this many days after it was ordered.
    rectification_follow_up_days: Annotated[int, Meta(ge=1, le=3650)] = 180


class Policy(_Strict, kw_only=True):
    """The rules' numbers (server/policy.toml); also sent to devices inside their snapshot."""

    repeat_window_days: Annotated[int, Meta(ge=0, le=3650)] = 30
    join_window_hours: Annotated[float, Meta(gt=0, le=72)] = 8.0
    default_cap_per_year: Annotated[int, Meta(ge=0)] = 4
    caps: list[CapBand] = []
    frequency: FrequencyLimits = FrequencyLimits()
    # How long a terminal waits for the server's answer before deciding from its snapshot.
    online_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 3.0
    exceptions: ExceptionPolicy = ExceptionPolicy()
    low_yield: LowYieldPolicy = LowYieldPolicy()
    hotline: HotlinePolicy = HotlinePolicy()
    scorecard: ScorecardPolicy = ScorecardPolicy()
    cases: dict[str, object] = {}  # server only: checked strictly by server/cases/policy.py (issue 15)
    # An ended inspection is checked for full-process recording this long after its end, so that
    # recordings a device reports late (it finishes the file, or was offline) still count.
    recording_grace_minutes: Annotated[float, Meta(ge=0, le=1440)] = 10.0

    def __post_init__(self) -> None:
        bands = [(b.risk, b.credit) for b in self.caps]
        dup = next((b for i, b in enumerate(bands) if b in bands[:i]), None)
        if dup is not None:
            raise ValueError(f"key 'caps': expected each risk/credit band once, got {dup[0]}/{dup[1]} twice")

    def for_devices(self) -> SnapshotPolicy:
        """The part of the policy a device deciding offline needs."""
        return SnapshotPolicy(repeat_window_days=self.repeat_window_days, join_window_hours=self.join_window_hours, online_timeout_s=self.online_timeout_s)

    def cap_for(self, risk: str, credit: str) -> int:
        """The yearly cap of a band."""
        for band in self.caps:
            if band.risk == risk and band.credit == credit:
                return band.per_year
        return self.default_cap_per_year


class Enterprise(Struct, frozen=True, kw_only=True):
    """What the rules need of an enterprise."""

    credit_code: str
    name: str
    risk: str = "medium"
    credit: str = "B"


class Facts(Struct, frozen=True, kw_only=True):
    """Everything the decision looks at."""

    now_ms: int
    officer_id: str
    credential: Credential | None
    credit_code: str
    enterprise: Enterprise | None
    field: str
    matter: str = ""
    no_disturb: NoDisturbEntry | None = None
    open_inspections: list[InspectionRef] = []
    recent_inspections: list[InspectionRef] = []  # started within the repeat window (ended or not)
    inspections_this_year: int = 0
    # Inspections in the same year that ended with nothing found (every part's result no_violation).
    fruitless_this_year: int = 0
    # Counts of inspections at the enterprise started in the last 1, 7 and 30 days.
    last_day: int = 0
    last_week: int = 0
    last_month: int = 0
    exception: ExceptionBasis | None = None
    # Whether the exception checked out against the registers: True, False with a reason, or None when
    # it cannot be checked here (a device offline): then it is taken as stated and checked later.
    exception_ok: bool | None = None
    exception_problem: str = ""
    # The exception matched nothing registered, and the policy lets its kind go ahead as an urgent case:
    # usable, but only pending a supervisor's review (exception_ok is then True).
    exception_pending_review: bool = False
    # Display names of agencies and fields (id -> name), for the explanations; ids are shown where missing.
    names: dict[str, str] = {}

    def name(self, key: str) -> str:
        """The display name of an agency or field id."""
        return self.names.get(key, key)


class Decision(Struct, frozen=True, kw_only=True):
    """The answer: an outcome, a machine code and its explanation in Chinese and English."""

    outcome: Outcome
    code: str
    message_zh: str
    message_en: str
    inspection_id: str | None = None
    joined_agency_id: str | None = None
    exception_used: bool = False
    warnings: list[DecisionWarning] = []
    # Rules the stated exception set aside: "no_disturb", "repeat", "cap" (what supervisors are told).
    overrode: list[str] = []
    # Allowed on an unregistered urgent exception: a supervisor must confirm or reject it.
    pending_review: bool = False


def _date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d")


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M")


def _refuse(code: str, zh: str, en: str) -> Decision:
    return Decision(outcome="refused", code=code, message_zh=zh, message_en=en)


_EXCEPTION_ZH = {
    "complaint": "投诉举报",
    "random_draw": "双随机抽查",
    "major_risk": "重大风险",
    "rectification_follow_up": "整改复查",
    "superior_assignment": "上级交办",
}


#: Refusals of a scanned code, by protocol.enterprise_code.CodeError reason: (machine code, zh, en).
CODE_REFUSALS = {
    "not_ours": ("code_not_ours", "扫描的不是本平台签发的企业码。", "The scanned code is not an enterprise code issued by this platform."),
    "unknown_key": ("code_unknown_key", "企业码由未知密钥签发，不予认可。", "The code was signed by an unknown key."),
    "altered": ("code_altered", "企业码签名不符，可能被篡改或伪造。", "The code's signature does not match: it was altered or forged."),
    "revoked": ("code_revoked", "该企业码已作废，请企业出示新码。", "This code was revoked; ask the enterprise for its current code."),
    "bad_credit_code": ("code_invalid", "企业码中的统一社会信用代码或日期无效。", "The credit code or date inside the code is invalid."),
}


def refuse_code(reason: str) -> Decision:
    """The refusal of a code that did not verify (reason as in CodeError.reason)."""
    return _refuse(*CODE_REFUSALS[reason])


def _credential_problem(f: Facts) -> Decision | None:
    c = f.credential
    if c is None:
        return _refuse("credential_missing", f"执法人员 {f.officer_id} 无有效执法证，不得开展检查。", f"Officer {f.officer_id} holds no enforcement credential.")
    if c.revoked:
        return _refuse("credential_revoked", f"执法证 {c.credential_no} 已被吊销，不得开展检查。", f"Credential {c.credential_no} has been revoked.")
    if f.now_ms < c.valid_from_ms:
        return _refuse("credential_not_yet_valid", f"执法证 {c.credential_no} 自 {_date(c.valid_from_ms)} 起生效，目前尚未生效。", f"Credential {c.credential_no} is valid only from {_date(c.valid_from_ms)}.")
    if f.now_ms > c.valid_to_ms:
        return _refuse("credential_expired", f"执法证 {c.credential_no} 已于 {_date(c.valid_to_ms)} 过期。", f"Credential {c.credential_no} expired on {_date(c.valid_to_ms)}.")
    if f.field not in c.fields:
        return _refuse(
            "credential_field",
            f"执法证 {c.credential_no} 不涵盖执法领域“{f.name(f.field)}”（涵盖：{'、'.join(f.name(x) for x in c.fields)}）。",
            f"Credential {c.credential_no} does not cover the field {f.field!r} (covers: {', '.join(c.fields)}).",
        )
    return None


def _exception_state(f: Facts) -> tuple[bool, Decision | None]:
    """(a usable exception was stated, a refusal if the stated one is invalid)."""
    if f.exception is None:
        return False, None
    if f.exception_ok is False:
        kind = _EXCEPTION_ZH.get(f.exception.kind, f.exception.kind)
        return False, _refuse(
            "exception_invalid",
            f"所述例外依据（{kind} {f.exception.reference}）核验未通过：{f.exception_problem}",
            f"The stated exception ({f.exception.kind} {f.exception.reference}) did not check out: {f.exception_problem}",
        )
    return True, None


def _warnings(f: Facts, p: Policy) -> list[DecisionWarning]:
    out = []
    for count, limit, zh, en in (
        (f.last_day, p.frequency.per_day, "一天", "a day"),
        (f.last_week, p.frequency.per_week, "一周", "a week"),
        (f.last_month, p.frequency.per_month, "一个月", "a month"),
    ):
        if count >= limit:
            out.append(
                DecisionWarning(
                    code=f"frequency_{en.split()[-1]}",
                    message_zh=f"该企业{zh}内已被检查 {count} 次，本次为第 {count + 1} 次（提示阈值 {limit} 次）。",
                    message_en=f"This enterprise was already inspected {count} time(s) within {en}; this is number {count + 1} (warning threshold {limit}).",
                )
            )
    return out


def decide(f: Facts, p: Policy) -> Decision:
    """The decision for one scan."""
    if not f.field:
        return _refuse("field_missing", "请选择本次检查的执法领域。", "State the enforcement field of this inspection.")
    refusal = _credential_problem(f)
    if refusal:
        return refusal
    if f.enterprise is None:
        return _refuse("enterprise_unknown", f"统一社会信用代码 {f.credit_code} 未在企业名录中登记。", f"No enterprise with credit code {f.credit_code} is registered.")
    name = f.enterprise.name
    join_after = f.now_ms - int(p.join_window_hours * 3_600_000)
    under_way = sorted((i for i in f.open_inspections if i.credit_code == f.credit_code and i.ended_ms is None and i.started_ms >= join_after), key=lambda i: (i.started_ms, i.inspection_id))
    if under_way:
        x = under_way[0]
        return Decision(
            outcome="join",
            code="join",
            message_zh=f"{f.name(x.agency_id)}正在对“{name}”开展检查（{_time(x.started_ms)} 开始），请加入该次检查：综合查一次，进一次门查多项事。",
            message_en=f"{f.name(x.agency_id)} is inspecting {name} now (since {_time(x.started_ms)} CST): join inspection {x.inspection_id}, one visit for all checks.",
            inspection_id=x.inspection_id,
            joined_agency_id=x.agency_id,
        )
    has_exception, refusal = _exception_state(f)
    if refusal:
        return refusal
    basis = ""
    pending = has_exception and f.exception_pending_review
    if has_exception and f.exception is not None:
        review = "，尚未登记，待监督人员复核" if pending else ""
        basis = f"（例外依据：{_EXCEPTION_ZH.get(f.exception.kind, f.exception.kind)} {f.exception.reference}{review}）"
    overrode: list[str] = []
    nd = f.no_disturb
    on_list = nd is not None and (nd.valid_to_ms is None or nd.valid_to_ms >= f.now_ms)
    if on_list and has_exception:
        overrode.append("no_disturb")
    if on_list and not has_exception:
        assert nd is not None
        return _refuse(
            "no_disturb",
            f"“{name}”在无事不扰企业清单中（依据：{nd.basis}），无法定例外情形不得入企检查。",
            f"{name} is on the no-disturb list (basis: {nd.basis}); an inspection needs a stated exception (complaint, random draw, major risk, rectification follow-up, superior assignment).",
        )
    same = sorted((i for i in f.recent_inspections if i.credit_code == f.credit_code and i.field == f.field and i.started_ms >= f.now_ms - p.repeat_window_days * DAY_MS), key=lambda i: -i.started_ms)
    if same and has_exception:
        overrode.append("repeat")
    if same and not has_exception:
        y = same[0]
        return Decision(
            outcome="repeat",
            code="repeat",
            message_zh=f"{f.name(y.agency_id)}已于 {_date(y.started_ms)} 就同一事项（{f.name(f.field)}）检查过“{name}”，{p.repeat_window_days} 天内重复检查须说明例外依据。",
            message_en=f"{f.name(y.agency_id)} inspected {name} for the same matter ({f.field}) on {_date(y.started_ms)}; within {p.repeat_window_days} days a repeat needs a stated exception.",
            inspection_id=y.inspection_id,
            joined_agency_id=y.agency_id,
        )
    cap = p.cap_for(f.enterprise.risk, f.enterprise.credit)
    if f.inspections_this_year >= cap and has_exception:
        overrode.append("cap")
    if f.inspections_this_year >= cap and not has_exception:
        return _refuse(
            "cap_reached",
            f"“{name}”（风险 {f.enterprise.risk}，信用 {f.enterprise.credit}）本年度检查次数已达上限 {cap} 次。",
            f"{name} (risk {f.enterprise.risk}, credit {f.enterprise.credit}) has had its yearly maximum of {cap} inspections.",
        )
    warnings = _warnings(f, p)
    low = p.low_yield
    if f.fruitless_this_year >= low.after and has_exception:
        overrode.append("low_yield")
    elif f.fruitless_this_year >= low.after and low.refuse:
        return _refuse(
            "low_yield",
            f"“{name}”本年度已被检查 {f.fruitless_this_year} 次均未发现问题，无法定例外情形不再入企检查。",
            f"{name} was inspected {f.fruitless_this_year} times this year with nothing found; a further inspection needs a stated exception.",
        )
    elif f.fruitless_this_year >= low.after:
        warnings.append(
            DecisionWarning(
                code="low_yield",
                message_zh=f"该企业本年度已被检查 {f.fruitless_this_year} 次均未发现问题，请确认本次检查确有必要。",
                message_en=f"This enterprise was inspected {f.fruitless_this_year} times this year with nothing found: make sure this inspection is needed.",
            )
        )
    en_basis = ""
    if has_exception and f.exception is not None:
        en_basis = f" (exception: {f.exception.kind} {f.exception.reference}" + (", not registered: pending a supervisor's review)" if pending else ")")
    return Decision(
        outcome="allowed",
        code="allowed_pending_review" if pending else ("allowed_exception" if has_exception else "allowed"),
        message_zh=f"可以对“{name}”开展检查{basis}。",
        message_en=f"You may inspect {name}{en_basis}.",
        exception_used=has_exception,
        warnings=warnings,
        overrode=overrode,
        pending_review=pending,
    )
