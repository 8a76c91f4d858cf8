"""The scan decision rules (protocol.decision.decide): one table row per rule and boundary.

Every case uses fixed times (``NOW`` is 2026-11-24 14:00 China Standard Time); nothing reads the clock.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import protocol
from protocol.config import ConfigError, load_toml
from protocol.decision import DAY_MS, CapBand, Decision, Enterprise, Facts, FrequencyLimits, Policy, decide
from protocol.messages import Credential, ExceptionBasis, InspectionRef, NoDisturbEntry, SnapshotPolicy

CST = dt.timezone(dt.timedelta(hours=8))
HOUR_MS = 3_600_000


def cst_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)  # type: ignore[misc]


NOW = cst_ms(2026, 11, 24, 14, 0)
MKT = "11110108MB1H6Q2D71"  # 海淀区市场监督管理局
FIRE = "11110108MB0T3K8R4U"  # 海淀区消防救援支队
HEALTH = "11110108MB2W5N9P0X"  # no display name given: its id is shown
ENT = "91110108MA01R8KX3B"
NAMES = {MKT: "海淀区市场监督管理局", FIRE: "海淀区消防救援支队", "food_safety": "食品安全", "fire_safety": "消防安全", "market_order": "市场秩序"}

CREDENTIAL = Credential(
    officer_id="11010821033",
    agency_id=MKT,
    credential_no="110108-2024-0331",
    fields=["food_safety", "market_order"],
    valid_from_ms=cst_ms(2024, 3, 1),
    valid_to_ms=cst_ms(2029, 2, 28, 23, 59, 59),
)
ENTERPRISE = Enterprise(credit_code=ENT, name="北京知春里餐饮管理有限公司", risk="medium", credit="B")
COMPLAINT = ExceptionBasis(kind="complaint", reference="12345-20261124-0318827")
BASE = Facts(now_ms=NOW, officer_id="11010821033", credential=CREDENTIAL, credit_code=ENT, enterprise=ENTERPRISE, field="food_safety", names=NAMES)
POLICY = Policy(
    repeat_window_days=30,
    join_window_hours=8.0,
    default_cap_per_year=4,
    caps=[CapBand(risk="low", credit="A", per_year=1), CapBand(risk="high", credit="D", per_year=24), CapBand(risk="medium", credit="C", per_year=0)],
    frequency=FrequencyLimits(per_day=1, per_week=2, per_month=3),
)


def inspection(agency: str = FIRE, field: str = "fire_safety", started: int = NOW - HOUR_MS, ended: int | None = None, iid: str = "insp-0001") -> InspectionRef:
    return InspectionRef(inspection_id=iid, credit_code=ENT, agency_id=agency, field=field, started_ms=started, ended_ms=ended)


def credential(**changes: Any) -> Credential:
    return msgspec.structs.replace(CREDENTIAL, **changes)


def facts(**changes: Any) -> Facts:
    return msgspec.structs.replace(BASE, **changes)


def has_chinese(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


ON_LIST = NoDisturbEntry(credit_code=ENT, basis="2026年海淀区“无事不扰”企业清单", valid_to_ms=None)


# --------------------------------------------------------------------------- the table

CASES = [
    # 1. the credential
    pytest.param(facts(credential=None), "refused", "credential_missing", id="credential_missing"),
    pytest.param(facts(credential=credential(revoked=True)), "refused", "credential_revoked", id="credential_revoked"),
    pytest.param(facts(credential=credential(valid_from_ms=NOW + 1)), "refused", "credential_not_yet_valid", id="credential_not_yet_valid"),
    pytest.param(facts(credential=credential(valid_from_ms=NOW)), "allowed", "allowed", id="credential_valid_from_now"),
    pytest.param(facts(credential=credential(valid_to_ms=NOW - 1)), "refused", "credential_expired", id="credential_expired"),
    pytest.param(facts(credential=credential(valid_to_ms=NOW)), "allowed", "allowed", id="credential_valid_to_now"),
    pytest.param(facts(field="fire_safety"), "refused", "credential_field", id="credential_field"),
    pytest.param(facts(field=""), "refused", "field_missing", id="no_field"),
    pytest.param(facts(field="", credential=None), "refused", "field_missing", id="field_before_credential"),
    pytest.param(facts(credential=credential(revoked=True, valid_to_ms=NOW - 1), field="fire_safety"), "refused", "credential_revoked", id="revoked_before_expired"),
    pytest.param(facts(credential=credential(valid_to_ms=NOW - 1), field="fire_safety"), "refused", "credential_expired", id="expired_before_field"),
    pytest.param(facts(credential=None, enterprise=None), "refused", "credential_missing", id="credential_before_enterprise"),
    # 2. the enterprise
    pytest.param(facts(enterprise=None), "refused", "enterprise_unknown", id="enterprise_unknown"),
    pytest.param(facts(enterprise=None, open_inspections=[inspection()]), "refused", "enterprise_unknown", id="enterprise_before_join"),
    # 3. join an inspection under way
    pytest.param(facts(open_inspections=[inspection()]), "join", "join", id="join"),
    pytest.param(facts(open_inspections=[inspection(started=NOW - 8 * HOUR_MS)]), "join", "join", id="join_at_window_edge"),
    pytest.param(facts(open_inspections=[inspection(started=NOW - 8 * HOUR_MS - 1)]), "allowed", "allowed", id="too_old_to_join"),
    pytest.param(facts(open_inspections=[inspection(ended=NOW - 60_000)]), "allowed", "allowed", id="ended_is_not_joined"),
    pytest.param(facts(open_inspections=[inspection()], no_disturb=ON_LIST), "join", "join", id="join_before_no_disturb"),
    pytest.param(facts(open_inspections=[inspection(field="food_safety")], recent_inspections=[inspection(field="food_safety")]), "join", "join", id="join_before_repeat"),
    pytest.param(facts(open_inspections=[inspection()], exception=COMPLAINT, exception_ok=False), "join", "join", id="join_before_exception_check"),
    pytest.param(facts(open_inspections=[inspection()], inspections_this_year=99), "join", "join", id="join_before_cap"),
    pytest.param(facts(open_inspections=[inspection(started=NOW - 9 * HOUR_MS)], no_disturb=ON_LIST), "refused", "no_disturb", id="too_old_to_join_on_list"),
    # 4. the no-disturb list
    pytest.param(facts(no_disturb=ON_LIST), "refused", "no_disturb", id="no_disturb"),
    pytest.param(facts(no_disturb=msgspec.structs.replace(ON_LIST, valid_to_ms=NOW + DAY_MS)), "refused", "no_disturb", id="no_disturb_until_tomorrow"),
    pytest.param(facts(no_disturb=msgspec.structs.replace(ON_LIST, valid_to_ms=NOW)), "refused", "no_disturb", id="no_disturb_until_now"),
    pytest.param(facts(no_disturb=msgspec.structs.replace(ON_LIST, valid_to_ms=NOW - 1)), "allowed", "allowed", id="no_disturb_expired"),
    pytest.param(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=True), "allowed", "allowed_exception", id="no_disturb_with_exception"),
    pytest.param(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=None), "allowed", "allowed_exception", id="no_disturb_exception_offline"),
    pytest.param(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=False), "refused", "exception_invalid", id="no_disturb_invalid_exception"),
    pytest.param(facts(exception=COMPLAINT, exception_ok=False), "refused", "exception_invalid", id="invalid_exception_refused_anyway"),
    # 5. repeat inspections of the same field
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - 10 * DAY_MS, ended=NOW - 10 * DAY_MS + HOUR_MS)]), "repeat", "repeat", id="repeat"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - 30 * DAY_MS)]), "repeat", "repeat", id="repeat_at_window_edge"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - 30 * DAY_MS - 1)]), "allowed", "allowed", id="older_than_window"),
    pytest.param(facts(recent_inspections=[inspection(field="fire_safety", started=NOW - DAY_MS)]), "allowed", "allowed", id="other_field_is_not_a_repeat"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - 9 * HOUR_MS)]), "repeat", "repeat", id="open_too_old_to_join_is_a_repeat"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - DAY_MS)], exception=COMPLAINT, exception_ok=True), "allowed", "allowed_exception", id="repeat_with_exception"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - DAY_MS)], exception=COMPLAINT), "allowed", "allowed_exception", id="repeat_exception_offline"),
    pytest.param(facts(recent_inspections=[inspection(field="food_safety", started=NOW - DAY_MS)], no_disturb=ON_LIST), "refused", "no_disturb", id="no_disturb_before_repeat"),
    # 6. the yearly cap
    pytest.param(facts(inspections_this_year=3), "allowed", "allowed", id="below_default_cap"),
    pytest.param(facts(inspections_this_year=4), "refused", "cap_reached", id="default_cap_reached"),
    pytest.param(facts(inspections_this_year=4, exception=COMPLAINT, exception_ok=True), "allowed", "allowed_exception", id="cap_with_exception"),
    pytest.param(facts(inspections_this_year=4, exception=COMPLAINT), "allowed", "allowed_exception", id="cap_exception_offline"),
    pytest.param(facts(inspections_this_year=4, recent_inspections=[inspection(field="food_safety", started=NOW - DAY_MS)]), "repeat", "repeat", id="repeat_before_cap"),
    # 7. allowed
    pytest.param(BASE, "allowed", "allowed", id="allowed"),
    pytest.param(facts(exception=COMPLAINT, exception_ok=True), "allowed", "allowed_exception", id="allowed_with_unneeded_exception"),
    # an unregistered urgent exception the policy lets go ahead: allowed only pending a supervisor's review
    pytest.param(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=True, exception_pending_review=True), "allowed", "allowed_pending_review", id="pending_review"),
    pytest.param(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=False, exception_pending_review=True), "refused", "exception_invalid", id="pending_needs_ok"),
]


@pytest.mark.parametrize(("f", "outcome", "code"), CASES)
def test_decide(f: Facts, outcome: str, code: str) -> None:
    d = decide(f, POLICY)
    assert (d.outcome, d.code) == (outcome, code), d.message_en
    assert has_chinese(d.message_zh), d.message_zh
    assert re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", d.message_en), d.message_en  # English (names and bases stay as registered)
    assert d.exception_used == (code in ("allowed_exception", "allowed_pending_review"))
    assert d.pending_review == (code == "allowed_pending_review")
    if outcome == "refused":
        assert d.inspection_id is None and d.joined_agency_id is None and d.warnings == []
    if outcome in ("join", "repeat"):
        assert d.inspection_id and d.joined_agency_id
    assert decide(f, POLICY) == d  # pure: the same facts give the same answer


def test_every_code_of_decide_is_in_the_table() -> None:
    codes = {p.values[2] for p in CASES}
    assert codes == {
        "allowed", "allowed_exception", "allowed_pending_review", "join", "repeat", "no_disturb", "credential_missing", "credential_revoked", "credential_not_yet_valid",
        "credential_expired", "credential_field", "field_missing", "enterprise_unknown", "cap_reached", "exception_invalid",
    }  # fmt: skip


# --------------------------------------------------------------------------- what the answers say


def test_join_names_the_inspection_and_the_agency() -> None:
    d = decide(facts(open_inspections=[inspection(iid="insp-0042")]), POLICY)
    assert d.inspection_id == "insp-0042" and d.joined_agency_id == FIRE
    assert "海淀区消防救援支队" in d.message_zh and ENTERPRISE.name in d.message_zh and "综合查一次" in d.message_zh
    assert "2026-11-24 13:00" in d.message_zh  # the start, in China Standard Time
    assert "insp-0042" in d.message_en
    assert d.warnings == []


def test_join_picks_the_earliest_inspection_under_way() -> None:
    later = inspection(agency=HEALTH, started=NOW - HOUR_MS, iid="insp-later")
    earlier = inspection(agency=FIRE, started=NOW - 2 * HOUR_MS, iid="insp-earlier")
    too_old = inspection(agency=MKT, started=NOW - 9 * HOUR_MS, iid="insp-too-old")
    d = decide(facts(open_inspections=[later, too_old, earlier]), POLICY)
    assert d.inspection_id == "insp-earlier" and d.joined_agency_id == FIRE


def test_a_missing_display_name_shows_the_id() -> None:
    d = decide(facts(open_inspections=[inspection(agency=HEALTH)]), POLICY)
    assert HEALTH in d.message_zh and HEALTH in d.message_en


def test_repeat_names_the_latest_earlier_inspection() -> None:
    older = inspection(agency=MKT, field="food_safety", started=cst_ms(2026, 11, 2, 10, 0), iid="insp-older")
    newer = inspection(agency=FIRE, field="food_safety", started=cst_ms(2026, 11, 17, 10, 0), ended=cst_ms(2026, 11, 17, 11, 0), iid="insp-newer")
    d = decide(facts(recent_inspections=[older, newer]), POLICY)
    assert (d.outcome, d.inspection_id, d.joined_agency_id) == ("repeat", "insp-newer", FIRE)
    assert "海淀区消防救援支队" in d.message_zh and "食品安全" in d.message_zh and "2026-11-17" in d.message_zh and "30 天" in d.message_zh
    assert "2026-11-17" in d.message_en and "30 days" in d.message_en


def test_no_disturb_says_the_basis_and_how_to_proceed() -> None:
    d = decide(facts(no_disturb=ON_LIST), POLICY)
    assert "无事不扰" in d.message_zh and ON_LIST.basis in d.message_zh and ENTERPRISE.name in d.message_zh
    assert "exception" in d.message_en


def test_allowed_exception_names_the_basis() -> None:
    d = decide(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=True), POLICY)
    assert "投诉举报" in d.message_zh and COMPLAINT.reference in d.message_zh
    assert "complaint" in d.message_en and COMPLAINT.reference in d.message_en


def test_exception_invalid_says_why() -> None:
    d = decide(facts(exception=COMPLAINT, exception_ok=False, exception_problem="投诉举报工单不存在 / no such ticket"), POLICY)
    assert d.code == "exception_invalid"
    assert "投诉举报" in d.message_zh and COMPLAINT.reference in d.message_zh and "工单不存在" in d.message_zh
    assert "no such ticket" in d.message_en


def test_credential_field_lists_the_covered_fields_by_name() -> None:
    d = decide(facts(field="fire_safety"), POLICY)
    assert "消防安全" in d.message_zh and "食品安全" in d.message_zh and "市场秩序" in d.message_zh and CREDENTIAL.credential_no in d.message_zh
    assert "fire_safety" in d.message_en and "food_safety" in d.message_en


@pytest.mark.parametrize(
    ("cred", "date"),
    [
        # 07:00 CST on the 24th is still the 23rd in UTC: dates are shown in China Standard Time.
        (credential(valid_to_ms=cst_ms(2026, 11, 24, 7, 0)), "2026-11-24"),
        (credential(valid_from_ms=cst_ms(2026, 11, 25, 7, 0)), "2026-11-25"),
    ],
    ids=["expired", "not_yet_valid"],
)
def test_credential_dates_are_china_standard_time(cred: Credential, date: str) -> None:
    d = decide(facts(credential=cred), POLICY)
    assert date in d.message_zh and date in d.message_en and CREDENTIAL.credential_no in d.message_zh


def test_credential_missing_names_the_officer() -> None:
    d = decide(facts(credential=None), POLICY)
    assert "11010821033" in d.message_zh and "执法证" in d.message_zh


def test_enterprise_unknown_names_the_credit_code() -> None:
    d = decide(facts(enterprise=None), POLICY)
    assert ENT in d.message_zh and ENT in d.message_en


# --------------------------------------------------------------------------- the cap, per band


@pytest.mark.parametrize(
    ("risk", "credit", "cap"),
    [("low", "A", 1), ("high", "D", 24), ("medium", "C", 0), ("medium", "B", 4), ("high", "A", 4)],
    ids=["low_A", "high_D", "medium_C_zero", "default_medium_B", "default_high_A"],
)
def test_cap_per_band(risk: str, credit: str, cap: int) -> None:
    assert POLICY.cap_for(risk, credit) == cap
    ent = Enterprise(credit_code=ENT, name=ENTERPRISE.name, risk=risk, credit=credit)
    if cap > 0:
        assert decide(facts(enterprise=ent, inspections_this_year=cap - 1), POLICY).code == "allowed"
    reached = decide(facts(enterprise=ent, inspections_this_year=cap), POLICY)
    assert (reached.outcome, reached.code) == ("refused", "cap_reached")
    assert f"{cap} 次" in reached.message_zh and risk in reached.message_zh and credit in reached.message_zh
    assert decide(facts(enterprise=ent, inspections_this_year=cap + 5, exception=COMPLAINT, exception_ok=True), POLICY).code == "allowed_exception"


def test_a_band_listed_twice_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[caps]]\nrisk = "low"\ncredit = "A"\nper_year = 1\n[[caps]]\nrisk = "low"\ncredit = "A"\nper_year = 9\n')
    with pytest.raises(ConfigError, match="low/A twice"):
        load_toml(policy, Policy)


def test_a_mistyped_risk_class_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[caps]]\nrisk = "meduim"\ncredit = "A"\nper_year = 1\n')
    with pytest.raises(ConfigError, match=r"caps\.0\.risk.*'low', 'medium', 'high'.*meduim"):
        load_toml(policy, Policy)


# --------------------------------------------------------------------------- frequency warnings


@pytest.mark.parametrize(
    ("counts", "codes"),
    [
        ((0, 0, 0), []),
        ((1, 1, 1), ["frequency_day"]),
        ((0, 1, 2), []),
        ((0, 2, 2), ["frequency_week"]),
        ((0, 0, 3), ["frequency_month"]),
        ((0, 2, 3), ["frequency_week", "frequency_month"]),
        ((1, 2, 3), ["frequency_day", "frequency_week", "frequency_month"]),
        ((5, 9, 20), ["frequency_day", "frequency_week", "frequency_month"]),
    ],
    ids=lambda v: str(v),
)
def test_frequency_warnings_at_the_thresholds(counts: tuple[int, int, int], codes: list[str]) -> None:
    day, week, month = counts
    d = decide(facts(last_day=day, last_week=week, last_month=month), POLICY)
    assert d.outcome == "allowed"
    assert [w.code for w in d.warnings] == codes
    for w in d.warnings:
        assert has_chinese(w.message_zh) and "次" in w.message_zh and w.message_en


def test_frequency_warning_text() -> None:
    (w,) = decide(facts(last_day=1), POLICY).warnings
    assert w.message_zh == "该企业一天内已被检查 1 次，本次为第 2 次（提示阈值 1 次）。"
    assert "1 time(s) within a day" in w.message_en and "number 2" in w.message_en


def test_warnings_come_only_with_allowed() -> None:
    busy = {"last_day": 5, "last_week": 5, "last_month": 5}
    assert decide(facts(open_inspections=[inspection()], **busy), POLICY).warnings == []
    assert decide(facts(no_disturb=ON_LIST, **busy), POLICY).warnings == []
    assert len(decide(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=True, **busy), POLICY).warnings) == 3


def test_limits_come_from_the_policy() -> None:
    loose = msgspec.structs.replace(POLICY, frequency=FrequencyLimits(per_day=3, per_week=10, per_month=30))
    assert decide(facts(last_day=2, last_week=9, last_month=29), loose).warnings == []
    assert [w.code for w in decide(facts(last_day=3), loose).warnings] == ["frequency_day"]


# --------------------------------------------------------------------------- offline: facts from a snapshot


def test_offline_facts_decide_like_the_server_where_they_can() -> None:
    """A device has no register of enterprises and no yearly counts; a validly signed code stands for the enterprise."""
    offline = Policy(**msgspec.structs.asdict(POLICY.for_devices()))
    placeholder = Enterprise(credit_code=ENT, name=ENT)
    f = facts(enterprise=placeholder, names={}, no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=None)
    d = decide(f, offline)
    assert (d.outcome, d.code, d.exception_used) == ("allowed", "allowed_exception", True)
    assert ENT in d.message_zh
    # The server, with the registers, finds the ticket closed: the outcome differs, so an alert is raised.
    server = decide(facts(no_disturb=ON_LIST, exception=COMPLAINT, exception_ok=False, exception_problem="工单已办结 / ticket closed"), POLICY)
    assert server.outcome != d.outcome


def test_the_provisional_decision_example_is_what_the_snapshot_example_decides() -> None:
    """provisional_decision.v2: the phone decided its scan (enterprise_scanned.v3) offline from decision_snapshot.v1."""
    from protocol import enterprise_code
    from protocol.codec import decode_device_body, decode_server_body
    from protocol.messages import DecisionSnapshot, EnterpriseScanned, ProvisionalDecision
    from protocol.signing import VerifyKey

    examples = Path(protocol.__file__).resolve().parent / "examples"
    scan = decode_device_body((examples / "enterprise_scanned.v3.json").read_bytes(), "json")
    said = decode_device_body((examples / "provisional_decision.v2.json").read_bytes(), "json")
    snap = decode_server_body((examples / "decision_snapshot.v1.json").read_bytes(), "json")
    assert isinstance(scan, EnterpriseScanned) and isinstance(said, ProvisionalDecision) and isinstance(snap, DecisionSnapshot)
    assert said.scan_event_id == scan.event_id and said.device_id == scan.device_id and said.seq == scan.seq + 1
    assert said.snapshot_version == snap.version
    # It waited online_timeout_s for the server, then decided.
    assert said.device_time_ms - scan.device_time_ms >= snap.policy.online_timeout_s * 1000
    code = enterprise_code.verify(scan.code_text, {k: VerifyKey.from_hex(v) for k, v in snap.code_keys.items()})
    assert code.credit_code == scan.credit_code and f"{code.credit_code}:{code.issued:%Y%m%d}" not in snap.revoked_codes
    assert scan.field is not None
    f = Facts(
        now_ms=said.device_time_ms,
        officer_id=scan.officer_id,
        credential=next(c for c in snap.credentials if c.officer_id == scan.officer_id),
        credit_code=code.credit_code,
        enterprise=Enterprise(credit_code=code.credit_code, name=code.credit_code),
        field=scan.field,
        matter=scan.matter,
        no_disturb=next((n for n in snap.no_disturb if n.credit_code == code.credit_code), None),
        open_inspections=[i for i in snap.open_inspections if i.credit_code == code.credit_code],
        recent_inspections=[i for i in snap.recent_inspections if i.credit_code == code.credit_code],
        exception=scan.exception_basis,
        exception_ok=None,
    )
    p = snap.policy
    d = decide(f, Policy(repeat_window_days=p.repeat_window_days, join_window_hours=p.join_window_hours, online_timeout_s=p.online_timeout_s, default_cap_per_year=10**6))
    assert (d.outcome, d.code, d.inspection_id) == (said.outcome, said.code, said.inspection_id) == ("join", "join", snap.open_inspections[0].inspection_id)


def test_for_devices_carries_the_numbers_a_device_needs() -> None:
    p = Policy(repeat_window_days=14, join_window_hours=4.5, online_timeout_s=2.0)
    assert p.for_devices() == SnapshotPolicy(repeat_window_days=14, join_window_hours=4.5, online_timeout_s=2.0)


def test_decision_encodes_like_a_scan_decision() -> None:
    d = decide(facts(last_day=1), POLICY)
    again = msgspec.json.decode(msgspec.json.encode(d), type=Decision)
    assert again == d


# --------------------------------------------------------------------------- the policy file


POLICY_TOML = """\
repeat_window_days = 21
join_window_hours = 6.5
online_timeout_s = 2.5
default_cap_per_year = 3

[[caps]]
risk = "low"
credit = "A"
per_year = 1

[[caps]]
risk = "high"
credit = "D"
per_year = 24

[frequency]
per_day = 1
per_week = 3
per_month = 5
"""


def _policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_policy_loads_from_toml(tmp_path: Path) -> None:
    p = load_toml(_policy_file(tmp_path, POLICY_TOML), Policy)
    assert (p.repeat_window_days, p.join_window_hours, p.online_timeout_s, p.default_cap_per_year) == (21, 6.5, 2.5, 3)
    assert p.caps == [CapBand(risk="low", credit="A", per_year=1), CapBand(risk="high", credit="D", per_year=24)]
    assert p.frequency == FrequencyLimits(per_day=1, per_week=3, per_month=5)
    assert p.cap_for("low", "A") == 1 and p.cap_for("medium", "B") == 3


def test_an_empty_policy_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_toml(_policy_file(tmp_path, ""), Policy) == Policy()


def test_the_shipped_server_policy_loads() -> None:
    path = Path(protocol.__file__).resolve().parent.parent / "server" / "policy.toml"
    if not path.exists():
        pytest.skip("no server/policy.toml in this tree")
    p = load_toml(path, Policy)
    assert p.caps and p.join_window_hours > 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("per_year = 1", "per_yer = 1", "key 'caps.0.per_yer': unknown key (did you mean 'caps.0.per_year'?); expected one of: credit, per_year, risk"),
        ("per_year = 24", "per_yaer = 24", "key 'caps.1.per_yaer': unknown key (did you mean 'caps.1.per_year'?)"),
        ("repeat_window_days = 21", "repeat_window_dayz = 21", "key 'repeat_window_dayz': unknown key (did you mean 'repeat_window_days'?)"),
        ("per_week = 3", "per_wek = 3", "key 'frequency.per_wek': unknown key (did you mean 'frequency.per_week'?)"),
        ("join_window_hours = 6.5", 'join_window_hours = "6.5"', "key 'join_window_hours': expected float, got str"),
        ("join_window_hours = 6.5", "join_window_hours = 0", "key 'join_window_hours': expected float > 0"),
        ("online_timeout_s = 2.5", "online_timeout_s = 90", "key 'online_timeout_s': expected float <= 60"),
        ("repeat_window_days = 21", "repeat_window_days = 1.5", "key 'repeat_window_days': expected int, got float"),
        ("per_year = 1", "per_year = -1", "key 'caps.0.per_year': expected int >= 0"),
        ("per_year = 1\n", "", "key 'caps.0.per_year': required key is missing"),
        ("[frequency]", "[frequencies]", "key 'frequencies': unknown key (did you mean 'frequency'?)"),
        ("default_cap_per_year = 3", "default_cap_per_year =", "not valid TOML"),
    ],
    ids=["caps_typo", "second_band_typo", "top_typo", "table_typo", "string_for_float", "zero_hours", "timeout_too_long", "float_for_int",
         "negative_cap", "missing_per_year", "table_name_typo", "not_toml"],
)  # fmt: skip
def test_policy_errors_name_the_file_and_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in POLICY_TOML
    path = _policy_file(tmp_path, POLICY_TOML.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_toml(path, Policy)
    text = str(err.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(tmp_path / "nope.toml", Policy)


# --------------------------------------------------------------------------- low-yield inspections


def test_low_yield_warns_by_default_and_refuses_when_the_policy_says_so() -> None:
    from protocol.decision import LowYieldPolicy

    below = decide(facts(fruitless_this_year=2), POLICY)
    assert below.outcome == "allowed" and "low_yield" not in [w.code for w in below.warnings]
    warned = decide(facts(fruitless_this_year=3), POLICY)
    assert warned.outcome == "allowed" and [w.code for w in warned.warnings][-1] == "low_yield" and "3 次均未发现问题" in warned.warnings[-1].message_zh
    strict = Policy(**{**{f: getattr(POLICY, f) for f in POLICY.__struct_fields__}, "low_yield": LowYieldPolicy(after=3, refuse=True)})
    refused = decide(facts(fruitless_this_year=4), strict)
    assert (refused.outcome, refused.code) == ("refused", "low_yield") and "4 次" in refused.message_zh and "4 times" in refused.message_en
    excused = decide(facts(fruitless_this_year=4, exception=COMPLAINT, exception_ok=True), strict)
    assert excused.outcome == "allowed" and excused.exception_used and excused.overrode == ["low_yield"]
    assert decide(facts(fruitless_this_year=9), Policy(**{**{f: getattr(POLICY, f) for f in POLICY.__struct_fields__}, "low_yield": LowYieldPolicy(after=10)})).warnings == []


def test_low_yield_is_never_sent_to_devices() -> None:
    assert "low_yield" not in msgspec.structs.asdict(POLICY.for_devices())
