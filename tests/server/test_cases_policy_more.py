"""The [cases] settings that were constants (the legal reviewers' least share and the days a judicial referral may
wait for its answer, read by the scorecard) and the case's own decision deadline (行政处罚法 art. 60): alerted by the
``case_reviews`` job before it and when it is missed, once per case and deadline, and extended by the agency head.
Both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from protocol.config import ConfigError
from server.app import create_app
from server.cases import policy as case_policy
from server.storage.engine import storage_for
from server.supervision import scorecard as card
from tests.server.api_backends import api, settings  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import CASES, investigating, make_reviewer, post, seed_case_people
from tests.server.conftest import NOW_MS, Api

DAY_MS = 86_400_000


@pytest.fixture
def people(seeded_url: str) -> str:
    seed_case_people(seeded_url)
    return seeded_url


def _policy_file(tmp_path: Path, extra: str) -> Path:
    """server/policy.toml with ``extra`` (a line ``key = value``) in [cases], in place of the key's own line if any."""
    key = extra.split("=")[0].strip()
    text = "".join(line for line in Path("server/policy.toml").read_text(encoding="utf-8").splitlines(keepends=True) if line.split("=")[0].strip() != key)
    out = tmp_path / "policy.toml"
    out.write_text(text.replace("[cases]\n", f"[cases]\n{extra}\n", 1), encoding="utf-8")
    return out


# --- the scorecard's settings ------------------------------------------------------------------------------------


def test_the_reviewer_share_and_referral_days_are_policy_settings(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)  # 1 reviewer among SAMR's 4 officers with a valid credential: 25 %
    case_id = investigating(api)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transfers", {"kind": "referral", "to_body": "海淀公安分局", "reason": "涉嫌犯罪"}, 201)

    def indicators(now_ms: int, cases: case_policy.CasesPolicy | None) -> dict[str, card.Indicator]:
        with storage_for(people).reading() as tx:
            rows = card.scorecard(tx, NOW_MS - DAY_MS, NOW_MS + DAY_MS, now_ms=now_ms, cases=cases)
        return {i.key: i for i in next(r for r in rows if r.agency_id == "SAMR").indicators or []}

    default = indicators(NOW_MS + 11 * DAY_MS, None)
    assert not default["legal_reviewers"].flagged and default["legal_reviewers"].score == 100.0
    assert not default["referrals_unanswered"].flagged  # 11 days: not yet 30
    strict = indicators(NOW_MS + 11 * DAY_MS, case_policy.parse({"reviewer_share": 0.5, "referral_answer_days": 10}))
    assert strict["legal_reviewers"].flagged and strict["legal_reviewers"].score == 50.0  # 25 % of the 50 % asked
    assert strict["referrals_unanswered"].flagged and strict["referrals_unanswered"].value == 1
    assert case_policy.parse({}) == case_policy.CasesPolicy() and (case_policy.CasesPolicy().reviewer_share, case_policy.CasesPolicy().referral_answer_days) == (0.05, 30)


@pytest.mark.parametrize(
    ("line", "key"),
    [("reviewer_share = 5", "cases.reviewer_share"), ("reviewer_share = 0", "cases.reviewer_share"), ('reviewer_share = "5%"', "cases.reviewer_share"),
     ("referral_answer_days = 0", "cases.referral_answer_days"), ("referral_answer_days = 1.5", "cases.referral_answer_days"), ("referral_days = 30", "cases.referral_days")],
)  # fmt: skip
def test_a_wrong_scorecard_setting_stops_the_start(tmp_path: Path, seeded_url: str, line: str, key: str) -> None:
    s = msgspec.structs.replace(settings(seeded_url, tmp_path), policy_path=_policy_file(tmp_path, line))
    with pytest.raises(ConfigError, match=rf"policy\.toml: key '{key.replace('.', chr(92) + '.')}'"):
        create_app(s)


def test_the_admin_page_names_the_share_the_policy_asks(tmp_path: Path, people: str) -> None:
    s = msgspec.structs.replace(settings(people, tmp_path), policy_path=_policy_file(tmp_path, "reviewer_share = 0.3"))
    with TestClient(create_app(s)) as c:
        a = Api(c)
        make_reviewer(a)  # 25 %, below the 30 % asked
        page = a.as_("admin-SAMR").get("/cases").text
        assert "不足 30%" in page
        assert "Fewer than 30 %" in a.as_("admin-SAMR").get("/cases?lang=en").text


# --- the case's own decision deadline ----------------------------------------------------------------------------

CST = dt.timezone(dt.timedelta(hours=8))


def _on(day: str, days: int = 0) -> int:
    """09:00 China time ``days`` after ``day`` (ISO), in epoch ms."""
    return int(dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=days), dt.time(9), CST).timestamp() * 1000)


def _job(url: str, now_ms: int) -> dict[str, int]:
    """The case_reviews job as the scheduler runs it (the shipped policy)."""
    from protocol.config import load_toml
    from protocol.decision import Policy
    from protocol.signing import SigningKey
    from server.jobs.tasks import JOBS, JobContext, JobSettings

    ctx = JobContext(key=SigningKey.from_seed(bytes(range(32))), policy=load_toml(Path("server/policy.toml"), Policy), settings=JobSettings())
    return storage_for(url).write(lambda tx: JOBS["case_reviews"][0](tx, ctx, now_ms))


def test_a_case_near_and_past_its_deadline_is_alerted_once_per_deadline(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    decided = investigating(api)  # opened the same day: the same deadline, but decided, so never alerted
    post(api, "OFF-SAMR-1", f"{CASES}/{decided}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    deadline = api.get(f"{CASES}/{case_id}").json()["deadline"]
    assert _job(people, _on(deadline, -20)) == {"overdue": 0, "due": 0, "late": 0}  # more than 5 working days ahead
    assert _job(people, _on(deadline)) == {"overdue": 0, "due": 1, "late": 0}  # the deadline day itself is within
    assert _job(people, _on(deadline)) == {"overdue": 0, "due": 0, "late": 0}  # once, not every run
    assert _job(people, _on(deadline, 1)) == {"overdue": 0, "due": 0, "late": 1}  # past it
    assert _job(people, _on(deadline, 2)) == {"overdue": 0, "due": 0, "late": 0}
    c = api.get(f"{CASES}/{case_id}").json()
    assert c["steps"][-1]["kind"] == "case.deadline_overdue" and c["steps"][-1]["content"]["deadline"] == deadline
    alerts = api.as_("admin-SAMR").get("/api/v1/alerts", params={"kind": "case_overdue"}).json()
    mine = [a for a in (alerts["items"] if isinstance(alerts, dict) else alerts) if a["ref"] == f"{case_id}@{deadline}"]
    assert len(mine) == 1 and "已超过办案期限" in mine[0]["message_zh"]
    page = api.as_("admin-SAMR").get(f"/alerts/{mine[0]['id']}").text
    assert f"/cases?case={case_id}" in page and "案件超过办案期限" in page
    # The head extends it: a new deadline, alerted again in its turn.
    later = (dt.date.fromisoformat(deadline) + dt.timedelta(days=30)).isoformat()
    c = post(api, "admin-SAMR", f"{CASES}/{case_id}/extension", {"deadline": later, "reason": "案情复杂，经机关负责人批准延长"})
    assert c["deadline"] == later
    assert _job(people, _on(later)) == {"overdue": 0, "due": 1, "late": 0}
    assert _job(people, _on(later, 1)) == {"overdue": 0, "due": 0, "late": 1}
    assert _job(people, _on(later, 1)) == {"overdue": 0, "due": 0, "late": 0}


def test_the_deadline_days_per_kind_come_from_the_policy(tmp_path: Path, people: str) -> None:
    text = Path("server/policy.toml").read_text(encoding="utf-8").replace("[cases.decision_days]\npenalty = 90\n", "[cases.decision_days]\npenalty = 30\ncoercion = 45\n")
    (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    s = msgspec.structs.replace(settings(people, tmp_path), policy_path=tmp_path / "p.toml")
    with TestClient(create_app(s)) as c:
        a = Api(c)
        for kind, days in (("penalty", 30), ("coercion", 45), ("other", 90)):  # "other": case_days
            case = a.as_("OFF-SAMR-1").post(CASES, json={"kind": kind, "title": "x", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).json()
            opened = dt.datetime.fromtimestamp(case["opened_ms"] / 1000, CST).date()
            assert case["deadline"] == (opened + dt.timedelta(days=days)).isoformat(), kind


@pytest.mark.parametrize(
    ("text", "key"),
    [("[cases.decision_days]\npenalties = 30\n", "cases.decision_days.penalties"), ("[cases.decision_days]\npenalty = 0\n", "cases.decision_days"),
     ('[cases.decision_days]\npenalty = "90"\n', "cases.decision_days"), ("[cases.decision_days]\npenalty = 90\n", None)],
)  # fmt: skip
def test_a_wrong_deadline_setting_stops_the_start(tmp_path: Path, seeded_url: str, text: str, key: str | None) -> None:
    shipped = Path("server/policy.toml").read_text(encoding="utf-8").replace("[cases.decision_days]\npenalty = 90\n", text)
    (tmp_path / "policy.toml").write_text(shipped, encoding="utf-8")
    s = msgspec.structs.replace(settings(seeded_url, tmp_path), policy_path=tmp_path / "policy.toml")
    if key is None:
        create_app(s)
        return
    with pytest.raises(ConfigError, match=rf"policy\.toml: key '{key.replace('.', chr(92) + '.')}'"):
        create_app(s)
    for line, name in (("deadline_warning_days = 5", "cases.deadline_warning_days"), ("deadline_warning_working_days = -1", "cases.deadline_warning_working_days")):
        with pytest.raises(ConfigError, match=rf"key '{name.replace('.', chr(92) + '.')}'"):
            create_app(msgspec.structs.replace(s, policy_path=_policy_file(tmp_path, line)))


def test_only_the_agency_head_extends_a_deadline(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    url = f"{CASES}/{case_id}/extension"
    old = api.get(f"{CASES}/{case_id}").json()["deadline"]
    later = (dt.date.fromisoformat(old) + dt.timedelta(days=30)).isoformat()
    body = {"deadline": later, "reason": "案情复杂"}
    head = api.as_("admin-SAMR")
    assert api.as_("OFF-SAMR-1").post(url, json=body).status_code == 403  # a named officer: not the head
    assert api.post(url, json=body).status_code == 403  # a supervisor
    assert api.as_("admin-FIRE").post(url, json=body).status_code == 404  # another agency's case
    assert head.post(f"{CASES}/CASE-2026-99999/extension", json=body).status_code == 404  # a made-up case
    for bad in (
        {"deadline": "2026-02-30", "reason": "x"}, {"deadline": "tomorrow", "reason": "x"}, {"deadline": later}, {"deadline": later, "reason": ""},
        {"deadline": later, "reason": "x\u0000y"}, {"deadline": later, "reason": "x" * 10_000}, {**body, "approved_by": "someone-else"}, [], "x",
    ):  # fmt: skip
        assert head.post(url, json=bad).status_code == 400, bad
    assert head.post(url, content=b"{" * 100_000, headers={"Content-Type": "application/json"}).status_code in (400, 413)
    assert head.post(url, content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}).status_code in (400, 413)
    earlier = (dt.date.fromisoformat(old) - dt.timedelta(days=1)).isoformat()
    for date in (earlier, old):  # not later than the present deadline
        r = head.post(url, json={"deadline": date, "reason": "x"})
        assert r.status_code == 409 and "须晚于" in r.text
    assert head.post(url, json={"deadline": "9999-12-31", "reason": "x"}).status_code == 400  # beyond 3650 days of filing
    c = post(api, "admin-SAMR", url, body)
    assert c["deadline"] == later
    assert head.post(url, json=body).status_code == 409  # a double click: the same date is no longer later
    step = c["steps"][-1]
    assert step["kind"] == "case.deadline_extended" and step["actor"] == "admin-SAMR"
    assert step["content"] == {"from": old, "to": later, "reason": "案情复杂", "approved_by": "admin-SAMR"}
    page = head.get(f"/cases?case={case_id}").text
    assert "延长办案期限" in page and later in page
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    r = head.post(url, json={"deadline": (dt.date.fromisoformat(later) + dt.timedelta(days=1)).isoformat(), "reason": "x"})
    assert r.status_code == 409 and "已作出决定（现为决定阶段）" in r.text  # the state in words, not its code
