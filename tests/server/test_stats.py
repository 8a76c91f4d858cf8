"""Report figures (server.console.stats) over a real migrated database, with rows inserted directly for exact figures.

The period is three CST days starting at midnight CST twenty days ago (inside the seeded officers' validity).

Inspections (lead agency, parts):
  I1 day 0 09:00-10:00, SAMR-1 (SAMR food) + FIRE-1 (FIRE fire): joint; one video spans it: complete.
  I2 day 1 14:00-15:00, SAMR-2: two videos leave a 20-minute gap: recorded, not complete.
  I3 day 1 23:30 - day 2 00:30, FIRE-1: no media.
  I4 day 2 00:30, open, SAMR-1 + SAMR-2 (one agency: not joint).
  I5 before the period and I6 at its end (to_ms, excluded): outside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from server.console import stats
from server.storage.engine import Tx, sql, storage_for
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, Api

H = 3_600_000
M = 60_000
CST = dt.timezone(dt.timedelta(hours=8))
_d = dt.datetime.fromtimestamp((NOW_MS - 20 * DAY_MS) / 1000, CST)
D0 = int(dt.datetime(_d.year, _d.month, _d.day, tzinfo=CST).timestamp() * 1000)  # midnight CST
FROM, TO = D0, D0 + 3 * DAY_MS

INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms)
    VALUES (:id, :code, '110108', :lead, :field, :status, :opened, :ended)
""")
PART = sql("""
    INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result)
    VALUES (:id, :officer, :agency, :field, :joined, :ended, :result)
""")
MEDIA = sql("""
    INSERT INTO media(event_id, device_id, officer_id, inspection_id, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms)
    VALUES (:id, 'DEV-1', :officer, :inspection, :file, 'video', :sha, 1000, :start, :end)
""")
SCAN = sql("""
    INSERT INTO scans(scan_id, channel, officer_id, agency_id, credit_code, code_text, field, scanned_ms, decided_ms, outcome, code, inspection_id, decision_json)
    VALUES (:id, 'phone', :officer, :agency, :code, 'QR', 'food', :at, :at, :outcome, :refusal, :inspection, '{}')
""")
ALERT = sql("""
    INSERT INTO alerts(created_ms, kind, severity, agency_id, message_zh, message_en) VALUES (:at, :kind, 'info', :agency, '提示', 'note')
""")
OFFICER = sql("""
    INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms)
    VALUES (:id, :name, 'SAMR', :credential, '["food"]', :valid_from, :valid_to, :revoked)
""")


def day(n: int) -> str:
    """The CST date n days after D0."""
    return (dt.date(_d.year, _d.month, _d.day) + dt.timedelta(days=n)).isoformat()


def inspection(tx: Tx, iid: str, lead: str, field: str, opened: int, ended: int | None, parts: list[tuple[str, str, str]]) -> None:
    tx.run(INSPECTION, id=iid, code=PLAIN, lead=lead, field=field, status="open" if ended is None else "ended", opened=opened, ended=ended)
    for n, (officer, agency, f) in enumerate(parts):
        tx.run(PART, id=iid, officer=officer, agency=agency, field=f, joined=opened + n * 5 * M, ended=ended, result=None if ended is None else "no_violation")


def media(tx: Tx, event_id: str, officer: str, iid: str, start: int, end: int) -> None:
    tx.run(MEDIA, id=event_id, officer=officer, inspection=iid, file=f"{event_id}.mp4", sha="0" * 64, start=start, end=end)


def scan(tx: Tx, sid: str, officer: str, agency: str, at: int, outcome: str, code: str, iid: str | None = None) -> None:
    tx.run(SCAN, id=sid, officer=officer, agency=agency, code=GOOD, at=at, outcome=outcome, refusal=code, inspection=iid)


def alert(tx: Tx, kind: str, agency: str, at: int) -> None:
    tx.run(ALERT, at=at, kind=kind, agency=agency)


def fill(con: Tx) -> None:
    inspection(con, "I1", "SAMR", "food", D0 + 9 * H, D0 + 10 * H, [("OFF-SAMR-1", "SAMR", "food"), ("OFF-FIRE-1", "FIRE", "fire")])
    inspection(con, "I2", "SAMR", "food", D0 + DAY_MS + 14 * H, D0 + DAY_MS + 15 * H, [("OFF-SAMR-2", "SAMR", "food")])
    inspection(con, "I3", "FIRE", "fire", D0 + DAY_MS + 23 * H + 30 * M, D0 + 2 * DAY_MS + 30 * M, [("OFF-FIRE-1", "FIRE", "fire")])
    inspection(con, "I4", "SAMR", "food", D0 + 2 * DAY_MS + 30 * M, None, [("OFF-SAMR-1", "SAMR", "food"), ("OFF-SAMR-2", "SAMR", "food")])
    inspection(con, "I5", "SAMR", "food", D0 - 2 * H, D0 - H, [("OFF-SAMR-1", "SAMR", "food"), ("OFF-FIRE-1", "FIRE", "fire")])
    inspection(con, "I6", "FIRE", "fire", TO, TO + H, [("OFF-FIRE-1", "FIRE", "fire"), ("OFF-SAMR-1", "SAMR", "food")])
    media(con, "M1", "OFF-SAMR-1", "I1", D0 + 9 * H - M, D0 + 10 * H + M)
    media(con, "M2a", "OFF-SAMR-2", "I2", D0 + DAY_MS + 14 * H - M, D0 + DAY_MS + 14 * H + 20 * M)
    media(con, "M2b", "OFF-SAMR-2", "I2", D0 + DAY_MS + 14 * H + 40 * M, D0 + DAY_MS + 15 * H + M)
    scan(con, "S1", "OFF-SAMR-1", "SAMR", D0 + 9 * H, "allowed", "allowed", "I1")
    scan(con, "S2", "OFF-FIRE-1", "FIRE", D0 + 9 * H + 5 * M, "join", "join", "I1")
    scan(con, "S3", "OFF-SAMR-2", "SAMR", D0 + DAY_MS + 14 * H, "allowed", "allowed", "I2")
    scan(con, "S4", "OFF-FIRE-1", "FIRE", D0 + DAY_MS + 23 * H + 30 * M, "allowed", "allowed", "I3")
    scan(con, "S5", "OFF-SAMR-1", "SAMR", D0 + 2 * DAY_MS + 30 * M, "allowed", "allowed", "I4")
    scan(con, "S6", "OFF-SAMR-2", "SAMR", D0 + 2 * DAY_MS + 31 * M, "join", "join", "I4")
    scan(con, "S7", "OFF-SAMR-1", "SAMR", D0 + 2 * DAY_MS + 10 * H, "refused", "no_disturb")
    scan(con, "S8", "OFF-FIRE-1", "FIRE", D0 + 2 * DAY_MS + 11 * H, "refused", "no_disturb")
    scan(con, "S9", "OFF-SAMR-2", "SAMR", D0 + 2 * DAY_MS + 12 * H, "refused", "cap_reached")
    scan(con, "S10", "OFF-SAMR-1", "SAMR", D0 + DAY_MS + 15 * H, "repeat", "repeat", "I2")
    scan(con, "S11", "OFF-SAMR-1", "SAMR", D0 + 2 * DAY_MS + 13 * H, "refused", "code_altered")
    scan(con, "S12", "OFF-SAMR-1", "SAMR", TO, "refused", "no_disturb")  # at to_ms: outside
    scan(con, "S13", "OFF-SAMR-1", "SAMR", D0 - 1, "repeat", "repeat")  # before: outside
    # Officers besides the seeded ones: one credentialed and idle, one revoked before the period.
    con.run(OFFICER, id="OFF-SAMR-3", name="王五", credential="C-SAMR-3", valid_from=D0 - 100 * DAY_MS, valid_to=D0 + 100 * DAY_MS, revoked=None)
    con.run(OFFICER, id="OFF-GONE", name="赵六", credential="C-GONE", valid_from=D0 - 100 * DAY_MS, valid_to=D0 + 100 * DAY_MS, revoked=D0 - DAY_MS)
    alert(con, "no_disturb_attempt", "SAMR", D0 + 2 * DAY_MS + 10 * H)
    alert(con, "no_disturb_attempt", "FIRE", D0 + 2 * DAY_MS + 11 * H)
    alert(con, "joint_inspection", "FIRE", D0 + 9 * H + 5 * M)
    alert(con, "joint_inspection", "FIRE", TO + H)  # outside


@pytest.fixture
def con(seeded_url: str) -> Iterator[Tx]:
    """The figures' rows on each backend in turn; the tests read them through a read-only connection."""
    store = storage_for(seeded_url)
    with store.writing() as tx:
        fill(tx)
    with store.reading() as tx:
        yield tx


def test_summary_all_agencies(con: Tx) -> None:
    s = stats.summary(con, FROM, TO)
    assert s == {
        "from_ms": FROM,
        "to_ms": TO,
        "agency_id": None,
        "inspections": 4,
        "joint_inspections": 1,
        "joint_rate": 0.25,
        "scans": 11,
        "repeat_answers": 1,
        "repeat_rate": 0.0909,
        "refused": 4,
        "blocked_attempts": 2,
        "refusals_by_code": {"cap_reached": 1, "code_altered": 1, "no_disturb": 2},
        "ended_inspections": 3,
        "recorded_any": 2,
        "recorded_complete": 1,
        "recording_coverage_rate": 0.3333,
        "uncovered_minutes": 80.0,  # I2's 20-minute gap, I3's hour
        # SAMR-1, SAMR-2, FIRE-1, SAMR-3, EXPIRED (expired after the period), REVOKED (revoked after it); not FUTURE, GONE
        "credentialed_officers": 6,
        "active_officers": 3,
        "participation_rate": 0.5,
        "alerts_by_kind": {"joint_inspection": 1, "no_disturb_attempt": 2},
    }
    assert isinstance(s["joint_rate"], float)


def test_summary_restricted_to_an_agency(con: Tx) -> None:
    s = stats.summary(con, FROM, TO, "SAMR")
    assert (s["agency_id"], s["inspections"], s["joint_inspections"], s["joint_rate"]) == ("SAMR", 3, 1, 0.3333)
    assert (s["scans"], s["repeat_answers"], s["repeat_rate"], s["refused"], s["blocked_attempts"]) == (8, 1, 0.125, 3, 1)
    assert s["refusals_by_code"] == {"cap_reached": 1, "code_altered": 1, "no_disturb": 1}
    assert (s["ended_inspections"], s["recorded_complete"], s["recording_coverage_rate"]) == (2, 1, 0.5)
    assert (s["credentialed_officers"], s["active_officers"], s["participation_rate"]) == (5, 2, 0.4)
    assert s["alerts_by_kind"] == {"no_disturb_attempt": 1}
    f = stats.summary(con, FROM, TO, "FIRE")
    assert (f["inspections"], f["joint_inspections"], f["scans"], f["blocked_attempts"], f["repeat_rate"]) == (2, 1, 3, 1, 0.0)
    assert (f["ended_inspections"], f["recorded_complete"], f["recording_coverage_rate"]) == (2, 1, 0.5)
    assert (f["credentialed_officers"], f["active_officers"], f["participation_rate"]) == (1, 1, 1.0)
    assert stats.summary(con, FROM, TO, "NOSUCH")["inspections"] == 0


def test_rates_are_none_without_a_denominator(con: Tx) -> None:
    s = stats.summary(con, TO + 10 * DAY_MS, TO + 11 * DAY_MS)
    assert (s["inspections"], s["scans"], s["ended_inspections"]) == (0, 0, 0)
    assert s["joint_rate"] is None and s["repeat_rate"] is None and s["recording_coverage_rate"] is None
    assert s["refusals_by_code"] == {} and s["alerts_by_kind"] == {}
    assert stats.summary(con, FROM, TO, "NOSUCH")["participation_rate"] is None


def test_inspections_by_agency_field(con: Tx) -> None:
    assert stats.inspections_by_agency_field(con, FROM, TO) == [
        {"agency_id": "FIRE", "agency_name": "消防救援支队", "field": "fire", "field_name": "消防安全", "inspections": 2, "parts": 2},
        {"agency_id": "SAMR", "agency_name": "市场监管局", "field": "food", "field_name": "食品安全", "inspections": 3, "parts": 4},
    ]
    assert [r["agency_id"] for r in stats.inspections_by_agency_field(con, FROM, TO, "SAMR")] == ["SAMR"]


def test_trend_by_cst_day(con: Tx) -> None:
    rows = stats.trend(con, FROM, TO)
    assert rows == [
        {"day": day(0), "inspections": 1, "joint_inspections": 1, "scans": 2, "refused": 0, "repeat_answers": 0},
        # I3 at 23:30 CST stays on day 1; I4 at 00:30 CST (16:30 UTC the day before) is on day 2
        {"day": day(1), "inspections": 2, "joint_inspections": 0, "scans": 3, "refused": 0, "repeat_answers": 1},
        {"day": day(2), "inspections": 1, "joint_inspections": 0, "scans": 6, "refused": 4, "repeat_answers": 0},
    ]
    utc_day_of_i4 = dt.datetime.fromtimestamp((D0 + 2 * DAY_MS + 30 * M) / 1000, dt.UTC).date().isoformat()
    assert utc_day_of_i4 == day(1)  # what a UTC grouping would have got wrong
    samr = stats.trend(con, FROM, TO, "SAMR")
    assert [(r["inspections"], r["scans"], r["refused"]) for r in samr] == [(1, 1, 0), (1, 2, 0), (1, 5, 3)]


def test_trend_includes_quiet_days_and_partial_days(con: Tx) -> None:
    rows = stats.trend(con, D0 + 12 * H, D0 + 5 * DAY_MS + H)
    assert [r["day"] for r in rows] == [day(n) for n in range(6)]
    assert rows[0]["inspections"] == 0 and rows[0]["scans"] == 0  # 09:00 is before the period's noon start
    assert rows[3] == {"day": day(3), "inspections": 1, "joint_inspections": 1, "scans": 1, "refused": 1, "repeat_answers": 0}
    assert rows[4]["inspections"] == 0 and rows[5]["scans"] == 0


def test_period_is_checked(con: Tx) -> None:
    with pytest.raises(ValueError):
        stats.summary(con, FROM, FROM + 367 * DAY_MS)
    with pytest.raises(ValueError):
        stats.trend(con, TO, FROM)
    with pytest.raises(ValueError):
        stats.inspections_by_agency_field(con, FROM, FROM)
    assert len(stats.trend(con, FROM, FROM + 366 * DAY_MS)) == 366


def test_csv(con: Tx) -> None:
    text = stats.to_csv(stats.inspections_by_agency_field(con, FROM, TO))
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    assert text == (
        "\ufeffagency_id,agency_name,field,field_name,inspections,parts\r\n"
        "FIRE,消防救援支队,fire,消防安全,2,2\r\n"
        "SAMR,市场监管局,food,食品安全,3,4\r\n"
    )
    summary_csv = stats.to_csv([stats.summary(con, FROM, TO)])
    header, row, _ = summary_csv.split("\r\n")
    assert header.startswith("\ufefffrom_ms,to_ms,agency_id,inspections,joint_inspections,joint_rate,")
    assert ',"{""cap_reached"": 1, ""code_altered"": 1, ""no_disturb"": 2}",' in row and f"{FROM},{TO},,4,1,0.25," in row


def test_csv_edge_cases() -> None:
    assert stats.to_csv([]) == "\ufeff"
    rows = [{"名称": "=HYPERLINK(1)", "n": -1, "x": None}, {"名称": "a,b", "n": 2}]
    assert stats.to_csv(rows) == '\ufeff名称,n,x\r\n\'=HYPERLINK(1),-1,\r\n"a,b",2,\r\n'
    with pytest.raises(ValueError):
        stats.to_csv([{"a": 1}, {"b": 2}])


def test_last_days_is_exactly_n_days_and_refuses_what_the_period_check_would() -> None:
    assert stats.last_days(366, NOW_MS) == (NOW_MS + 1 - 366 * DAY_MS, NOW_MS + 1)
    stats.check_period(*stats.last_days(stats.MAX_PERIOD_DAYS, NOW_MS))
    for days in (0, -1, stats.MAX_PERIOD_DAYS + 1):
        with pytest.raises(stats.PeriodError, match="days"):
            stats.last_days(days, NOW_MS)


@pytest.mark.parametrize("path", ["/api/v1/stats/by-agency-field", "/api/v1/trend", "/api/v1/stats.csv"])
def test_every_number_of_days_the_api_accepts_is_answered(api: Api, path: str) -> None:
    """days=366 passed the input check and then failed in the statistics code with a 500."""
    for days in (1, 30, stats.MAX_PERIOD_DAYS):
        r = api.get(path, params={"days": days})
        assert r.status_code == 200, (days, r.text)
        assert r.headers["content-type"] == ("text/csv; charset=utf-8" if path.endswith(".csv") else "application/json")
    for days in (0, stats.MAX_PERIOD_DAYS + 1):
        r = api.get(path, params={"days": days})
        assert r.status_code == 400 and "days" in r.text, (days, r.text)
    assert len(api.get("/api/v1/trend", params={"days": stats.MAX_PERIOD_DAYS}).json()) in (stats.MAX_PERIOD_DAYS, stats.MAX_PERIOD_DAYS + 1)


def _plain(value: object) -> bool:
    """Only JSON's own types (PostgreSQL's sum() gives Decimal, which an answer would encode as a string)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (int, float, str, bool)


def test_figures_are_plain_numbers_on_every_backend(con: Tx) -> None:
    assert _plain(stats.summary(con, FROM, TO)) and _plain(stats.summary(con, FROM, TO, "SAMR"))
    assert _plain(stats.trend(con, FROM, TO)) and _plain(stats.inspections_by_agency_field(con, FROM, TO))
    assert type(stats.summary(con, FROM, TO)["joint_inspections"]) is int
