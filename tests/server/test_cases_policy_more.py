"""The [cases] settings that were constants (the legal reviewers' least share and the days a judicial referral may
wait for its answer, read by the scorecard) and the case's own decision deadline (行政处罚法 art. 60): alerted by the
``case_reviews`` job before it and when it is missed, once per case and deadline, and extended by the agency head.
Both backends."""

from __future__ import annotations

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
