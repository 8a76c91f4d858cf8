"""Properties of the decision rules over generated facts: what must never happen, whatever the facts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.decision import DAY_MS, Decision, Facts, decide
from protocol.messages import ExceptionBasis, InspectionRef
from tests.protocol.test_decision import BASE, CREDENTIAL, ENT, FIRE, HOUR_MS, MKT, NOW, ON_LIST, POLICY, has_chinese
from tests.support.props import examples

KINDS = ["complaint", "random_draw", "major_risk", "rectification_follow_up", "superior_assignment"]


def _inspections(draw: st.DrawFn, *, open_: bool) -> list[InspectionRef]:
    out = []
    for i in range(draw(st.integers(0, 3))):
        started = NOW - draw(st.integers(0, 40 * DAY_MS if not open_ else 12 * HOUR_MS))
        ended = None if open_ or draw(st.booleans()) else started + HOUR_MS
        out.append(
            InspectionRef(
                inspection_id=f"insp-{open_}-{i}", credit_code=ENT, agency_id=draw(st.sampled_from([MKT, FIRE])),
                field=draw(st.sampled_from(["food_safety", "fire_safety"])), started_ms=started, ended_ms=ended,
            )
        )  # fmt: skip
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Facts:
    """Facts a server or a terminal might gather: any combination of list, history, counts and exception."""
    exception = draw(st.none() | st.builds(ExceptionBasis, kind=st.sampled_from(KINDS), reference=st.text(min_size=0, max_size=12)))
    ok = draw(st.sampled_from([True, False, None])) if exception is not None else None
    changes: dict[str, Any] = {
        "credential": draw(st.sampled_from([CREDENTIAL, None])),
        "field": draw(st.sampled_from(["food_safety", "market_order", "fire_safety", ""])),
        "no_disturb": draw(st.sampled_from([None, ON_LIST])),
        "open_inspections": _inspections(draw, open_=True),
        "recent_inspections": _inspections(draw, open_=False),
        "inspections_this_year": draw(st.integers(0, 30)),
        "last_day": draw(st.integers(0, 3)),
        "last_week": draw(st.integers(0, 5)),
        "last_month": draw(st.integers(0, 8)),
        "exception": exception,
        "exception_ok": ok,
        "exception_problem": "核验未通过" if ok is False else "",
        "exception_pending_review": bool(ok) and draw(st.booleans()),
    }
    import msgspec

    return msgspec.structs.replace(BASE, **changes)


def _usable_exception(f: Facts) -> bool:
    return f.exception is not None and f.exception_ok is not False


@settings(max_examples=examples(600))
@given(scenarios())
def test_no_rule_is_set_aside_without_a_usable_exception(f: Facts) -> None:
    d: Decision = decide(f, POLICY)
    assert has_chinese(d.message_zh) and d.message_en
    if d.outcome == "allowed":
        if f.no_disturb is not None:
            assert _usable_exception(f), "a no-disturb enterprise allowed without an exception that checks out"
        if f.inspections_this_year >= POLICY.cap_for(f.enterprise.risk, f.enterprise.credit):  # type: ignore[union-attr]
            assert _usable_exception(f), "the yearly cap passed without an exception that checks out"
        same = [i for i in f.recent_inspections if i.field == f.field and i.started_ms >= NOW - POLICY.repeat_window_days * DAY_MS]
        if same:
            assert _usable_exception(f), "a repeat allowed without an exception that checks out"
        assert f.credential is not None and f.field in f.credential.fields
    if f.exception is not None and f.exception_ok is False and d.outcome != "join" and d.code not in ("field_missing", "enterprise_unknown") and not d.code.startswith("credential_"):
        assert d.code == "exception_invalid", "an exception that did not check out must refuse the scan"


@settings(max_examples=examples(400))
@given(scenarios())
def test_what_the_exception_overrode_is_said_and_review_is_flagged(f: Facts) -> None:
    d = decide(f, POLICY)
    if d.outcome != "allowed":
        assert d.overrode == [] and not d.pending_review
        return
    assert d.exception_used == _usable_exception(f)
    assert d.pending_review == (d.exception_used and f.exception_pending_review)
    assert (d.code == "allowed_pending_review") == d.pending_review
    assert ("no_disturb" in d.overrode) == (f.no_disturb is not None)
    assert ("cap" in d.overrode) == (f.inspections_this_year >= POLICY.cap_for(f.enterprise.risk, f.enterprise.credit))  # type: ignore[union-attr]
    assert set(d.overrode) <= {"no_disturb", "repeat", "cap"} and (not d.overrode or d.exception_used)


@settings(max_examples=examples(300))
@given(scenarios())
def test_an_inspection_under_way_is_always_joined_rather_than_a_second_opened(f: Facts) -> None:
    d = decide(f, POLICY)
    under_way = [i for i in f.open_inspections if i.ended_ms is None and i.started_ms >= NOW - int(POLICY.join_window_hours * HOUR_MS)]
    if d.outcome == "allowed":
        assert not under_way, "allowed a second inspection while one is under way"
    if d.outcome == "join":
        assert d.inspection_id in {i.inspection_id for i in under_way}
