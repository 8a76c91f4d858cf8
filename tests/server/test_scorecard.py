"""The agency scorecard (issue 14 item 5) on both backends: the figures, scores, totals, ranks and trend checked by hand
on seeded data, the CSV, who sees what, bad periods, and the page."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from protocol.config import ConfigError
from server.app import create_app
from server.console.scorecard_api import period_of
from server.settings import ServerSettings
from protocol.cst import CST
from server.storage.engine import sql, storage_for
from server.supervision import scorecard as card
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import GOOD, PLAIN, Api

TODAY = dt.datetime.now(CST).date()
#: The period: 30 days ending 11 days ago (the seeded officers hold credentials for a year around now).
FIRST, LAST = TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=11)
PREV_FIRST = FIRST - dt.timedelta(days=30)


def at(day: dt.date, hour: int = 10) -> int:
    return int(dt.datetime.combine(day, dt.time(hour), CST).timestamp() * 1000)


D1, D2, DP = FIRST + dt.timedelta(days=3), FIRST + dt.timedelta(days=10), PREV_FIRST + dt.timedelta(days=5)

_AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES ('ENV', '生态环境局', 'Environment', '110108', '[]')")
_INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms)
    VALUES (:id, :code, :agency, 'food', :status, :opened, :ended)
""")
_PART = sql("INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms) VALUES (:id, :officer, :agency, 'food', :at)")
_SCAN = sql("""
    INSERT INTO scans(scan_id, channel, officer_id, agency_id, credit_code, code_text, scanned_ms, decided_ms, outcome, code, decision_json)
    VALUES (:id, 'app', :officer, :agency, :code, 'x', :at, :at, :outcome, :why, '{}')
""")
_DECISION = sql("""
    INSERT INTO decisions(decision_id, agency_id, kind, decided_on, deadline, status) VALUES (:id, :agency, 'penalty', :on, :on, :status)
""")
_SAMPLE = sql("INSERT INTO samples(sample_id, agency_id, period, seed, drawn_ms, population) VALUES (:id, :agency, '2026-01', 's', 0, 2)")
_ITEM = sql("INSERT INTO sample_items(sample_id, decision_id, result, reviewer, notes, reviewed_ms) VALUES (:id, :d, :result, 'r', '', :at)")
_FINDING = sql("""
    INSERT INTO findings(finding_id, year, seq, agency_id, source, reason, refs, opened_by, opened_ms, status)
    VALUES (:id, 2026, :seq, :agency, 'manual', 'r', '[]', 'sup', :at, 'open')
""")
_RATING = sql("""
    INSERT INTO ratings(inspection_id, credit_code, lead_agency_id, score, comment, rated_by, rated_ms) VALUES (:id, :code, :agency, :score, '', 'ent', :at)
""")
_LETTER = sql("""
    INSERT INTO letters(letter_id, kind, issuer, year, number, finding_id, agency_id, facts, basis, requirements, deadline_days,
                        issued_on, deadline, issued_by, issued_ms, status, replied_ms)
    VALUES (:id, 'opinion', '某市司法局', 2026, :n, 'F-1', :agency, 'f', 'b', 'r', 10, :on, :deadline, 'sup', :at, :status, :replied)
""")


def seed_scorecard(url: str) -> None:
    """SAMR: 4 inspections (1 joint with FIRE, 1 ended unrecorded), 5 scans (1 repeat, 1 no-disturb refusal), 2 decisions
    (1 on time, 1 missed), 2 case files (1 passed), 2 findings, 3 letters (1 accepted on time, 1 accepted late, 1 overdue);
    1 inspection in the previous period. FIRE: 2 inspections (the joint one), 2 scans, 1 decision disclosed late, 1 finding,
    2 letters (1 accepted on time, 1 not yet due). Enterprises' ratings: SAMR's inspections 4 and 2 stars, FIRE's 5 stars
    after the period. ENV: nothing."""
    with storage_for(url).writing() as tx:
        tx.run(_AGENCY)
        for i, (agency, officers, status) in enumerate(
            [("SAMR", [("OFF-SAMR-1", "SAMR"), ("OFF-FIRE-1", "FIRE")], "open"), ("SAMR", [("OFF-SAMR-1", "SAMR")], "ended"),
             ("SAMR", [("OFF-SAMR-2", "SAMR")], "open"), ("SAMR", [("OFF-SAMR-1", "SAMR")], "open"), ("FIRE", [("OFF-FIRE-1", "FIRE")], "open")], 1
        ):  # fmt: skip
            opened = at(D1) + i * 60_000
            tx.run(_INSPECTION, id=f"I{i}", code=PLAIN, agency=agency, status=status, opened=opened, ended=opened + 600_000 if status == "ended" else None)
            for officer, a in officers:
                tx.run(_PART, id=f"I{i}", officer=officer, agency=a, at=opened)
        tx.run(_INSPECTION, id="IP", code=PLAIN, agency="SAMR", status="open", opened=at(DP), ended=None)
        tx.run(_PART, id="IP", officer="OFF-SAMR-1", agency="SAMR", at=at(DP))
        scans = [("SAMR", "allowed", "ok")] * 3 + [("SAMR", "repeat", "repeat"), ("SAMR", "refused", "no_disturb"), ("FIRE", "allowed", "ok"), ("FIRE", "allowed", "ok")]
        for n, (agency, outcome, why) in enumerate(scans):
            tx.run(_SCAN, id=f"S{n}", officer=f"OFF-{agency}-1", agency=agency, code=GOOD, at=at(D1) + n, outcome=outcome, why=why)
        tx.run(_SCAN, id="SP", officer="OFF-SAMR-1", agency="SAMR", code=PLAIN, at=at(DP), outcome="allowed", why="ok")
        for d, agency, status in [("D1", "SAMR", "disclosed_on_time"), ("D2", "SAMR", "missed"), ("D3", "FIRE", "disclosed_late"), ("D4", "FIRE", "pending")]:
            tx.run(_DECISION, id=d, agency=agency, on=D2.isoformat(), status=status)
        for inspection, agency, score, day in [("I2", "SAMR", 4, D2), ("I3", "SAMR", 2, D2), ("I5", "FIRE", 5, LAST + dt.timedelta(days=1))]:
            tx.run(_RATING, id=inspection, code=PLAIN, agency=agency, score=score, at=at(day, 1))
        tx.run(_SAMPLE, id="SMP", agency="SAMR")
        tx.run(_ITEM, id="SMP", d="D1", result="pass", at=at(D2))
        tx.run(_ITEM, id="SMP", d="D2", result="fail", at=at(D2))
        for n, agency in enumerate(["SAMR", "SAMR", "FIRE"], 1):
            tx.run(_FINDING, id=f"F-{n}", seq=n, agency=agency, at=at(D1))
        deadline = D1 + dt.timedelta(days=14)
        letters = [
            ("SAMR", "accepted", deadline, at(deadline, 23)), ("SAMR", "accepted", deadline, at(deadline + dt.timedelta(days=1), 1)),
            ("SAMR", "overdue", deadline, None), ("FIRE", "accepted", deadline, at(deadline - dt.timedelta(days=2))),
            ("FIRE", "issued", TODAY + dt.timedelta(days=10), None),
        ]  # fmt: skip
        for n, (agency, status, due, replied) in enumerate(letters, 1):
            tx.run(_LETTER, id=f"L{n}", n=n, agency=agency, on=D1.isoformat(), deadline=due.isoformat(), at=at(D1), status=status, replied=replied)


def _period() -> tuple[int, int]:
    p = period_of(FIRST.isoformat(), LAST.isoformat())
    return p.from_ms, p.to_ms


def _scores(row: card.AgencyScore) -> dict[str, tuple[Any, Any]]:
    assert row.indicators is not None
    return {i.key: (i.value, i.score) for i in row.indicators}


def test_the_figures_scores_totals_ranks_and_trend_by_hand(seeded_url: str) -> None:
    seed_scorecard(seeded_url)
    with storage_for(seeded_url).reading() as tx:
        rows = card.scorecard(tx, *_period(), now_ms=at(TODAY))
    assert [(r.agency_id, r.rank) for r in rows] == [("FIRE", 1), ("SAMR", 2), ("ENV", None)]
    fire, samr, env = rows
    assert _scores(samr) == {
        "inspections": (4, 100.0), "joint_rate": (0.25, 25.0), "repeat_rate": (0.2, 80.0), "no_disturb_attempts": (1, 80.0),
        "recording_coverage": (0.0, 0.0), "disclosure_on_time": (0.5, 50.0), "case_file_pass": (0.5, 50.0), "findings": (2, 0.0),
        "letters": (3, 0.0), "letters_on_time": (0.3333, 33.3),
        "participation": (0.5, 50.0),  # OFF-SAMR-1 and -2 of 4 credentialed (the expired and revoked ones held a credential then)
        "ratings": (3.0, 50.0),  # (4 + 2) / 2 stars: 100 × (3 − 1) / 4
        "legal_reviewers": (0.0, 0.0), "cases_kept": (0, None), "referrals_unanswered": (0, None),  # no reviewer among 6 officers; no case
    }  # fmt: skip
    # (25×15 + 80×10 + 80×10 + 0×15 + 50×15 + 50×15 + 0×5 + 33.3×10 + 50×5 + 50×5) / 105
    assert samr.total == 41.0
    # Previous period: 1 inspection, not joint, 1 scan: (0×15 + 100×10 + 100×10 + 25×5 + 100×5) / 45
    assert (samr.previous_total, samr.change) == (58.3, -17.3)
    assert _scores(fire) == {
        "inspections": (2, 50.0), "joint_rate": (0.5, 50.0), "repeat_rate": (0.0, 100.0), "no_disturb_attempts": (0, 100.0),
        "recording_coverage": (None, None), "disclosure_on_time": (0.0, 0.0), "case_file_pass": (None, None), "findings": (1, 50.0),
        "letters": (2, 33.3), "letters_on_time": (1.0, 100.0), "participation": (1.0, 100.0), "ratings": (None, None),
        "legal_reviewers": (0.0, 0.0), "cases_kept": (0, None), "referrals_unanswered": (0, None),
    }  # fmt: skip
    # (50×15 + 100×10 + 100×10 + 0×15 + 50×5 + 100×10 + 100×5) / 70: the weights without data are left out
    assert (fire.total, fire.previous_total, fire.change) == (64.3, None, None)
    assert (env.total, env.rank) == (None, None) and all(i.score is None for i in env.indicators or [])
    ratings = next(i for i in samr.indicators or [] if i.key == "ratings")
    assert (ratings.numerator, ratings.weight) == (2, 5)  # FIRE's rating came after the period


def test_weights_and_the_policy_files_weights(seeded_url: str, tmp_path: Path) -> None:
    seed_scorecard(seeded_url)
    only_joint = {k: 0.0 for k in card.DEFAULT_WEIGHTS} | {"joint_rate": 1.0}
    with storage_for(seeded_url).reading() as tx:
        rows = card.scorecard(tx, *_period(), now_ms=at(TODAY), weights=only_joint, agency_id="SAMR")
    assert [(r.agency_id, r.total, r.rank) for r in rows] == [("SAMR", 25.0, 2)]  # ranked among all, FIRE 50
    assert card.weights_from({"joint_rate": 30, "ratings": 0}) == {**card.DEFAULT_WEIGHTS, "joint_rate": 30.0, "ratings": 0.0}
    with pytest.raises(card.WeightsError, match="speed"):
        card.weights_from({"speed": 1})
    with pytest.raises(card.WeightsError, match="all zero"):
        card.weights_from({k: 0 for k in card.DEFAULT_WEIGHTS})
    policy = (Path(__file__).resolve().parents[2] / "server" / "policy.toml").read_text(encoding="utf-8")
    bad = tmp_path / "policy.toml"
    bad.write_text(policy.replace("[scorecard.weights]\n", "[scorecard.weights]\nspeed = 1\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"policy.toml: key 'scorecard.weights'.*speed"):
        create_app(ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False, policy_path=bad))
    bad.write_text(policy.replace("joint_rate = 15\n", "joint_rate = -1\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match="joint_rate"):
        create_app(ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False, policy_path=bad))


def test_the_api_as_a_supervisor_json_and_csv(api: Api, seeded_url: str) -> None:  # noqa: F811
    seed_scorecard(seeded_url)
    q = f"from={FIRST}&to={LAST}"
    r = api.get(f"/api/v1/scorecard?{q}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"]["from_day"] == FIRST.isoformat() and body["period"]["to_day"] == LAST.isoformat() and body["details"] == "all"
    assert body["previous"]["to_day"] == (FIRST - dt.timedelta(days=1)).isoformat() and body["previous"]["from_day"] == PREV_FIRST.isoformat()
    assert [(x["agency_id"], x["total"], x["rank"], x["previous_total"]) for x in body["rows"]] == [("FIRE", 64.3, 1, None), ("SAMR", 41.0, 2, 58.3), ("ENV", None, None, None)]
    assert api.get(f"/api/v1/scorecard?{q}&agency_id=SAMR").json()["rows"][0]["rank"] == 2
    r = api.get(f"/api/v1/scorecard?{q}&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["排名"], x["机关"], x["综合得分"], x["上期得分"], x["变化"]) for x in table] == [
        ("1", "消防救援支队", "64.3", "", ""), ("2", "市场监管局", "41.0", "58.3", "-17.3"), ("", "生态环境局", "", "", ""),
    ]  # fmt: skip
    assert table[1]["联合检查率"] == "25.0%" and table[1]["联合检查率得分"] == "25.0" and table[1]["无事不扰拦截次数"] == "1"
    assert table[1]["企业评价（1–5 星）"] == "3.0" and table[1]["企业评价（1–5 星）得分"] == "50.0" and table[0]["全过程记录率"] == ""
    english = list(csv.DictReader(io.StringIO(api.get(f"/api/v1/scorecard?{q}&format=csv&lang=en").content.decode("utf-8-sig"))))
    assert english[0]["Agency"] == "Fire rescue" and english[0]["Total"] == "64.3"
    assert api.get(f"/api/v1/scorecard?{q}&format=xml").status_code == 400


def test_roles(api: Api, seeded_url: str) -> None:  # noqa: F811
    seed_scorecard(seeded_url)
    q = f"from={FIRST}&to={LAST}"
    body = api.as_("admin-SAMR").get(f"/api/v1/scorecard?{q}").json()
    assert body["details"] == "own"
    assert [(x["agency_id"], x["rank"], x["indicators"] is None) for x in body["rows"]] == [("FIRE", 1, True), ("SAMR", 2, False), ("ENV", None, True)]
    table = list(csv.DictReader(io.StringIO(api.as_("admin-SAMR").get(f"/api/v1/scorecard?{q}&format=csv").content.decode("utf-8-sig"))))
    assert table[0]["综合得分"] == "64.3" and table[0]["联合检查率"] == "" and table[1]["联合检查率"] == "25.0%"
    assert api.as_("OFF-SAMR-1").get(f"/api/v1/scorecard?{q}").status_code == 403
    assert api.as_("ent-plain").get(f"/api/v1/scorecard?{q}").status_code == 403
    assert api.client.get(f"/api/v1/scorecard?{q}").status_code == 401
    assert api.as_("OFF-SAMR-1").get("/scorecard", follow_redirects=False).status_code in (302, 303, 307)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("from=2026-13-01", "from"), ("to=yesterday", "to"), ("from=2026-03-02&to=2026-03-01", "before it begins"),
        ("from=2025-01-01&to=2026-01-02", "366"),
    ],
)  # fmt: skip
def test_bad_periods_are_refused_saying_why(api: Api, query: str, words: str) -> None:  # noqa: F811
    r = api.get(f"/api/v1/scorecard?{query}")
    assert r.status_code == 400 and words in r.json()["detail"], r.text


def test_a_whole_leap_year_is_a_period() -> None:
    p = period_of("2028-01-01", "2028-12-31")
    assert (p.to_ms - p.from_ms) == 366 * 86_400_000


def test_the_page(api: Api, seeded_url: str) -> None:  # noqa: F811
    seed_scorecard(seeded_url)
    r = api.get(f"/scorecard?preset=custom&from={FIRST}&to={LAST}")
    assert r.status_code == 200, r.text
    html = r.text
    assert "执法监督指标" in html and "消防救援支队" in html and "64.3" in html and "41.0" in html and "3.0 星（2 条）" in html
    assert html.count("<rect ") == 3 and "<script>" not in html and 'src="/static/scorecard.js"' in html
    assert f"format=csv&amp;from={FIRST}&amp;to={LAST}" in html and "ENV" not in html and "SAMR" not in html.split("<main>")[1]
    en = api.get(f"/scorecard?preset=custom&from={FIRST}&to={LAST}&lang=en").text
    assert "Agency scorecard" in en and "Fire rescue" in en and "Joint-inspection rate" in en
    bad = api.get(f"/scorecard?preset=custom&from={LAST}&to={FIRST}")
    assert bad.status_code == 200 and "统计期间有误" in bad.text  # the page says so and shows this month
    for preset in ("this_month", "last_month", "this_year"):
        assert api.get(f"/scorecard?preset={preset}").status_code == 200
    admin = api.as_("admin-SAMR").get(f"/scorecard?preset=custom&from={FIRST}&to={LAST}").text
    assert admin.count("仅可查看本机关明细") == 2 and 'id="scorecard-link"' in admin
