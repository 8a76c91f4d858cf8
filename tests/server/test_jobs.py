"""The scheduled jobs, each driven with a controllable clock (never the wall clock)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol import topics
from protocol.codec import seal_with_body
from protocol.config import load_toml
from protocol.decision import Policy
from protocol.messages import DeviceStatus
from protocol.signing import SigningKey
from server import db as dbmod
from server.app import create_app
from server.jobs.disclosure import check_deadlines, on_time_rates, pass_rates, record_decision, record_disclosure, record_review, sample_case_files
from server.jobs.draws import DrawError, commit_draw, perform_due_draws, public_view, rank, run_draw
from server.errors import Conflict
from server.jobs.tasks import JOBS, JobContext, JobSettings, check_devices, retention
from server.jobs.scheduler import Scheduler, execute_job
from server.settings import ServerSettings
from server.storage.engine import Tx, sql, storage_for
from server.ingest.store import DeviceKeys, Incoming, sequence_gaps
from server.ingest.batch import store_batch
from server.evidence.verify import verify
from server.rules.workdays import add_working_days
from tests.server.conftest import FRAGILE, GOOD, PLAIN, Api, code

CST = dt.timezone(dt.timedelta(hours=8))
POLICY = load_toml(Path(__file__).resolve().parents[2] / "server" / "policy.toml", Policy)
KEY = SigningKey.from_seed(bytes(range(32)))


def at(*args: int) -> int:
    """Epoch ms of a China Standard Time moment."""
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)


#: Enterprises the ``tx`` fixture adds: with PLAIN, 61 eligible for a food draw, so one draw may name 6 (10%).
MORE_ENTERPRISES = 60

ENTERPRISE = sql("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (:code, :name, '', '110108', 'medium', 'B')")
INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms)
    VALUES (:id, :code, 'FIRE', 'fire', 'ended', :opened)
""")
CONFLICT = sql("INSERT INTO conflicts(officer_id, credit_code, reason, declared_ms) VALUES (:officer, :code, '亲属任职', 0)")
AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES ('SH', '上海市监', 'Shanghai', '310000', '[\"food\"]')")
DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:id, 'M', :kind, 'SAMR', :key, 0)")
DEVICE_STATE = sql("""
    INSERT INTO device_state(device_id, last_seen_ms, online, last_status_json) VALUES (:id, :seen, 1, :status)
""")
ONLINE = sql("SELECT online FROM device_state WHERE device_id = :id")
ALERT_KINDS = sql("SELECT kind FROM alerts ORDER BY id")
PLAN_TARGETS = sql("SELECT credit_code FROM plan_targets WHERE plan_id = :plan ORDER BY credit_code")
SAMPLED = sql("SELECT decision_id FROM sample_items ORDER BY decision_id")
DRAW_COUNT = sql("SELECT count(*) FROM draws")
OLD_DRAW = sql("""
    INSERT INTO draws(draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed_hash, seed, committed_ms, draw_at_ms, status)
    VALUES ('OLD', 'SAMR', 'food', '', 'old', 10000, 1, 'h', :seed, :at, :at, 'committed')
""")
RUNS = sql("SELECT job_id, outcome FROM job_runs ORDER BY id")
TREE_HEADS = sql("SELECT count(*) FROM tree_heads")
STORED_JOBS = sql("SELECT id FROM apscheduler_jobs ORDER BY id")


@pytest.fixture
def ctx() -> JobContext:
    return JobContext(key=KEY, policy=POLICY, settings=JobSettings())


def add_enterprises(tx: Tx, n: int) -> None:
    """``n`` more medium-risk food enterprises in 110108."""
    tx.many(ENTERPRISE, [{"code": code(10 + i), "name": f"企业{i}"} for i in range(n)])


@pytest.fixture
def tx(seeded_url: str) -> Iterator[Tx]:
    """A write transaction over the seeded registers plus 60 enterprises, FRAGILE's yearly inspection and a declared
    conflict, on each backend in turn."""
    store = storage_for(seeded_url)
    with store.writing() as t:
        add_enterprises(t, MORE_ENTERPRISES)
        t.run(INSPECTION, id="old-1", code=FRAGILE, opened=int(time.time() * 1000) - 86_400_000)
        t.run(CONFLICT, officer="OFF-SAMR-1", code=code(10))
    with store.writing() as t:
        yield t


# --------------------------------------------------------------------------- random draws


def test_draw_is_committed_then_reproducible_and_excludes_no_disturb(tx: Tx) -> None:
    now = int(time.time() * 1000)
    draw_id, seed_hash = commit_draw(tx, agency_id="SAMR", field="food", region="110108", title="第四季度食品安全双随机", enterprises=6, officers_per_team=2, draw_at_ms=now + 60_000, now_ms=now, policy=POLICY, announced_by="sup", by_supervisor=True)
    before = public_view(tx, draw_id)
    assert before is not None and before["seed"] is None and before["seed_hash"] == seed_hash and before["result"] is None
    assert perform_due_draws(tx, POLICY, now) == []  # not yet: the draw is due in a minute
    assert perform_due_draws(tx, POLICY, now + 60_000) == [draw_id]
    assert perform_due_draws(tx, POLICY, now + 120_000) == []  # a second run does not draw again
    view = public_view(tx, draw_id)
    assert view is not None and view["status"] == "drawn"
    seed = bytes.fromhex(view["seed"])
    assert hashlib.sha256(seed).hexdigest() == seed_hash  # the seed is the one committed to
    result = view["result"]
    assert GOOD not in result["eligible_enterprises"]  # on the no-disturb list
    assert FRAGILE not in result["eligible_enterprises"]  # its band's yearly cap (1) is used up
    assert len(result["teams"]) == 6 and all(len(t["officers"]) == 2 for t in result["teams"])
    assert set(result["eligible_officers"]) == {"OFF-SAMR-1", "OFF-SAMR-2"}  # valid food credentials of SAMR only
    assert all(not (code(10) == t["credit_code"] and "OFF-SAMR-1" in t["officers"]) for t in result["teams"])
    # Anyone can re-run it from what was published.
    again = run_draw(seed, draw_id, result["eligible_enterprises"], result["eligible_officers"], [tuple(c) for c in result["conflicts"]], 6, 2)
    assert [[t.credit_code, t.officers] for t in again.teams] == [[t["credit_code"], t["officers"]] for t in result["teams"]]
    ranked = sorted(result["eligible_enterprises"], key=lambda c: rank(seed, c))
    assert ranked == sorted(result["eligible_enterprises"], key=lambda c: hashlib.sha256(seed + b":" + c.encode()).hexdigest())
    # With two officers and teams of two, an enterprise where one of them declared a conflict cannot be staffed.
    assert [t["credit_code"] for t in result["teams"]] == [c for c in ranked if c != code(10)][:6]
    # The drawn enterprises are a plan: a random-draw exception naming it is valid for them.
    targets = {c for (c,) in tx.all(PLAN_TARGETS, plan=draw_id)}
    assert targets == {t["credit_code"] for t in result["teams"]}


def test_draw_with_a_different_seed_differs() -> None:
    ents = [code(10 + i) for i in range(12)]
    a = run_draw(b"\x01" * 32, "D", ents, ["A", "B", "C"], [], 5, 1)
    b = run_draw(b"\x02" * 32, "D", ents, ["A", "B", "C"], [], 5, 1)
    assert [t.credit_code for t in a.teams] != [t.credit_code for t in b.teams]
    assert a == run_draw(b"\x01" * 32, "D", ents, ["A", "B", "C"], [], 5, 1)


# --------------------------------------------------------------------------- disclosure deadlines


def test_deadlines_count_across_the_spring_festival_with_its_adjusted_weekend(tx: Tx) -> None:
    # 2026: Spring Festival holiday 15-23 February; Saturday 14 February is an adjusted working day.
    assert add_working_days(dt.date(2026, 2, 10), 7) == (dt.date(2026, 2, 26), True)
    assert add_working_days(dt.date(2026, 2, 12), 2) == (dt.date(2026, 2, 14), True)  # the Saturday counts
    penalty = record_decision(tx, decision_id="D-1", agency_id="SAMR", kind="penalty", decided_on=dt.date(2026, 2, 10), case_no="京海市监罚〔2026〕12号")
    other = record_decision(tx, decision_id="D-2", agency_id="SAMR", kind="other", decided_on=dt.date(2026, 2, 10))
    # 20 working days: 4 before the holiday (the 14th included), then from the 24th, Saturday the 28th (also adjusted) counted.
    assert penalty["deadline"] == "2026-02-26" and other["deadline"] == "2026-03-16"
    record_decision(tx, decision_id="D-3", agency_id="FIRE", kind="permit", decided_on=dt.date(2026, 2, 10))
    late_year = record_decision(tx, decision_id="D-4", agency_id="FIRE", kind="other", decided_on=dt.date(2026, 12, 28))
    assert late_year["calendar_approximate"] is True  # the calendar package has no 2027 data yet: said, not hidden

    with pytest.raises(Conflict, match="already registered"):
        record_decision(tx, decision_id="D-1", agency_id="SAMR", kind="penalty", decided_on=dt.date(2026, 2, 10))

    ctx_job = check_deadlines
    assert ctx_job(tx, at(2026, 2, 20, 9)) == {"warned": 0, "missed": 0}  # during the holiday: 3 working days left
    assert ctx_job(tx, at(2026, 2, 24, 9)) == {"warned": 2, "missed": 0}  # D-1 and D-3 due in 2 working days
    assert ctx_job(tx, at(2026, 2, 25, 9)) == {"warned": 0, "missed": 0}  # warned once only
    assert record_disclosure(tx, "D-3", dt.date(2026, 2, 26)) == "disclosed_on_time"
    assert ctx_job(tx, at(2026, 2, 27, 9)) == {"warned": 0, "missed": 1}  # D-1 missed
    assert record_disclosure(tx, "D-2", dt.date(2026, 3, 17)) == "disclosed_late"
    kinds = [k for (k,) in tx.all(ALERT_KINDS)]
    assert kinds == ["disclosure_due", "disclosure_due", "disclosure_missed"]
    rates = {r["agency_id"]: r for r in on_time_rates(tx)}
    assert rates["SAMR"]["on_time_rate"] == 0.0 and rates["FIRE"]["on_time_rate"] == 1.0


# --------------------------------------------------------------------------- devices


def test_offline_device_is_marked_and_alerted_once(tx: Tx, ctx: JobContext) -> None:
    t0 = at(2026, 11, 24, 9)
    tx.run(DEVICE, id="QT-1", kind="qr_terminal", key=KEY.public_hex)
    # What the ingest's projector leaves after a heartbeat reporting a backlog.
    tx.run(DEVICE_STATE, id="QT-1", seen=t0, status=json.dumps({"outbox_depth": 5000, "oldest_unsent_age_s": 7200}))
    assert check_devices(tx, ctx, t0 + 60_000) == {"offline_alerts": 0, "backlog_alerts": 1}
    assert check_devices(tx, ctx, t0 + 5 * 60_000) == {"offline_alerts": 0, "backlog_alerts": 0}  # 3 x 120 s not yet missed
    assert check_devices(tx, ctx, t0 + 7 * 60_000) == {"offline_alerts": 1, "backlog_alerts": 0}
    assert tx.scalar(ONLINE, id="QT-1") == 0
    assert check_devices(tx, ctx, t0 + 9 * 60_000)["offline_alerts"] == 0  # one alert per silence
    assert [k for (k,) in tx.all(ALERT_KINDS)] == ["device_backlog", "device_offline"]


# --------------------------------------------------------------------------- two runs at once (PostgreSQL: READ COMMITTED)

ALERT_COUNT = sql("SELECT count(*) FROM alerts WHERE kind = :kind")
ENDED = sql("""
    INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms)
    VALUES ('UNREC', :code, 'SAMR', 'food', 'ended', 0, 1000)
""")


def overlapping(db: str, job: Callable[[Tx], Any]) -> tuple[Any, Any]:
    """``job`` in two write transactions at once: the second starts while the first, which has done its work, is still
    open (a run by hand and a scheduled one, on two servers). Their results, first's then second's."""
    store = storage_for(db)
    results: dict[str, Any] = {}
    first_done = threading.Event()

    def second() -> None:
        first_done.wait(30)
        with store.writing() as t:
            results["second"] = job(t)

    thread = threading.Thread(target=second)
    thread.start()
    with store.writing() as t:
        results["first"] = job(t)
        first_done.set()
        time.sleep(0.3)  # the second now waits on the rows the first changed (SQLite: on the write lock)
    thread.join(30)
    return results["first"], results["second"]


def test_two_overlapping_runs_of_a_draw_draw_it_once(seeded_url: str) -> None:
    now = int(time.time() * 1000)
    with storage_for(seeded_url).writing() as t:
        add_enterprises(t, 9)  # 10 eligible: one enterprise may be drawn
        draw_id, _ = commit_draw(
            t, agency_id="SAMR", field="food", region="110108", title="t", enterprises=1, officers_per_team=1, draw_at_ms=now,
            now_ms=now, policy=POLICY, announced_by="sup", by_supervisor=True,
        )  # fmt: skip
    assert overlapping(seeded_url, lambda t: perform_due_draws(t, POLICY, now + 1)) == ([draw_id], [])


def test_two_announcements_at_once_stay_within_the_share(seeded_url: str) -> None:
    """Each would pass the share check alone; the second waits for the first and is refused."""
    with storage_for(seeded_url).writing() as t:
        add_enterprises(t, MORE_ENTERPRISES)  # 61 eligible: 6 in all

    def announce(t: Tx) -> str:
        now = int(time.time() * 1000)
        try:
            commit_draw(t, agency_id="SAMR", field="food", region="110108", title="t", enterprises=6, officers_per_team=1, draw_at_ms=now + 60_000, now_ms=now, policy=POLICY, announced_by="admin-SAMR", by_supervisor=False)
        except DrawError as e:
            return "refused" if "6 already announced" in str(e) else str(e)
        return "announced"

    assert overlapping(seeded_url, announce) == ("announced", "refused")


def test_two_overlapping_deadline_checks_alert_once_and_keep_a_disclosure(seeded_url: str) -> None:
    with storage_for(seeded_url).writing() as t:
        record_decision(t, decision_id="LATE", agency_id="SAMR", kind="penalty", decided_on=dt.date(2026, 2, 10))
        record_decision(t, decision_id="DUE", agency_id="SAMR", kind="penalty", decided_on=dt.date(2026, 2, 13))
    first, second = overlapping(seeded_url, lambda t: check_deadlines(t, at(2026, 2, 27, 9)))
    assert (first, second) == ({"warned": 1, "missed": 1}, {"warned": 0, "missed": 0})
    with storage_for(seeded_url).writing() as t:
        assert (t.scalar(ALERT_COUNT, kind="disclosure_missed"), t.scalar(ALERT_COUNT, kind="disclosure_due")) == (1, 1)
        record_disclosure(t, "DUE", dt.date(2026, 3, 2))
        assert check_deadlines(t, at(2026, 3, 20, 9)) == {"warned": 0, "missed": 0}  # disclosed: never marked missed


def test_two_overlapping_recording_checks_alert_once(seeded_url: str) -> None:
    from server.evidence.coverage import check_ended_recordings

    with storage_for(seeded_url).writing() as t:
        t.run(ENDED, code=PLAIN)
    first, second = overlapping(seeded_url, lambda t: check_ended_recordings(t, 10_000, 1_000))
    assert first == {"checked": 1, "unrecorded": 1} and second["unrecorded"] == 0
    assert storage_for(seeded_url).read(lambda t: t.scalar(ALERT_COUNT, kind="unrecorded_inspection")) == 1


# --------------------------------------------------------------------------- sampling, retention, tree head


def test_case_file_sample_is_reproducible_and_reviewed(tx: Tx) -> None:
    for i in range(40):
        record_decision(tx, decision_id=f"SAMR-2026-10-{i:03d}", agency_id="SAMR", kind="other", decided_on=dt.date(2026, 10, 1 + i % 28))
    made = sample_case_files(tx, at(2026, 11, 1, 2))
    assert made == ["SAMPLE-SAMR-2026-10"] and sample_case_files(tx, at(2026, 11, 2, 2)) == []
    chosen = sorted(d for (d,) in tx.all(SAMPLED))
    population = [f"SAMR-2026-10-{i:03d}" for i in range(40)]
    again = sorted(sorted(population, key=lambda d: hashlib.sha256(f"SAMR:2026-10:{d}".encode()).hexdigest())[:4])
    assert chosen == again
    for d in chosen[:3]:
        record_review(tx, "SAMPLE-SAMR-2026-10", d, "pass", "审查员甲", "", at(2026, 11, 5, 9))
    record_review(tx, "SAMPLE-SAMR-2026-10", chosen[3], "fail", "审查员甲", "证据不足", at(2026, 11, 5, 9))
    assert pass_rates(tx) == [{"sample_id": "SAMPLE-SAMR-2026-10", "agency_id": "SAMR", "period": "2026-10", "sampled": 4, "reviewed": 4, "passed": 3, "pass_rate": 0.75}]


def test_retention_removes_only_what_policy_allows_and_verify_still_passes(seeded_db: Path, ctx: JobContext) -> None:
    """SQLite only: the events are stored by the ingest's store_batch and checked by verify on one raw connection
    (tests/storage/test_jobs.py removes rows on both backends)."""
    con = dbmod.connect(seeded_db)
    con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'SAMR', ?, 0)", (KEY.public_hex,))
    incoming, prev = [], None
    for s in (1, 2, 3):  # a chained device: each event carries the hash of the previous body
        m = DeviceStatus(event_id=str(uuid.uuid4()), device_id="BR-1", seq=s, device_time_ms=0, clock_error_ms=5, outbox_depth=0, oldest_unsent_age_s=0, free_storage_bytes=1, prev_hash=prev)
        payload, body = seal_with_body(m, KEY)
        prev = hashlib.sha256(body).hexdigest()
        incoming.append(Incoming(topics.device_up("BR-1"), payload, 0))
    store_batch(con, incoming, DeviceKeys(con))
    con.execute("UPDATE events SET stored_ms = 0 WHERE seq IN (1, 2)")  # stored long ago (the leaf keeps its original value)
    out = retention(Tx(con), ctx, int(time.time() * 1000))
    assert out["status_events_removed"] == 2
    assert [s for (s,) in con.execute("SELECT seq FROM events ORDER BY seq")] == [3]
    assert sequence_gaps(Tx(con), "BR-1") == []
    report = verify(Tx(con), KEY.public_hex)
    assert report.problems == [] and report.chains[0].predecessor_removed_by_policy == 1
    con.close()


def test_jobs_are_registered_once_across_restarts_and_record_their_runs(seeded_url: str, ctx: JobContext, tmp_path: Path) -> None:
    key_path = tmp_path / "server.key"
    KEY.save(key_path)
    policy = Path(__file__).resolve().parents[2] / "server" / "policy.toml"
    for _ in range(3):  # three restarts
        s = Scheduler(seeded_url, key_path, policy)
        s.start()
        assert s.is_leader  # alone: it leads from the start
        ids = [j["id"] for j in s.jobs()]
        s.stop()
        assert ids == ["case_reviews", "devices", "disclosure", "draws", "recording", "retention", "sampling", "supervision", "tree_head"]
    store = storage_for(seeded_url)
    assert [i for (i,) in store.read(lambda t: t.all(STORED_JOBS))] == ids  # one row per job in the database, never a second copy
    out = execute_job("tree_head", seeded_url, ctx, at(2026, 11, 25, 0, 10))
    assert out["outcome"] == "ok" and out["tree_size"] == 0
    assert execute_job("tree_head", seeded_url, ctx, at(2026, 11, 25, 0, 10, 5), slot_ms=at(2026, 11, 25, 0, 10))["outcome"] == "skipped"
    runs = store.read(lambda t: t.all(RUNS))  # the minute jobs ran too if a minute began while a scheduler was up
    assert [r for r in runs if r[0] == "tree_head"] == [("tree_head", "ok")]
    assert store.read(lambda t: t.scalar(TREE_HEADS)) == 1


def test_a_failed_run_is_rolled_back_and_recorded_as_its_slots_error(seeded_url: str, ctx: JobContext, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(t: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
        t.run(OLD_DRAW, seed="00" * 32, at=now_ms)  # work that must not stay
        raise RuntimeError("boom")

    monkeypatch.setitem(JOBS, "failing", (failing, {"trigger": "interval", "minutes": 1}, "失败", "failing"))
    assert execute_job("failing", seeded_url, ctx, 5_000, slot_ms=0) == {"outcome": "error", "error": "boom"}
    assert execute_job("failing", seeded_url, ctx, 6_000, slot_ms=0)["outcome"] == "skipped"  # the slot had its run
    store = storage_for(seeded_url)
    assert store.read(lambda t: t.scalar(DRAW_COUNT)) == 0
    assert store.read(lambda t: t.all(RUNS)) == [("failing", "error")]


def test_job_status_api_and_public_pages(seeded_db: Path) -> None:
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False))) as client:
        c = Api(client)
        jobs = c.get("/api/v1/jobs").json()
        assert [j["id"] for j in jobs] == ["devices", "recording", "draws", "disclosure", "tree_head", "sampling", "supervision", "case_reviews", "retention"]
        assert all(j["next_run_ms"] for j in jobs)
        assert c.post("/api/v1/jobs/nope/run").status_code == 404
        assert c.post("/api/v1/jobs/tree_head/run").status_code == 202
        page = c.get("/jobs")
        assert page.status_code == 200 and "证据日志每日签名树头" in page.text
        made = c.post("/api/v1/draws", json={"agency_id": "SAMR", "field": "food", "title": "测试抽查", "enterprises": 1, "draw_at_ms": 4102444800000})
        assert made.status_code == 201, made.text
        draw = c.get(f"/public/draws/{made.json()['draw_id']}")
        assert draw.status_code == 200 and made.json()["seed_hash"] in draw.text and "双随机抽查结果公示" in draw.text
        assert c.post("/api/v1/draws", json={"agency_id": "NOPE", "field": "food", "title": "x", "enterprises": 1}).status_code == 400
        d = c.post("/api/v1/decisions", json={"decision_id": "D-9", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-02-10"})
        assert d.status_code == 201 and d.json()["deadline"] == "2026-02-26"
        assert c.post("/api/v1/decisions", json={"decision_id": "D-9", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-02-10"}).status_code == 409
        assert c.post("/api/v1/decisions", json={"decision_id": "D-8", "agency_id": "SAMR", "kind": "fine", "decided_on": "2026-02-10"}).status_code == 400
        json.dumps(c.get("/api/v1/disclosure/rates").json())


# ------------------------------------------------------------- draws an agency administrator may not make

DRAWS = "/api/v1/draws"


def draw_body(**kw: object) -> dict[str, object]:
    """A draw of one food-safety enterprise in SAMR's region, announced for a minute from now."""
    return {"agency_id": "SAMR", "field": "food", "title": "抽查", "enterprises": 1, "draw_at_ms": int(time.time() * 1000) + 60_000, **kw}


@pytest.fixture
def populous(seeded_db: Path, api: Api) -> Api:
    """The API over registers with 60 food enterprises eligible in 110108 (a draw may name 6) and one agency
    elsewhere (region 310000)."""
    with storage_for(seeded_db).writing() as tx:
        add_enterprises(tx, MORE_ENTERPRISES - 2)
        tx.run(AGENCY)
    return api


def test_the_reviewers_draw_of_every_enterprise_is_refused(api: Api, seeded_db: Path) -> None:
    """admin-SAMR drew 10,000 enterprises, in no region, at a past time: every eligible enterprise became a plan
    target for 90 days (unlimited inspections as random_draw exceptions). Each part is now refused."""
    admin = api.as_("admin-SAMR")
    now = int(time.time() * 1000)
    r = admin.post(DRAWS, json=draw_body(enterprises=10000, region="", draw_at_ms=now - 1000))
    assert r.status_code == 400, r.text
    assert "至多抽取 1 家企业" in r.json()["detail"]  # 10% of the 2 eligible, at least one
    assert admin.post(DRAWS, json=draw_body(enterprises=2)).status_code == 400
    assert storage_for(seeded_db).read(lambda tx: tx.scalar(DRAW_COUNT)) == 0


def test_a_draw_names_at_most_a_tenth_of_the_eligible_enterprises(populous: Api) -> None:
    r = populous.post(DRAWS, json=draw_body(enterprises=7))
    assert r.status_code == 400 and "至多抽取 6 家" in r.json()["detail"] and "at most 6" in r.json()["detail"], r.text
    assert populous.post(DRAWS, json=draw_body(enterprises=6)).status_code == 201
    assert populous.post(DRAWS, json=draw_body(enterprises=10001)).status_code == 400  # the body's own bound
    again = populous.post(DRAWS, json=draw_body(enterprises=1))  # a second draw would go past the share
    assert again.status_code == 400 and "6 already announced" in again.json()["detail"], again.text
    assert populous.post(DRAWS, json=draw_body(agency_id="FIRE", enterprises=6)).status_code == 201  # another agency's share


def test_draws_of_one_agency_field_and_region_add_up_to_the_share_for_90_days(tx: Tx) -> None:
    """Ten draws of 10% each would cover everyone again: the share holds for the draws whose plans may be in force."""
    now = int(time.time() * 1000)

    def draw(at: int, **kw: object) -> str:
        args: dict[str, object] = {"agency_id": "SAMR", "field": "food", "region": "", "title": "t", "enterprises": 1, "officers_per_team": 1}
        args.update(kw)
        return commit_draw(tx, draw_at_ms=at + 60_000, now_ms=at, policy=POLICY, announced_by="admin-SAMR", by_supervisor=False, **args)[0]  # type: ignore[arg-type]

    for _ in range(6):  # 61 eligible: 6 in all
        draw(now)
    with pytest.raises(DrawError, match="6 already announced"):
        draw(now + 1000)
    draw(now + 91 * 86_400_000)  # the first draws' plans have lapsed


def test_a_draw_announced_long_ago_is_drawn_to_the_share_of_todays_population(tx: Tx) -> None:
    """A draw announced before the bound (or whose population shrank) never names more than the share."""
    now = int(time.time() * 1000)
    tx.run(OLD_DRAW, seed="00" * 32, at=now - 1000)
    assert perform_due_draws(tx, POLICY, now) == ["OLD"]
    assert len(tx.all(PLAN_TARGETS, plan="OLD")) == 6  # of 61 eligible


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"field": "no-such-field"}, "field 'no-such-field' is not registered"),
        ({"field": "fire"}, "'fire' is not among SAMR's fields"),  # registered, but not SAMR's
        ({"region": "zzz"}, "region 'zzz' is not registered"),
        ({"agency_id": "FIRE"}, "you act for your own agency only"),
    ],
)
def test_a_draws_field_and_region_must_be_registered_and_the_agencys(api: Api, changes: dict[str, object], needle: str) -> None:
    for who in ("admin-SAMR", "sup"):
        r = api.as_(who).post(DRAWS, json=draw_body(**changes))
        if who == "sup" and "agency_id" in changes:
            continue  # the supervisor acts for every agency (FIRE's food draw is valid)
        assert r.status_code in (400, 403) and needle in r.json()["detail"], (who, r.text)


def test_an_agency_administrator_draws_in_the_agencys_own_region(populous: Api) -> None:
    admin = populous.as_("admin-SAMR")
    r = admin.post(DRAWS, json=draw_body(region="310000"))  # registered, but Shanghai's
    assert r.status_code == 400 and "agency's own region 110108" in r.json()["detail"], r.text
    own = admin.post(DRAWS, json=draw_body(region=""))  # empty: the agency's own region
    assert own.status_code == 201, own.text
    assert populous.get(f"{DRAWS}/{own.json()['draw_id']}").json()["region"] == "110108"
    assert populous.post(DRAWS, json=draw_body(region="310000")).status_code == 201  # the supervisor may


def test_an_agency_administrator_cannot_backdate_a_draw(populous: Api) -> None:
    admin = populous.as_("admin-SAMR")
    now = int(time.time() * 1000)
    r = admin.post(DRAWS, json=draw_body(draw_at_ms=now - 5 * 60_000))
    assert r.status_code == 400 and "cannot be set for a time already past" in r.json()["detail"], r.text
    assert admin.post(DRAWS, json=draw_body(draw_at_ms=now - 20_000)).status_code == 201  # clocks differ a little
    assert admin.post(DRAWS, json={k: v for k, v in draw_body().items() if k != "draw_at_ms"}).status_code == 201  # at the next run


@pytest.mark.parametrize("draw_at_ms", [10**30, 2**63, -(10**18), 0, 4102444800001])
def test_a_draw_time_outside_2000_to_2100_is_a_400(api: Api, draw_at_ms: int) -> None:
    r = api.post(DRAWS, json=draw_body(draw_at_ms=draw_at_ms))
    assert r.status_code == 400 and "draw_at_ms" in r.text, r.text


def test_an_announced_draw_raises_an_alert_naming_who_announced_it(api: Api) -> None:
    made = api.as_("admin-SAMR").post(DRAWS, json=draw_body())
    assert made.status_code == 201, made.text
    draw_id = made.json()["draw_id"]
    alerts = api.as_("admin-SAMR").get("/api/v1/alerts", params={"kind": "draw_announced"}).json()
    assert [(a["ref"], a["severity"], a["agency_id"]) for a in alerts] == [(draw_id, "info", "SAMR")]
    assert alerts[0]["message_zh"].startswith("admin-SAMR 宣布双随机抽查") and "admin-SAMR announced" in alerts[0]["message_en"]
    assert api.get("/api/v1/alerts", params={"kind": "draw_announced"}).json()[0]["ref"] == draw_id  # the supervisor sees it
    assert api.as_("admin-FIRE").get("/api/v1/alerts", params={"kind": "draw_announced"}).json() == []  # another agency does not
